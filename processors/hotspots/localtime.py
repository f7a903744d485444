"""Local clock time of UTC instants, vectorised, DST-correct.

Peak hours, weekdays and the day/night split are about the local clock, so
every instant is shifted by its zone's UTC offset at that instant. Offsets are
looked up once per distinct quarter-hour (zone changes happen on quarter-hour
boundaries), so a million records cost a few thousand zoneinfo calls.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_QUARTER_S = 900


def utc_offset_s(epoch_s: np.ndarray, tz: str) -> np.ndarray:
    zone = ZoneInfo(tz)
    buckets, inverse = np.unique(np.asarray(epoch_s, np.int64) // _QUARTER_S, return_inverse=True)
    offsets = np.fromiter(
        (datetime.fromtimestamp(int(b) * _QUARTER_S, zone).utcoffset().total_seconds() for b in buckets),
        dtype=np.int64, count=len(buckets))
    return offsets[inverse]


def local_seconds(epoch_s: np.ndarray, tz: str) -> np.ndarray:
    """Seconds since 1970-01-01 00:00 on the local wall clock."""
    epoch_s = np.asarray(epoch_s, np.int64)
    return epoch_s + utc_offset_s(epoch_s, tz)


def local_hour(local_s: np.ndarray) -> np.ndarray:
    return (local_s // 3600) % 24


def local_weekday(local_s: np.ndarray, day_starts_hour: int = 0) -> np.ndarray:
    """Monday = 0. With `day_starts_hour` 6, 02:00 on a Saturday counts as Friday (Friday night)."""
    return ((local_s - day_starts_hour * 3600) // 86400 + 3) % 7  # 1970-01-01 was a Thursday


def local_midnight_s(day: date, tz: str) -> int:
    """UTC epoch seconds of 00:00 local time on `day`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).timestamp())


def local_date(epoch_s: int, tz: str) -> date:
    return datetime.fromtimestamp(int(epoch_s), ZoneInfo(tz)).date()


def month_last_day(epoch_s: int) -> date:
    """Last day of the UTC month holding `epoch_s` (month-precision records sit mid-month)."""
    d = datetime.fromtimestamp(int(epoch_s), timezone.utc).date()
    first_next = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return first_next - timedelta(days=1)
