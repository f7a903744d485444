"""Trial allocation: balanced within blocks, reproducible from the seed, trial days 06:00-05:59 local across DST."""
from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.allocation import (ALLOCATION_COLUMNS, CONTROL, TREATMENT, AllocationError, allocation_rows, arm_at,
                                   is_treated, make_schedule, make_units, schedule_from_rows, trial_day,
                                   trial_day_bounds)
from cli import main

UTC = timezone.utc


def units_in_blocks(sizes: dict[str, int]):
    return make_units([(f"{b}-{k:02d}", b, None) for b, n in sizes.items() for k in range(n)])


def treated_by_day_and_block(schedule):
    out = defaultdict(set)
    for a in schedule.allocations:
        if a.arm == TREATMENT:
            out[(a.day, a.block)].add(a.unit_id)
    return out


def test_crossover_treats_half_of_every_block_every_day():
    sizes = {"A": 10, "B": 11, "C": 7, "D": 17}
    s = make_schedule(units_in_blocks(sizes), design="crossover", start=date(2025, 3, 3), days=60, seed=42)
    treated = treated_by_day_and_block(s)
    for d in range(60):
        day = date(2025, 3, 3) + timedelta(days=d)
        counts = {b: len(treated[(day, b)]) for b in sizes}
        for b, n in sizes.items():
            assert counts[b] in (n // 2, (n + 1) // 2)
        assert sum(counts.values()) in (22, 23)  # 45 units: within one of half, every day
    # each odd block alternates between treating k + 1 and k
    for b in ("B", "C", "D"):
        seq = [len(treated[(date(2025, 3, 3) + timedelta(days=d), b)]) for d in range(60)]
        assert all(seq[d] != seq[d + 1] for d in range(59))
    # and every hot spot spends some days in each arm
    per_unit = Counter(a.unit_id for a in s.allocations if a.arm == TREATMENT)
    assert len(per_unit) == 45 and all(10 <= v <= 50 for v in per_unit.values())
    assert len(s.allocations) == 45 * 60


def test_same_seed_same_schedule_whatever_the_input_order_and_another_seed_differs():
    units = units_in_blocks({"A": 8, "B": 9})
    shuffled = list(units)
    random.Random(3).shuffle(shuffled)
    a = make_schedule(units, design="crossover", start=date(2025, 1, 1), days=30, seed=7)
    b = make_schedule(shuffled, design="crossover", start=date(2025, 1, 1), days=30, seed=7)
    c = make_schedule(units, design="crossover", start=date(2025, 1, 1), days=30, seed=8)
    key = lambda s: sorted((x.hotspot_id, x.day, x.arm) for x in s.allocations)  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)


def test_extending_a_trial_keeps_the_days_already_scheduled():
    units = units_in_blocks({"A": 6, "B": 5})
    short = make_schedule(units, design="crossover", start=date(2025, 1, 1), days=10, seed=1)
    long = make_schedule(units, design="crossover", start=date(2025, 1, 1), days=20, seed=1)
    assert set(long.allocations[: len(short.allocations)]) == set(short.allocations)


def test_parallel_arms_are_fixed_for_the_whole_trial_and_balanced_within_blocks():
    sizes = {"north": 6, "south": 7, "east": 5}
    s = make_schedule(units_in_blocks(sizes), design="parallel", start=date(2025, 1, 1), days=14, seed=5)
    arms = defaultdict(set)
    for a in s.allocations:
        arms[a.unit_id].add(a.arm)
    assert all(len(v) == 1 for v in arms.values())
    per_block = Counter(a.block for a in s.allocations if a.arm == TREATMENT and a.day == date(2025, 1, 1))
    assert per_block["north"] == 3 and per_block["south"] in (3, 4) and per_block["east"] in (2, 3)
    assert per_block["south"] + per_block["east"] == 6  # the two odd blocks share the extra unit fairly


def test_hot_spots_with_several_patrol_areas_are_randomised_as_a_whole():
    units = make_units([("h1", "A", "market"), ("h2", "A", "market"), ("h3", "A", None), ("h4", "A", None),
                        ("h5", "A", "station"), ("h6", "A", "station")])
    assert len(units) == 4
    s = make_schedule(units, design="crossover", start=date(2025, 1, 1), days=20, seed=9)
    for d in range(20):
        day = date(2025, 1, 1) + timedelta(days=d)
        assert s.arm_of("h1", day) == s.arm_of("h2", day) and s.arm_of("h5", day) == s.arm_of("h6", day)
        assert sum(s.arm_of(h, day) == TREATMENT for h in ("h1", "h3", "h4", "h5")) == 2
    with pytest.raises(AllocationError, match="one block"):
        make_units([("h1", "A", "market"), ("h2", "B", "market")])
    with pytest.raises(AllocationError, match="twice"):
        make_units([("h1", "A", None), ("h1", "A", None)])


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6), seed=st.integers(0, 2**32),
       days=st.integers(1, 9))
def test_every_block_is_split_in_half_give_or_take_one_for_any_sizes_and_seed(sizes, seed, days):
    blocks = {f"b{k}": n for k, n in enumerate(sizes)}
    if sum(sizes) < 2:
        return
    s = make_schedule(units_in_blocks(blocks), design="crossover", start=date(2025, 6, 1), days=days, seed=seed)
    treated = treated_by_day_and_block(s)
    for d in range(days):
        day = date(2025, 6, 1) + timedelta(days=d)
        counts = [len(treated[(day, b)]) for b in blocks]
        assert all(c in (n // 2, (n + 1) // 2) for c, n in zip(counts, sizes))
        assert abs(sum(counts) - sum(sizes) / 2) <= 0.5 + 1e-9


def test_trial_days_run_0600_to_0559_local_and_stretch_across_the_clock_changes():
    # Spring forward: the day of Saturday 30 March 2024 lasts 23 hours.
    assert trial_day_bounds(date(2024, 3, 30)) == (datetime(2024, 3, 30, 6, tzinfo=UTC), datetime(2024, 3, 31, 5, tzinfo=UTC))
    # Fall back: the day of Saturday 26 October 2024 lasts 25 hours.
    assert trial_day_bounds(date(2024, 10, 26)) == (datetime(2024, 10, 26, 5, tzinfo=UTC), datetime(2024, 10, 27, 6, tzinfo=UTC))
    assert trial_day(datetime(2024, 3, 31, 4, 59, 59, tzinfo=UTC)) == date(2024, 3, 30)  # 05:59:59 BST
    assert trial_day(datetime(2024, 3, 31, 5, 0, 0, tzinfo=UTC)) == date(2024, 3, 31)    # 06:00 BST
    assert trial_day(datetime(2024, 10, 27, 5, 59, 59, tzinfo=UTC)) == date(2024, 10, 26)  # 05:59:59 GMT
    assert trial_day(datetime(2024, 10, 27, 6, 0, 0, tzinfo=UTC)) == date(2024, 10, 27)
    assert trial_day(datetime(2024, 10, 27, 0, 30, tzinfo=UTC)) == date(2024, 10, 26)  # 01:30 BST, first pass
    assert trial_day(datetime(2024, 10, 27, 1, 30, tzinfo=UTC)) == date(2024, 10, 26)  # 01:30 GMT, second pass
    with pytest.raises(ValueError):
        trial_day(datetime(2024, 10, 27, 6, 0, 0))


def test_is_treated_follows_the_trial_day_not_the_calendar_day():
    units = units_in_blocks({"A": 2})
    s = make_schedule(units, design="crossover", start=date(2024, 3, 30), days=2, seed=11)
    hid = "A-00"
    sat, sun = s.arm_of(hid, date(2024, 3, 30)), s.arm_of(hid, date(2024, 3, 31))
    assert {sat, sun} <= {TREATMENT, CONTROL}
    assert arm_at(s, hid, datetime(2024, 3, 30, 6, 0, tzinfo=UTC)) == sat
    assert arm_at(s, hid, datetime(2024, 3, 31, 4, 59, 59, tzinfo=UTC)) == sat   # Saturday night, after midnight
    assert arm_at(s, hid, datetime(2024, 3, 31, 5, 0, 0, tzinfo=UTC)) == sun
    assert is_treated(s, hid, datetime(2024, 3, 31, 12, 0, tzinfo=UTC)) == (sun == TREATMENT)
    assert arm_at(s, hid, datetime(2024, 3, 30, 5, 59, 59, tzinfo=UTC)) is None  # before the trial
    assert arm_at(s, hid, datetime(2024, 4, 1, 5, 0, tzinfo=UTC)) is None       # after it
    assert is_treated(s, "not-in-trial", datetime(2024, 3, 30, 12, 0, tzinfo=UTC)) is False
    # the two units are always in opposite arms
    assert {s.arm_of("A-00", date(2024, 3, 30)), s.arm_of("A-01", date(2024, 3, 30))} == {TREATMENT, CONTROL}


def test_allocation_rows_have_the_clickhouse_columns_and_rebuild_the_same_answers():
    s = make_schedule(units_in_blocks({"A": 3, "B": 4}), design="crossover", start=date(2024, 10, 25), days=4, seed=3,
                      trial_id="tvp-2024")
    rows = allocation_rows(s)
    assert tuple(rows[0]) == ALLOCATION_COLUMNS and len(rows) == 28
    assert rows[0]["trial_id"] == "tvp-2024" and rows[0]["design"] == "crossover" and rows[0]["seed"] == 3
    assert all(r["starts_at"].tzinfo == UTC and r["ends_at"] == trial_day_bounds(r["day"])[1] for r in rows)
    back = schedule_from_rows([{**r, "starts_at": r["starts_at"].replace(tzinfo=None)} for r in rows])
    for hour in range(0, 4 * 24, 5):
        when = datetime(2024, 10, 25, 6, tzinfo=UTC) + timedelta(hours=hour)
        for h in ("A-00", "B-03"):
            assert is_treated(back, h, when) == is_treated(s, h, when)


def _write_hotspots(path, n=6, block=True):
    feats = [{"type": "Feature", "properties": {"id": f"hs{k}", "name": f"Hot spot {k}", "briefing": "x",
                                                 **({"area": "north" if k % 2 else "south"} if block else {})},
              "geometry": {"type": "Polygon", "coordinates": [[[0, 51], [0.001, 51], [0.001, 51.001], [0, 51]]]}}
             for k in range(n)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))


def test_allocate_command_writes_the_same_csv_for_the_same_seed(tmp_path, capsys):
    hs = tmp_path / "hs.geojson"
    _write_hotspots(hs)
    args = ["allocate", "--hotspots", str(hs), "--design", "crossover", "--start", "2025-03-29", "--days", "3",
            "--seed", "99", "--block-by", "area"]
    assert main(args + ["--out", str(tmp_path / "a.csv")]) == 0
    assert main(args + ["--out", str(tmp_path / "b.csv")]) == 0
    text = (tmp_path / "a.csv").read_text()
    assert text == (tmp_path / "b.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(ALLOCATION_COLUMNS) and len(rows) == 18
    assert {(r["day"], r["starts_at"], r["ends_at"]) for r in rows if r["day"] == "2025-03-29"} == {
        ("2025-03-29", "2025-03-29T06:00:00Z", "2025-03-30T05:00:00Z")}
    for day in ("2025-03-29", "2025-03-30", "2025-03-31"):
        by_block = Counter(r["block"] for r in rows if r["day"] == day and r["arm"] == "treatment")
        assert sum(by_block.values()) == 3 and set(by_block.values()) <= {1, 2}
    assert "units treated per day: 3-3" in capsys.readouterr().err


def test_allocate_command_names_the_missing_block_property(tmp_path, capsys):
    hs = tmp_path / "hs.geojson"
    _write_hotspots(hs, block=False)
    assert main(["allocate", "--hotspots", str(hs), "--design", "parallel", "--start", "2025-01-01", "--days", "5",
                 "--seed", "1", "--block-by", "area"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "6 hot spots have no 'area' property" in err[0]
