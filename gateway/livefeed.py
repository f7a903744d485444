"""What the control room sees: one gateway instance's live state and its numbered event log.

`LiveHub` owns, for one gateway process, the picture a supervisor's map is drawn
from: the hot spots (with today's minutes against target and the trial arm), the
officers on duty at their last position (age, mode, the hot spot they are in),
today's visits per hot spot, and a ring buffer of the events sent on `/v1/live`.
It has no Kafka and no clock of its own: gateway/live.py feeds it decoded records
and the time, so the unit tests drive it directly.

Event ids are ``<instance>.<seq>``: `instance` is random per hub (per gateway
process), `seq` a monotonic counter. A client that reconnects with the id of the
last event it saw gets every later event from the ring; an id from another
instance (a restarted gateway, another instance behind a load balancer) or older
than the ring gets a fresh snapshot instead, whose id is the sequence number it is
consistent with. Either way nothing is missed: a snapshot is the whole state.

Privacy rule, enforced here and nowhere else: a position is put in the ring or a
snapshot only while its device is on duty. An officer-app device (``app-<user>``,
contract.md) is on duty between its `duty_on` and `duty_off` activity records. A
registered tracker (Traccar Client, OwnTracks, the simulator) has no duty switch
of its own: it counts as on duty while it sends, since switching the tracker off
is how its user goes off duty; an explicit `duty_off` for its device id still
hides it until a `duty_on`. Going off duty removes the officer from every map
(`officer_off`) and forgets the position.
"""
from __future__ import annotations

import asyncio
import fnmatch
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from itertools import islice
from typing import Any

import orjson

APP_DEVICE_PREFIX = "app-"  # contract.md: an officer user's own device identity
DUTY_ON_KINDS = frozenset({"duty_on", "on_duty"})  # contract.md says duty_on/duty_off; Activity.avsc's doc on_duty
DUTY_OFF_KINDS = frozenset({"duty_off", "off_duty"})
# Mode from the device's speed, with the worker's thresholds (processors/config.py) and their hysteresis band.
STATIONARY_MAX_MPS = 0.3
TICKER_KINDS = frozenset({"patrol", "assignment", "activity", "signal_lost", "officer_off"})
RECENT_MAX = 100  # ticker items a snapshot carries, so a page opened now is not blank until the next event


@dataclass
class Officer:
    device_id: str
    lat: float | None = None
    lon: float | None = None
    ts_ms: int = 0
    received_ms: int = 0
    accuracy_m: float | None = None
    mode: str = "unknown"
    hotspot_id: str | None = None  # the hot spot of its open visit
    visit_entered_ms: int | None = None
    last_emit_ms: int = -(1 << 62)
    signal_lost: bool = False
    assignment: dict | None = None

    @property
    def user(self) -> str | None:
        return self.device_id[len(APP_DEVICE_PREFIX):] if self.device_id.startswith(APP_DEVICE_PREFIX) else None

    def view(self, now_ms: int, team: str | None) -> dict:
        return {"device_id": self.device_id, "user": self.user, "team": team, "lat": self.lat, "lon": self.lon,
                "ts_ms": self.ts_ms, "received_ms": self.received_ms, "age_s": round(max(0, now_ms - self.ts_ms) / 1000, 1),
                "accuracy_m": self.accuracy_m, "mode": self.mode, "hotspot_id": self.hotspot_id,
                "signal_lost": self.signal_lost,
                "assignment_hotspot_id": (self.assignment or {}).get("hotspot_id")}


@dataclass
class HotspotDay:
    """Today's patrol of one hot spot: closed visits' dwell plus the open ones."""
    closed_s: float = 0.0
    visits: dict[str, dict] = field(default_factory=dict)  # visit_id -> {device_id, entered_ms, exited_ms, dwell_s}


class LiveHub:
    def __init__(self, *, ring_size: int = 50_000, position_interval_s: float = 1.0, signal_lost_s: float = 300.0,
                 foot_max_mps: float = 2.5, vehicle_min_mps: float = 4.5, teams: dict[str, list[str]] | None = None,
                 day_of=None, instance: str | None = None):
        self.instance = instance or secrets.token_hex(4)
        self.seq = 0
        self.ring: deque[tuple[int, bytes]] = deque(maxlen=ring_size)
        self.recent: deque[dict] = deque(maxlen=RECENT_MAX)
        self.position_interval_ms = int(position_interval_s * 1000)
        self.signal_lost_ms = int(signal_lost_s * 1000)
        self.foot_max_mps, self.vehicle_min_mps = foot_max_mps, vehicle_min_mps
        self.teams = teams or {}
        self._team_cache: dict[str, str | None] = {}
        # day_of(epoch_ms) -> the patrol day it falls in (processors.allocation.trial_day by default)
        self.day_of = day_of or _utc_day
        self.day: date | None = None
        self.hotspots: dict[str, dict] = {}
        self.arms: dict[tuple[str, str], str] = {}  # (hotspot_id, YYYY-MM-DD) -> arm
        self.officers: dict[str, Officer] = {}  # on duty, with a position
        self.explicit_duty: dict[str, bool] = {}  # device_id -> last duty_on/duty_off
        self.duty_since_ms: dict[str, int] = {}  # device_id -> time of its last duty_on
        self.assignments: dict[str, dict] = {}  # device_id -> latest assignment
        self.today: dict[str, HotspotDay] = {}
        self._wake = asyncio.Event()
        self.counts = {"events": 0, "positions_dropped_off_duty": 0, "positions_throttled": 0}

    # ------------------------------------------------------------------ ids and the ring

    def event_id(self, seq: int | None = None) -> str:
        return f"{self.instance}.{self.seq if seq is None else seq}"

    def _emit(self, kind: str, data: dict) -> None:
        self.seq += 1
        body = orjson.dumps(data)
        self.ring.append((self.seq, b"id: %s.%d\nevent: %s\ndata: %s\n\n" % (self.instance.encode(), self.seq,
                                                                              kind.encode(), body)))
        self.counts["events"] += 1
        if kind in TICKER_KINDS:
            self.recent.append({"kind": kind, "data": data})
        self._wake.set()

    def resume_seq(self, last_event_id: str | None) -> int | None:
        """The first sequence number to send to a client that saw `last_event_id`; None: it needs a snapshot."""
        if not last_event_id:
            return None
        instance, _, seq_text = last_event_id.strip().rpartition(".")
        if instance != self.instance or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self.seq:
            return None  # an id this instance never gave out
        oldest = self.ring[0][0] if self.ring else self.seq + 1
        if seq + 1 < oldest:
            return None  # fell out of the ring: events were dropped since
        return seq + 1

    def read_from(self, next_seq: int, limit: int = 2000) -> tuple[list[bytes], int] | None:
        """Events from `next_seq` on (at most `limit`) and the next sequence to ask for; None if they left the ring."""
        if next_seq > self.seq:
            return [], next_seq
        oldest = self.ring[0][0]
        if next_seq < oldest:
            return None
        chunks = [chunk for _, chunk in islice(self.ring, next_seq - oldest, next_seq - oldest + limit)]
        return chunks, next_seq + len(chunks)

    async def wait(self, timeout_s: float) -> bool:
        """Until an event is emitted (True) or `timeout_s` passes (False)."""
        event = self._wake
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    def flush(self) -> None:
        """Wake the waiting clients once for everything emitted since the last flush (one wake per batch)."""
        if self._wake.is_set():
            self._wake = asyncio.Event()  # clients waiting on the old one were woken; new waits need a new event

    # ------------------------------------------------------------------ who is on duty

    def on_duty(self, device_id: str) -> bool:
        explicit = self.explicit_duty.get(device_id)
        if explicit is not None:
            return explicit
        return not device_id.startswith(APP_DEVICE_PREFIX)  # trackers: on duty while sending

    def path_since_ms(self, device_id: str, day_start_ms: int) -> int | None:
        """Where an officer's path shown today may begin: the later of the day's start and the start of the
        current duty (fixes from before it, off duty, are never shown); None while off duty."""
        if not self.on_duty(device_id):
            return None
        return max(day_start_ms, self.duty_since_ms.get(device_id, day_start_ms))

    def team_of(self, device_id: str) -> str | None:
        if device_id not in self._team_cache:
            self._team_cache[device_id] = next((team for team, patterns in self.teams.items()
                                                if any(fnmatch.fnmatchcase(device_id, p) for p in patterns)), None)
        return self._team_cache[device_id]

    # ------------------------------------------------------------------ inputs

    def _roll_day(self, ts_ms: int) -> bool:
        """Move 'today' forward; False for a record of an earlier day (it no longer counts today)."""
        day = self.day_of(ts_ms)
        if self.day is None or day > self.day:
            self.day = day
            self.today = {}
            return True
        return day == self.day

    def on_ping(self, ping: dict, now_ms: int, emit: bool = True) -> None:
        device_id = ping["device_id"]
        if not self.on_duty(device_id):
            self.counts["positions_dropped_off_duty"] += 1
            return
        officer = self.officers.get(device_id)
        if officer is None:
            officer = self.officers[device_id] = Officer(device_id, assignment=self.assignments.get(device_id))
        if ping["ts_ms"] < officer.ts_ms:
            return  # a straggler: the map shows the latest fix
        officer.lat, officer.lon, officer.ts_ms = ping["lat"], ping["lon"], ping["ts_ms"]
        officer.received_ms, officer.accuracy_m = ping.get("received_ms") or now_ms, ping.get("accuracy_m")
        officer.mode = self._mode(officer.mode, ping.get("speed_mps"))
        was_lost, officer.signal_lost = officer.signal_lost, False
        if not emit:
            return
        if not was_lost and now_ms - officer.last_emit_ms < self.position_interval_ms:
            self.counts["positions_throttled"] += 1
            return
        officer.last_emit_ms = now_ms
        self._emit("position", officer.view(now_ms, self.team_of(device_id)))

    def _mode(self, previous: str, speed_mps: float | None) -> str:
        if speed_mps is None:
            return previous
        if speed_mps <= STATIONARY_MAX_MPS:
            return "stationary"
        if speed_mps <= self.foot_max_mps:
            return "foot"
        if speed_mps >= self.vehicle_min_mps:
            return "vehicle"
        return previous if previous in ("foot", "vehicle") else "foot"

    def on_patrol_event(self, event: dict, now_ms: int, emit: bool = True) -> None:
        kind, device_id, hotspot_id = event["type"], event["device_id"], event.get("hotspot_id")
        officer = self.officers.get(device_id)
        if kind == "mode_segment" and event.get("mode"):
            if officer is not None and event["mode"]["mode"] != "unknown":
                officer.mode = event["mode"]["mode"]
            return  # a mode segment is the map's marker style, not a ticker item
        visit = event.get("visit")
        on_duty = self.on_duty(device_id)
        if kind in ("visit_started", "visit_ended") and visit and hotspot_id:
            counts_today = self._roll_day(visit["entered_ms"]) if kind == "visit_started" else \
                self._roll_day(visit.get("exited_ms") or event["ts_ms"])
            day = self.today.setdefault(hotspot_id, HotspotDay()) if counts_today else None
            if kind == "visit_started":
                if day is not None:
                    day.visits.setdefault(visit["visit_id"], {"device_id": device_id, "entered_ms": visit["entered_ms"],
                                                              "exited_ms": None, "dwell_s": None, "on_duty": on_duty})
                if officer is not None:
                    officer.hotspot_id, officer.visit_entered_ms = hotspot_id, visit["entered_ms"]
            else:
                if day is not None:
                    row = day.visits.setdefault(visit["visit_id"], {"device_id": device_id, "on_duty": on_duty,
                                                                    "entered_ms": visit["entered_ms"]})
                    if row.get("exited_ms") is None:
                        day.closed_s += visit.get("dwell_s") or 0.0
                    row.update(exited_ms=visit.get("exited_ms"), dwell_s=visit.get("dwell_s"),
                               end_reason=visit.get("end_reason"))
                if officer is not None and officer.hotspot_id == hotspot_id:
                    officer.hotspot_id = officer.visit_entered_ms = None
        if not emit:
            return
        if hotspot_id and kind in ("visit_started", "visit_ended"):
            self._emit("dosage", self.hotspot_view(hotspot_id, now_ms))
        if not on_duty:
            return  # the minutes count (dosage is anonymous); who was where, off duty, is never sent
        user = device_id[len(APP_DEVICE_PREFIX):] if device_id.startswith(APP_DEVICE_PREFIX) else None
        data = {"event_id": event["event_id"], "type": kind, "device_id": device_id, "user": user, "hotspot_id": hotspot_id,
                "hotspot_name": self.hotspots.get(hotspot_id or "", {}).get("name"), "ts_ms": event["ts_ms"],
                "emitted_ms": event.get("emitted_ms"), "team": self.team_of(device_id)}
        if visit:
            data.update(visit_id=visit["visit_id"], entered_ms=visit["entered_ms"], exited_ms=visit.get("exited_ms"),
                        dwell_s=visit.get("dwell_s"), end_reason=visit.get("end_reason"))
        if event.get("stop"):
            stop = event["stop"]
            data.update(stop_id=stop["stop_id"], duration_s=stop.get("duration_s"), lat=stop["lat"], lon=stop["lon"])
        self._emit("patrol", data)

    def on_assignment(self, record: dict, now_ms: int, emit: bool = True) -> None:
        device_id = record.get("device_id") or APP_DEVICE_PREFIX + record["user"]
        self.assignments[device_id] = record
        if device_id in self.officers:
            self.officers[device_id].assignment = record
        if emit:
            self._emit("assignment", {"device_id": device_id, "user": record["user"], "team": self.team_of(device_id),
                                      "assignment_id": record["assignment_id"], "hotspot_id": record["hotspot_id"],
                                      "hotspot_name": self.hotspots.get(record["hotspot_id"], {}).get("name"),
                                      "ts_ms": record["assigned_ms"], "arm": record.get("arm")})

    def on_activity(self, record: dict, now_ms: int, emit: bool = True) -> None:
        device_id = record.get("device_id") or APP_DEVICE_PREFIX + record["user"]
        kind = record["kind"]
        if kind in DUTY_ON_KINDS:
            self.explicit_duty[device_id] = True
            self.duty_since_ms[device_id] = record["ts_ms"]
        elif kind in DUTY_OFF_KINDS:
            self.explicit_duty[device_id] = False
            gone = self.officers.pop(device_id, None)
            if gone is not None and emit:
                self._emit("officer_off", {"device_id": device_id})
        if emit:
            # The activity's own lat/lon are not sent: a duty_off record may carry the officer's position.
            self._emit("activity", {"device_id": device_id, "user": record["user"], "team": self.team_of(device_id),
                                    "kind": kind, "note": record.get("note"), "hotspot_id": record.get("hotspot_id"),
                                    "ts_ms": record["ts_ms"], "activity_id": record["activity_id"]})

    def on_hotspot(self, hotspot_id: str, record: dict | None, now_ms: int, emit: bool = True) -> None:
        if record is None:
            self.hotspots.pop(hotspot_id, None)
        else:
            self.hotspots[hotspot_id] = record
        if emit:
            self._emit("hotspot", {"id": hotspot_id, "retired": record is None,
                                   **({} if record is None else self.hotspot_view(hotspot_id, now_ms, geometry=True))})

    def on_allocation(self, record: dict) -> None:
        self.arms[(record["hotspot_id"], record["day"])] = record["arm"]

    def tick(self, now_ms: int) -> None:
        """Once a second or so: signal lost for silent officers; growing minutes of hot spots with someone inside."""
        self._roll_day(now_ms)
        for officer in self.officers.values():
            if not officer.signal_lost and officer.received_ms and now_ms - officer.received_ms >= self.signal_lost_ms:
                officer.signal_lost = True
                self._emit("signal_lost", {"device_id": officer.device_id, "team": self.team_of(officer.device_id),
                                           "last_ts_ms": officer.ts_ms, "ts_ms": now_ms, "hotspot_id": officer.hotspot_id})

    def refresh_open_dosage(self, now_ms: int) -> None:
        """Hot spots with an open visit: their minutes grow between events, so send them again."""
        for hotspot_id, day in self.today.items():
            if any(v.get("exited_ms") is None for v in day.visits.values()):
                self._emit("dosage", self.hotspot_view(hotspot_id, now_ms))

    # ------------------------------------------------------------------ views

    def minutes_today(self, hotspot_id: str, now_ms: int) -> float:
        day = self.today.get(hotspot_id)
        if day is None:
            return 0.0
        open_s = 0.0
        for visit in day.visits.values():
            if visit.get("exited_ms") is None:
                officer = self.officers.get(visit["device_id"])
                last_ms = officer.ts_ms if officer is not None and officer.hotspot_id == hotspot_id else visit["entered_ms"]
                open_s += max(0, last_ms - visit["entered_ms"]) / 1000
        return round((day.closed_s + open_s) / 60, 2)

    def arm_today(self, hotspot_id: str) -> str | None:
        return self.arms.get((hotspot_id, self.day.isoformat())) if self.day is not None else None

    def hotspot_view(self, hotspot_id: str, now_ms: int, geometry: bool = False) -> dict:
        h = self.hotspots.get(hotspot_id, {})
        day = self.today.get(hotspot_id)
        view = {"id": hotspot_id, "name": h.get("name"), "target_minutes": h.get("target_minutes"),
                "minutes_today": self.minutes_today(hotspot_id, now_ms), "arm": self.arm_today(hotspot_id),
                "visits_today": len(day.visits) if day else 0,
                "inside": sorted(v["device_id"] for v in (day.visits.values() if day else ())
                                 if v.get("exited_ms") is None and v.get("on_duty") and self.on_duty(v["device_id"]))}
        if geometry:
            view["geometry"] = _geometry(h)
            view["briefing"] = h.get("briefing")
        return view

    def hotspot_detail(self, hotspot_id: str, now_ms: int) -> dict | None:
        if hotspot_id not in self.hotspots:
            return None
        view = self.hotspot_view(hotspot_id, now_ms)
        view["briefing"] = self.hotspots[hotspot_id].get("briefing")
        day = self.today.get(hotspot_id)
        # Visits made off duty count in the minutes but are listed without who or when.
        rows = day.visits.items() if day else ()
        view["visits"] = sorted((dict(v, visit_id=k) for k, v in rows if v.get("on_duty")), key=lambda v: v["entered_ms"])
        view["visits_off_duty"] = sum(1 for _, v in rows if not v.get("on_duty"))
        return view

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        return {"id": self.event_id(), "now_ms": now_ms, "day": self.day.isoformat() if self.day else None,
                "teams": sorted(self.teams), "recent": list(self.recent),
                "hotspots": [self.hotspot_view(h, now_ms, geometry=True) for h in sorted(self.hotspots)],
                # on_duty is checked again: the privacy rule holds even if a caller mutated the table
                "officers": [o.view(now_ms, self.team_of(o.device_id)) for o in self.officers.values()
                             if o.lat is not None and self.on_duty(o.device_id)]}

    def snapshot_chunk(self, now_ms: int) -> bytes:
        return b"id: %s\nevent: snapshot\ndata: %s\n\n" % (self.event_id().encode(), orjson.dumps(self.snapshot(now_ms)))


def _utc_day(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).date()


def _geometry(hotspot: dict) -> Any:
    """The hot spot's GeoJSON geometry (the Avro record carries it as GeoJSON text)."""
    geometry = hotspot.get("geometry_geojson") or hotspot.get("geometry")
    if isinstance(geometry, str):
        try:
            return orjson.loads(geometry)
        except orjson.JSONDecodeError:
            return None
    return geometry
