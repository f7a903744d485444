-- What the worker makes of the pings: visits, stops, travel-mode segments, and
-- the pings it could not use. Columns match the replay output files
-- (visits.csv, stops.csv, modes.csv, rejected.csv) plus a `version`.
--
-- Idempotency: every row carries a stable key derived from its input (visit_id,
-- stop_id, (device_id, started_at), reject_id) and a `version` that is also
-- derived from the input (event time, never the wall clock). A worker that
-- crashes and re-processes pings writes byte-identical rows, which the
-- ReplacingMergeTree collapses; an open visit later closed is written again with
-- a higher version and replaces the open row. Read with FINAL (or the *_current
-- views) to see one row per key. The partition key only uses columns that never
-- change for a key, because rows are only replaced within one partition.

-- One row per visit of a device to a hot spot. While the visit is open,
-- exited_at is NULL, end_reason is 'open' and the durations are those so far.
CREATE TABLE IF NOT EXISTS {db}.visits
(
    visit_id      String,
    device_id     LowCardinality(String),
    hotspot_id    LowCardinality(String),
    entered_at    DateTime64(3, 'UTC'),
    exited_at     Nullable(DateTime64(3, 'UTC')),
    dwell_s       Float64,
    foot_s        Float64,
    vehicle_s     Float64,
    stationary_s  Float64,
    stop_count    UInt32,
    ping_count    UInt32,
    end_reason    LowCardinality(String),
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(entered_at)
ORDER BY (hotspot_id, visit_id);

-- One row per stop inside a hot spot (within stop_radius_m for at least the
-- minimum duration); ended_at is NULL while the stop goes on.
CREATE TABLE IF NOT EXISTS {db}.stops
(
    stop_id     String,
    device_id   LowCardinality(String),
    hotspot_id  LowCardinality(String),
    started_at  DateTime64(3, 'UTC'),
    ended_at    Nullable(DateTime64(3, 'UTC')),
    duration_s  Float64,
    lat         Float64,
    lon         Float64,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (hotspot_id, stop_id);

-- Travel-mode segments of a device: foot, vehicle, stationary, unknown.
CREATE TABLE IF NOT EXISTS {db}.mode_segments
(
    device_id   LowCardinality(String),
    started_at  DateTime64(3, 'UTC'),
    ended_at    DateTime64(3, 'UTC'),
    mode        LowCardinality(String),
    distance_m  Float64,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (device_id, started_at);

-- Pings refused by the gateway, the worker or replay, with their reason.
-- reject_id is stable for one rejected input (e.g. the pings-rejected
-- topic/partition/offset, or a hash of the input), so a replay collapses.
-- ts is NULL and raw holds the input when it could not be decoded into a ping;
-- device_id is '' when unknown. Raw positions are personal data: same
-- retention as pings.
CREATE TABLE IF NOT EXISTS {db}.pings_rejected
(
    reject_id    String,
    device_id    LowCardinality(String),
    ts           Nullable(DateTime64(3, 'UTC')),
    received_at  DateTime64(3, 'UTC'),
    rejected_at  DateTime64(3, 'UTC'),
    lat          Nullable(Float64),
    lon          Nullable(Float64),
    accuracy_m   Nullable(Float32),
    speed_mps    Nullable(Float32),
    heading_deg  Nullable(Float32),
    altitude_m   Nullable(Float32),
    battery      Nullable(Float32),
    source       LowCardinality(String),
    raw          String,
    reason       LowCardinality(String),
    detail       String,
    stage        LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (device_id, received_at, reject_id)
TTL toDateTime(received_at) + INTERVAL {pings_ttl_days} DAY;
