-- Views analysts and reports read. The *_current views collapse replaced rows
-- (FINAL), so nothing downstream has to remember to.
--
-- Trial days run 06:00 to 05:59 Europe/London wall-clock time (so a trial day
-- is 23 or 25 hours long on the clock-change days). The trial day of an
-- instant t is the London calendar date of t, minus one day before 06:00.

CREATE VIEW IF NOT EXISTS {db}.visits_current AS
SELECT visit_id, device_id, hotspot_id, entered_at, exited_at, dwell_s, foot_s, vehicle_s,
       stationary_s, stop_count, ping_count, end_reason, version
FROM {db}.visits FINAL;

CREATE VIEW IF NOT EXISTS {db}.stops_current AS
SELECT stop_id, device_id, hotspot_id, started_at, ended_at, duration_s, lat, lon, version
FROM {db}.stops FINAL;

CREATE VIEW IF NOT EXISTS {db}.mode_segments_current AS
SELECT device_id, started_at, ended_at, mode, distance_m, version
FROM {db}.mode_segments FINAL;

-- Latest published version of each hot spot, retired ones included (retired = 1).
CREATE VIEW IF NOT EXISTS {db}.hotspots_current AS
SELECT id, version, name, briefing, geometry_geojson, buffer_m, target_minutes, active_from,
       active_to, stats_json, retired, published_at
FROM {db}.hotspots FINAL
ORDER BY id, version DESC
LIMIT 1 BY id;

-- Patrol dosage per hot spot and trial day. A visit that spans trial days is
-- shared between them in proportion to its time on each side of 06:00, and so
-- are its foot/vehicle/stationary seconds. visits counts visits by the day they
-- began; officers counts distinct devices present that day (one device per
-- officer); open_visits those still going on, counted with their dwell so far
-- (an open visit's end is entered_at + dwell_s).
CREATE VIEW IF NOT EXISTS {db}.dosage_daily AS
SELECT
    hotspot_id,
    trial_day,
    round(sum(dwell_s * share) / 60, 3)       AS dwell_minutes,
    round(sum(foot_s * share) / 60, 3)        AS foot_minutes,
    round(sum(vehicle_s * share) / 60, 3)     AS vehicle_minutes,
    round(sum(stationary_s * share) / 60, 3)  AS stationary_minutes,
    countIf(trial_day = first_day)            AS visits,
    uniqExact(device_id)                      AS officers,
    countIf(trial_day = first_day AND end_reason = 'open') AS open_visits
FROM
(
    SELECT
        hotspot_id, device_id, dwell_s, foot_s, vehicle_s, stationary_s, end_reason,
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

-- Compliance per assignment: what the assigned officer's device did in the
-- assigned hot spot during the assignment window. The window opens at
-- assigned_at and closes at the officer's next assignment or at the end of that
-- trial day (06:00 London), whichever comes first. Visits overlapping the
-- window count for the part inside it. target_minutes is the assignment's,
-- else the hot spot's current target; complied is NULL without a target.
-- arrival_s: seconds from the assignment to the first moment in the hot spot
-- (0 when already inside), NULL if the officer never got there.
CREATE VIEW IF NOT EXISTS {db}.compliance AS
SELECT
    assignment_id,
    any(`user`)                                   AS `user`,
    any(device_id)                                AS device_id,
    any(hotspot_id)                               AS hotspot_id,
    any(assigned_at)                              AS assigned_at,
    fromUnixTimestamp64Milli(any(window_end_ms), 'UTC') AS window_end,
    any(assigned_day)                             AS trial_day,
    any(arm)                                      AS arm,
    countIf(overlap_ms > 0)                       AS visits,
    toUInt8(visits > 0)                           AS visited,
    round(sum(dwell_s * share) / 60, 3)           AS dwell_minutes,
    if(visits > 0, (minIf(greatest(v_start_ms, assigned_ms), overlap_ms > 0) - any(assigned_ms)) / 1000, NULL) AS arrival_s,
    any(coalesce(own_target, hotspot_target))     AS target_minutes,
    if(target_minutes IS NULL OR target_minutes <= 0, NULL, dwell_minutes / target_minutes) AS dose_ratio,
    if(target_minutes IS NULL, NULL, toUInt8(dwell_minutes >= target_minutes)) AS complied
FROM
(
    SELECT
        a.assignment_id AS assignment_id, a.`user` AS `user`, a.device_id AS device_id,
        a.hotspot_id AS hotspot_id, a.assigned_at AS assigned_at, a.arm AS arm,
        a.assigned_ms AS assigned_ms, a.assigned_day AS assigned_day, a.window_end_ms AS window_end_ms,
        a.target_minutes AS own_target, h.target_minutes AS hotspot_target,
        v.dwell_s AS dwell_s, v.v_start_ms AS v_start_ms,
        greatest(0, least(v.v_end_ms, a.window_end_ms) - greatest(v.v_start_ms, a.assigned_ms)) AS overlap_ms,
        if(v.v_end_ms > v.v_start_ms, overlap_ms / (v.v_end_ms - v.v_start_ms), toFloat64(overlap_ms > 0)) AS share
    FROM
    (
        SELECT
            assignment_id, `user`, device_id, hotspot_id, assigned_at, arm, target_minutes,
            toUnixTimestamp64Milli(assigned_at) AS assigned_ms,
            subtractDays(toDate(assigned_at, 'Europe/London'), toHour(assigned_at, 'Europe/London') < 6) AS assigned_day,
            toUnixTimestamp64Milli(toDateTime64(concat(toString(addDays(assigned_day, 1)), ' 06:00:00'), 3, 'Europe/London')) AS day_end_ms,
            leadInFrame(assigned_ms, 1, toInt64(9223372036854775807))
                OVER (PARTITION BY `user` ORDER BY assigned_ms, assignment_id ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_ms,
            least(next_ms, day_end_ms) AS window_end_ms
        FROM {db}.assignments FINAL
    ) AS a
    LEFT JOIN
    (
        SELECT device_id, hotspot_id, dwell_s,
               toUnixTimestamp64Milli(entered_at) AS v_start_ms,
               if(exited_at IS NULL, v_start_ms + toInt64(dwell_s * 1000),
                  greatest(v_start_ms, toUnixTimestamp64Milli(assumeNotNull(exited_at)))) AS v_end_ms
        FROM {db}.visits FINAL
    ) AS v ON v.device_id = a.device_id AND v.hotspot_id = a.hotspot_id
    LEFT JOIN {db}.hotspots_current AS h ON h.id = a.hotspot_id
)
GROUP BY assignment_id;
