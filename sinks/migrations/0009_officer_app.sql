-- The officer app (issue 14). Each assignment records its randomisation so an
-- evaluator can audit it: the seed of the draw, the eligible hot spots in the
-- order the draw used, and their weights (processors/direction.py reproduces
-- the choice from these three). dosage_known = 0 when today's dosage could not
-- be read and every need was taken as the full target.
ALTER TABLE {db}.assignments ADD COLUMN IF NOT EXISTS seed Nullable(UInt64);
ALTER TABLE {db}.assignments ADD COLUMN IF NOT EXISTS eligible Array(String);
ALTER TABLE {db}.assignments ADD COLUMN IF NOT EXISTS weights Array(Float64);
ALTER TABLE {db}.assignments ADD COLUMN IF NOT EXISTS dosage_known Nullable(UInt8);

-- Who signed in (or failed to) and who viewed officers' locations (topic
-- audit, gateway/audit.py). audit_id is random per event, so a record stored
-- twice after a worker restart replaces itself. Kept without a TTL: an audit
-- trail outlives the pings it is about.
CREATE TABLE IF NOT EXISTS {db}.audit
(
    audit_id     String,
    ts           DateTime64(3, 'UTC'),
    `user`       LowCardinality(String),
    role         LowCardinality(String),
    action       LowCardinality(String),
    subject      String,
    detail_json  String,
    address      String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, audit_id);
