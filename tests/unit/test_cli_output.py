"""What the CLI prints for a person: every table has its header, also when empty, and terms are explained."""
from __future__ import annotations

import io
import json
import subprocess
from datetime import date

from processors.hotspots import BuildOptions, build_hotspots
from cli.hotspots import print_summary
from tests.conftest import HOTSPOT
from tests.data.generate import epoch, planted
from tests.unit.test_hotspots_build import GRID, HARM, I0, J0


def _cli(env, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([HOTSPOT, *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_an_empty_query_result_keeps_its_column_header(cli_env):
    import sys

    env = {**cli_env, "HOTSPOT_CLICKHOUSE_DATABASE": "system"}
    # `hotspot sql` reads a store, never makes one: make it as the worker would.
    subprocess.run([sys.executable, "-c", "from sinks.clickhouse import make_client, migrate; from core.settings import get_settings; "
                    "s = get_settings(); migrate(make_client(s.effective_clickhouse_dsn), 'hotspot', 90)"],
                   env=env, check=True, timeout=120)
    query = "SELECT name, engine FROM system.databases WHERE name = 'no such database'"
    assert _cli(env, "sql", query).stdout.splitlines() == ["name  engine", "----  ------", "(0 rows)"]
    assert _cli(env, "sql", "--format", "csv", query).stdout.splitlines() == ["name,engine"]


def test_devices_list_prints_a_header_and_json_for_scripts(cli_env):
    assert _cli(cli_env, "devices", "list").stdout.splitlines()[0].split() == ["device_id", "revoked", "created", "protocols"]
    _cli(cli_env, "devices", "add", "pc-1")
    _cli(cli_env, "devices", "add", "pc-2")
    _cli(cli_env, "devices", "revoke", "pc-2")
    lines = _cli(cli_env, "devices", "list").stdout.splitlines()
    assert lines[0].split() == ["device_id", "revoked", "created", "protocols"]
    assert [line.split()[:2] for line in lines[2:4]] == [["pc-1", "no"], ["pc-2", "yes"]]
    assert lines[-1] == "(2 rows)"
    items = json.loads(_cli(cli_env, "devices", "list", "--json").stdout)
    assert [(i["device_id"], i["revoked"]) for i in items] == [("pc-1", False), ("pc-2", True)]
    assert _cli(cli_env, "users", "list").stdout.splitlines()[0].split() == ["user", "role", "revoked", "created"]


def test_the_hot_spot_table_says_what_its_trend_compares():
    # one robbery in June, none in May, and an older one showing the records reach back past May
    spec = [((I0, J0), 1, "Robbery", epoch(t)) for t in ("2024-06-20T23:00:00+01:00", "2024-03-01T12:00:00+00:00")]
    build = build_hotspots(planted(GRID, spec), HARM, BuildOptions(as_of=date(2024, 6, 30), window_days=30))
    out = io.StringIO()
    print_summary(build, out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:8] == ["rank", "id", "name", "offences", "harm", "share", "cum", "trend"]
    assert "up from 0" in lines[1]
    assert any(line.startswith("trend: offences against the window before (2024-05-02 to 2024-05-31)")
               for line in lines), lines
