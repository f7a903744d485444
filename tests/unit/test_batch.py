"""The entry points the live worker and replay share: process_batch, expire, finish, and the device state."""
from __future__ import annotations

import pytest

from processors.batch import expire, finish, process_batch
from processors.config import ProcessingConfig
from processors.device import STATE_VERSION, DeviceState
from processors.model import (visit_id, DUPLICATE, END_OF_DATA, END_SIGNAL_LOST, LATE, NULL_ISLAND, REASONS, ModeSegment,
                              StopEnded, StopStarted, VisitEnded, VisitStarted)
from tests.unit.tracks import CFG, H, T0, index, ping, s, stay, visits, walk

IDX = index(H)


def _patrol(device="d1", t0=0.0):
    """Walk in, stand 3 minutes, walk out: a visit with a stop, and three modes."""
    return ([p for p in walk(t0, t0 + 70, 5, (-30, 75), (75, 75), speed_mps=1.5, device=device)]
            + stay(t0 + 75, t0 + 255, 5, (75, 75), device=device)
            + walk(t0 + 260, t0 + 380, 5, (82, 75), (250, 75), speed_mps=1.4, device=device))


def test_input_states_are_left_untouched():
    first = process_batch({}, _patrol()[:30], IDX, CFG)
    before = {d: st.to_bytes() for d, st in first.states.items()}
    process_batch(first.states, _patrol()[30:], IDX, CFG)
    assert {d: st.to_bytes() for d, st in first.states.items()} == before


def test_only_the_devices_of_the_batch_come_back():
    r = process_batch({}, _patrol("a") + _patrol("b"), IDX, CFG)
    r2 = process_batch(r.states, [ping(400, 300, 75, device="b")], IDX, CFG)
    assert set(r.states) == {"a", "b"} and set(r2.states) == {"b"}


def test_every_event_kind_with_stable_ids_and_event_times():
    events = process_batch({}, _patrol(), IDX, CFG).events
    events += finish(process_batch({}, _patrol(), IDX, CFG).states, IDX, CFG).events
    kinds = {type(e) for e in events}
    assert kinds == {VisitStarted, VisitEnded, StopStarted, StopEnded, ModeSegment}
    again = process_batch({}, _patrol(), IDX, CFG).events
    assert [e.event_id for e in again] == [e.event_id for e in events[:len(again)]]
    for e in events:
        assert e.type in ("visit_started", "visit_ended", "stop_started", "stop_ended", "mode_segment")
        assert isinstance(e.event_id, str) and len(e.event_id) >= 20
        assert T0 <= e.ts_ms <= s(380)
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids))


def test_rejections_carry_their_ping_and_a_known_reason():
    pings = [ping(0, 0, 0), ping(0, 0, 0), ping(100, 0, 0), ping(50, 0, 0)]
    pings[1].lat = pings[1].lon = 0.0
    r = process_batch({}, pings + [ping(100, 1, 1)], IDX, CFG)
    assert [(p.ts_ms - T0, reason) for p, reason in r.rejected] == [(0, NULL_ISLAND), (50_000, LATE),
                                                                   (100_000, DUPLICATE)]
    assert all(reason in REASONS for _, reason in r.rejected)


def test_accepted_pings_are_annotated_with_their_hot_spots():
    pings = [ping(0, 75, 75), ping(5, 300, 300), ping(10, 76, 76, acc_m=400.0)]
    accepted = finish(process_batch({}, pings, IDX, CFG).states, IDX, CFG).accepted
    assert [(a.ping, a.hotspot_ids, a.low_accuracy) for a in accepted] == [
        (pings[0], ("H",), False), (pings[1], (), False), (pings[2], ("H",), True)]


def test_expire_closes_a_silent_devices_visit_at_its_last_inside_fix():
    track = [ping(t, 75, 75, received_s=t + 1) for t in range(0, 125, 5)]
    r = process_batch({}, track, IDX, CFG)
    assert visits(expire(r.states, T0 + 121_000 + 299_999, IDX, CFG).events) == []   # 1 ms short of the loss
    quiet = expire(r.states, T0 + 121_000 + 11_000, IDX, CFG)        # flushes the window, visit still open
    assert [e for e in quiet.events if isinstance(e, VisitEnded)] == []
    states = {**r.states, **quiet.states}
    lost = expire(states, T0 + 121_000 + 300_000, IDX, CFG)
    (v,) = visits(lost.events)
    assert (v.entered_ms, v.exited_ms, v.end_reason) == (s(0), s(120), END_SIGNAL_LOST)
    # The same visit the replay path gives when the next fix comes after the silence.
    replayed = visits(process_batch({}, track + [ping(500, 300, 300), ping(520, 300, 300)], IDX, CFG).events)
    assert replayed == [v]
    # And once closed, later timer ticks change nothing.
    assert expire({**states, **lost.states}, T0 + 10**7, IDX, CFG).states == {}


def test_a_device_back_after_expire_starts_afresh():
    # Back inside H after longer than gap_bridge_max_s: a new visit.
    track = [ping(t, 75, 75, received_s=t + 1) for t in range(0, 125, 5)]
    r = process_batch({}, track, IDX, CFG)
    lost = expire(r.states, T0 + 500_000, IDX, CFG)
    back = process_batch(lost.states, [ping(t, 75, 75, received_s=t + 1) for t in range(1100, 1200, 5)], IDX, CFG)
    done = finish(back.states, IDX, CFG)
    assert [(v.entered_ms, v.end_reason) for v in visits(lost.events + back.events + done.events)] == [
        (s(0), END_SIGNAL_LOST), (s(1100), END_OF_DATA)]


def test_a_visit_closed_by_the_timer_reopens_when_the_device_is_back_in_time_as_replay_gives_it():
    track = [ping(t, 75, 75, received_s=t + 1) for t in range(0, 125, 5)]
    later = [ping(t, 75, 75, received_s=t + 1) for t in range(600, 700, 5)]
    r = process_batch({}, track, IDX, CFG)
    lost = expire(r.states, T0 + 500_000, IDX, CFG)
    back = process_batch(lost.states, later, IDX, CFG)
    live = visits(lost.events + back.events + finish(back.states, IDX, CFG).events)
    whole = process_batch({}, track + later, IDX, CFG)
    replayed = visits(whole.events + finish(whole.states, IDX, CFG).events)
    assert live == replayed
    assert [(v.visit_id, v.end_reason, v.dwell_s, v.inferred_s) for v in live] == [
        (visit_id("d1", "H", s(0)), END_SIGNAL_LOST, 120.0, 0.0),
        (visit_id("d1", "H", s(0)), END_OF_DATA, 695.0, 480.0)]


def test_a_silence_the_timer_closed_is_bridged_by_the_modes_as_replay_bridges_it():
    # Standing (device speed 0) for two minutes, silent for eight (the timer closes everything on the
    # arrival clock), standing on 3 m away: live and replay give the same segments, and the silence is
    # standing time, counted in the bridged visit.
    track = [ping(t, 75, 75, speed_mps=0.0, received_s=t + 1) for t in range(0, 125, 5)]
    later = [ping(t, 78, 75, speed_mps=0.0, received_s=t + 1) for t in range(600, 700, 5)]
    r = process_batch({}, track, IDX, CFG)
    lost = expire(r.states, T0 + 500_000, IDX, CFG)
    back = process_batch({**r.states, **lost.states}, later, IDX, CFG)
    live = lost.events + back.events + finish(back.states, IDX, CFG).events
    whole = process_batch({}, track + later, IDX, CFG)
    replayed = whole.events + finish(whole.states, IDX, CFG).events
    segments = [e for e in live if isinstance(e, ModeSegment)]
    assert segments == [e for e in replayed if isinstance(e, ModeSegment)]
    assert [(e.started_ms, e.ended_ms, e.mode) for e in segments] == [
        (s(0), s(120), "stationary"), (s(120), s(695), "stationary")]
    assert visits(live) == visits(replayed) and visits(live)[-1].stationary_s == visits(live)[-1].dwell_s


def test_finish_never_lets_an_open_visit_vanish():
    r = process_batch({}, stay(0, 200, 10, (75, 75)), IDX, CFG)
    assert [type(e) for e in r.events if isinstance(e, (VisitStarted, VisitEnded))] == [VisitStarted]
    (v,) = visits(finish(r.states, IDX, CFG).events)
    assert (v.end_reason, v.exited_ms) == (END_OF_DATA, s(200))


def test_deadline_says_when_the_timer_is_next_needed():
    r = process_batch({}, [ping(0, 75, 75, received_s=1)], IDX, CFG)
    st = r.states["d1"]
    hold_ms = int(CFG.reorder_hold_s * 1000)
    assert st.deadline_ms(CFG) == T0 + 1000 + hold_ms       # the held ping's hold runs out
    assert expire(r.states, T0 + 1000 + hold_ms - 1, IDX, CFG).states == {}
    st2 = expire(r.states, T0 + 1000 + hold_ms, IDX, CFG).states["d1"]
    assert st2.buffer == [] and st2.deadline_ms(CFG) == T0 + 1000 + 300_000
    st3 = expire({"d1": st2}, T0 + 301_000, IDX, CFG).states["d1"]
    assert st3.deadline_ms(CFG) is None


# --------------------------------------------------------------------------- device state

def test_state_round_trips_through_bytes_mid_visit_and_mid_stop():
    r = process_batch({}, _patrol()[:45], IDX, CFG)
    st = r.states["d1"]
    assert st.tracks and st.buffer
    b = st.to_bytes()
    assert b[0] == STATE_VERSION
    again = DeviceState.from_bytes(b)
    assert again == st and again.to_bytes() == b
    assert len(b) < 2000


# The bytes of a state written before the mode window, the mode timeline and the recent fix
# times were held as tuples (a walk into H, then 40 s standing): the byte form is the contract.
_STATE_BEFORE_TUPLES = (
    b'\x01["d1",[[1750000050000,51.75267408073771,-1.2574103836728279,5.0,0.0,null,null,null,null],'
    b'[1750000055000,51.75267408073771,-1.2574103836728279,5.0,0.0,null,null,null,null],'
    b'[1750000060000,51.75267408073771,-1.2574103836728279,5.0,0.0,null,null,null,null]],'
    b'1750000060000,1750000045000,1750000060000,[1750000000000,1750000005000,1750000010000,'
    b'1750000015000,1750000020000,1750000025000,1750000030000,1750000035000,1750000040000,'
    b'1750000045000],[1750000045000,51.75267408073771,-1.2574103836728279,5.0],null,1750000045000,'
    b'false,[2,false,1750000000000,29.937557072218343,false,1,1750000020000,5,0.0,null,1750000045000,'
    b'51.75267408073771,-1.2574103836728279,5.0,51.75267408073771,-1.2574103836728279,[[1750000000000,'
    b'51.75267408073771,-1.2578448081635862,5.0],[1750000005000,51.75267408073771,-1.2577362020408966,'
    b'5.0],[1750000010000,51.75267408073771,-1.257627595918207,5.0],[1750000015000,51.75267408073771,'
    b'-1.2575189897955175,5.0],[1750000020000,51.75267408073771,-1.2574103836728279,5.0],'
    b'[1750000025000,51.75267408073771,-1.2574103836728279,5.0],[1750000030000,51.75267408073771,'
    b'-1.2574103836728279,5.0],[1750000035000,51.75267408073771,-1.2574103836728279,5.0],'
    b'[1750000040000,51.75267408073771,-1.2574103836728279,5.0],[1750000045000,51.75267408073771,'
    b'-1.2574103836728279,5.0]],[[1750000000000,2]]],[["H",2,1750000010000,1750000015000,2500.0,'
    b'1750000045000,null,null,8,0,0,[1750000025000,258.76337040368855,-6.287051918364139,5,'
    b'1750000045000,null,0.0,0.0,false,false]]]]'
)


def test_state_bytes_written_by_the_earlier_layout_load_and_are_written_alike():
    track = walk(0, 20, 5, (-10, 75), (20, 75), speed_mps=1.5) + stay(25, 60, 5, (20, 75))
    live = process_batch({}, track, IDX, CFG)
    # Version 2 appends the time-jump fields to the state and the gap-bridge fields to each track;
    # version 3 the stop detector's credit before its first fix, its last fix fed and whether a
    # fix reported standing, and the mode tracker's switch offset (after its timeline). Version 1
    # loads with nothing held aside, no last inside position, nothing bridged, no stop credit and
    # no offset; version 4 the mode tracker's last speed evidence (after the offset): none (-1.0);
    # version 5 the silence it may bridge (after that): none (mode 0, no speed, no start, no step), and
    # the stop detector's reckoned credit after its last fix within: none (null: half the interval).
    restored = DeviceState.from_bytes(_STATE_BEFORE_TUPLES)
    v4 = restored.to_bytes()
    tail = b",0.0,null,false,null],null,null,0.0,false]],[],null,0,[],0,null]"
    mode_tail = b"[[1750000000000,2]],0,-1.0,0,-1.0,null,0.0]"
    assert v4[:1] == b"\x05" and v4.endswith(tail) and v4.count(mode_tail) == 1
    assert v4.replace(tail, b"]]]]").replace(mode_tail, b"[[1750000000000,2]]]") == b"\x05" + _STATE_BEFORE_TUPLES[1:]
    assert DeviceState.from_bytes(v4).to_bytes() == v4
    more = stay(65, 200, 5, (20, 75)) + walk(205, 300, 5, (30, 75), (200, 75), speed_mps=1.5)
    # The state was written with a switch to stationary pending (from 20 s); version 1 has no offset
    # for it, so that one switch is dated at the run's start, as version 1 did, and no last speed
    # evidence. Everything else goes on exactly as from the live state.
    assert live.states["d1"].mode.cand_lead_ms == 2500
    as_v1 = live.states["d1"].copy()
    as_v1.mode.cand_lead_ms = 0
    as_v1.mode.last_v_mps = -1.0
    assert process_batch({"d1": restored}, more, IDX, CFG).events == process_batch({"d1": as_v1}, more, IDX, CFG).events


def test_a_buffered_ping_keeps_its_source_through_the_state_bytes_and_comes_out_with_it():
    from dataclasses import replace

    track = [replace(p, source=("owntracks", None)[i % 2]) for i, p in enumerate(walk(0, 20, 5, (-10, 75), (20, 75)))]
    first = process_batch({}, track[:3], IDX, CFG)
    st = first.states["d1"]
    assert [p.source for p in st.buffer] == ["owntracks", None, "owntracks"]
    restored = DeviceState.from_bytes(st.to_bytes())
    assert restored == st and [p.source for p in restored.buffer] == ["owntracks", None, "owntracks"]
    # Released later, after a restart, they are the pings that came in, source and all.
    released = finish({"d1": restored}, IDX, CFG).accepted
    assert [(a.ping.ts_ms, a.ping.source) for a in released] == [(p.ts_ms, p.source) for p in track[:3]]
    # A ping without a source is stored as before (nine fields), so older states and these read alike.
    assert b"null,null]" in st.to_bytes() and st.to_bytes().count(b'"owntracks"') == 2


def test_copy_carries_every_field_and_shares_nothing_the_step_changes_in_place():
    st = process_batch({}, _patrol()[:45], IDX, CFG).states["d1"]
    c = st.copy()
    assert c.to_bytes() == st.to_bytes()
    (h,) = st.tracks
    pairs = [(st, c), (st.mode, c.mode), (st.tracks[h], c.tracks[h]), (st.tracks[h].stop, c.tracks[h].stop)]
    for orig, dup in pairs:
        assert dup is not orig
        for name in type(orig).__slots__:
            a, b = getattr(orig, name), getattr(dup, name)
            if name in ("mode", "stop"):          # compared as a pair of their own
                continue
            if isinstance(a, (list, dict)):       # changed in place by the state machines
                assert a is not b and list(a) == list(b), name
            else:
                assert a == b, name


def test_state_of_another_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        DeviceState.from_bytes(b"\x09[]")
    with pytest.raises(ValueError, match="version"):
        DeviceState.from_bytes(b"")


def test_resuming_from_bytes_gives_the_same_events():
    track = _patrol()
    whole = process_batch({}, track, IDX, CFG)
    whole_events = whole.events + finish(whole.states, IDX, CFG).events
    first = process_batch({}, track[:37], IDX, CFG)
    restored = {d: DeviceState.from_bytes(st.to_bytes()) for d, st in first.states.items()}
    second = process_batch(restored, track[37:], IDX, CFG)
    restored = {d: DeviceState.from_bytes(st.to_bytes()) for d, st in second.states.items()}
    assert first.events + second.events + finish(restored, IDX, CFG).events == whole_events


def test_config_defaults_are_the_design_defaults():
    c = ProcessingConfig()
    assert (c.enter_confirm_s, c.exit_confirm_s, c.signal_loss_s) == (30, 60, 300)
    assert (c.stop_radius_m, c.stop_min_duration_s) == (30, 120)
    assert (c.foot_max_mps, c.vehicle_min_mps, c.max_speed_mps, c.max_accuracy_m) == (2.5, 4.5, 70, 100)
    assert (c.future_tolerance_s, c.max_age_s) == (300, 7 * 86400)


@pytest.mark.parametrize("bad", [dict(foot_max_mps=5.0), dict(enter_confirm_s=-1), dict(reorder_window_s=400),
                                 dict(max_speed_mps=float("nan"))])
def test_inconsistent_config_is_refused(bad):
    with pytest.raises(ValueError):
        ProcessingConfig(**bad)


def test_config_from_name_value_pairs():
    assert ProcessingConfig.from_pairs(["exit_confirm_s=90", "recent_ts_kept=4"]) == \
        ProcessingConfig(exit_confirm_s=90.0, recent_ts_kept=4)
    with pytest.raises(ValueError, match="unknown parameter"):
        ProcessingConfig.from_pairs(["exit=90"])
    with pytest.raises(ValueError, match="needs a number"):
        ProcessingConfig.from_pairs(["exit_confirm_s=soon"])
