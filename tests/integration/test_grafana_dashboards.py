"""Every ClickHouse panel of the Grafana dashboards runs on the real engine.

The panels' SQL is taken from infra/grafana/dashboards/*.json, Grafana's
ClickHouse macros are replaced by what the plugin (grafana-clickhouse-datasource
v4) expands them to for a fixed time range, and each query runs against a
migrated embedded store holding a small trial: two hot spots, one treated and
one control each day, finished visits in both, one open visit and one
assignment. Every panel must answer with rows, not merely parse.
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sinks.clickhouse import make_client, migrate

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "infra" / "grafana" / "dashboards").glob("*.json"))
CLICKHOUSE_UID = "hotspot-clickhouse"
MIN_MS = 60_000


def clickhouse_panels() -> list[tuple[str, dict, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if (target.get("datasource") or panel["datasource"])["uid"] == CLICKHOUSE_UID:
                    found.append((f"{path.stem}: {panel['title']}", panel, target["rawSql"]))
    return found


def expand_macros(sql: str, start: datetime, end: datetime, interval_s: int = 60) -> str:
    """What the plugin sends for these macros (its documented expansions), for the range start..end."""
    f, t = int(start.timestamp()), int(end.timestamp())
    fd, td = start.date().isoformat(), end.date().isoformat()
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 >= toDateTime({f}) AND \1 <= toDateTime({t})", sql)
    sql = re.sub(r"\$__dateFilter\(([^)]+)\)", rf"\1 >= toDate('{fd}') AND \1 <= toDate('{td}')", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({f})").replace("$__toTime", f"toDateTime({t})")
    sql = sql.replace("$__interval_s", str(interval_s))
    assert "$" not in sql, f"a macro or variable the test does not know: {sql}"
    return sql


@pytest.fixture(scope="module")
def trial_store(tmp_path_factory):
    client = make_client(f"chdb://{tmp_path_factory.mktemp('grafana') / 'ch'}")
    migrate(client, "hotspot")
    now_ms = int(time.time() * 1000)
    client.insert("hotspot.hotspots",
                  [[hid, 1, name, "", "{}", None, 15.0, None, None, "{}", 0, now_ms - 30 * 86_400_000]
                   for hid, name in (("hs-1", "Market Street"), ("hs-2", "Station Approach"))],
                  column_names=["id", "version", "name", "briefing", "geometry_geojson", "buffer_m", "target_minutes",
                                "active_from", "active_to", "stats_json", "retired", "published_at"])
    today = datetime.now(timezone.utc).date()
    allocations = []
    for back in range(0, 4):
        day = today - timedelta(days=back)
        for hid, arm in (("hs-1", "treatment"), ("hs-2", "control")):
            starts = int(datetime(day.year, day.month, day.day, 6, tzinfo=timezone.utc).timestamp() * 1000)
            allocations.append(["t1", hid, day, starts, starts + 86_400_000, arm, "b1", "parallel", 7])
    client.insert("hotspot.allocations", allocations,
                  column_names=["trial_id", "hotspot_id", "day", "starts_at", "ends_at", "arm", "block", "design", "seed"])
    visits = [  # visit_id, device, hot spot, entered, minutes, end_reason
        ("v1", "dev-1", "hs-1", now_ms - 26 * 3_600_000, 5, "exit"),       # under the treated target
        ("v2", "dev-2", "hs-2", now_ms - 27 * 3_600_000, 20, "exit"),      # background presence in control
        ("v3", "dev-1", "hs-1", now_ms - 50 * 3_600_000, 12, "signal_lost"),
        ("v4", "dev-3", "hs-2", now_ms - 10 * MIN_MS, 8, "open"),
    ]
    client.insert("hotspot.visits",
                  [[vid, dev, hs, entered, None if reason == "open" else entered + mins * MIN_MS, mins * 60.0,
                    mins * 60.0, 0.0, mins * 30.0, 0.0, mins * 30.0, 1, mins * 6, reason, 1]
                   for vid, dev, hs, entered, mins, reason in visits],
                  column_names=["visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s", "observed_s",
                                "inferred_s", "foot_s", "vehicle_s", "stationary_s", "stop_count", "ping_count",
                                "end_reason", "version"])
    client.insert("hotspot.assignments",
                  [["a1", "pc-1", "dev-1", "hs-1", now_ms - 26 * 3_600_000 - 5 * MIN_MS, None, "treatment", None,
                    None, None, None, None]],
                  column_names=["assignment_id", "user", "device_id", "hotspot_id", "assigned_at", "trial_day", "arm",
                                "target_minutes", "officer_lat", "officer_lon", "distance_m", "candidates"])
    return client


def test_the_dosage_dashboard_reads_clickhouse():
    titles = [name for name, _, _ in clickhouse_panels()]
    assert len(titles) >= 8, titles


@pytest.mark.parametrize("name,panel,sql", clickhouse_panels(), ids=[n for n, _, _ in clickhouse_panels()])
def test_every_clickhouse_panel_runs_on_the_embedded_store_and_answers(trial_store, name, panel, sql):
    end = datetime.now(timezone.utc)
    result = trial_store.query(expand_macros(sql, end - timedelta(days=7), end))
    assert result.result_rows, f"{name} returned no rows on the fixture trial"
    if panel["type"] == "timeseries":
        # the plugin's time series need a time column first, in time order
        assert result.column_names[0] == "time"
        times = [row[0] for row in result.result_rows]
        assert all(isinstance(t, datetime) for t in times) and times == sorted(times)


def test_the_treated_hot_spot_below_target_is_listed_and_control_presence_is_shown(trial_store):
    panels = {p["title"]: sql for _, p, sql in clickhouse_panels()}
    end = datetime.now(timezone.utc)
    below = trial_store.query(expand_macros(panels["Treated hot spots below their target"], end - timedelta(days=7), end))
    rows = [dict(zip(below.column_names, r)) for r in below.result_rows]
    assert {r["hotspot_id"] for r in rows} == {"hs-1"}  # control hot spots are never "below target"
    assert all(r["minutes"] < r["target_minutes"] for r in rows)
    arms = trial_store.query(expand_macros(panels["Treatment vs control: minutes per hot spot"], end - timedelta(days=7), end))
    control = [r for r in arms.result_rows if r[1] == "control"]
    assert sum(r[2] for r in control) > 0  # v2: an untasked officer's 20 minutes in the control hot spot
