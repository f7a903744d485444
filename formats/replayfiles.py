"""Files of `hotspot replay`: ping exports in (CSV, JSON Lines, GPX), the four result CSVs out.

Owns the replay formats of DESIGN.md section 2. The batch driver that feeds
them through processors.batch (the same functions the live worker calls) is
replay/batch.py; `hotspot pings send` reads the same files.

Input, read in the order given (file order is taken as arrival order, so the
reorder window treats a replay like the live path would):

* CSV with a header naming at least `device_id, ts, lat, lon`, optionally
  `accuracy_m, speed_mps, heading_deg, altitude_m, battery` and `received_at`
  (other columns are ignored); JSON Lines with the same keys; `.gz` compressed
  files too. `received_at` is when the system received the ping (an AVL
  server's receive time, or Kafka's append time in an export of the `pings`
  topic): with it a replay applies the live path's arrival rules (the reorder
  hold, the future and stale checks) and gives what the live worker gave.
* `ts` as ISO-8601 with an offset (`Z` included), or epoch seconds or
  milliseconds (numbers of 1e11 and above are milliseconds).
* GPX track points (`trkpt` with `time`; `ele`, and `speed`/`course` from GPX
  1.0 or the usual extensions); the device id comes from `--device` or the
  file name.

A file that cannot be read as its format (missing columns, a broken CSV or
JSON line, bad XML, bytes that are not UTF-8) stops the run with
`ReplayFileError("FILE:LINE: problem")`. A row that reads but whose values are
unusable (missing device, unparseable number or time) is a rejected row
(`missing_field`, `invalid_field`), like the pings the processors reject.

Output, timestamps ISO-8601 UTC with milliseconds, written only when the run
completes: visits.csv, stops.csv, modes.csv, rejected.csv (the input row,
where it came from, and the reason).

Length (~560 lines): three input formats share one row model and its rejected-row rules, and the CSV
reader carries a vectorised fast path that must agree with the row-by-row one (tests/unit/test_replay.py).
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import xml.parsers.expat
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import orjson

from formats.timestamps import SECONDS_BELOW, iso_utc, parse_ts_ms

from processors.model import ModeSegment, Ping, StopEnded, VisitEnded

PING_FIELDS = ("device_id", "ts", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "altitude_m", "battery",
               "received_at")
REQUIRED = ("device_id", "ts", "lat", "lon")
OPTIONAL = ("accuracy_m", "speed_mps", "heading_deg", "altitude_m", "battery", "received_at")

VISIT_COLUMNS = ("visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s", "observed_s",
                 "inferred_s", "foot_s", "vehicle_s", "stationary_s", "stop_count", "ping_count", "end_reason")
STOP_COLUMNS = ("stop_id", "device_id", "hotspot_id", "started_at", "ended_at", "duration_s", "lat", "lon")
MODE_COLUMNS = ("device_id", "started_at", "ended_at", "mode", "distance_m")
REJECTED_COLUMNS = ("source", "line") + PING_FIELDS + ("reason", "detail")

MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"



class ReplayFileError(Exception):
    """An input file that cannot be read as its format; the message is one line naming file and line."""


# ---------------------------------------------------------------------------
# Values

class Source(NamedTuple):
    """Where a ping came from: file, line, and the row as read (for rejected.csv)."""

    file: str
    line: int
    values: tuple


class SourcedPing(Ping):
    """A Ping that remembers the file and line it was read from (`origin`); the processors see a plain Ping."""

    __slots__ = ("origin",)


class BadRow(NamedTuple):
    source: Source
    reason: str
    detail: str


class _RowError(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


def _opt(v):
    if v is None or v == "":
        return None
    f = float(v)
    return f if f == f else None   # NaN in an optional field means absent


def make_ping(src: Source) -> SourcedPing | BadRow:
    """The row's values (strings, numbers or None) as a ping, or a BadRow naming the first bad field."""
    device_id, ts, lat, lon, acc, speed, heading, alt, batt, received = src.values
    try:
        if type(device_id) is not str or type(lat) is bool or type(lon) is bool:
            raise ValueError
        p = SourcedPing(device_id.strip(), parse_ts_ms(ts), float(lat), float(lon), _opt(acc), _opt(speed),
                        _opt(heading), _opt(alt), _opt(batt),
                        None if received is None or received == "" else parse_ts_ms(received))
        if not p.device_id:
            raise ValueError
    except (ValueError, TypeError, OverflowError):
        try:
            p = _ping_from_values(*src.values)
        except _RowError as exc:
            return BadRow(src, exc.reason, exc.detail)
    p.origin = src
    return p


def _ping_from_values(device_id, ts, lat, lon, acc, speed, heading, alt, batt, received) -> SourcedPing:
    """The slow path of make_ping: _RowError names the first bad field."""
    if device_id is None or str(device_id).strip() == "":
        raise _RowError(MISSING_FIELD, "device_id is empty")
    if ts is None or ts == "":
        raise _RowError(MISSING_FIELD, "ts is empty")
    try:
        ts_ms = parse_ts_ms(ts)
    except (ValueError, OverflowError) as exc:
        raise _RowError(INVALID_FIELD, f"ts {str(ts)[:40]!r}: {exc}") from None
    received_ms = None
    if received is not None and received != "":
        try:
            received_ms = parse_ts_ms(received)
        except (ValueError, OverflowError) as exc:
            raise _RowError(INVALID_FIELD, f"received_at {str(received)[:40]!r}: {exc}") from None
    vals = []
    for name, v, required in (("lat", lat, True), ("lon", lon, True), ("accuracy_m", acc, False),
                              ("speed_mps", speed, False), ("heading_deg", heading, False),
                              ("altitude_m", alt, False), ("battery", batt, False)):
        if v is None or v == "":
            if required:
                raise _RowError(MISSING_FIELD, f"{name} is empty")
            vals.append(None)
            continue
        try:
            if isinstance(v, bool):
                raise ValueError
            f = float(v)
            vals.append(f if (required or f == f) else None)
        except (TypeError, ValueError, OverflowError):
            raise _RowError(INVALID_FIELD, f"{name} {str(v)[:40]!r} is not a number") from None
    return SourcedPing(str(device_id).strip(), ts_ms, *vals, received_ms)


# ---------------------------------------------------------------------------
# Readers. Each yields blocks of rows as (pings, bad rows), in file order within each list;
# `progress(bytes)` reports bytes consumed.

def _open_binary(path: Path):
    raw = open(path, "rb")
    if path.suffix.lower() == ".gz":
        return raw, gzip.GzipFile(fileobj=raw, mode="rb")
    return raw, raw


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, kind in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
                      (".gpx", "gpx")):
        if name.endswith(ext):
            return kind
    raw, f = _open_binary(path)
    try:
        head = f.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except (OSError, EOFError) as exc:
        raise ReplayFileError(f"{path}: cannot read ({exc})") from None
    finally:
        raw.close()
    return "gpx" if head.startswith(b"<") else "jsonl" if head.startswith(b"{") else "csv"


def _gpx_device(path: Path) -> str:
    name = path.name
    for ext in (".gz", ".gpx"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return name


Block = tuple[list[SourcedPing], list[BadRow]]


def _split(items: list) -> Block:
    bad = [r for r in items if type(r) is BadRow]
    return ([p for p in items if type(p) is not BadRow], bad) if bad else (items, [])


def read_file(path: Path, device: str | None = None,
              progress: Callable[[int], None] | None = None) -> Iterator[SourcedPing | BadRow]:
    """The rows of one file one by one, pings and bad rows in file order."""
    for pings, bad in read_blocks(path, device, progress):
        if not bad:
            yield from pings
        else:
            yield from sorted([*pings, *bad], key=lambda r: source_of(r).line if type(r) is not BadRow
                              else r.source.line)


def read_blocks(path: Path, device: str | None = None,
                progress: Callable[[int], None] | None = None) -> Iterator[Block]:
    """The rows of one file in blocks of (pings, bad rows): the fast way for a whole-file run."""
    kind = _kind(path)
    if kind == "gpx":
        yield from _read_gpx(path, device or _gpx_device(path), progress)
    elif kind == "jsonl":
        yield from _read_jsonl(path, progress)
    else:
        yield from _read_csv(path, progress)


def _read_csv(path: Path, progress) -> Iterator[Block]:
    name = str(path)
    raw, binary = _open_binary(path)
    line = 1
    try:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError, EOFError, OSError) as exc:
            raise ReplayFileError(f"{name}:1: not a readable CSV header ({_why(exc)})") from None
        if header is None:
            return
        cols = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise ReplayFileError(f"{name}:1: the header lacks {', '.join(missing)} "
                                  f"(needs {', '.join(REQUIRED)}; has {', '.join(cols)[:200]})")
        width = len(cols)
        # Absent columns read the empty string appended to every row.
        take = [cols.index(c) if c in cols else width for c in PING_FIELDS]
        last_pos = 0
        rows: list[list[str]] = []
        lines: list[int] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError, EOFError, OSError) as exc:
                raise ReplayFileError(f"{name}:{reader.line_num or line + 1}: {_why(exc)}") from None
            line = reader.line_num
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                raise ReplayFileError(f"{name}:{line}: {len(row)} fields where the header has {width}")
            rows.append(row)
            lines.append(line)
            if len(rows) == _BLOCK_ROWS:
                yield _csv_block(_Block(name, rows, lines, take))
                rows, lines = [], []
                if progress is not None:
                    here = raw.tell()
                    progress(here - last_pos)
                    last_pos = here
        if rows:
            yield _csv_block(_Block(name, rows, lines, take))
        if progress is not None:
            progress(os.fstat(raw.fileno()).st_size - last_pos)
    finally:
        raw.close()


_BLOCK_ROWS = 8192


class _Block(NamedTuple):
    """Rows of a CSV file read together; pings point back into it to rebuild their source row if rejected."""

    file: str
    rows: list[list[str]]
    lines: list[int]
    take: list[int]       # column of each of PING_FIELDS, or len(row) for an absent one

    def source(self, i: int) -> Source:
        row = self.rows[i]
        return Source(self.file, self.lines[i], tuple(row[k] if k < len(row) else "" for k in self.take))


def source_of(p: Ping) -> Source:
    """The Source of a ping read by this module (resolving a lazy (block, row) reference)."""
    src = p.origin
    return src if type(src) is Source else src[0].source(src[1])


def _csv_block(block: _Block) -> Block:
    """Parse a block column by column; any surprise sends the whole block down the row-by-row path."""
    fast = _csv_block_fast(block)
    if fast is not None:
        return fast, []
    return _split([make_ping(block.source(i)) for i in range(len(block.rows))])


def _csv_block_fast(block: _Block) -> list[SourcedPing] | None:
    rows, take = block.rows, block.take
    n = len(rows)
    width = len(rows[0])
    columns = list(zip(*rows))
    empty = ("",) * n

    def col(k: int):
        return columns[k] if k < width else empty

    devices = col(take[0])
    if "" in devices or any(d != d.strip() for d in set(devices)):
        return None
    ts = _iso_column_ms(col(take[1]))
    if ts is None:
        return None
    received: Sequence = [None] * n
    k = take[9]
    if k < width and any(columns[k]):
        received = _iso_column_ms(columns[k])
        if received is None:
            return None
    floats = []
    try:
        for j, k in enumerate(take[2:9]):
            if k >= width:
                if j < 2:
                    return None
                floats.append(empty)
                continue
            c = columns[k]
            if j >= 2 and "" in c:
                if not any(c):
                    floats.append(empty)      # a column left blank throughout
                    continue
                lst = [float(v) if v else None for v in c]
                if any(v != v for v in lst if v is not None):
                    lst = [None if v is None or v != v else v for v in lst]
                floats.append(lst)
                continue
            lst = list(map(float, c))
            if j >= 2:
                total = sum(lst)
                if total != total:                 # NaN (or opposite infinities) somewhere
                    lst = [None if x != x else x for x in lst]
            floats.append(lst)
    except (ValueError, OverflowError):
        return None
    floats = [[None] * n if f is empty else f for f in floats]
    out = list(map(SourcedPing, devices, ts, *floats, received))
    for i, p in enumerate(out):
        p.origin = (block, i)
    return out


def _iso_column_ms(texts: Sequence[str]) -> list[int] | None:
    """A column of ISO-8601 times with one layout (offset or Z), or of epoch numbers, as epoch ms; None otherwise."""
    u = np.array(texts)
    if u.dtype.kind != "U" or not len(u):
        return None
    lengths = np.char.str_len(u)
    length = int(lengths[0])
    if length < 20 or (lengths != length).any():
        try:
            v = u.astype(np.float64)
        except ValueError:
            return None
        if not np.isfinite(v).all():
            return None
        ms = np.where(np.abs(v) >= SECONDS_BELOW, v, v * 1000.0)
        return np.round(ms).astype(np.int64).tolist()
    chars = u.view("<U1").reshape(len(u), -1)[:, :length]
    if (chars[:, 4] != "-").any() or (~np.isin(chars[:, 10], ("T", "t", " "))).any():
        return None
    if (chars[:, length - 1] == "Z").all():
        local, offset_min = u.astype(f"<U{length - 1}"), 0
    elif np.isin(chars[:, length - 6], ("+", "-")).all() and (chars[:, length - 3] == ":").all():
        digits = chars[:, length - 5:].view(np.uint32).astype(np.int64) - 48
        if (digits[:, [0, 1, 3, 4]] < 0).any() or (digits[:, [0, 1, 3, 4]] > 9).any():
            return None
        sign = np.where(chars[:, length - 6] == "-", -1, 1)
        offset_min = sign * ((digits[:, 0] * 10 + digits[:, 1]) * 60 + digits[:, 3] * 10 + digits[:, 4])
        local = u.astype(f"<U{length - 6}")
    else:
        return None
    local = np.char.replace(local, " ", "T") if (chars[:, 10] == " ").any() else local
    try:
        t = local.astype("datetime64[ms]").astype(np.int64)
    except ValueError:
        return None
    return (t - offset_min * 60_000).tolist()


def _read_jsonl(path: Path, progress) -> Iterator[Block]:
    name = str(path)
    raw, binary = _open_binary(path)
    line = 0
    items: list = []
    try:
        last_pos = 0
        while True:
            try:
                chunk = binary.readline()
            except (EOFError, OSError) as exc:
                raise ReplayFileError(f"{name}:{line + 1}: {_why(exc)}") from None
            if not chunk:
                break
            line += 1
            if line == 1 and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            if not chunk.strip():
                continue
            try:
                obj = orjson.loads(chunk)
            except orjson.JSONDecodeError as exc:
                raise ReplayFileError(f"{name}:{line}: not a JSON object ({_why(exc)})") from None
            if not isinstance(obj, dict):
                raise ReplayFileError(f"{name}:{line}: not a JSON object but {type(obj).__name__}")
            items.append(make_ping(Source(name, line, tuple(obj.get(k) for k in PING_FIELDS))))
            if len(items) >= _BLOCK_ROWS:
                yield _split(items)
                items = []
            if progress is not None and not line & 0x3FFF:
                here = raw.tell()
                progress(here - last_pos)
                last_pos = here
        if items:
            yield _split(items)
        if progress is not None:
            progress(os.fstat(raw.fileno()).st_size - last_pos)
    finally:
        raw.close()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def _read_gpx(path: Path, device: str, progress) -> Iterator[Block]:
    """Streaming GPX: expat gives line numbers, and a bad point is a bad row, not a bad file."""
    name = str(path)
    done: list[SourcedPing | BadRow] = []
    state: dict = {"pt": None, "text": [], "line": 0}

    def start(tag, attrs):
        t = _local(tag)
        if t == "trkpt":
            state["pt"] = {"lat": attrs.get("lat"), "lon": attrs.get("lon")}
            state["line"] = parser.CurrentLineNumber
        state["text"] = []

    def end(tag):
        t = _local(tag)
        pt = state["pt"]
        if pt is None:
            return
        if t == "trkpt":
            values = (device, pt.get("time"), pt.get("lat"), pt.get("lon"), None, pt.get("speed"), pt.get("course"),
                      pt.get("ele"), None, None)
            done.append(make_ping(Source(name, state["line"], values)))
            state["pt"] = None
        elif t in ("time", "ele", "speed", "course"):
            pt.setdefault(t, "".join(state["text"]).strip())

    def chars(data):
        state["text"].append(data)

    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    raw, binary = _open_binary(path)
    try:
        while True:
            try:
                block = binary.read(1 << 16)
            except (EOFError, OSError) as exc:
                raise ReplayFileError(f"{name}: {_why(exc)}") from None
            try:
                parser.Parse(block, not block)
            except xml.parsers.expat.ExpatError as exc:
                raise ReplayFileError(f"{name}:{exc.lineno}: not valid GPX/XML ({xml.parsers.expat.ErrorString(exc.code)})") from None
            if progress is not None:
                progress(len(block) if binary is raw else 0)
            if done:
                yield _split(list(done))
                done.clear()
            if not block:
                break
        if progress is not None and binary is not raw:
            progress(os.fstat(raw.fileno()).st_size)
    finally:
        raw.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "bytes that are not UTF-8 text"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# ---------------------------------------------------------------------------
# Output

def _f(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def write_outputs(out_dir: Path, visits: list[VisitEnded], stops: list[StopEnded], modes: list[ModeSegment],
                  rejected: list[tuple]) -> None:
    """The four CSVs, each written to a temporary name and renamed, so a failed run leaves no half files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A visit closed by signal loss and resumed after a bridged silence ends twice: its later row
    # replaces the earlier one (as the ClickHouse table does by visit_id).
    visits = sorted({v.visit_id: v for v in visits}.values(), key=lambda v: (v.device_id, v.entered_ms, v.hotspot_id))
    stops = sorted(stops, key=lambda s: (s.device_id, s.started_ms, s.hotspot_id))
    modes = sorted(modes, key=lambda m: (m.device_id, m.started_ms))
    order = {}
    rejected = sorted(rejected, key=lambda r: (order.setdefault(r[0].file, len(order)), r[0].line))
    tables = {
        "visits.csv": (VISIT_COLUMNS, ((v.visit_id, v.device_id, v.hotspot_id, iso_utc(v.entered_ms),
                                        iso_utc(v.exited_ms), _f(v.dwell_s), _f(v.observed_s), _f(v.inferred_s),
                                        _f(v.foot_s), _f(v.vehicle_s),
                                        _f(v.stationary_s), v.stop_count, v.ping_count, v.end_reason)
                                       for v in visits)),
        "stops.csv": (STOP_COLUMNS, ((s.stop_id, s.device_id, s.hotspot_id, iso_utc(s.started_ms),
                                      iso_utc(s.ended_ms), _f(s.duration_s), f"{s.lat:.7f}", f"{s.lon:.7f}")
                                     for s in stops)),
        "modes.csv": (MODE_COLUMNS, ((m.device_id, iso_utc(m.started_ms), iso_utc(m.ended_ms), m.mode,
                                      _f(m.distance_m)) for m in modes)),
        "rejected.csv": (REJECTED_COLUMNS, ((src.file, src.line, *("" if v is None else v for v in src.values),
                                             reason, detail) for src, reason, detail in rejected)),
    }
    written = []
    try:
        for name, (header, rows) in tables.items():
            tmp = out_dir / f".{name}.tmp"
            written.append(tmp)
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(header)
                w.writerows(rows)
        for name in tables:
            os.replace(out_dir / f".{name}.tmp", out_dir / name)
    finally:
        for tmp in written:
            if tmp.exists():
                tmp.unlink()
