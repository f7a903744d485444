"""The plain data the analytics take and give: pings, their verdicts, and patrol events.

Owns the shapes shared by both callers (the live worker and `hotspot replay`):
`Ping` in, `AcceptedPing` / `RejectedPing` and the event records out, the
reason codes of rejections, and the stable ids the ClickHouse sink dedups on.
Times are UTC epoch milliseconds (`_ms`), durations seconds (`_s`), distances
metres (`_m`), speeds metres per second (`_mps`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple, Union


@dataclass(slots=True)
class Ping:
    """One position report. Treat as immutable: processors keep references to pings they buffer.

    `received_ms` is the arrival time the gateway stamped; None (historical
    replay) skips the future and stale checks, which need an arrival time.
    `source` is the protocol or path it came in by (the Avro Ping's `source`):
    the processors never read it, only carry it, so that a ping held in the
    reorder buffer, even across a restart, is stored with the source it came with.
    """

    device_id: str
    ts_ms: int
    lat: float
    lon: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    battery: float | None = None
    received_ms: int | None = None
    source: str | None = None


# Reason codes of rejected pings (machine-readable; stable, they end up in ClickHouse).
BAD_COORDINATES = "bad_coordinates"      # lat/lon not finite or out of range
NULL_ISLAND = "null_island"              # (0, 0): a device with no fix
BAD_TIMESTAMP = "bad_timestamp"          # before ProcessingConfig.min_ts_ms (clock never set)
BAD_ACCURACY = "bad_accuracy"            # negative or not finite (iOS: negative means no valid fix)
FUTURE_TIMESTAMP = "future_timestamp"    # fix time too far ahead of arrival
STALE_TIMESTAMP = "stale_timestamp"      # fix time too far before arrival
DUPLICATE = "duplicate"                  # same device and fix time as a ping already taken
LATE = "late"                            # arrived after the reorder window had passed its time
IMPLIED_SPEED = "implied_speed"          # teleport: too fast from the last accepted ping
TIME_JUMP = "time_jump"                  # far ahead of the device's timeline, and later pings did not follow it

REASONS = (BAD_COORDINATES, NULL_ISLAND, BAD_TIMESTAMP, BAD_ACCURACY, FUTURE_TIMESTAMP, STALE_TIMESTAMP,
           DUPLICATE, LATE, IMPLIED_SPEED, TIME_JUMP)


class RejectedPing(NamedTuple):
    ping: Ping
    reason: str


class AcceptedPing(NamedTuple):
    """A ping the state machines used (or saw, when low_accuracy), with where it was."""

    ping: Ping
    hotspot_ids: tuple[str, ...]   # hot spots whose (buffered) polygon contains the position
    low_accuracy: bool             # accuracy worse than max_accuracy_m: stored, never changes state


# Travel modes, as written to modes.csv and the PatrolEvent Avro enum.
FOOT = "foot"
VEHICLE = "vehicle"
STATIONARY = "stationary"
UNKNOWN = "unknown"
MODES = (FOOT, VEHICLE, STATIONARY, UNKNOWN)

# Visit end reasons.
END_EXIT = "exit"
END_SIGNAL_LOST = "signal_lost"
END_OF_DATA = "end_of_data"


def stable_id(kind: str, *parts: object) -> str:
    """A deterministic 20-hex-digit id of an event's identity (not its content)."""
    text = "\x1f".join([kind, *map(str, parts)])
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def visit_id(device_id: str, hotspot_id: str, entered_ms: int) -> str:
    return stable_id("visit", device_id, hotspot_id, entered_ms)


def stop_id(device_id: str, hotspot_id: str, started_ms: int) -> str:
    return stable_id("stop", device_id, hotspot_id, started_ms)


def segment_id(device_id: str, started_ms: int) -> str:
    return stable_id("mode", device_id, started_ms)


# ---------------------------------------------------------------------------
# Events. Each has `event_id` (stable: the same input gives the same id, so a
# replayed event replaces its earlier copy), `type` (the PatrolEvent enum
# symbol) and `ts_ms` (the event time the PatrolEvent record carries).

@dataclass(slots=True, frozen=True)
class VisitStarted:
    visit_id: str
    device_id: str
    hotspot_id: str
    entered_ms: int          # first inside ping (backdated)

    type = "visit_started"

    @property
    def event_id(self) -> str:
        return self.visit_id + ":started"

    @property
    def ts_ms(self) -> int:
        return self.entered_ms


@dataclass(slots=True, frozen=True)
class VisitEnded:
    """A closed visit: every column of visits.csv."""

    visit_id: str
    device_id: str
    hotspot_id: str
    entered_ms: int          # first inside ping
    exited_ms: int           # last inside ping
    dwell_s: float
    foot_s: float
    vehicle_s: float
    stationary_s: float
    stop_count: int
    ping_count: int
    end_reason: str          # exit | signal_lost | end_of_data
    observed_s: float = 0.0  # dwell_s less inferred_s
    inferred_s: float = 0.0  # silences bridged inside the hot spot (processors.visits)

    type = "visit_ended"

    @property
    def event_id(self) -> str:
        return self.visit_id + ":ended"

    @property
    def ts_ms(self) -> int:
        return self.exited_ms


@dataclass(slots=True, frozen=True)
class VisitProgress:
    """An open visit's dwell so far, up to its last inside fix: not an event (nothing happened), a row
    the live worker writes at its checkpoints so that the control room and dosage_daily see presence
    while it lasts. Its replacing version is its last inside fix time, so a later progress row or the
    visit's end replaces it, never the other way round."""

    visit_id: str
    device_id: str
    hotspot_id: str
    entered_ms: int
    last_in_ms: int          # last inside fix so far
    dwell_s: float
    observed_s: float
    inferred_s: float
    foot_s: float
    vehicle_s: float
    stationary_s: float
    stop_count: int
    ping_count: int


@dataclass(slots=True, frozen=True)
class StopStarted:
    stop_id: str
    device_id: str
    hotspot_id: str
    started_ms: int
    lat: float               # centre of the pings so far
    lon: float

    type = "stop_started"

    @property
    def event_id(self) -> str:
        return self.stop_id + ":started"

    @property
    def ts_ms(self) -> int:
        return self.started_ms


@dataclass(slots=True, frozen=True)
class StopEnded:
    """A finished stop: every column of stops.csv."""

    stop_id: str
    device_id: str
    hotspot_id: str
    started_ms: int
    ended_ms: int
    duration_s: float
    lat: float               # centre of the stop's pings
    lon: float

    type = "stop_ended"

    @property
    def event_id(self) -> str:
        return self.stop_id + ":ended"

    @property
    def ts_ms(self) -> int:
        return self.ended_ms


@dataclass(slots=True, frozen=True)
class ModeSegment:
    """A closed stretch of one travel mode: every column of modes.csv."""

    segment_id: str
    device_id: str
    started_ms: int
    ended_ms: int
    mode: str                # foot | vehicle | stationary | unknown
    distance_m: float

    type = "mode_segment"

    @property
    def event_id(self) -> str:
        return self.segment_id

    @property
    def ts_ms(self) -> int:
        return self.ended_ms


Event = Union[VisitStarted, VisitEnded, StopStarted, StopEnded, ModeSegment]
