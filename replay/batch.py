"""The batch path: replay files through the processors, the second caller of `processors/` beside `streams/`.

`replay()` reads ping exports (formats/replayfiles.py), runs them through
`processors.batch` in file order (taken as arrival order, so the reorder
window treats a replay as the live path would), closes what is open at the
end of the data, and writes visits.csv, stops.csv, modes.csv and
rejected.csv. The live worker calls the same processors, so a replay of what
Kafka held, with its arrival times, gives the rows the worker gave
(tests/integration/test_pipeline.py). `hotspot replay` and the simulator's
scoring (simulation/files.py) call it as a function.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from formats.replayfiles import Source, read_blocks, source_of, write_outputs
from processors.batch import finish, process_batch
from processors.config import ProcessingConfig
from processors.device import DeviceState
from processors.geofence import HotspotIndex
from processors.model import ModeSegment, Ping, StopEnded, VisitEnded


@dataclass
class ReplaySummary:
    pings: int = 0
    accepted: int = 0
    rejected: int = 0
    visits: int = 0
    stops: int = 0
    mode_segments: int = 0
    devices: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def replay(ping_paths: Sequence[Path], index: HotspotIndex, out_dir: Path, config: ProcessingConfig, *,
           device: str | None = None, batch_size: int = 20_000,
           progress: Callable[[int], None] | None = None) -> ReplaySummary:
    """Run the pings of every file through the processors and write the four CSVs into out_dir."""
    summary = ReplaySummary()
    states: dict[str, DeviceState] = {}
    visits: list[VisitEnded] = []
    stops: list[StopEnded] = []
    modes: list[ModeSegment] = []
    rejected: list[tuple[Source, str, str]] = []

    def collect(result) -> None:
        states.update(result.states)
        for e in result.events:
            kind = type(e)
            if kind is ModeSegment:
                modes.append(e)
            elif kind is VisitEnded:
                visits.append(e)
            elif kind is StopEnded:
                stops.append(e)
        summary.accepted += len(result.accepted)
        for r in result.rejected:
            rejected.append((source_of(r.ping), r.reason, ""))

    # Replay allocates millions of small acyclic objects and keeps many: at the default
    # thresholds the cyclic collector rescans them all the time (measured: a third of the run).
    gc_thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        _feed(ping_paths, device, progress, batch_size, states, index, config, summary, rejected, collect)
    finally:
        gc.set_threshold(*gc_thresholds)

    summary.devices = len(states)
    summary.visits, summary.stops, summary.mode_segments = len(visits), len(stops), len(modes)
    summary.rejected = len(rejected)
    for _, reason, _ in rejected:
        summary.rejected_by_reason[reason] = summary.rejected_by_reason.get(reason, 0) + 1
    write_outputs(out_dir, visits, stops, modes, rejected)
    return summary


def _feed(ping_paths, device, progress, batch_size, states, index, config, summary, rejected, collect) -> None:
    batch: list[Ping] = []
    n = 0
    for path in ping_paths:
        for pings, bad in read_blocks(Path(path), device, progress):
            n += len(pings) + len(bad)
            rejected.extend(bad)
            batch.extend(pings)
            if len(batch) >= batch_size:
                collect(process_batch(states, batch, index, config))
                batch = []
    if batch:
        collect(process_batch(states, batch, index, config))
    collect(finish(states, index, config))
    summary.pings = n
