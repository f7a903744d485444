"""Seeded scenarios, simulated, replayed through `hotspot replay` and scored once per session.

Each scenario is small (a few officers for a few hours) so the whole folder runs
in well under two minutes; bench/scenarios.py runs the same scenarios over many
more seeds. Truth comes from the simulator's noise-free tracks; the processors
are only ever seen through the replay command's output files.
"""
from __future__ import annotations

from typing import NamedTuple

import pytest

from simulation.scoring import Scores
from simulation.config import scenario_config
from simulation.simulate import Simulation
from simulation.files import run_replay, score_dirs, write_simulation


class Scenario(NamedTuple):
    name: str
    seed: int
    officers: int
    hours: float

    @property
    def id(self) -> str:
        return f"{self.name}-s{self.seed}"


# Which figure is asserted on which scenario: dwell, stops and modes wherever officers
# patrol; false dwell where the only near-misses are drive-bys and edge walks at 15 m accuracy.
MIXED = [Scenario("mixed", 101, 6, 4.0), Scenario("mixed", 202, 6, 4.0)]
PATROLS = [Scenario("patrols", 303, 6, 3.0)]
EDGES = [Scenario("edges_15m", 404, 6, 4.0), Scenario("edges_15m", 505, 6, 4.0)]

_cache: dict[Scenario, Scores] = {}


@pytest.fixture(scope="session")
def scored(tmp_path_factory):
    """scored(scenario) -> Scores of `hotspot replay` on that simulated day (computed once)."""

    def get(sc: Scenario) -> Scores:
        if sc not in _cache:
            work = tmp_path_factory.mktemp(sc.id)
            sim = Simulation(scenario_config(sc.name, seed=sc.seed, officers=sc.officers, hours=sc.hours))
            write_simulation(sim, work / "sim")
            run_replay(work / "sim", work / "replay")
            _cache[sc] = score_dirs(work / "sim", work / "replay")
        return _cache[sc]

    return get
