-- Retention of every table that holds data about officers (issue 16), as TTLs:
-- a row is deleted (at the table's next merge) that many days after its own
-- time. Raw pings, accepted or rejected, have the shortest (0001/0002 gave them
-- theirs); visits, stops, mode segments, assignments and activity are kept for a
-- trial and its evaluation. The days are the settings' defaults
-- (streams/settings.py, *_ttl_days); the worker applies the configured values at
-- every start after the migrations, and only where they differ
-- (sinks/retention.py, which lists one line per table, and gives tables that
-- later migrations create, audit and crimes, their TTL once they exist).
-- hotspots and allocations have none: a trial's report needs them for good.
-- Each statement sets a TTL to a value, so running it twice changes nothing.
ALTER TABLE {db}.pings MODIFY TTL toDateTime(ts) + toIntervalDay({pings_ttl_days});
ALTER TABLE {db}.pings_rejected MODIFY TTL toDateTime(received_at) + toIntervalDay({pings_ttl_days});
ALTER TABLE {db}.visits MODIFY TTL toDateTime(entered_at) + toIntervalDay({visits_ttl_days});
ALTER TABLE {db}.stops MODIFY TTL toDateTime(started_at) + toIntervalDay({stops_ttl_days});
ALTER TABLE {db}.mode_segments MODIFY TTL toDateTime(started_at) + toIntervalDay({mode_segments_ttl_days});
ALTER TABLE {db}.assignments MODIFY TTL toDateTime(assigned_at) + toIntervalDay({assignments_ttl_days});
ALTER TABLE {db}.activity MODIFY TTL toDateTime(ts) + toIntervalDay({activity_ttl_days});
