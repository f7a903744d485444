"""The OwnTracks spool: what `append` returned for survives a reopen, in order; a torn tail is cut off."""
from __future__ import annotations

from gateway.spool import Record, Spool


def _recs(n: int, start: int = 0) -> list[Record]:
    return [Record("pings", b"dev", f"ping-{i}".encode()) for i in range(start, start + n)]


def test_records_survive_a_reopen_and_replay_in_order_across_segments(tmp_path):
    spool = Spool(tmp_path, segment_bytes=200)
    for i in range(0, 30, 3):
        spool.append(_recs(3, i))
    spool.close()
    spool = Spool(tmp_path, segment_bytes=200)
    assert spool.depth == 30
    got, pos = spool.read(12)
    spool.commit(pos, len(got))
    rest, pos = spool.read(100)
    assert [r.value for r in got + rest] == [f"ping-{i}".encode() for i in range(30)]
    spool.commit(pos, len(rest))
    assert spool.depth == 0 and Spool(tmp_path).depth == 0


def test_a_torn_tail_from_a_crash_mid_append_is_dropped_and_appends_continue(tmp_path):
    spool = Spool(tmp_path)
    spool.append(_recs(2))
    spool.close()
    segment = sorted(tmp_path.glob("seg-*.log"))[-1]
    segment.write_bytes(segment.read_bytes() + b"\x00\x00\x00\x40\x12")  # half a record header
    spool = Spool(tmp_path)
    assert spool.depth == 2
    spool.append(_recs(1, 2))
    got, _ = spool.read(10)
    assert [r.value for r in got] == [b"ping-0", b"ping-1", b"ping-2"]
