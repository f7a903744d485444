"""Stable hot-spot ids, derived from where a cell sits in its grid.

A cell id names the grid (shape, size, metric CRS) and the cell's integer
index from the CRS origin, e.g. `sq150m_27700_3456_1234` is the 150 m square
whose south-west corner is at easting 518,400 m, northing 185,100 m of the
British National Grid. The grid is anchored at the CRS origin, not at the data,
so rebuilding with newer records gives the same id to the same piece of ground;
ranks change, ids do not. A day/night hot spot appends `_day` or `_night`; a
merged group of cells takes `grp_` and the id of its south-westernmost cell
(its anchor), which stays the same while that cell stays in the group.
"""
from __future__ import annotations

import re

SHAPE_CODES = {"square": "sq", "hex": "hx"}
_CELL_ID = re.compile(r"^(sq|hx)(\d+(?:\.\d+)?)m_(\d+)_(-?\d+)_(-?\d+)$")


def cell_id(shape: str, size_m: float, epsg: int, i: int, j: int) -> str:
    return f"{SHAPE_CODES[shape]}{size_m:g}m_{epsg}_{int(i)}_{int(j)}"


def parse_cell_id(value: str) -> tuple[str, float, int, int, int]:
    """(shape, size_m, epsg, i, j) of a plain cell id; ValueError otherwise."""
    m = _CELL_ID.match(value)
    if not m:
        raise ValueError(f"not a cell id: {value!r}")
    shape = {v: k for k, v in SHAPE_CODES.items()}[m.group(1)]
    return shape, float(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))


def hotspot_id(anchor_cell_id: str, *, merged: bool, period: str | None) -> str:
    base = f"grp_{anchor_cell_id}" if merged else anchor_cell_id
    return f"{base}_{period}" if period else base
