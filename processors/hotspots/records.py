"""Crime records as columns: the plain data the hot-spot builder works on.

Readers (formats/crimes.py) turn police.uk or generic CSV into one
`CrimeRecords`; everything here is numpy arrays so a million rows cost
milliseconds, not a Python loop. Categories and locations are stored as small
integer codes into label tuples.

Time has a precision per record because police.uk gives only the month:
`EXACT` records know the hour and weekday, `DAY` records know the weekday but
not the hour, `MONTH` records know neither. `occurred_s` is the instant (UTC
epoch seconds) that stands for the record: the moment itself, noon local time
for a day, the 16th at 00:00 UTC for a month (so a month falls in a window when
its middle does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXACT, DAY, MONTH = 0, 1, 2


@dataclass(frozen=True)
class CrimeRecords:
    lat_deg: np.ndarray  # float64
    lon_deg: np.ndarray  # float64
    occurred_s: np.ndarray  # int64, UTC epoch seconds
    precision: np.ndarray  # int8: EXACT, DAY or MONTH
    category: np.ndarray  # int32 index into `categories`
    categories: tuple[str, ...]  # labels as first seen in the data
    harm_days: np.ndarray  # float64 per-record harm; NaN = take it from the harm table
    location: np.ndarray  # int32 index into `locations`, -1 = none
    locations: tuple[str, ...] = ()

    def __post_init__(self):
        n = len(self.lat_deg)
        for name in ("lon_deg", "occurred_s", "precision", "category", "harm_days", "location"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CrimeRecords.{name} has {len(getattr(self, name))} values, lat_deg has {n}")

    def __len__(self) -> int:
        return len(self.lat_deg)

    def take(self, index: np.ndarray) -> "CrimeRecords":
        """The records at `index` (a boolean mask or integer positions), same label tuples."""
        return CrimeRecords(self.lat_deg[index], self.lon_deg[index], self.occurred_s[index], self.precision[index],
                            self.category[index], self.categories, self.harm_days[index], self.location[index],
                            self.locations)

    @staticmethod
    def concat(parts: list["CrimeRecords"]) -> "CrimeRecords":
        """Join record sets, merging their category and location labels."""
        if not parts:
            return empty_records()
        categories: dict[str, int] = {}
        locations: dict[str, int] = {}
        cat_codes, loc_codes = [], []
        for p in parts:
            cmap = np.array([categories.setdefault(c, len(categories)) for c in p.categories] or [0], dtype=np.int32)
            cat_codes.append(cmap[p.category] if len(p) else np.empty(0, np.int32))
            lmap = np.array([locations.setdefault(s, len(locations)) for s in p.locations] + [-1], dtype=np.int32)
            loc_codes.append(lmap[p.location] if len(p) else np.empty(0, np.int32))  # -1 indexes the trailing -1
        return CrimeRecords(
            np.concatenate([p.lat_deg for p in parts]), np.concatenate([p.lon_deg for p in parts]),
            np.concatenate([p.occurred_s for p in parts]), np.concatenate([p.precision for p in parts]),
            np.concatenate(cat_codes), tuple(categories), np.concatenate([p.harm_days for p in parts]),
            np.concatenate(loc_codes), tuple(locations))


def empty_records() -> CrimeRecords:
    return CrimeRecords(np.empty(0), np.empty(0), np.empty(0, np.int64), np.empty(0, np.int8),
                        np.empty(0, np.int32), (), np.empty(0), np.empty(0, np.int32), ())


def make_records(lat_deg, lon_deg, occurred_s, categories_per_record, *, precision=EXACT, harm_days=None,
                 locations_per_record=None) -> CrimeRecords:
    """Convenience constructor from per-record sequences (tests, small inputs).

    `categories_per_record` and `locations_per_record` are labels; they are coded here.
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    n = len(lat)
    labels, codes = np.unique(np.asarray(categories_per_record, dtype=object).astype(str), return_inverse=True)
    prec = np.full(n, precision, dtype=np.int8) if np.isscalar(precision) else np.asarray(precision, dtype=np.int8)
    harm = np.full(n, np.nan) if harm_days is None else np.asarray(harm_days, dtype=np.float64)
    if locations_per_record is None:
        loc_labels, loc = (), np.full(n, -1, np.int32)
    else:
        ul, loc = np.unique(np.asarray(locations_per_record, dtype=object).astype(str), return_inverse=True)
        loc_labels = tuple(ul)
    return CrimeRecords(lat, np.asarray(lon_deg, dtype=np.float64), np.asarray(occurred_s, dtype=np.int64), prec,
                        codes.astype(np.int32), tuple(labels), harm, np.asarray(loc, dtype=np.int32), tuple(loc_labels))
