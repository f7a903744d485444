-- Presence through reporting gaps (issue 12). A visit the device went silent
-- inside and came back to within gap_bridge_max_s goes on: its row says how much
-- of dwell_s was seen (observed_s) and how much was bridged across silences
-- (inferred_s), dwell_s = observed_s + inferred_s. Rows written before this
-- migration bridged nothing: observed_s is their dwell_s.
--
-- dosage_daily reports both, so an analyst can take the strict figure
-- (observed_minutes) or the bridged one (dwell_minutes = observed + bridged).
-- Open visits count with their dwell so far: the worker rewrites an open
-- visit's row with its dwell up to its last fix at each checkpoint.
ALTER TABLE {db}.visits ADD COLUMN IF NOT EXISTS observed_s Float64 DEFAULT dwell_s AFTER dwell_s;
ALTER TABLE {db}.visits ADD COLUMN IF NOT EXISTS inferred_s Float64 DEFAULT 0 AFTER observed_s;

DROP VIEW IF EXISTS {db}.visits_current;
CREATE VIEW IF NOT EXISTS {db}.visits_current AS
SELECT visit_id, device_id, hotspot_id, entered_at, exited_at, dwell_s, observed_s, inferred_s, foot_s,
       vehicle_s, stationary_s, stop_count, ping_count, end_reason, version
FROM {db}.visits FINAL;

DROP VIEW IF EXISTS {db}.dosage_daily;
CREATE VIEW IF NOT EXISTS {db}.dosage_daily AS
SELECT
    hotspot_id,
    trial_day,
    round(sum(dwell_s * share) / 60, 3)       AS dwell_minutes,
    round(sum(observed_s * share) / 60, 3)    AS observed_minutes,
    round(sum(inferred_s * share) / 60, 3)    AS bridged_minutes,
    round(sum(foot_s * share) / 60, 3)        AS foot_minutes,
    round(sum(vehicle_s * share) / 60, 3)     AS vehicle_minutes,
    round(sum(stationary_s * share) / 60, 3)  AS stationary_minutes,
    countIf(trial_day = first_day)            AS visits,
    uniqExact(device_id)                      AS officers,
    countIf(trial_day = first_day AND end_reason = 'open') AS open_visits
FROM
(
    SELECT
        hotspot_id, device_id, dwell_s, observed_s, inferred_s, foot_s, vehicle_s, stationary_s, end_reason,
        toUnixTimestamp64Milli(entered_at) AS start_ms,
        if(exited_at IS NULL, start_ms + toInt64(dwell_s * 1000),
           greatest(start_ms, toUnixTimestamp64Milli(assumeNotNull(exited_at)))) AS end_ms,
        fromUnixTimestamp64Milli(end_ms, 'Europe/London') AS end_local,
        subtractDays(toDate(entered_at, 'Europe/London'), toHour(entered_at, 'Europe/London') < 6) AS first_day,
        subtractDays(toDate(end_local), toHour(end_local) < 6) AS last_day,
        arrayJoin(arrayMap(i -> addDays(first_day, i), range(toUInt32(dateDiff('day', first_day, last_day)) + 1))) AS trial_day,
        toUnixTimestamp64Milli(toDateTime64(concat(toString(trial_day), ' 06:00:00'), 3, 'Europe/London')) AS day_start_ms,
        toUnixTimestamp64Milli(toDateTime64(concat(toString(addDays(trial_day, 1)), ' 06:00:00'), 3, 'Europe/London')) AS day_end_ms,
        greatest(0, least(end_ms, day_end_ms) - greatest(start_ms, day_start_ms)) AS overlap_ms,
        if(end_ms > start_ms, overlap_ms / (end_ms - start_ms), 1.0) AS share
    FROM {db}.visits FINAL
)
WHERE overlap_ms > 0 OR trial_day = first_day
GROUP BY hotspot_id, trial_day;
