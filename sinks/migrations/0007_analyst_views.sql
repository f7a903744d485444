-- Analysts' tables and views (issue 16): crime records, officers' teams, dosage split into tasked and
-- untasked presence, compliance per officer and per team, trial arms by trial day, visit lengths.
-- docs/analysts.md explains each one and has example queries.
--
-- Cluster-ready: plain SELECTs over the tables (FINAL, JOIN, GROUP BY, one window function), nothing
-- that needs a local table, so on a cluster the same views run over Distributed tables. One statement
-- per `;` line (chDB runs every statement of a multi-statement query).
--
-- Trial days run 06:00 to 05:59 Europe/London, as in 0004.

-- Crime records loaded by `hotspot crimes load FILE` (police.uk street-level or generic CSV, read by
-- streams/crimefiles.py). crime_key is stable for one record of one source (police.uk Crime ID, else
-- a hash of the row's fields), so loading a file twice replaces, never doubles. hotspot_ids: the hot
-- spots (as published when the file was loaded) the record lies in. precision: 'exact', 'day' or
-- 'month' (police.uk gives only the month: such records have no trial day and count only in monthly
-- figures). harm_days: from the file's harm column, else the harm table's weight; NULL if neither.
CREATE TABLE IF NOT EXISTS {db}.crimes
(
    crime_key     String,
    source        LowCardinality(String),
    occurred_at   DateTime64(3, 'UTC'),
    `precision`   LowCardinality(String),
    lat           Float64,
    lon           Float64,
    category      LowCardinality(String),
    harm_days     Nullable(Float64),
    location      String,
    hotspot_ids   Array(String),
    loaded_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY crime_key;

-- Which team an officer (the `user` of assignments) belongs to: `hotspot teams load FILE.csv`
-- (columns user, team). The latest row per user wins; teams are as they are now, not as they were
-- on the day of an assignment (a move between teams re-files the officer's history).
CREATE TABLE IF NOT EXISTS {db}.officer_teams
(
    `user`      String,
    team        LowCardinality(String),
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY `user`;

CREATE VIEW IF NOT EXISTS {db}.officer_teams_current AS
SELECT `user`, team FROM {db}.officer_teams FINAL;

-- The window in which an assignment is open: from assigned_at to the officer's next assignment or the
-- end of that trial day (06:00 London), whichever comes first (the same window as `compliance`).
CREATE VIEW IF NOT EXISTS {db}.assignment_windows AS
SELECT
    assignment_id, `user`, device_id, hotspot_id, assigned_at, arm,
    toUnixTimestamp64Milli(assigned_at) AS assigned_ms,
    subtractDays(toDate(assigned_at, 'Europe/London'), toHour(assigned_at, 'Europe/London') < 6) AS trial_day,
    toUnixTimestamp64Milli(toDateTime64(concat(toString(addDays(trial_day, 1)), ' 06:00:00'), 3, 'Europe/London')) AS day_end_ms,
    leadInFrame(assigned_ms, 1, toInt64(9223372036854775807))
        OVER (PARTITION BY `user` ORDER BY assigned_ms, assignment_id ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_ms,
    least(next_ms, day_end_ms) AS window_end_ms
FROM {db}.assignments FINAL;

-- Each visit cut at trial-day boundaries: one row per (visit, trial day it touches), its seconds
-- shared in proportion to its time on each side of 06:00 (as dosage_daily). tasked_s is the part of
-- the piece's dwell during which the device had an assignment to that hot spot open
-- (assignment_windows); the rest is untasked presence (background: officers who were not sent).
CREATE VIEW IF NOT EXISTS {db}.visit_days AS
SELECT
    p.visit_id AS visit_id,
    any(p.hotspot_id) AS hotspot_id,
    any(p.device_id) AS device_id,
    p.trial_day AS trial_day,
    any(p.first_day) AS first_day,
    any(p.end_reason) AS end_reason,
    any(p.dwell_s * p.share) AS dwell_s,
    any(p.observed_s * p.share) AS observed_s,
    any(p.inferred_s * p.share) AS inferred_s,
    any(p.foot_s * p.share) AS foot_s,
    any(p.vehicle_s * p.share) AS vehicle_s,
    any(p.stationary_s * p.share) AS stationary_s,
    sum(greatest(0, least(p.end_ms, p.day_end_ms, w.window_end_ms) - greatest(p.start_ms, p.day_start_ms, w.assigned_ms))) AS tasked_ms,
    max(w.assigned_ms <= p.start_ms AND p.start_ms < w.window_end_ms) AS tasked_at_start,
    any(p.dwell_s) * if(any(p.end_ms) > any(p.start_ms), tasked_ms / (any(p.end_ms) - any(p.start_ms)),
                        toFloat64(tasked_at_start AND p.trial_day = any(p.first_day))) AS tasked_s
FROM
(
    SELECT
        visit_id, hotspot_id, device_id, dwell_s, observed_s, inferred_s, foot_s, vehicle_s, stationary_s, end_reason,
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
    WHERE overlap_ms > 0 OR trial_day = first_day
) AS p
LEFT JOIN
(
    SELECT device_id, hotspot_id, assigned_ms, window_end_ms FROM {db}.assignment_windows WHERE device_id != ''
) AS w ON w.device_id = p.device_id AND w.hotspot_id = p.hotspot_id
GROUP BY p.visit_id, p.trial_day;

-- Daily dosage per hot spot, as dosage_daily, with presence split into tasked and untasked minutes
-- and the officers of each. dwell = observed + bridged = tasked + untasked.
CREATE VIEW IF NOT EXISTS {db}.dosage_daily_tasked AS
SELECT
    hotspot_id,
    trial_day,
    round(sum(dwell_s) / 60, 3)                     AS dwell_minutes,
    round(sum(observed_s) / 60, 3)                  AS observed_minutes,
    round(sum(inferred_s) / 60, 3)                  AS bridged_minutes,
    round(sum(foot_s) / 60, 3)                      AS foot_minutes,
    round(sum(vehicle_s) / 60, 3)                   AS vehicle_minutes,
    round(sum(stationary_s) / 60, 3)                AS stationary_minutes,
    round(sum(tasked_s) / 60, 3)                    AS tasked_minutes,
    round(sum(dwell_s - tasked_s) / 60, 3)          AS untasked_minutes,
    countIf(trial_day = first_day)                  AS visits,
    uniqExact(device_id)                            AS officers,
    uniqExactIf(device_id, tasked_s > 0)            AS tasked_officers,
    uniqExactIf(device_id, dwell_s - tasked_s > 0)  AS untasked_officers,
    countIf(trial_day = first_day AND end_reason = 'open') AS open_visits
FROM {db}.visit_days
GROUP BY hotspot_id, trial_day;

-- Compliance per officer and trial day, from the per-assignment `compliance` view. complied counts
-- assignments whose dose reached their target; with_target those that had a target at all.
CREATE VIEW IF NOT EXISTS {db}.compliance_officer_daily AS
SELECT
    trial_day,
    `user`,
    count()                        AS assignments,
    sum(c_visited)                 AS visited,
    countIf(c_complied = 1)        AS complied,
    countIf(c_complied IS NOT NULL) AS with_target,
    round(sum(c_dwell), 3)         AS dwell_minutes,
    round(sum(c_target), 3)        AS target_minutes
FROM
(
    SELECT trial_day, `user`, visited AS c_visited, complied AS c_complied, dwell_minutes AS c_dwell,
           ifNull(target_minutes, 0) AS c_target
    FROM {db}.compliance
)
GROUP BY trial_day, `user`;

-- Compliance per team and trial day; officers with no team are under '(no team)'.
CREATE VIEW IF NOT EXISTS {db}.compliance_team_daily AS
SELECT
    trial_day,
    team,
    uniqExact(o_user)        AS officers,
    sum(o_assignments)       AS assignments,
    sum(o_visited)           AS visited,
    sum(o_complied)          AS complied,
    sum(o_with_target)       AS with_target,
    round(sum(o_dwell), 3)   AS dwell_minutes,
    round(sum(o_target), 3)  AS target_minutes
FROM
(
    SELECT o.trial_day AS trial_day, if(ifNull(t.team, '') = '', '(no team)', t.team) AS team, o.`user` AS o_user,
           o.assignments AS o_assignments, o.visited AS o_visited, o.complied AS o_complied,
           o.with_target AS o_with_target, o.dwell_minutes AS o_dwell, o.target_minutes AS o_target
    FROM {db}.compliance_officer_daily AS o
    LEFT JOIN {db}.officer_teams_current AS t ON t.`user` = o.`user`
)
GROUP BY trial_day, team;

-- Crimes per hot spot and trial day; only records that know their day (precision exact or day).
CREATE VIEW IF NOT EXISTS {db}.crimes_daily AS
SELECT
    hotspot_id,
    subtractDays(toDate(occurred_at, 'Europe/London'), toHour(occurred_at, 'Europe/London') < 6) AS trial_day,
    count()                       AS crimes,
    round(sum(ifNull(crime_harm, 0)), 3) AS harm_days
FROM (SELECT occurred_at, `precision`, harm_days AS crime_harm, hotspot_ids FROM {db}.crimes FINAL)
ARRAY JOIN hotspot_ids AS hotspot_id
WHERE `precision` IN ('exact', 'day')
GROUP BY hotspot_id, trial_day;

-- One row per trial, trial day and hot spot with its arm and what it received and suffered that day:
-- the unit of a trial's analysis. Hot spots without presence or crimes that day have zeros.
CREATE VIEW IF NOT EXISTS {db}.trial_hotspot_days AS
SELECT
    a.trial_id AS trial_id,
    a.day AS trial_day,
    a.hotspot_id AS hotspot_id,
    a.arm AS arm,
    a.block AS block,
    ifNull(d.dwell_minutes, 0) AS dwell_minutes,
    ifNull(d.observed_minutes, 0) AS observed_minutes,
    ifNull(d.bridged_minutes, 0) AS bridged_minutes,
    ifNull(d.tasked_minutes, 0) AS tasked_minutes,
    ifNull(d.untasked_minutes, 0) AS untasked_minutes,
    ifNull(d.visits, 0) AS visits,
    ifNull(d.officers, 0) AS officers,
    ifNull(c.crimes, 0) AS crimes,
    ifNull(c.harm_days, 0) AS harm_days
FROM (SELECT trial_id, day, hotspot_id, arm, block FROM {db}.allocations FINAL) AS a
LEFT JOIN {db}.dosage_daily_tasked AS d ON d.hotspot_id = a.hotspot_id AND d.trial_day = a.day
LEFT JOIN {db}.crimes_daily AS c ON c.hotspot_id = a.hotspot_id AND c.trial_day = a.day;

-- Trial arms compared by trial day: per arm, hot spots, total and mean minutes per hot spot, visits,
-- and crimes and harm (zeros when no crime records were loaded).
CREATE VIEW IF NOT EXISTS {db}.trial_arms_daily AS
SELECT
    trial_id,
    trial_day,
    arm,
    count()                         AS hotspots,
    round(sum(h_dwell), 3)          AS dwell_minutes,
    round(avg(h_dwell), 3)          AS mean_minutes_per_hotspot,
    round(sum(h_tasked), 3)         AS tasked_minutes,
    round(sum(h_untasked), 3)       AS untasked_minutes,
    sum(h_visits)                   AS visits,
    countIf(h_dwell >= 15)          AS hotspots_with_15_minutes,
    sum(h_crimes)                   AS crimes,
    round(sum(h_harm), 3)           AS harm_days
FROM
(
    SELECT trial_id, trial_day, arm, dwell_minutes AS h_dwell, tasked_minutes AS h_tasked,
           untasked_minutes AS h_untasked, visits AS h_visits, crimes AS h_crimes, harm_days AS h_harm
    FROM {db}.trial_hotspot_days
)
GROUP BY trial_id, trial_day, arm;

-- Closed visits with their length, for distributions (the Koper curve: about 10 minutes beats a
-- drive-through, 11-15 is best). Open visits are left out: their length is not known yet.
CREATE VIEW IF NOT EXISTS {db}.visit_lengths AS
SELECT
    visit_id, device_id, hotspot_id, entered_at,
    subtractDays(toDate(entered_at, 'Europe/London'), toHour(entered_at, 'Europe/London') < 6) AS trial_day,
    round(dwell_s / 60, 3)    AS dwell_minutes,
    round(observed_s / 60, 3) AS observed_minutes,
    multiIf(dwell_s < 300, '0-5', dwell_s < 600, '5-10', dwell_s < 900, '10-15', dwell_s < 1200, '15-20',
            dwell_s < 1800, '20-30', '30+') AS length_band,
    end_reason
FROM {db}.visits FINAL
WHERE end_reason != 'open';
