"""Files of a simulated day, and the harness that scores a replay against them.

Writes what `simulation.simulate` produces: `pings.csv` in the replay format
(DESIGN.md section 2, delivery order, `ts` ISO-8601 with the UK offset of the
moment), `hotspots.geojson` in the hot-spot format, and the ground truth
(`truth_*.csv`, `devices.csv`, `simulation.json`). Reads the truth back and the
output of `hotspot replay` (`visits.csv`, `stops.csv`, `modes.csv`) into the
plain records `simulation.scoring` scores. Output is byte-for-byte a function
of the simulation's configuration: no wall-clock time is written anywhere.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from formats.timestamps import iso_local_many, iso_utc_many, parse_ts_ms
from simulation.scoring import Predicted, Scores, Span, TruthSet, Visit, score
from simulation.simulate import Simulation

PING_COLUMNS = ("device_id", "ts", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "altitude_m", "battery")
TRUTH_FILES = ("truth_visits.csv", "truth_stops.csv", "truth_modes.csv", "truth_episodes.csv", "truth_gaps.csv",
               "truth_pings.csv", "devices.csv")
LOCAL_ZONE = "Europe/London"


# ---------------------------------------------------------------------------
# Writing

def _num(v: float, fmt: str) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _write_csv(path: Path, header: Sequence[str], rows) -> int:
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def write_simulation(sim: Simulation, out: Path, zone: str = LOCAL_ZONE,
                     progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Write pings, hot spots and truth of `sim` into `out`; returns rows written per file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    counts: dict[str, int] = {}
    with open(out / "hotspots.geojson", "w", encoding="utf-8") as fh:
        # One feature per line: diffable, and still plain GeoJSON.
        fh.write('{"type": "FeatureCollection", "features": [\n')
        fh.write(",\n".join(json.dumps(f, ensure_ascii=False) for f in sim.hotspots))
        fh.write("\n]}\n")
    counts["hotspots.geojson"] = len(sim.hotspots)

    tb = sim.ping_table()
    truth = sim.truth()
    ids = tb.device_ids
    ts_local = iso_local_many(tb.ts_ms, zone)
    say(f"writing {len(tb):,} pings")

    def ping_rows():
        for i in range(len(tb)):
            b = int(tb.battery[i])
            yield (ids[tb.device[i]], ts_local[i], f"{tb.lat[i]:.7f}", f"{tb.lon[i]:.7f}", f"{tb.accuracy_m[i]:.1f}",
                   _num(float(tb.speed_mps[i]), ".2f"), _num(float(tb.heading_deg[i]), ".1f"),
                   _num(float(tb.altitude_m[i]), ".1f"), "" if b < 0 else str(b))

    counts["pings.csv"] = _write_csv(out / "pings.csv", PING_COLUMNS, ping_rows())

    delivered = iso_utc_many(tb.delivered_ms)

    def truth_ping_rows():
        for i in range(len(tb)):
            yield (ids[tb.device[i]], ts_local[i], delivered[i], f"{tb.true_lat[i]:.7f}", f"{tb.true_lon[i]:.7f}",
                   f"{tb.error_m[i]:.2f}", int(tb.outlier[i]), int(tb.late[i]), int(tb.duplicate[i]))

    counts["truth_pings.csv"] = _write_csv(
        out / "truth_pings.csv",
        ("device_id", "ts", "delivered_at", "true_lat", "true_lon", "error_m", "outlier", "late", "duplicate"),
        truth_ping_rows())

    say("writing truth")
    v = truth.visits
    ent, ext = iso_utc_many([x.entered_ms for x in v]), iso_utc_many([x.exited_ms for x in v])
    counts["truth_visits.csv"] = _write_csv(
        out / "truth_visits.csv",
        ("visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s", "foot_s", "vehicle_s",
         "stationary_s", "kind", "episode_id", "end_reason"),
        ((x.visit_id, x.device_id, x.hotspot_id, ent[i], ext[i], f"{x.dwell_s:.3f}", f"{x.foot_s:.3f}",
          f"{x.vehicle_s:.3f}", f"{x.stationary_s:.3f}", x.kind, x.episode_id, x.end_reason) for i, x in enumerate(v)))
    s = truth.stops
    s0, s1 = iso_utc_many([x.started_ms for x in s]), iso_utc_many([x.ended_ms for x in s])
    counts["truth_stops.csv"] = _write_csv(
        out / "truth_stops.csv",
        ("stop_id", "device_id", "hotspot_id", "started_at", "ended_at", "duration_s", "lat", "lon", "episode_id"),
        ((x.stop_id, x.device_id, x.hotspot_id, s0[i], s1[i], f"{x.duration_s:.3f}", f"{x.lat:.7f}", f"{x.lon:.7f}",
          x.episode_id) for i, x in enumerate(s)))
    m = truth.modes
    m0, m1 = iso_utc_many([x.started_ms for x in m]), iso_utc_many([x.ended_ms for x in m])
    counts["truth_modes.csv"] = _write_csv(
        out / "truth_modes.csv", ("device_id", "started_at", "ended_at", "mode", "distance_m"),
        ((x.device_id, m0[i], m1[i], x.mode, f"{x.distance_m:.1f}") for i, x in enumerate(m)))
    e = truth.episodes
    e0, e1 = iso_utc_many([x.started_ms for x in e]), iso_utc_many([x.ended_ms for x in e])
    counts["truth_episodes.csv"] = _write_csv(
        out / "truth_episodes.csv",
        ("episode_id", "device_id", "kind", "hotspot_id", "started_at", "ended_at", "offset_m"),
        ((x.episode_id, x.device_id, x.kind, x.hotspot_id, e0[i], e1[i], _num(x.offset_m, ".2f"))
         for i, x in enumerate(e)))
    g = truth.gaps
    g0, g1 = iso_utc_many([x.started_ms for x in g]), iso_utc_many([x.ended_ms for x in g])
    counts["truth_gaps.csv"] = _write_csv(
        out / "truth_gaps.csv", ("device_id", "started_at", "ended_at", "duration_s"),
        ((x.device_id, g0[i], g1[i], f"{(x.ended_ms - x.started_ms) / 1000:.0f}") for i, x in enumerate(g)))
    d = truth.devices
    d0, d1 = iso_utc_many([x.shift_start_ms for x in d]), iso_utc_many([x.shift_end_ms for x in d])
    counts["devices.csv"] = _write_csv(
        out / "devices.csv", ("device_id", "profile", "interval_s", "accuracy_class_m", "shift_start", "shift_end"),
        ((x.device_id, x.profile, f"{x.interval_s:g}", f"{x.accuracy_class_m:g}", d0[i], d1[i])
         for i, x in enumerate(d)))
    meta = {"config": asdict(sim.config), "hotspots_given": sim.hotspots_given, "files": counts,
            "zone": zone, "device_hours": truth.device_hours}
    with open(out / "simulation.json", "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return counts


# ---------------------------------------------------------------------------
# Reading

def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_truth(sim_dir: Path) -> TruthSet:
    d = Path(sim_dir)
    visits = [Visit(r["device_id"], r["hotspot_id"], parse_ts_ms(r["entered_at"]), parse_ts_ms(r["exited_at"]),
                    float(r["dwell_s"])) for r in _rows(d / "truth_visits.csv")]
    stops = [Span(r["device_id"], r["hotspot_id"], parse_ts_ms(r["started_at"]), parse_ts_ms(r["ended_at"]))
             for r in _rows(d / "truth_stops.csv")]
    modes = [Span(r["device_id"], r["mode"], parse_ts_ms(r["started_at"]), parse_ts_ms(r["ended_at"]))
             for r in _rows(d / "truth_modes.csv")]
    episodes = [Span(r["device_id"], r["kind"], parse_ts_ms(r["started_at"]), parse_ts_ms(r["ended_at"]))
                for r in _rows(d / "truth_episodes.csv")]
    gaps = [Span(r["device_id"], "gap", parse_ts_ms(r["started_at"]), parse_ts_ms(r["ended_at"]))
            for r in _rows(d / "truth_gaps.csv")]
    devices = _rows(d / "devices.csv")
    hours = sum(parse_ts_ms(r["shift_end"]) - parse_ts_ms(r["shift_start"]) for r in devices) / 3_600_000
    info = {r["device_id"]: f"{r['profile']} {r['interval_s']}s {r['accuracy_class_m']}m" for r in devices}
    return TruthSet(visits, stops, modes, episodes, gaps, hours, info)


def read_replay(out_dir: Path) -> Predicted:
    """The replay output (DESIGN.md section 2) as plain records; an open visit ends at entered_at + dwell_s."""
    d = Path(out_dir)
    visits = []
    for r in _rows(d / "visits.csv"):
        start = parse_ts_ms(r["entered_at"])
        dwell = float(r["dwell_s"] or 0.0)
        end = parse_ts_ms(r["exited_at"]) if r.get("exited_at") else start + int(round(dwell * 1000))
        visits.append(Visit(r["device_id"], r["hotspot_id"], start, end, dwell))
    stops = [Span(r["device_id"], r.get("hotspot_id") or "", parse_ts_ms(r["started_at"]), parse_ts_ms(r["ended_at"]))
             for r in _rows(d / "stops.csv")]
    modes = [Span(r["device_id"], r["mode"], parse_ts_ms(r["started_at"]), parse_ts_ms(r["ended_at"]))
             for r in _rows(d / "modes.csv")]
    return Predicted(visits, stops, modes)


def score_dirs(sim_dir: Path, replay_dir: Path, **kwargs) -> Scores:
    """Scores of the replay output in replay_dir against the truth in sim_dir."""
    return score(read_truth(sim_dir), read_replay(replay_dir), **kwargs)


def run_replay(sim_dir: Path, out_dir: Path, config=None) -> None:
    """Replay a simulated day into out_dir: the batch path (replay.batch), as `hotspot replay` runs it.

    `config`: the processors.config.ProcessingConfig to replay with (default: the defaults)."""
    from formats.hotspots import load_index
    from processors.config import ProcessingConfig
    from replay.batch import replay

    sim_dir, out_dir = Path(sim_dir), Path(out_dir)
    replay([sim_dir / "pings.csv"], load_index(sim_dir / "hotspots.geojson"), out_dir, config or ProcessingConfig())


def simulate_and_score(sim: Simulation, work_dir: Path, **kwargs) -> Scores:
    """Write `sim` to work_dir/sim, replay it into work_dir/replay, and score the result."""
    sim_dir, replay_dir = Path(work_dir) / "sim", Path(work_dir) / "replay"
    write_simulation(sim, sim_dir)
    run_replay(sim_dir, replay_dir)
    return score_dirs(sim_dir, replay_dir, **kwargs)
