"""`hotspot replay`: the file contract of DESIGN.md section 2, end to end."""
from __future__ import annotations

import csv
import gzip
import json
import subprocess
from datetime import datetime, timezone

import pytest

from cli import main
from formats.replayfiles import PING_FIELDS, _Block, _csv_block_fast, make_ping
from formats.timestamps import iso_utc, parse_ts_ms
from tests.conftest import HOTSPOT
from tests.unit.tracks import H, T0, lat_lon

VISIT_HEADER = ["visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s", "observed_s", "inferred_s",
                "foot_s", "vehicle_s",
                "stationary_s", "stop_count", "ping_count", "end_reason"]
STOP_HEADER = ["stop_id", "device_id", "hotspot_id", "started_at", "ended_at", "duration_s", "lat", "lon"]
MODE_HEADER = ["device_id", "started_at", "ended_at", "mode", "distance_m"]


@pytest.fixture
def hotspots(tmp_path):
    path = tmp_path / "hotspots.geojson"
    ring = [list(c) for c in H.geometry.exterior.coords]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
         "properties": {"id": "H", "name": "Market Square", "briefing": "Evening violence."}}]}))
    return path


def _iso(t_s: float, offset: str = "+01:00") -> str:
    """T0 + t_s as local ISO-8601 with the given offset."""
    hours = int(offset[1:3]) * (1 if offset[0] == "+" else -1)
    ms = T0 + int(t_s * 1000) + hours * 3_600_000
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + offset


def _patrol_rows(device="officer-1"):
    """Stand at the centre of H for 4 minutes, fixes every 10 s, then leave for good."""
    rows = []
    for k in range(25):
        lat, lon = lat_lon(75, 75)
        rows.append({"device_id": device, "ts": _iso(10 * k), "lat": f"{lat:.7f}", "lon": f"{lon:.7f}",
                     "accuracy_m": "5", "speed_mps": "0", "heading_deg": "", "altitude_m": "60", "battery": ""})
    for k in range(25, 35):
        lat, lon = lat_lon(600, 75)
        rows.append({"device_id": device, "ts": _iso(10 * k), "lat": f"{lat:.7f}", "lon": f"{lon:.7f}",
                     "accuracy_m": "5", "speed_mps": "1.4", "heading_deg": "90", "altitude_m": "", "battery": "0.8"})
    return rows


def _write_csv(path, rows, fields=PING_FIELDS):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _replay(capsys, *args) -> tuple[int, str]:
    rc = main(["replay", "--quiet", *map(str, args)])
    return rc, capsys.readouterr().err


def test_csv_replay_writes_the_four_files(tmp_path, hotspots, capsys):
    pings = _write_csv(tmp_path / "pings.csv", _patrol_rows())
    rc, err = _replay(capsys, "--pings", pings, "--hotspots", hotspots, "--out", tmp_path / "out")
    assert (rc, err) == (0, "")
    out = tmp_path / "out"
    with open(out / "visits.csv") as fh:
        assert next(csv.reader(fh)) == VISIT_HEADER
    (v,) = _read(out / "visits.csv")
    assert (v["device_id"], v["hotspot_id"], v["entered_at"], v["exited_at"]) == (
        "officer-1", "H", iso_utc(T0), iso_utc(T0 + 240_000))
    assert (v["dwell_s"], v["stop_count"], v["ping_count"], v["end_reason"]) == ("245", "1", "25", "exit")
    assert v["entered_at"].endswith(".000Z")
    (s,) = _read(out / "stops.csv")
    assert list(s) == STOP_HEADER
    assert (s["started_at"], s["ended_at"], s["duration_s"]) == (iso_utc(T0), iso_utc(T0 + 240_000), "240")
    modes = _read(out / "modes.csv")
    assert list(modes[0]) == MODE_HEADER
    assert [m["mode"] for m in modes] == ["stationary", "foot"]
    assert _read(out / "rejected.csv") == []


def test_timestamps_in_any_accepted_form_give_the_same_result(tmp_path, hotspots, capsys):
    rows = _patrol_rows()
    forms = {
        "utc_z": lambda t: _iso(t, "+00:00").replace("+00:00", "Z"),
        "offset": lambda t: _iso(t, "-05:00"),
        "epoch_s": lambda t: str((T0 + t * 1000) / 1000),
        "epoch_ms": lambda t: str(T0 + int(t * 1000)),
    }
    results = {}
    for name, fmt in forms.items():
        for k, r in enumerate(rows):
            r["ts"] = fmt(10 * k)
        _write_csv(tmp_path / f"{name}.csv", rows)
        rc, _ = _replay(capsys, "--pings", tmp_path / f"{name}.csv", "--hotspots", hotspots,
                        "--out", tmp_path / name)
        assert rc == 0
        results[name] = (tmp_path / name / "visits.csv").read_text()
    assert len(set(results.values())) == 1


def test_jsonl_and_gzip_and_several_files_with_interleaved_devices(tmp_path, hotspots, capsys):
    a, b = _patrol_rows("a"), _patrol_rows("b")
    mixed = [r for pair in zip(a, b) for r in pair]
    _write_csv(tmp_path / "first.csv", mixed[:30])
    with gzip.open(tmp_path / "second.jsonl.gz", "wt") as fh:
        for r in mixed[30:]:
            obj = {k: (float(v) if k in ("lat", "lon", "accuracy_m") else v) for k, v in r.items() if v != ""}
            fh.write(json.dumps(obj) + "\n")
    rc, _ = _replay(capsys, "--pings", tmp_path / "first.csv", tmp_path / "second.jsonl.gz",
                    "--hotspots", hotspots, "--out", tmp_path / "out")
    assert rc == 0
    visits = _read(tmp_path / "out" / "visits.csv")
    assert [(v["device_id"], v["entered_at"], v["ping_count"]) for v in visits] == [
        ("a", iso_utc(T0), "25"), ("b", iso_utc(T0), "25")]


def test_gpx_device_comes_from_the_file_name_or_the_option(tmp_path, hotspots, capsys):
    points = []
    for k in range(25):
        lat, lon = lat_lon(75, 75)
        points.append(f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}"><ele>60</ele><time>{_iso(10 * k, "+00:00")[:-6]}Z'
                      f'</time><extensions><gpxtpx:TrackPointExtension><gpxtpx:speed>0.0</gpxtpx:speed>'
                      f'</gpxtpx:TrackPointExtension></extensions></trkpt>')
    points.append('<trkpt lat="51.75" lon="-1.25"><ele>60</ele></trkpt>')   # no time: a bad row
    gpx = ('<?xml version="1.0"?>\n<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1" '
           'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">\n<trk><trkseg>\n'
           + "\n".join(points) + "\n</trkseg></trk></gpx>\n")
    (tmp_path / "pc-smith.gpx").write_text(gpx)
    rc, _ = _replay(capsys, "--pings", tmp_path / "pc-smith.gpx", "--hotspots", hotspots, "--out", tmp_path / "o1")
    assert rc == 0
    (v,) = _read(tmp_path / "o1" / "visits.csv")
    assert (v["device_id"], v["ping_count"], v["stop_count"]) == ("pc-smith", "25", "1")
    (bad,) = _read(tmp_path / "o1" / "rejected.csv")
    assert (bad["line"], bad["reason"]) == ("29", "missing_field")
    rc, _ = _replay(capsys, "--pings", tmp_path / "pc-smith.gpx", "--device", "car-7", "--hotspots", hotspots,
                    "--out", tmp_path / "o2")
    assert _read(tmp_path / "o2" / "visits.csv")[0]["device_id"] == "car-7"


def test_bad_rows_go_to_rejected_csv_with_their_reason_and_the_run_goes_on(tmp_path, hotspots, capsys):
    rows = _patrol_rows()
    rows.insert(3, dict(rows[3], ts="yesterday"))
    rows.insert(5, dict(rows[5], lat=""))
    rows.insert(7, dict(rows[7], device_id=""))
    rows.insert(9, dict(rows[9], speed_mps="fast"))
    rows.insert(11, dict(rows[11], lat="0", lon="0"))
    rows.insert(13, dict(rows[13]))                          # a retransmission: the later copy is the duplicate
    _write_csv(tmp_path / "pings.csv", rows)
    rc, _ = _replay(capsys, "--pings", tmp_path / "pings.csv", "--hotspots", hotspots, "--out", tmp_path / "out")
    assert rc == 0
    rejected = _read(tmp_path / "out" / "rejected.csv")
    assert [(r["line"], r["reason"]) for r in rejected] == [
        ("5", "invalid_field"), ("7", "missing_field"), ("9", "missing_field"), ("11", "invalid_field"),
        ("13", "null_island"), ("16", "duplicate")]
    assert rejected[0]["ts"] == "yesterday" and "ts" in rejected[0]["detail"]
    assert rejected[4]["source"] == str(tmp_path / "pings.csv") and rejected[4]["lat"] == "0"
    assert list(rejected[0]) == ["source", "line", *PING_FIELDS, "reason", "detail"]
    (v,) = _read(tmp_path / "out" / "visits.csv")
    assert v["ping_count"] == "25"


@pytest.mark.parametrize("name, content, where", [
    ("no_lat.csv", "device_id,ts,lon\nd1,2025-06-12T08:00:00Z,1.0\n", "no_lat.csv:1: the header lacks lat"),
    ("short.csv", "device_id,ts,lat,lon\nd1,2025-06-12T08:00:00Z,51.7,-1.2\nd1,2025-06-12T08:00:05Z,51.7\n",
     "short.csv:3: 3 fields where the header has 4"),
    ("quote.csv", 'device_id,ts,lat,lon\nd1,"2025-06-12T08:00:00Z,51.7,-1.2\n', "quote.csv:2:"),
    ("broken.jsonl", '{"device_id": "d1", "ts": 1749715200, "lat": 51.7, "lon": -1.2}\n{"device_id": \n',
     "broken.jsonl:2: not a JSON object"),
    ("list.jsonl", '[1, 2]\n', "list.jsonl:1: not a JSON object but list"),
    ("bad.gpx", '<gpx><trk><trkseg>\n<trkpt lat="1" lon="2">\n</trk></gpx>', "bad.gpx:3: not valid GPX/XML"),
])
def test_a_malformed_file_stops_the_run_with_one_line_naming_file_and_line(tmp_path, hotspots, capsys, name, content,
                                                                           where):
    (tmp_path / name).write_text(content)
    rc, err = _replay(capsys, "--pings", tmp_path / name, "--hotspots", hotspots, "--out", tmp_path / "out")
    assert rc == 1
    assert err.count("\n") == 1 and where in err and err.startswith("hotspot replay: ")
    assert not (tmp_path / "out" / "visits.csv").exists()


def test_bytes_that_are_not_utf8_are_a_malformed_file(tmp_path, hotspots, capsys):
    (tmp_path / "latin.csv").write_bytes(b"device_id,ts,lat,lon\nd\xe9,2025-06-12T08:00:00Z,51.7,-1.2\n")
    rc, err = _replay(capsys, "--pings", tmp_path / "latin.csv", "--hotspots", hotspots, "--out", tmp_path / "o")
    assert rc == 1 and "latin.csv:" in err and "UTF-8" in err


@pytest.mark.parametrize("content, message", [
    ("{not json", "hotspots.geojson:1: not valid JSON"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, "properties": {"id": "a"}}]}',
     "feature 0 (id 'a'): geometry must be a Polygon or MultiPolygon"),
])
def test_a_bad_hot_spot_file_is_one_clear_line(tmp_path, capsys, content, message):
    (tmp_path / "hotspots.geojson").write_text(content)
    _write_csv(tmp_path / "pings.csv", _patrol_rows())
    rc, err = _replay(capsys, "--pings", tmp_path / "pings.csv", "--hotspots", tmp_path / "hotspots.geojson",
                      "--out", tmp_path / "out")
    assert rc == 1 and message in err and err.count("\n") == 1


def test_missing_input_and_bad_parameters_are_user_errors(tmp_path, hotspots, capsys):
    rc, err = _replay(capsys, "--pings", tmp_path / "nope.csv", "--hotspots", hotspots, "--out", tmp_path / "o")
    assert rc == 1 and "nope.csv: no such file" in err
    _write_csv(tmp_path / "pings.csv", _patrol_rows())
    rc, err = _replay(capsys, "--pings", tmp_path / "pings.csv", "--hotspots", hotspots, "--out", tmp_path / "o",
                      "--param", "exit_confirm=3")
    assert rc == 1 and "unknown parameter 'exit_confirm'" in err


def test_param_changes_the_processing(tmp_path, hotspots, capsys):
    _write_csv(tmp_path / "pings.csv", _patrol_rows())
    rc, _ = _replay(capsys, "--pings", tmp_path / "pings.csv", "--hotspots", hotspots, "--out", tmp_path / "o",
                    "--param", "stop_min_duration_s=300")
    assert rc == 0 and _read(tmp_path / "o" / "stops.csv") == []


def test_progress_bar_and_summary_go_to_stderr(tmp_path, hotspots, capsys, monkeypatch):
    import cli.replay as cmd

    monkeypatch.setattr(cmd, "_PROGRESS_MIN_BYTES", 0)
    _write_csv(tmp_path / "pings.csv", _patrol_rows())
    rc = main(["replay", "--pings", str(tmp_path / "pings.csv"), "--hotspots", str(hotspots),
               "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 0 and out == ""
    assert "replay:" in err and "100%" in err
    assert "35 pings from 1 file(s), 1 devices: 1 visits, 1 stops, 2 mode segments, 0 rejected" in err


def test_the_console_script_fails_without_a_traceback(tmp_path, hotspots):
    (tmp_path / "bad.csv").write_text("who,when\n1,2\n")
    proc = subprocess.run([HOTSPOT, "replay", "--pings", str(tmp_path / "bad.csv"), "--hotspots", str(hotspots),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "bad.csv:1: the header lacks device_id, ts, lat, lon" in proc.stderr


# --------------------------------------------------------------------------- parsing details

@pytest.mark.parametrize("text, ms", [
    ("2025-06-12T08:00:00+01:00", 1749711600000), ("2025-06-12T07:00:00Z", 1749711600000),
    ("2025-06-12T07:00:00.250Z", 1749711600250), ("2025-06-12 07:00:00+00:00", 1749711600000),
    ("1749711600", 1749711600000), ("1749711600.25", 1749711600250), ("1749711600250", 1749711600250),
    (1749711600, 1749711600000), (1749711600250, 1749711600250),
])
def test_timestamp_forms(text, ms):
    assert parse_ts_ms(text) == ms


@pytest.mark.parametrize("text", ["2025-06-12T07:00:00", "12/06/2025 07:00", "", "nan", "2025-13-12T07:00:00Z"])
def test_unusable_timestamps(text):
    with pytest.raises(ValueError):
        parse_ts_ms(text)


def test_the_column_parser_agrees_with_the_row_parser():
    rows = [["d1", "2025-06-12T08:00:00.000+01:00", "51.75", "-1.25", "5", "", "nan", "60", "", "2025-06-12T07:00:00.300Z"],
            ["d2", "2025-06-12T08:00:01.500+01:00", "51.7", "-1.2", "", "1.5", "90", "", "0.5", "2025-06-12T07:00:02.000Z"],
            ["d1", "2025-06-12T08:00:02.250+01:00", "nan", "-1.25", "7.5", "0", "", "", "", "2025-06-12T07:00:02.100Z"]]
    block = _Block("f.csv", rows, [2, 3, 4], list(range(10)))
    fast = _csv_block_fast(block)
    assert fast is not None
    slow = [make_ping(block.source(i)) for i in range(3)]
    fields = ("device_id", "ts_ms", "accuracy_m", "speed_mps", "heading_deg", "altitude_m", "battery", "received_ms")
    assert [[getattr(p, f) for f in fields] for p in fast] == [[getattr(p, f) for f in fields] for p in slow]
    assert [p.received_ms for p in fast] == [1749711600300, 1749711602000, 1749711602100]
    # Without the arrival column (take points past the row's end) pings carry no arrival time.
    bare = [r[:9] for r in rows]
    assert [p.received_ms for p in _csv_block_fast(_Block("f.csv", bare, [2, 3, 4], list(range(10))))] == [None] * 3
    assert [p.lat for p in fast][:2] == [51.75, 51.7]
    # Mixed layouts, epoch numbers mixed with ISO, or a bad value: the block goes row by row.
    for k, value in ((1, "2025-06-12T07:00:00.000Z"), (1, "2025-06-12T08:00:00+01:00"), (1, "1749711600"),
                     (2, "north"), (0, "")):
        other = [list(r) for r in rows]
        other[0][k] = value
        assert _csv_block_fast(_Block("f.csv", other, [2, 3, 4], list(range(10)))) is None
