"""Times in our external formats: the one parser and the one ISO-8601 formatter.

Every file and protocol we read gives a time as ISO-8601 or as an epoch
number; every file we write gives it as ISO-8601 UTC with milliseconds
(`2025-06-12T07:00:01.250Z`). Numbers below `SECONDS_BELOW` (1e11, i.e.
before 1973 in milliseconds, after 5138 in seconds) are epoch seconds, others
epoch milliseconds: the same boundary for the gateway, replay files and
simulation files. An ISO-8601 time without an offset is refused unless the
format defines it as UTC (`naive_utc=True`: OsmAnd's `yyyy-MM-dd HH:mm:ss`,
the simulator's `--start`); replay files must say their offset.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np

SECONDS_BELOW = 1e11
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_ts_ms(value, *, naive_utc: bool = False) -> int:
    """ISO-8601, or epoch seconds / milliseconds (number or text), to epoch milliseconds; ValueError if neither."""
    if isinstance(value, str):
        s = value.strip()
        if len(s) >= 10 and s[4] == "-":
            d = datetime.fromisoformat(s)   # ValueError names what is wrong
            if d.tzinfo is None:
                if not naive_utc:
                    raise ValueError("ISO-8601 time without a UTC offset (add Z or +hh:mm)")
                d = d.replace(tzinfo=timezone.utc)
            return round(d.timestamp() * 1000.0)
        try:
            v = float(s)
        except ValueError:
            raise ValueError("not ISO-8601 date and time nor epoch seconds/milliseconds") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
    else:
        raise ValueError("not a time")
    if not math.isfinite(v):
        raise ValueError("not a finite number")
    return int(round(v if abs(v) >= SECONDS_BELOW else v * 1000.0))


def iso_utc(ms: int) -> str:
    """Epoch milliseconds to ISO-8601 UTC with milliseconds, e.g. 2025-06-12T07:00:01.250Z."""
    return (_EPOCH + timedelta(milliseconds=int(ms))).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_utc_many(ms: np.ndarray | Sequence[int]) -> list[str]:
    """`iso_utc` of a whole column at once (numpy): the same text, for files of millions of rows."""
    arr = np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(arr, unit="ms")]


def iso_local_many(ms: np.ndarray | Sequence[int], zone: str) -> list[str]:
    """Epoch milliseconds to ISO-8601 local time in `zone` with its UTC offset, e.g. ...T08:00:05+01:00
    (whole seconds when every value is)."""
    ms = np.asarray(ms, dtype=np.int64)
    tz = ZoneInfo(zone)
    hours = ms // 3_600_000
    uniq, inv = np.unique(hours, return_inverse=True)
    # Offsets change on the hour, so one lookup per hour is exact.
    offs = np.array([int(datetime.fromtimestamp(int(h) * 3600, tz).utcoffset().total_seconds()) for h in uniq],
                    dtype=np.int64)
    off = offs[inv]
    unit = "s" if not (ms % 1000).any() else "ms"
    local = np.datetime_as_string((ms + off * 1000).astype("datetime64[ms]"), unit=unit)
    suffix = {o: f"{'+' if o >= 0 else '-'}{abs(o) // 3600:02d}:{abs(o) % 3600 // 60:02d}" for o in offs.tolist()}
    return [f"{s}{suffix[o]}" for s, o in zip(local, off.tolist())]
