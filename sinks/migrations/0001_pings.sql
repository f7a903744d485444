-- Raw pings as received, accepted or not, with what the worker made of them.
-- Time is UTC milliseconds; raw positions are personal data, so they expire
-- after the retention period (settings: pings_ttl_days).
-- ReplacingMergeTree on (device_id, ts): a ping written twice after a worker
-- crash collapses to one row; queries that must not double count use FINAL.
CREATE TABLE IF NOT EXISTS {db}.pings
(
    device_id     LowCardinality(String),
    ts            DateTime64(3, 'UTC'),
    received_at   DateTime64(3, 'UTC'),
    lat           Float64,
    lon           Float64,
    accuracy_m    Nullable(Float32),
    speed_mps     Nullable(Float32),
    heading_deg   Nullable(Float32),
    altitude_m    Nullable(Float32),
    battery       Nullable(Float32),
    source        LowCardinality(String),
    hotspot_ids   Array(String),
    low_accuracy  UInt8,
    late          UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (device_id, ts)
TTL toDateTime(ts) + INTERVAL {pings_ttl_days} DAY;
