"""A small trial, written straight into a store, whose every figure is worked out by hand.

Two trial days in January (London = UTC, no clock change): 2026-01-12 and 2026-01-13. Four hot spots
(target 15 minutes each), trial T1 crossover: day 12 H1, H2 treated and H3, H4 control; day 13 the
other way round. Officers alice (team A, device dev-alice), bob (team B, dev-bob), carol (no team,
dev-carol); dev-dave has no assignment at all.

Assignments (window: to the officer's next assignment or 06:00 next morning):
  a1 alice H1 12th 09:00-11:00, a2 alice H2 12th 11:00-06:00, a3 bob H1 12th 10:00-06:00,
  a4 carol H3 13th 09:00-06:00.
Visits (closed unless said):
  v1 dev-alice H1 12th 09:10-09:30 20 min (observed 18, bridged 2), in a1 -> tasked
  v2 dev-alice H2 12th 11:05-11:15 10 min, in a2 -> tasked
  v3 dev-bob   H1 12th 10:10-10:22 12 min, in a3 -> tasked
  v4 dev-carol H3 12th 14:00-14:06  6 min, no open assignment -> untasked (control hot spot, control day)
  v5 dev-bob   H1 13th 05:50-06:10 20 min: 10 min on trial day 12 (in a3: tasked), 10 on day 13 (untasked)
  v6 dev-carol H3 13th 09:20-09:36 16 min, in a4 -> tasked
  v7 dev-alice H4 13th 12:00-12:03  3 min, untasked
  v8 dev-dave  H2 13th 13:00, open, 5 min so far, untasked
Also a few pings, a stop, a mode segment and an activity entry whose note names an officer (for the
pseudonymised export: none of it may leak).
Crimes (generic CSV, harm given): two in H1 on trial day 12 (one at 05:30 on the 13th, which is still
trial day 12), harm 10 and 20; one in H3 on day 13, harm 5; one outside every hot spot.
"""
from __future__ import annotations

import datetime as dt
import json

from processors.allocation import CONTROL, TREATMENT  # the arms `hotspot allocate` writes

UTC = dt.timezone.utc
DAY12 = dt.date(2026, 1, 12)
DAY13 = dt.date(2026, 1, 13)
HOTSPOTS = {  # id -> (lon0, lat0) of a ~111 m x ~70 m box near Oxford
    "H1": (-1.2600, 51.7500), "H2": (-1.2500, 51.7500), "H3": (-1.2400, 51.7500), "H4": (-1.2300, 51.7500)}
BOX_DEG = 0.001
OFFICERS = {"alice": "dev-alice", "bob": "dev-bob", "carol": "dev-carol"}
TEAMS_CSV = "user,team\nalice,Team A\nbob,Team B\n"
ARMS = {DAY12: {"H1": TREATMENT, "H2": TREATMENT, "H3": CONTROL, "H4": CONTROL},
        DAY13: {"H1": CONTROL, "H2": CONTROL, "H3": TREATMENT, "H4": TREATMENT}}


def t(day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hh, mm, tzinfo=UTC)


def polygon(hid: str) -> dict:
    x, y = HOTSPOTS[hid]
    d = BOX_DEG
    return {"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]}


def inside(hid: str) -> tuple[float, float]:
    """(lat, lon) of the middle of a hot spot."""
    x, y = HOTSPOTS[hid]
    return y + BOX_DEG / 2, x + BOX_DEG / 2


VISITS = [
    # id, device, hotspot, entered, exited (None: open), dwell_min, inferred_min
    ("v1", "dev-alice", "H1", t(12, 9, 10), t(12, 9, 30), 20, 2),
    ("v2", "dev-alice", "H2", t(12, 11, 5), t(12, 11, 15), 10, 0),
    ("v3", "dev-bob", "H1", t(12, 10, 10), t(12, 10, 22), 12, 0),
    ("v4", "dev-carol", "H3", t(12, 14, 0), t(12, 14, 6), 6, 0),
    ("v5", "dev-bob", "H1", t(13, 5, 50), t(13, 6, 10), 20, 0),
    ("v6", "dev-carol", "H3", t(13, 9, 20), t(13, 9, 36), 16, 0),
    ("v7", "dev-alice", "H4", t(13, 12, 0), t(13, 12, 3), 3, 0),
    ("v8", "dev-dave", "H2", t(13, 13, 0), None, 5, 0),
]
ASSIGNMENTS = [
    ("a1", "alice", "dev-alice", "H1", t(12, 9, 0), DAY12, TREATMENT),
    ("a2", "alice", "dev-alice", "H2", t(12, 11, 0), DAY12, TREATMENT),
    ("a3", "bob", "dev-bob", "H1", t(12, 10, 0), DAY12, TREATMENT),
    ("a4", "carol", "dev-carol", "H3", t(13, 9, 0), DAY13, TREATMENT),
]
CRIMES_CSV = (
    "occurred_at,lat,lon,category,harm\n"
    f"2026-01-12T20:00:00+00:00,{inside('H1')[0]},{inside('H1')[1]},Violence and sexual offences,10\n"
    f"2026-01-13T05:30:00+00:00,{inside('H1')[0]},{inside('H1')[1]},Robbery,20\n"
    f"2026-01-13T15:00:00+00:00,{inside('H3')[0]},{inside('H3')[1]},Violence and sexual offences,5\n"
    "2026-01-13T15:00:00+00:00,51.9,-1.5,Violence and sexual offences,7\n"
)


USERS = sorted(OFFICERS)
DEVICES = sorted(set(OFFICERS.values()) | {"dev-dave"})
PINGS_TTL_DAYS = 3650  # migrate fixture stores with this: the scenario's pings are older than the default 90 days


def write_fixture(client, db: str = "hotspot") -> None:
    """Insert the scenario into a store migrated with PINGS_TTL_DAYS (a clickhouse-connect client)."""
    published = t(1, 0)
    client.insert(f"{db}.hotspots", [
        [hid, 1, f"Hot spot {hid}", "briefing", json.dumps(polygon(hid)), None, 15.0, None, None, "{}", 0, published]
        for hid in HOTSPOTS],
        column_names=["id", "version", "name", "briefing", "geometry_geojson", "buffer_m", "target_minutes",
                      "active_from", "active_to", "stats_json", "retired", "published_at"])
    client.insert(f"{db}.visits", [
        [vid, dev, hs, entered, exited, dwell * 60.0, (dwell - inferred) * 60.0, inferred * 60.0, dwell * 60.0,
         0.0, 0.0, 0, 10, "open" if exited is None else "exit", 1]
        for vid, dev, hs, entered, exited, dwell, inferred in VISITS],
        column_names=["visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s", "observed_s",
                      "inferred_s", "foot_s", "vehicle_s", "stationary_s", "stop_count", "ping_count", "end_reason",
                      "version"])
    client.insert(f"{db}.assignments", [
        [aid, user, dev, hs, at, day, arm, None] for aid, user, dev, hs, at, day, arm in ASSIGNMENTS],
        column_names=["assignment_id", "user", "device_id", "hotspot_id", "assigned_at", "trial_day", "arm",
                      "target_minutes"])
    rows = []
    for day, arms in ARMS.items():
        start = dt.datetime.combine(day, dt.time(6), UTC)
        for hid, arm in arms.items():
            rows.append(["T1", hid, day, start, start + dt.timedelta(days=1), arm, "", "crossover", 7])
    client.insert(f"{db}.allocations", rows, column_names=["trial_id", "hotspot_id", "day", "starts_at", "ends_at",
                                                           "arm", "block", "design", "seed"])
    client.insert(f"{db}.officer_teams", [["alice", "Team A", published], ["bob", "Team B", published]],
                  column_names=["user", "team", "updated_at"])
    lat, lon = inside("H1")
    client.insert(f"{db}.pings", [
        ["dev-alice", t(12, 9, 10), t(12, 9, 10), lat, lon, "native", ["H1"]],
        ["dev-alice", t(12, 9, 11), t(12, 9, 11), lat + 0.0001, lon, "native", ["H1"]],
        ["dev-bob", t(12, 10, 10), t(12, 10, 10), lat, lon + 0.0001, "owntracks", ["H1"]]],
        column_names=["device_id", "ts", "received_at", "lat", "lon", "source", "hotspot_ids"])
    client.insert(f"{db}.stops", [["s1", "dev-alice", "H1", t(12, 9, 12), t(12, 9, 16), 240.0, lat, lon, 1]],
                  column_names=["stop_id", "device_id", "hotspot_id", "started_at", "ended_at", "duration_s", "lat",
                                "lon", "version"])
    client.insert(f"{db}.mode_segments", [["dev-alice", t(12, 9, 0), t(12, 9, 10), "vehicle", 2500.0, 1]],
                  column_names=["device_id", "started_at", "ended_at", "mode", "distance_m", "version"])
    client.insert(f"{db}.activity", [
        ["act-alice-1", "alice", "dev-alice", t(12, 9, 20), "patrol_note", "H1", "a1", "spoke to bob and carol",
         lat, lon, {"partner": "bob"}]],
        column_names=["activity_id", "user", "device_id", "ts", "kind", "hotspot_id", "assignment_id", "note", "lat",
                      "lon", "attributes"])
