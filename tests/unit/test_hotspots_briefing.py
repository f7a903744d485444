"""Briefings say what, when, how much and which way, in sentences an officer can use, and no more than the data shows."""
from __future__ import annotations

from datetime import date

import numpy as np

from processors.hotspots import BuildOptions, build_hotspots, make_records
from processors.hotspots.briefing import window_phrase
from processors.hotspots.grid import Grid
from formats.crimes import read_harm_table
from tests.data.generate import epoch, planted

HARM = read_harm_table()
GRID = Grid("square", 150.0, 27700)
CELL = (3500, 1200)

FRIDAY_AND_SATURDAY_NIGHTS = [  # local (BST) times; after midnight counts as the night before
    "2024-07-05T22:30:00+01:00", "2024-07-05T23:30:00+01:00", "2024-07-06T00:30:00+01:00", "2024-07-06T01:30:00+01:00",
    "2024-07-06T22:30:00+01:00", "2024-07-06T23:30:00+01:00", "2024-07-07T00:30:00+01:00", "2024-07-07T02:30:00+01:00",
    "2024-07-10T14:00:00+01:00", "2024-07-09T15:00:00+01:00"]
PREVIOUS_YEAR = ["2022-07-20T23:00:00+01:00", "2023-07-01T23:00:00+01:00", "2023-07-01T23:10:00+01:00",
                 "2023-07-01T23:20:00+01:00"]


def _one(spec, **options):
    (h,) = build_hotspots(planted(GRID, spec), HARM, BuildOptions(**options)).hotspots
    return h


def test_briefing_names_the_main_harm_the_busy_nights_and_the_rise():
    times = [epoch(t) for t in FRIDAY_AND_SATURDAY_NIGHTS]
    spec = [(CELL, 7, "Robbery", times[:7]), (CELL, 3, "Violence with injury", times[7:]),
            (CELL, 4, "Robbery", [epoch(t) for t in PREVIOUS_YEAR])]
    h = _one(spec)
    assert h.briefing == ("Most of the harm here is robbery (7 of the 10 offences). "
                          "Offences are mostly on Friday and Saturday nights, between 22:00 and 01:00. "
                          "10 serious violence offences in the 12 months to 10 July 2024, up from 4 in the 12 months before.")
    assert h.stats["peak_hours"] == {"from": "22:00", "to": "01:00", "offences": 6, "of": 10}
    assert h.stats["peak_days"] == ["Friday", "Saturday"]
    assert h.stats["offences_by_day"]["Friday"] == 4 and h.stats["offences_by_day"]["Sunday"] == 0


def test_night_time_hot_spot_says_so_a_mix_is_called_a_mix_and_eight_offences_prove_no_busy_time():
    times = [epoch(t) for t in FRIDAY_AND_SATURDAY_NIGHTS[:8]]
    spec = [(CELL, 2, "Robbery", times[:2]), (CELL, 4, "Violence with injury", times[2:6]),
            (CELL, 2, "Possession of weapons", times[6:])]
    (h,) = [x for x in build_hotspots(planted(GRID, spec), HARM, BuildOptions(day_night=True)).hotspots]
    assert h.period == "night"
    assert h.briefing.startswith("The harm here is a mix of robbery (2) and violence with injury (4), among 8 offences. "
                                 "This is a night-time hot spot (19:00–07:00). Offences are spread across the night "
                                 "and the week, with no clear busy time. 8 serious violence offences")
    # 4 of 8 on Friday, or between 22:00 and 00:00, is what an even spread often gives: not claimed
    assert h.stats["peak_days"] is None and h.stats["peak_hours"] is None
    assert h.briefing.endswith("; there is no earlier data to compare with.")


def test_few_timed_offences_show_no_pattern_and_spread_ones_show_no_peak():
    few = _one([(CELL, 3, "Robbery", [epoch(t) for t in FRIDAY_AND_SATURDAY_NIGHTS[:3]])])
    assert "Too few offences have a recorded time to show a busy time." in few.briefing
    assert few.stats["peak_hours"] is None and few.stats["peak_days"] is None
    spread = [epoch(f"2024-06-{3 + d:02d}T{h:02d}:15:00+01:00") for d in range(7) for h in range(0, 24, 2)]
    even = _one([(CELL, len(spread), "Robbery", spread)])
    assert "Offences are spread across the day and the week, with no clear busy time." in even.briefing


def test_dates_without_times_give_days_but_no_hours():
    fridays = [epoch(f"2024-05-{d:02d}T12:00:00+01:00") for d in (3, 10, 17, 24, 31, 3, 10, 17)] + \
              [epoch("2024-05-06T12:00:00+01:00")]
    base = planted(GRID, [(CELL, len(fridays), "Robbery", fridays)])
    records = make_records(base.lat_deg, base.lon_deg, base.occurred_s, ["Robbery"] * len(fridays), precision=1)
    (h,) = build_hotspots(records, HARM, BuildOptions()).hotspots
    assert "Offences are mostly on Friday (the time of day is not recorded)." in h.briefing
    assert h.stats["peak_hours"] is None and h.stats["offences_by_hour"] is None


def test_month_only_records_are_said_to_have_no_busy_time_and_a_single_offence_reads_naturally():
    base = planted(GRID, [(CELL, 1, "Violence and sexual offences", epoch("2024-05-16T00:00:00+00:00"))])
    records = make_records(base.lat_deg, base.lon_deg, base.occurred_s, ["Violence and sexual offences"], precision=2)
    (h,) = build_hotspots(records, HARM, BuildOptions(as_of=date(2024, 5, 31))).hotspots
    assert h.briefing == (
        "The one offence here is violence and sexual offences. The police.uk category 'violence and sexual offences' "
        "does not say whether anyone was injured. The data gives only the month of each offence (police.uk), so no "
        "busy days or times can be given. 1 serious violence offence in the 12 months to 31 May 2024; there is no "
        "earlier data to compare with.")


def test_window_phrases():
    assert [window_phrase(d) for d in (365, 366, 730, 28, 90)] == ["12 months", "12 months", "2 years", "4 weeks", "90 days"]


def test_even_spreads_rarely_get_a_busy_time_and_a_real_night_peak_does():
    from processors.hotspots.build import peak_days, peak_hours

    rng = np.random.default_rng(2024)
    claims = sum(peak_hours(np.bincount(rng.integers(0, 24, 30), minlength=24)) is not None
                 or peak_days(np.bincount(rng.integers(0, 7, 30), minlength=7)) is not None for _ in range(300))
    assert claims <= 0.08 * 300  # without the significance guard nearly every one would claim a peak
    night = np.zeros(24, int)
    night[[22, 23, 0, 1]] = [6, 8, 7, 4]
    night[[10, 14, 17]] = 1
    assert peak_hours(night) == {"from": "23:00", "to": "01:00", "offences": 15, "of": 28}  # shortest run holding half
