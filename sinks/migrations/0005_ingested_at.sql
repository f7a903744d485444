-- When each row reached ClickHouse, by the insert's own clock, beside when its
-- ping arrived (pings.received_at): the control room can see how fresh the
-- data is, and bench/pipeline.py measures ping-to-row latency row by row. The
-- writer never sends this column; a row written again after a worker restart
-- takes the time of the later insert. Rows written before this migration have
-- no stored value and read as the time of the query.
ALTER TABLE {db}.pings ADD COLUMN IF NOT EXISTS ingested_at DateTime64(3, 'UTC') DEFAULT now64(3);
ALTER TABLE {db}.visits ADD COLUMN IF NOT EXISTS ingested_at DateTime64(3, 'UTC') DEFAULT now64(3);
ALTER TABLE {db}.stops ADD COLUMN IF NOT EXISTS ingested_at DateTime64(3, 'UTC') DEFAULT now64(3);
ALTER TABLE {db}.mode_segments ADD COLUMN IF NOT EXISTS ingested_at DateTime64(3, 'UTC') DEFAULT now64(3);
