"""Durable append-only spool for pings the gateway accepted but Kafka could not take.

Owns the promise made to clients that treat any HTTP reply as delivery
(OwnTracks): a ping is written here and fsync'd *before* the reply, and
replayed to Kafka in the order it was written once Kafka is back.

Layout under the spool directory:
  seg-000000000001.log ...  records, appended, never rewritten
  cursor                    JSON {"segment": n, "offset": bytes} of the first unreplayed record,
                            replaced atomically (write, fsync, rename, fsync dir)
A record is `>II` (payload length, CRC-32 of payload) then the payload
`>HH` (topic length, key length) + topic + key + value. A torn tail (a crash
in the middle of an append) fails its length or CRC check and is cut off at
open; nothing before it was acknowledged as spooled, since the fsync had not
returned. Replay is at least once: a crash between Kafka's ack and the cursor
update sends those records again, and the worker drops the duplicate
(device, ts) pings.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

_HEAD = struct.Struct(">II")
_KEYS = struct.Struct(">HH")
SEGMENT_BYTES = 16 * 1024 * 1024


class SpoolCorrupt(Exception):
    """A record before the tail of the spool fails its checks: needs an operator."""


@dataclass(frozen=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(rec: Record) -> bytes:
    topic = rec.topic.encode()
    key = rec.key or b""
    payload = _KEYS.pack(len(topic), len(key)) + topic + key + rec.value
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(data: bytes, start: int):
    """Yield (offset_after, Record) from `start`; stop at the first incomplete or damaged record."""
    pos = start
    while pos + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if end > len(data):
            return
        payload = data[pos + _HEAD.size:end]
        if zlib.crc32(payload) != crc or length < _KEYS.size:
            return
        tlen, klen = _KEYS.unpack_from(payload, 0)
        body = _KEYS.size
        if body + tlen + klen > length:
            return
        topic = payload[body:body + tlen].decode()
        key = payload[body + tlen:body + tlen + klen] or None
        yield end, Record(topic, key, payload[body + tlen + klen:])
        pos = end


class Spool:
    """Thread-safe; `append` blocks until the records are on disk, so call it off the event loop."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._cursor = self._read_cursor()
        self._depth = 0
        self._open_segments()

    # ---- open -----------------------------------------------------------------
    def _segments(self) -> list[int]:
        return sorted(int(p.name[4:-4]) for p in self.dir.glob("seg-*.log"))

    def _seg_path(self, n: int) -> Path:
        return self.dir / f"seg-{n:012d}.log"

    def _read_cursor(self) -> Position:
        try:
            raw = json.loads((self.dir / "cursor").read_text())
            return Position(int(raw["segment"]), int(raw["offset"]))
        except FileNotFoundError:
            return Position(1, 0)

    def _open_segments(self) -> None:
        segs = self._segments()
        depth = 0
        for n in segs:
            if n < self._cursor.segment:
                self._seg_path(n).unlink()  # fully replayed before a crash cut the clean-up short
                continue
            data = self._seg_path(n).read_bytes()
            start = self._cursor.offset if n == self._cursor.segment else 0
            end = start
            for end, _ in _scan(data, start):
                depth += 1
            if end != len(data):
                if n != segs[-1]:
                    raise SpoolCorrupt(f"{self._seg_path(n)}: damaged record at byte {end} before the last segment")
                with open(self._seg_path(n), "r+b") as fh:  # torn tail of an append that never returned
                    fh.truncate(end)
                    os.fsync(fh.fileno())
        self._depth = depth
        self._write_seg = max([n for n in segs if n >= self._cursor.segment], default=self._cursor.segment)
        self._fh = open(self._seg_path(self._write_seg), "ab")

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    # ---- write ----------------------------------------------------------------
    def append(self, records: list[Record]) -> None:
        """Append in order and fsync; when this returns the records survive a crash or power cut."""
        blob = b"".join(_encode(r) for r in records)
        with self._lock:
            if self._fh.tell() > 0 and self._fh.tell() + len(blob) > self.segment_bytes:
                self._fh.close()
                self._write_seg += 1
                self._fh = open(self._seg_path(self._write_seg), "ab")
                _fsync_dir(self.dir)
            self._fh.write(blob)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._depth += len(records)

    # ---- replay ---------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Records written and not yet confirmed replayed."""
        return self._depth

    def read(self, max_records: int) -> tuple[list[Record], Position]:
        """Up to `max_records` from the cursor, and the position after them (to `commit` once sent)."""
        with self._lock:
            self._fh.flush()
            pos = self._cursor
            out: list[Record] = []
            while len(out) < max_records:
                path = self._seg_path(pos.segment)
                data = path.read_bytes() if path.exists() else b""
                for end, rec in _scan(data, pos.offset):
                    out.append(rec)
                    pos = Position(pos.segment, end)
                    if len(out) >= max_records:
                        break
                else:
                    if pos.segment < self._write_seg:
                        pos = Position(pos.segment + 1, 0)
                        continue
                break
            return out, pos

    def commit(self, pos: Position, count: int) -> None:
        """Records up to `pos` are in Kafka: move the cursor durably and drop finished segments."""
        with self._lock:
            tmp = self.dir / "cursor.tmp"
            with open(tmp, "w") as fh:
                fh.write(json.dumps({"segment": pos.segment, "offset": pos.offset}))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.dir / "cursor")
            _fsync_dir(self.dir)
            self._cursor = pos
            self._depth = max(0, self._depth - count)
            for n in self._segments():
                if n < pos.segment:
                    self._seg_path(n).unlink()
