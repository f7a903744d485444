"""Tiny hand-built worlds for the analytics tests: metres in, WGS84 pings out.

A local frame centred at (LAT0, LON0) converts x (east) / y (north) metres to
degrees exactly as the index does at that latitude, so "20 m outside the edge"
in a test is 20 m for the processors too.
"""
from __future__ import annotations

from shapely.geometry import Polygon, box

from processors.batch import finish, process_batch
from processors.config import ProcessingConfig
from processors.geo import metres_per_degree
from processors.geofence import Hotspot, HotspotIndex
from processors.model import ModeSegment, Ping, StopEnded, StopStarted, VisitEnded, VisitStarted

LAT0, LON0 = 51.7520, -1.2577
KX, KY = metres_per_degree(LAT0)
T0 = 1_750_000_000_000  # 2025-06-15T15:06:40Z, ms
# The hand-built tracks are unstamped (no arrival time) and many tests look at what a batch releases
# before `finish`: they keep the 10 s window that stamped pings have, so that the state machines'
# timing shows batch by batch (and no row bound: a window in seconds only). The default unstamped
# window (600 s, 10 rows) has its own tests (test_reorder).
CFG = ProcessingConfig(unstamped_reorder_window_s=10.0, unstamped_reorder_rows=0)


def lat_lon(x_m: float, y_m: float) -> tuple[float, float]:
    return LAT0 + y_m / KY, LON0 + x_m / KX


def square(hid: str, x0_m: float, y0_m: float, side_m: float, buffer_m: float = 0.0, **kw) -> Hotspot:
    """A square hot spot with its south-west corner at (x0, y0) metres."""
    a, b = lat_lon(x0_m, y0_m)
    c, d = lat_lon(x0_m + side_m, y0_m + side_m)
    return Hotspot(hid, box(b, a, d, c), buffer_m, **kw)


def polygon(hid: str, xy_m: list[tuple[float, float]]) -> Hotspot:
    return Hotspot(hid, Polygon([lat_lon(x, y)[::-1] for x, y in xy_m]))


def index(*hotspots: Hotspot) -> HotspotIndex:
    return HotspotIndex.from_hotspots(hotspots)


# The standard world: one 150 m square hot spot "H" from (0, 0) to (150, 150).
H = square("H", 0, 0, 150)


def ping(t_s: float, x_m: float, y_m: float, acc_m: float | None = 5.0, speed_mps: float | None = None,
         device: str = "d1", received_s: float | None = None) -> Ping:
    lat, lon = lat_lon(x_m, y_m)
    return Ping(device, T0 + int(round(t_s * 1000)), lat, lon, acc_m, speed_mps,
                received_ms=None if received_s is None else T0 + int(round(received_s * 1000)))


def walk(t0_s: float, t1_s: float, every_s: float, start: tuple[float, float], end: tuple[float, float],
         acc_m: float | None = 5.0, speed_mps: float | None = None, device: str = "d1") -> list[Ping]:
    """Fixes every `every_s` from t0 to t1 inclusive, moving in a straight line from start to end."""
    out = []
    n = int(round((t1_s - t0_s) / every_s))
    for k in range(n + 1):
        f = k / n if n else 0.0
        out.append(ping(t0_s + k * every_s, start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]),
                        acc_m, speed_mps, device))
    return out


def stay(t0_s: float, t1_s: float, every_s: float, at: tuple[float, float], acc_m: float | None = 5.0,
         speed_mps: float | None = 0.0, device: str = "d1") -> list[Ping]:
    return walk(t0_s, t1_s, every_s, at, at, acc_m, speed_mps, device)


def run(pings: list[Ping], idx: HotspotIndex | None = None, cfg: ProcessingConfig = CFG) -> list:
    """All events of the pings in one batch, then the end of the data."""
    idx = idx if idx is not None else index(H)
    r = process_batch({}, pings, idx, cfg)
    return r.events + finish(r.states, idx, cfg).events


def s(t_s: float) -> int:
    """Seconds after T0 as epoch ms, for exact expectations."""
    return T0 + int(round(t_s * 1000))


def visits(events) -> list[VisitEnded]:
    return [e for e in events if isinstance(e, VisitEnded)]


def starts(events) -> list[VisitStarted]:
    return [e for e in events if isinstance(e, VisitStarted)]


def stops(events) -> list[StopEnded]:
    return [e for e in events if isinstance(e, StopEnded)]


def stop_starts(events) -> list[StopStarted]:
    return [e for e in events if isinstance(e, StopStarted)]


def modes(events) -> list[tuple[float, float, str]]:
    """Mode segments as (start s, end s, mode) relative to T0."""
    return [((e.started_ms - T0) / 1000, (e.ended_ms - T0) / 1000, e.mode) for e in events
            if isinstance(e, ModeSegment)]
