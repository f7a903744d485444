"""The control room's live state (gateway/livefeed.py): event ids and resume, the ring, off-duty privacy."""
from __future__ import annotations

import asyncio

import orjson

from gateway.livefeed import LiveHub

T0 = 1_780_000_000_000


def ping(device: str, ts_ms: int, lat: float = 51.5, lon: float = -0.1, speed: float | None = 1.2) -> dict:
    return {"device_id": device, "ts_ms": ts_ms, "lat": lat, "lon": lon, "accuracy_m": 5.0, "speed_mps": speed,
            "received_ms": ts_ms + 50}


def activity(user: str, kind: str, ts_ms: int, n: int = 0) -> dict:
    return {"activity_id": f"a{n}-{kind}", "user": user, "device_id": f"app-{user}", "ts_ms": ts_ms, "kind": kind,
            "note": None, "hotspot_id": None, "lat": 51.5, "lon": -0.1}


def visit_event(kind: str, device: str, hotspot: str, entered_ms: int, exited_ms: int | None = None,
                dwell_s: float | None = None) -> dict:
    return {"event_id": f"{kind}-{device}-{entered_ms}", "type": kind, "device_id": device, "hotspot_id": hotspot,
            "ts_ms": exited_ms or entered_ms, "emitted_ms": None,
            "visit": {"visit_id": f"v-{device}-{entered_ms}", "entered_ms": entered_ms, "exited_ms": exited_ms,
                      "dwell_s": dwell_s, "end_reason": "exit" if exited_ms else None},
            "stop": None, "mode": None}


def events(chunks: list[bytes]) -> list[tuple[str, str, dict]]:
    """(id, event, data) of each SSE chunk."""
    out = []
    for chunk in chunks:
        fields = dict(line.split(": ", 1) for line in chunk.decode().strip().split("\n"))
        out.append((fields["id"], fields["event"], orjson.loads(fields["data"])))
    return out


def all_events(hub: LiveHub) -> list[tuple[str, str, dict]]:
    return events(hub.read_from(1)[0])


def test_event_ids_are_instance_and_sequence_and_resume_returns_exactly_the_later_events():
    hub = LiveHub(instance="abc", position_interval_s=0)
    for i in range(10):
        hub.on_ping(ping("pc-1", T0 + i * 5000), now_ms=T0 + i * 5000)
    seen = all_events(hub)
    assert [e[0] for e in seen] == [f"abc.{i}" for i in range(1, 11)]
    next_seq = hub.resume_seq("abc.4")
    assert next_seq == 5
    chunks, after = hub.read_from(next_seq)
    assert [e[0] for e in events(chunks)] == [f"abc.{i}" for i in range(5, 11)]
    assert after == 11
    assert hub.read_from(after) == ([], 11)  # nothing new yet


def test_resume_needs_a_snapshot_for_another_instance_a_future_id_garbage_or_an_id_older_than_the_ring():
    hub = LiveHub(instance="abc", ring_size=100, position_interval_s=0)
    for i in range(250):
        hub.on_ping(ping(f"pc-{i}", T0), now_ms=T0)
    assert hub.resume_seq(None) is None
    assert hub.resume_seq("zzz.200") is None  # another gateway instance's id
    assert hub.resume_seq("abc.999") is None  # never given out
    assert hub.resume_seq("abc.x") is None
    assert hub.resume_seq("abc.100") is None  # 101..150 were dropped from the ring: a gap would follow
    assert hub.resume_seq("abc.150") == 151  # the oldest kept is 151: nothing lost
    assert hub.read_from(120) is None  # a reader that fell behind the ring is told so


def test_snapshot_id_is_the_sequence_it_includes_so_events_after_it_complete_it():
    hub = LiveHub(instance="abc", position_interval_s=0)
    hub.on_ping(ping("pc-1", T0), now_ms=T0)
    snap = hub.snapshot(T0)
    assert snap["id"] == "abc.1"
    hub.on_ping(ping("pc-2", T0 + 1000), now_ms=T0 + 1000)
    chunks, _ = hub.read_from(hub.resume_seq(snap["id"]))
    assert [e[2]["device_id"] for e in events(chunks)] == ["pc-2"]


def test_app_officer_positions_are_never_sent_off_duty():
    hub = LiveHub(instance="i", position_interval_s=0)
    hub.on_ping(ping("app-alice", T0), now_ms=T0)  # before going on duty
    assert hub.seq == 0
    assert hub.snapshot(T0)["officers"] == []
    hub.on_activity(activity("alice", "duty_on", T0 + 1000), now_ms=T0 + 1000)
    hub.on_ping(ping("app-alice", T0 + 2000), now_ms=T0 + 2000)
    assert [o["device_id"] for o in hub.snapshot(T0 + 2000)["officers"]] == ["app-alice"]
    hub.on_activity(activity("alice", "duty_off", T0 + 3000, 1), now_ms=T0 + 3000)
    hub.on_ping(ping("app-alice", T0 + 4000, lat=51.6), now_ms=T0 + 4000)  # app still sending after duty off
    sent = all_events(hub)
    kinds = [e[1] for e in sent]
    assert kinds == ["activity", "position", "officer_off", "activity"]
    positions = [e[2] for e in sent if e[1] == "position"]
    assert [(p["ts_ms"], p["lat"]) for p in positions] == [(T0 + 2000, 51.5)]
    assert hub.snapshot(T0 + 4000)["officers"] == []
    # the duty records' own coordinates are not passed on either
    assert all("lat" not in e[2] for e in sent if e[1] == "activity")
    assert hub.counts["positions_dropped_off_duty"] == 2


def test_trackers_count_as_on_duty_while_sending_unless_their_device_was_put_off_duty():
    hub = LiveHub(instance="i", position_interval_s=0)
    hub.on_ping(ping("sim-0001", T0), now_ms=T0)
    assert [o["device_id"] for o in hub.snapshot(T0)["officers"]] == ["sim-0001"]
    hub.on_activity({**activity("x", "duty_off", T0 + 10), "device_id": "sim-0001"}, now_ms=T0 + 10)
    hub.on_ping(ping("sim-0001", T0 + 5000), now_ms=T0 + 5000)
    assert hub.snapshot(T0 + 5000)["officers"] == []


def test_positions_are_throttled_per_device_but_the_snapshot_has_the_latest():
    hub = LiveHub(instance="i", position_interval_s=2.0)
    for i in range(10):  # a fix every 0.5 s
        hub.on_ping(ping("pc-1", T0 + i * 500, lat=51.5 + i * 1e-4), now_ms=T0 + i * 500)
    sent = [e[2]["ts_ms"] for e in all_events(hub)]
    assert sent == [T0, T0 + 2000, T0 + 4000]
    assert hub.snapshot(T0 + 4500)["officers"][0]["ts_ms"] == T0 + 4500


def test_history_read_at_start_builds_state_without_events():
    hub = LiveHub(instance="i", position_interval_s=0)
    hub.on_ping(ping("pc-1", T0), now_ms=T0 + 60_000, emit=False)
    hub.on_patrol_event(visit_event("visit_started", "pc-1", "H1", T0), now_ms=T0 + 60_000, emit=False)
    assert hub.seq == 0
    officer = hub.snapshot(T0 + 60_000)["officers"][0]
    assert officer["hotspot_id"] == "H1" and officer["age_s"] == 60.0


def test_visits_drive_inside_state_and_todays_minutes_with_dwell_in_the_ticker():
    hub = LiveHub(instance="i", position_interval_s=0)
    hub.on_hotspot("H1", {"id": "H1", "name": "Market", "briefing": "b", "target_minutes": 15.0,
                          "geometry_geojson": '{"type":"Polygon","coordinates":[]}'}, now_ms=T0)
    hub.on_ping(ping("pc-1", T0), now_ms=T0)
    hub.on_patrol_event(visit_event("visit_started", "pc-1", "H1", T0), now_ms=T0 + 30_000)
    hub.on_ping(ping("pc-1", T0 + 300_000), now_ms=T0 + 300_000)
    assert hub.officers["pc-1"].hotspot_id == "H1"
    assert hub.minutes_today("H1", T0 + 300_000) == 5.0  # open visit: entered to the last fix
    hub.on_patrol_event(visit_event("visit_ended", "pc-1", "H1", T0, T0 + 420_000, 420.0), now_ms=T0 + 500_000)
    assert hub.officers["pc-1"].hotspot_id is None
    assert hub.minutes_today("H1", T0 + 500_000) == 7.0
    ended = [e[2] for e in all_events(hub) if e[1] == "patrol" and e[2]["type"] == "visit_ended"]
    assert ended[0]["dwell_s"] == 420.0 and ended[0]["hotspot_name"] == "Market"
    dosage = [e[2] for e in all_events(hub) if e[1] == "dosage"]
    assert dosage[-1]["minutes_today"] == 7.0 and dosage[-1]["target_minutes"] == 15.0
    recent = hub.snapshot(T0 + 500_000)["recent"]  # the ticker of a page opened now
    assert [(r["kind"], r["data"].get("type")) for r in recent] == [("patrol", "visit_started"), ("patrol", "visit_ended")]
    detail = hub.hotspot_detail("H1", T0 + 500_000)
    assert [v["dwell_s"] for v in detail["visits"]] == [420.0] and detail["briefing"] == "b"
    # the same visit_ended again (a replayed event) does not count twice
    hub.on_patrol_event(visit_event("visit_ended", "pc-1", "H1", T0, T0 + 420_000, 420.0), now_ms=T0 + 500_000)
    assert hub.minutes_today("H1", T0 + 500_000) == 7.0


def test_a_new_day_starts_from_zero_minutes():
    day_ms = 86_400_000
    hub = LiveHub(instance="i")  # days in UTC by default
    start = (T0 // day_ms) * day_ms + 3_600_000
    hub.on_patrol_event(visit_event("visit_ended", "pc-1", "H1", start, start + 600_000, 600.0), now_ms=start + 600_000)
    assert hub.minutes_today("H1", start + 600_000) == 10.0
    hub.tick(start + day_ms)
    assert hub.minutes_today("H1", start + day_ms) == 0.0


def test_signal_lost_is_sent_once_per_silence():
    hub = LiveHub(instance="i", position_interval_s=0, signal_lost_s=300)
    hub.on_ping(ping("pc-1", T0), now_ms=T0)
    hub.tick(T0 + 200_000)
    hub.tick(T0 + 301_000)
    hub.tick(T0 + 400_000)
    lost = [e for e in all_events(hub) if e[1] == "signal_lost"]
    assert len(lost) == 1 and hub.snapshot(T0 + 400_000)["officers"][0]["signal_lost"] is True
    hub.on_ping(ping("pc-1", T0 + 500_000), now_ms=T0 + 500_000)
    assert hub.officers["pc-1"].signal_lost is False


def test_teams_from_device_patterns():
    hub = LiveHub(instance="i", position_interval_s=0, teams={"North": ["app-n*", "sim-000?"], "South": ["app-s*"]})
    assert hub.team_of("app-nadia") == "North" and hub.team_of("sim-0003") == "North"
    assert hub.team_of("app-sam") == "South" and hub.team_of("pc-9") is None


def test_waiting_clients_are_woken_by_an_event():
    async def scenario():
        hub = LiveHub(instance="i", position_interval_s=0)
        waiter = asyncio.create_task(hub.wait(5.0))
        await asyncio.sleep(0)  # one turn of the loop, no time: the waiter takes the current wake event
        hub.on_ping(ping("pc-1", T0), now_ms=T0)
        hub.flush()
        assert await waiter is True
        assert await hub.wait(0.01) is False  # flushed: the next wait waits for the next event

    asyncio.run(scenario())


def test_the_path_shown_starts_at_the_current_duty_never_before():
    hub = LiveHub(instance="i", position_interval_s=0)
    day_start = T0 - 3_600_000
    assert hub.path_since_ms("app-alice", day_start) is None  # never on duty
    hub.on_activity(activity("alice", "duty_on", T0), now_ms=T0)
    assert hub.path_since_ms("app-alice", day_start) == T0  # not the fixes of the morning, off duty
    hub.on_activity(activity("alice", "duty_off", T0 + 1000, 1), now_ms=T0 + 1000)
    assert hub.path_since_ms("app-alice", day_start) is None
    hub.on_activity(activity("alice", "duty_on", T0 + 5000, 2), now_ms=T0 + 5000)
    assert hub.path_since_ms("app-alice", day_start) == T0 + 5000
    assert hub.path_since_ms("sim-0001", day_start) == day_start  # a tracker: on duty while it sends


def test_visits_made_off_duty_count_in_the_minutes_but_never_say_who_or_where():
    hub = LiveHub(instance="i", position_interval_s=0)
    hub.on_hotspot("H1", {"id": "H1", "name": "Market", "target_minutes": 15.0, "geometry_geojson": "{}"}, now_ms=T0)
    hub.on_patrol_event(visit_event("visit_started", "app-bob", "H1", T0), now_ms=T0 + 30_000)  # bob off duty
    hub.on_patrol_event(visit_event("visit_ended", "app-bob", "H1", T0, T0 + 300_000, 300.0), now_ms=T0 + 360_000)
    assert hub.minutes_today("H1", T0 + 360_000) == 5.0
    sent = all_events(hub)
    assert [kind for _, kind, _ in sent] == ["hotspot", "dosage", "dosage"]  # no patrol event about bob
    assert all("app-bob" not in json for json in (orjson.dumps(d).decode() for _, _, d in sent))
    detail = hub.hotspot_detail("H1", T0 + 360_000)
    assert detail["visits"] == [] and detail["visits_off_duty"] == 1
