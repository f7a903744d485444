-- Hot spots as published, officers' assignments and activity, and trial
-- schedules. Same idempotency rule as 0002: stable keys, replacing engines,
-- read with FINAL or the *_current views.

-- Every published version of every hot spot is kept (reports need the geometry
-- and target that applied on a given day); hotspots_current shows the latest.
-- version is the publication time in epoch ms; retired = 1 marks the version
-- written for a tombstone on the hotspots topic.
CREATE TABLE IF NOT EXISTS {db}.hotspots
(
    id                String,
    version           UInt64,
    name              String,
    briefing          String,
    geometry_geojson  String,
    buffer_m          Nullable(Float64),
    target_minutes    Nullable(Float64),
    active_from       Nullable(DateTime64(3, 'UTC')),
    active_to         Nullable(DateTime64(3, 'UTC')),
    stats_json        String,
    retired           UInt8,
    published_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (id, version);

-- Randomised directions given to officers (topic assignments). device_id is ''
-- when the officer had no registered device; target_minutes NULL means "use
-- the hot spot's target".
CREATE TABLE IF NOT EXISTS {db}.assignments
(
    assignment_id   String,
    `user`          LowCardinality(String),
    device_id       LowCardinality(String),
    hotspot_id      LowCardinality(String),
    assigned_at     DateTime64(3, 'UTC'),
    trial_day       Nullable(Date),
    arm             LowCardinality(String),
    target_minutes  Nullable(Float64),
    officer_lat     Nullable(Float64),
    officer_lon     Nullable(Float64),
    distance_m      Nullable(Float64),
    candidates      Nullable(UInt32)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(assigned_at)
ORDER BY assignment_id;

-- Officers' patrol activity log (topic activity). Empty strings for absent ids.
CREATE TABLE IF NOT EXISTS {db}.activity
(
    activity_id    String,
    `user`         LowCardinality(String),
    device_id      LowCardinality(String),
    ts             DateTime64(3, 'UTC'),
    kind           LowCardinality(String),
    hotspot_id     String,
    assignment_id  String,
    note           String,
    lat            Nullable(Float64),
    lon            Nullable(Float64),
    attributes     Map(String, String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (`user`, ts, activity_id);

-- Trial schedules from `hotspot allocate`: which arm each hot spot is in on
-- each trial day (06:00 to 05:59 local; starts_at/ends_at are that window in UTC).
CREATE TABLE IF NOT EXISTS {db}.allocations
(
    trial_id    String,
    hotspot_id  LowCardinality(String),
    day         Date,
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    arm         LowCardinality(String),
    block       String,
    design      LowCardinality(String),
    seed        UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (trial_id, day, hotspot_id);
