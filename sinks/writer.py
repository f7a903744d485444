"""The ClickHouse writer: buffer rows, write them in column batches, never lose them.

It has the shape of a stream-processing sink. The caller `add()`s rows as it
makes them, asks `due()` whether size or age says it is time, and calls
`flush()` (or `await flush_async()`) at its checkpoint, *before* committing the
Kafka offsets that produced the rows. `flush()` returns only when every row
added before the call is durably in ClickHouse, one column-oriented insert per
table, so an offset is never committed for a row that is not written.

Outages. An insert that fails for a reason that can go away (connection
refused, server restarting, store owned by another process, too many parts...)
is retried with exponential backoff and jitter for as long as it takes, or up
to `RetryPolicy.max_attempts`. Meanwhile `flush()` simply does not return, the
writer reports `healthy = False` / `state = "retrying"`, and the metrics show
it: the caller, stuck at its checkpoint, stops consuming. That is the
backpressure; nothing is dropped and nothing is raised for an outage. A caller
that must not block that long passes `timeout_s` and gets `SinkBackpressure`
(rows kept, `retry_after_s` set) to pause its consumer and flush again later.
An insert ClickHouse refuses because of the rows themselves (unknown column,
wrong type) would fail forever: that is a bug, raised at once as
`SinkRejected`, rows kept.

Idempotency. A crash between the insert and the offset commit means the same
input is processed and written again, and a retry after a timeout may write
rows the server had in fact stored. Both are harmless because of how the
tables are built (migrations 0002-0003): every row carries a stable key derived
from its input (visit_id, stop_id, (device_id, started_at), reject_id, ...)
and a `version` derived from event time, never from the wall clock, in a
ReplacingMergeTree keyed on it. A replay therefore writes rows identical to
those already stored; under FINAL (or the *_current views) identical rows
with the same key collapse to one, and where versions differ the highest wins,
which is the latest state of that visit or stop in either run. Batch
boundaries do not matter, which is why this does not rely on insert
deduplication tokens (see docs/decisions.md, "ClickHouse sink").

Input and encoding. Rows come in as `add()` (one dict), `add_many()` /
`add_columns()` (Python columns: no dict per row) or `add_arrow()` (a pyarrow
RecordBatch: no Python object per cell, the cheapest; `formats.records.ping_rows_arrow`
builds the `pings` batch of a micro-batch in one pass in C). The Python work
of turning rows into bytes holds the GIL, and so stalls the worker's main
thread even when the flush runs in another thread; the engine's own work does
not (chDB releases the GIL while it runs a statement). So on an embedded chDB
store a flush sends each table as one Arrow IPC stream (`INSERT ...
FORMAT ArrowStream`, parsed by ClickHouse in C++): Arrow batches as they are,
Python columns converted by pyarrow in C, and the column types read once per
table and client instead of clickhouse-connect's DESCRIBE before every insert
and its Native serialiser (which builds LowCardinality dictionaries and
arrays in Python). Whatever Arrow cannot carry exactly as the standard path
writes it (a column type without a mapping here, such as Date or Map; a NULL in
a non-Nullable column; a float or datetime object where ints belong...) and any
Arrow insert ClickHouse refuses go through the standard path
(`client.insert`, Native) instead, whose outcome decides: the rows written,
and the errors raised, are always those of the standard path. A server over
HTTP uses the standard path unless `arrow_inserts=True`.

Threads. add() may be called while a flush runs in another thread (the
async variant runs the blocking insert in a worker thread so the event loop
keeps serving Kafka heartbeats); such rows belong to the next flush. Flushes
are serialised.

Length (~700 lines): the buffer, the three insert paths (rows, columns, Arrow), the retry policy and the
classification of ClickHouse errors make one durability guarantee and are tested as one
(tests/integration/test_sink_writer.py).
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError, DatabaseError, OperationalError, ProgrammingError

from sinks import metrics
from sinks.clickhouse import StoreBusy, make_client, mask_dsn

log = logging.getLogger(__name__)

# ClickHouse error codes that mean "these rows or this statement can never be
# written as they are": retrying would spin forever, so they are raised.
PERMANENT_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    8,    # THERE_IS_NO_COLUMN
    16,   # NO_SUCH_COLUMN_IN_TABLE
    20,   # NUMBER_OF_COLUMNS_DOESNT_MATCH
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    41,   # CANNOT_PARSE_DATETIME
    43,   # ILLEGAL_TYPE_OF_ARGUMENT
    53,   # TYPE_MISMATCH
    60,   # UNKNOWN_TABLE
    62,   # SYNTAX_ERROR
    70,   # CANNOT_CONVERT_TYPE
    81,   # UNKNOWN_DATABASE
    117,  # INCORRECT_DATA
    164,  # READONLY
    192,  # UNKNOWN_USER
    193,  # WRONG_PASSWORD
    194,  # REQUIRED_PASSWORD
    497,  # ACCESS_DENIED
    516,  # AUTHENTICATION_FAILED
})


class SinkError(Exception):
    """Root of the writer's errors. Whatever is raised, the rows stay buffered."""


class SinkBackpressure(SinkError):
    """ClickHouse is unavailable and the caller's time limit or attempt limit ran out.

    Pause consumption, keep the offsets where they are, and flush again after
    `retry_after_s`.
    """

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SinkRejected(SinkError):
    """ClickHouse refused the rows themselves (schema or type mismatch): a bug, not an outage."""


class SinkClosed(SinkError):
    """The writer was closed while rows were still waiting to be written."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter between failed attempts.

    The n-th wait is min(max_delay_s, initial_delay_s * multiplier**(n-1)),
    shortened by a random fraction of up to `jitter` so that several workers
    that lost ClickHouse together do not hammer it together when it returns.
    max_attempts None retries until it works.
    """

    initial_delay_s: float = 0.1
    max_delay_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * rng.random())


def is_permanent(exc: BaseException) -> bool:
    """True when retrying the same insert cannot succeed."""
    if isinstance(exc, (StoreBusy, OperationalError, OSError)):
        return False
    if isinstance(exc, (TypeError, ValueError, KeyError, AttributeError, OverflowError, DataError)):
        return True  # the client could not serialise the rows
    if isinstance(exc, ProgrammingError) and getattr(exc, "code", None) is None:
        return True  # the client's own check, e.g. a column the table does not have
    if isinstance(exc, DatabaseError):
        return getattr(exc, "code", None) in PERMANENT_ERROR_CODES
    return False


def _reconnect_after(exc: BaseException) -> bool:
    """Failures after which the client is dropped and opened again."""
    return isinstance(exc, (StoreBusy, OperationalError, OSError))


class _TableBuffer:
    """Rows of one table as columns; every row names the same columns.

    Rows added as Python values are in `columns`, rows added as Arrow record
    batches (columns in `names` order) in `batches`; `rows` counts both.
    """

    __slots__ = ("batches", "columns", "keys", "names", "rows")

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)
        self.keys = frozenset(self.names)
        self.columns: list[list[Any]] = [[] for _ in self.names]
        self.batches: list[Any] = []
        self.rows = 0

    def python_columns(self) -> list[list[Any]]:
        """All the rows as Python values, for the standard insert path."""
        if not self.batches:
            return self.columns
        columns = [list(col) for col in self.columns]
        for batch in self.batches:
            for col, arr in zip(columns, batch.columns):
                col.extend(_python_values(arr))
        return columns

    def check(self, table: str, names) -> None:
        """`names`: a dict's keys, or a tuple of distinct names."""
        if names == self.names:
            return
        if isinstance(names, tuple):
            names = frozenset(names)
        if names != self.keys:
            given = set(names)
            raise ValueError(f"rows for {table} must name the same columns: "
                             f"missing {sorted(self.keys - given)}, unexpected {sorted(given - self.keys)}")


_Batch = dict[str, _TableBuffer]


# ---------------------------------------------------------------------- Arrow encoding
class _NotForArrow(Exception):
    """These columns or values go through the standard insert path instead."""


_DT64_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}
_ARROW_SCALAR_NAMES = {"String": "string", "Float64": "float64", "Float32": "float32",
                       "UInt8": "uint8", "UInt16": "uint16", "UInt32": "uint32", "UInt64": "uint64",
                       "Int8": "int8", "Int16": "int16", "Int32": "int32", "Int64": "int64"}
_DT64 = re.compile(r"^DateTime64\((\d)(?:,\s*'([^']*)')?\)$")


def _unwrap(ch_type: str, wrapper: str) -> str | None:
    prefix = wrapper + "("
    return ch_type[len(prefix):-1] if ch_type.startswith(prefix) and ch_type.endswith(")") else None


class _ArrowColumn:
    """How one ClickHouse column is built as an Arrow array from Python values.

    Only where ClickHouse reads the Arrow form back as exactly what the standard
    path writes: String (also LowCardinality), Float32/64, (U)Int8-64, DateTime64
    from ints (its raw ticks, as clickhouse-connect writes an int), Nullable of
    those, Array of String or Float64. pyarrow converts more leniently than
    clickhouse-connect in a few places, so those are refused here (_NotForArrow)
    and left to the standard path: integer and DateTime64 columns must hold ints
    only (pyarrow would truncate a float; clickhouse-connect refuses one after an
    int), a DateTime64 column must start with a Python int (clickhouse-connect
    takes anything else for datetimes), String columns str only (pyarrow also
    takes bytes), Float32 must not overflow to inf (clickhouse-connect raises),
    and NULL must not appear where the column is not Nullable.
    """

    __slots__ = ("items_nullable", "kind", "nullable", "type")

    def __init__(self, ch_type: str):
        pa = _pyarrow()
        inner = _unwrap(ch_type, "LowCardinality")
        ch_type = ch_type if inner is None else inner
        inner = _unwrap(ch_type, "Nullable")
        self.nullable = inner is not None
        ch_type = ch_type if inner is None else inner
        self.items_nullable = True
        items = _unwrap(ch_type, "Array")
        if items is not None:
            item = _unwrap(items, "Nullable")
            self.items_nullable = item is not None
            item = items if item is None else item
            if self.nullable or item not in ("String", "Float64"):
                raise _NotForArrow(f"Array({items})")
            self.kind, self.type = "list", pa.list_(getattr(pa, _ARROW_SCALAR_NAMES[item])())
            return
        if ch_type in _ARROW_SCALAR_NAMES:
            self.type = getattr(pa, _ARROW_SCALAR_NAMES[ch_type])()
            self.kind = ("string" if ch_type == "String" else "float32" if ch_type == "Float32"
                         else "float" if ch_type == "Float64" else "int")
            return
        m = _DT64.match(ch_type)
        if m and int(m.group(1)) in _DT64_UNITS:
            self.kind, self.type = "dt64", pa.timestamp(_DT64_UNITS[int(m.group(1))], tz=m.group(2) or "UTC")
            return
        raise _NotForArrow(ch_type)

    def array(self, values: list[Any]):
        pa = _pyarrow()
        kind = self.kind
        if kind == "int" or kind == "dt64":
            if kind == "dt64" and not isinstance(next((v for v in values if v is not None), 0), int):
                raise _NotForArrow("a DateTime64 column not starting with an int")
            arr = pa.array(values)  # inferred: integer only if every value is an int
            if not (pa.types.is_integer(arr.type) or pa.types.is_null(arr.type)):
                raise _NotForArrow(f"{arr.type} values in an integer column")
            arr = arr.cast(pa.int64() if kind == "dt64" else self.type)  # safe: out of range raises
            if kind == "dt64":
                arr = arr.view(self.type)
        elif kind == "string":
            arr = pa.array(values)  # inferred: binary if any value is bytes (clickhouse-connect refuses str and bytes mixed)
            if not (pa.types.is_string(arr.type) or pa.types.is_null(arr.type)):
                raise _NotForArrow(f"{arr.type} values in a String column")
            arr = arr.cast(self.type)
        else:
            arr = pa.array(values, type=self.type)
            if kind == "float32" and arr.null_count < len(arr) and _pc().any(_pc().is_inf(arr)).as_py():
                raise _NotForArrow("inf in a Float32 column")  # maybe an overflow, which the standard path refuses
        return self._checked(arr)

    def from_arrow(self, arr):
        """An Arrow array added as it is, if it has this column's Arrow type (or a lossless cast to it)."""
        pa = _pyarrow()
        if arr.type != self.type:
            if self.kind == "int" and pa.types.is_integer(arr.type):
                arr = arr.cast(self.type)  # safe: out of range raises
            elif (self.kind == "dt64" and pa.types.is_timestamp(arr.type) and arr.type.unit == self.type.unit):
                arr = arr.view(self.type)  # the same ticks in another time zone's clothes
            else:
                raise _NotForArrow(f"{arr.type} for a column written from {self.type}")
        return self._checked(arr)

    def _checked(self, arr):
        if arr.null_count and not self.nullable:
            raise _NotForArrow("NULL in a non-Nullable column")  # the standard path decides what that means
        if not self.items_nullable and arr.flatten().null_count:
            raise _NotForArrow("NULL in an array of a non-Nullable type")
        return arr


def _python_values(arr) -> list[Any]:
    """An Arrow array as the Python values the standard path takes (timestamps as their integer ticks)."""
    pa = _pyarrow()
    if pa.types.is_timestamp(arr.type):
        arr = arr.view(pa.int64())
    return arr.to_pylist()


def _pyarrow():
    import pyarrow  # imported on first use: server-mode processes may not need it

    return pyarrow


def _pc():
    import pyarrow.compute

    return pyarrow.compute


def _arrow_stream(buf: _TableBuffer, encoders: Sequence[_ArrowColumn]):
    """The buffer's rows as one Arrow IPC stream (a pyarrow Buffer); _NotForArrow or a pyarrow error if it cannot."""
    pa = _pyarrow()
    names = list(buf.names)
    batches = []
    if buf.columns[0]:
        batches.append(pa.RecordBatch.from_arrays([enc.array(col) for enc, col in zip(encoders, buf.columns)], names=names))
    for batch in buf.batches:
        batches.append(pa.RecordBatch.from_arrays([enc.from_arrow(arr) for enc, arr in zip(encoders, batch.columns)],
                                                  names=names))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema, options=pa.ipc.IpcWriteOptions()) as out:  # no env lookups
        for batch in batches:
            out.write_batch(batch)
    return sink.getvalue()


def _is_chdb(client: Any) -> bool:
    try:
        from clickhouse_connect.driver._chdbclient import ChdbClient
    except ImportError:  # a clickhouse-connect without the embedded backend
        return False
    return isinstance(client, ChdbClient)


class ClickHouseWriter:
    """Buffered, retrying, column-oriented writer to ClickHouse tables.

    `dsn`/`database`: where to write (through `sinks.clickhouse.make_client`);
    tables are named bare (`visits`) and qualified with `database`.
    `max_rows`, `max_age_s`: what `due()` considers a full or an old batch.
    `client_factory`: opens the client instead of make_client (tests, pools).
    `arrow_inserts`: None (default) inserts through Arrow on an embedded chDB client and
    through the standard path otherwise; True through Arrow on any clickhouse-connect
    client (a server over HTTP too: the same `INSERT ... FORMAT ArrowStream`); False never.
    `inserts` counts the successful inserts by path, `arrow_fallbacks` the Arrow inserts
    handed to the standard path (values Arrow cannot carry, or ClickHouse refusing them).
    """

    def __init__(self, dsn: str | None = None, database: str = "hotspot", *,
                 max_rows: int = 20_000, max_age_s: float = 0.5, retry: RetryPolicy = RetryPolicy(),
                 client_factory: Callable[[], Client] | None = None, name: str = "clickhouse",
                 clock: Callable[[], float] = time.monotonic, seed: int | None = None,
                 arrow_inserts: bool | None = None):
        if dsn is None and client_factory is None:
            raise ValueError("give a DSN or a client_factory")
        self.database = database
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.retry = retry
        self.name = name
        self._dsn = dsn
        self._factory = client_factory or (lambda: make_client(dsn, database))
        self._clock = clock
        self._rng = random.Random(seed)
        self._client: Client | None = None
        self._arrow_inserts = arrow_inserts
        self._arrow_ok = False  # decided for each client opened
        self._chdb = False
        self._table_types: dict[str, dict[str, str]] = {}  # qualified table -> {column: ClickHouse type}, this client's
        self._encoders: dict[tuple[str, tuple[str, ...]], list[_ArrowColumn] | None] = {}
        self.inserts = {"arrow": 0, "standard": 0}  # successful inserts by path
        self.arrow_fallbacks = 0  # inserts the Arrow path handed to the standard one (values, or a refusal)
        self._pending: _Batch = {}
        self._pending_rows = 0
        self._first_added: float | None = None
        self._inflight: list[_Batch] = []  # taken by a flush, not yet all written
        self._buf_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._closed = threading.Event()
        self._healthy = True
        self._state = "idle"
        self.last_error: str | None = None
        self.attempts = 0  # insert attempts since the writer was made, failed ones included
        self._m_pending = metrics.SINK_PENDING_ROWS.labels(name)
        self._m_healthy = metrics.SINK_HEALTHY.labels(name)
        self._m_flush = metrics.SINK_FLUSH_SECONDS.labels(name)
        self._m_batch = metrics.BATCH_SIZE.labels("sink")
        self._m_pending.set(0)
        self._m_healthy.set(1)

    # ------------------------------------------------------------------ input
    def add(self, table: str, row: Mapping[str, Any]) -> None:
        """Buffer one row (plain Python values; DateTime64 columns take epoch ms ints)."""
        with self._buf_lock:
            buf = self._table_buffer(table, row.keys())
            for col, name in zip(buf.columns, buf.names):
                col.append(row[name])
            buf.rows += 1
            self._added(1)

    def add_many(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Buffer rows given as columns of equal length (lists, tuples or numpy arrays)."""
        self.add_columns(table, tuple(columns.keys()), tuple(columns.values()))

    def add_columns(self, table: str, names: Sequence[str], columns: Sequence[Sequence[Any]]) -> None:
        """Buffer rows given as parallel columns: `columns[i]` holds the values of column `names[i]`.

        The cheap way to add many rows (no dict per row): lists, tuples or numpy
        arrays of equal length, plain values as for `add`. For `pings`:
        `add_columns("pings", *formats.records.ping_rows_columns(records, hotspot_ids, low_accuracy))`.
        """
        names = tuple(names)
        if len(names) != len(columns):
            raise ValueError(f"{len(names)} column names for {len(columns)} columns for {table}")
        lengths = {len(v) for v in columns}
        if len(lengths) > 1:
            raise ValueError(f"columns for {table} differ in length: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if n == 0:
            return
        if len(frozenset(names)) != len(names):
            raise ValueError(f"columns for {table} name a column twice: {names}")
        with self._buf_lock:
            buf = self._table_buffer(table, names)
            if names != buf.names:
                by_name = dict(zip(names, columns))
                columns = [by_name[name] for name in buf.names]
            for col, values in zip(buf.columns, columns):
                # numpy scalars are not accepted by the client's serialisers: tolist() makes Python values
                col.extend(values.tolist() if hasattr(values, "tolist") else values)
            buf.rows += n
            self._added(n)

    def add_arrow(self, table: str, batch: Any) -> None:
        """Buffer the rows of a pyarrow RecordBatch (or Table) whose columns are named as the table's.

        The cheapest way for many rows: no Python value per cell. For `pings`:
        `add_arrow("pings", formats.records.ping_rows_arrow(records, hotspot_ids, low_accuracy))`.
        The Arrow insert path writes the arrays as they are when each has the
        Arrow type that path uses for its column (see `_ArrowColumn`: string,
        float32/64, an integer type, timestamp in the DateTime64's unit, list)
        and no NULL where the column is not Nullable; otherwise, and on the
        standard path, they are converted to Python values first (timestamps
        to their integer ticks, which ClickHouse reads in the column's unit).
        """
        n = batch.num_rows
        if n == 0:
            return
        names = tuple(batch.schema.names)
        if len(frozenset(names)) != len(names):
            raise ValueError(f"columns for {table} name a column twice: {names}")
        batches = batch.to_batches() if hasattr(batch, "to_batches") else [batch]
        with self._buf_lock:
            buf = self._table_buffer(table, names)
            if names != buf.names:
                batches = [b.select(list(buf.names)) for b in batches]
            buf.batches.extend(b for b in batches if b.num_rows)
            buf.rows += n
            self._added(n)

    def _table_buffer(self, table: str, names) -> _TableBuffer:
        if self._closed.is_set():
            raise SinkClosed("the writer is closed")
        buf = self._pending.get(table)
        if buf is None:
            buf = self._pending[table] = _TableBuffer(list(names))
        else:
            buf.check(table, names)
        return buf

    def _added(self, n: int) -> None:
        if self._first_added is None:
            self._first_added = self._clock()
        self._pending_rows += n
        if self._state == "idle":
            self._state = "buffering"
        self._m_pending.inc(n)

    # ------------------------------------------------------------------ state
    @property
    def pending_rows(self) -> int:
        """Rows accepted and not yet durable (buffered plus those of an unfinished flush)."""
        with self._buf_lock:
            return self._pending_rows + sum(b.rows for batch in self._inflight for b in batch.values())

    @property
    def healthy(self) -> bool:
        """False from a failed insert until the next successful one."""
        return self._healthy

    @property
    def state(self) -> str:
        """idle, buffering, flushing, retrying, rejected or closed."""
        return self._state

    def due(self, now_monotonic: float | None = None) -> bool:
        """True when the buffer reached max_rows or its oldest row is max_age_s old,
        or when an earlier flush did not finish."""
        with self._buf_lock:
            if self._inflight:
                return True
            if self._pending_rows >= self.max_rows:
                return True
            if self._first_added is None:
                return False
            now = self._clock() if now_monotonic is None else now_monotonic
            return now - self._first_added >= self.max_age_s

    # ------------------------------------------------------------------ output
    def flush(self, timeout_s: float | None = None) -> int:
        """Write everything added before this call; return the number of rows written now.

        Blocks through outages (see the module docstring). With `timeout_s`,
        raises SinkBackpressure instead of waiting past it; on SinkRejected,
        SinkBackpressure or SinkClosed the rows stay buffered for the next flush.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._flush_lock:
            with self._buf_lock:
                if self._pending:
                    self._inflight.append(self._pending)
                    self._pending = {}
                    self._pending_rows = 0
                    self._first_added = None
                batches = list(self._inflight)
            if not batches:
                return 0
            started = time.monotonic()
            written = 0
            for batch in batches:
                while batch:
                    table = next(iter(batch))
                    written += self._insert_until_done(table, batch[table], deadline)
                    with self._buf_lock:
                        del batch[table]
                with self._buf_lock:
                    self._inflight.remove(batch)
            with self._buf_lock:
                self._state = "buffering" if self._pending_rows else "idle"
            self._m_flush.observe(time.monotonic() - started)
            self._m_batch.observe(written)
            return written

    async def flush_async(self, timeout_s: float | None = None) -> int:
        """flush() in a worker thread, so the event loop stays responsive meanwhile."""
        return await asyncio.to_thread(self.flush, timeout_s)

    def _insert_until_done(self, table: str, buf: _TableBuffer, deadline: float | None) -> int:
        qualified = table if "." in table else f"{self.database}.{table}"
        failures = 0
        while True:
            if self._closed.is_set():
                self._state = "closed"
                raise SinkClosed(f"the writer was closed with {buf.rows} rows for {qualified} unwritten")
            self._state = "flushing" if failures == 0 else "retrying"
            self.attempts += 1
            opening = self._client is None
            try:
                if opening:
                    self._client = self._factory()
                    opening = False
                    self._opened(self._client)
                self._insert(qualified, buf)
            except Exception as exc:  # classified below; nothing is swallowed silently
                failures += 1
                metrics.SINK_FAILURES.labels(self.name, table).inc()
                self._healthy = False
                self._m_healthy.set(0)
                text = str(exc).strip()
                self.last_error = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
                # Failing to open a client is an outage (server down, store owned by another
                # process) unless the server itself said the credentials or database are wrong.
                permanent = (isinstance(exc, DatabaseError) and getattr(exc, "code", None) in PERMANENT_ERROR_CODES
                             if opening else is_permanent(exc))
                if permanent:
                    self._state = "rejected"
                    raise SinkRejected(f"ClickHouse refused {buf.rows} rows for {qualified}: {self.last_error}") from exc
                if not opening and _reconnect_after(exc):
                    self._drop_client()
                delay = self.retry.delay_s(failures, self._rng)
                where = mask_dsn(self._dsn) if self._dsn else "ClickHouse"
                log.warning("insert of %d rows into %s at %s failed (attempt %d), retrying in %.2fs: %s",
                            buf.rows, qualified, where, failures, delay, self.last_error)
                self._state = "retrying"
                if self.retry.max_attempts is not None and failures >= self.retry.max_attempts:
                    raise SinkBackpressure(f"{qualified}: {failures} attempts failed, last: {self.last_error}", delay) from exc
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise SinkBackpressure(f"{qualified}: still failing at the time limit, last: {self.last_error}", delay) from exc
                self._closed.wait(delay)
                continue
            if failures:
                log.warning("insert into %s succeeded after %d failed attempts", qualified, failures)
            self._state = "flushing"
            self._healthy = True
            self._m_healthy.set(1)
            self._m_pending.dec(buf.rows)
            metrics.SINK_ROWS_WRITTEN.labels(self.name, table).inc(buf.rows)
            return buf.rows

    def _opened(self, client: Client) -> None:
        self._table_types.clear()
        self._encoders.clear()
        self._chdb = _is_chdb(client)
        self._arrow_ok = (self._arrow_inserts is not False and hasattr(client, "raw_insert")
                          and (self._arrow_inserts or self._chdb))

    def _insert(self, qualified: str, buf: _TableBuffer) -> None:
        """One insert of the buffer: through Arrow when it can carry these columns and values, else standard."""
        client = self._client
        encoders = self._arrow_encoders(client, qualified, buf.names) if self._arrow_ok else None
        refused = False
        if encoders is not None:
            try:
                payload = _arrow_stream(buf, encoders)
            except Exception as exc:  # values Arrow cannot carry as the standard path would: that path decides
                log.debug("insert into %s through the standard path: %s", qualified, exc, exc_info=True)
            else:
                try:
                    # chDB writes the bytes to a file for INSERT ... FROM INFILE: no copy needed
                    client.raw_insert(qualified, list(buf.names), memoryview(payload) if self._chdb
                                      else payload.to_pybytes(), fmt="ArrowStream")
                    self.inserts["arrow"] += 1
                    return
                except Exception as exc:
                    if not is_permanent(exc):
                        raise  # an outage: retried like any other
                    # refused as Arrow (a type changed since the DESCRIBE?): the standard path decides
                    refused = True
                    self._encoders.pop((qualified, buf.names), None)
                    self._table_types.pop(qualified, None)
                    text = str(exc).strip()
                    log.warning("ClickHouse refused the Arrow insert into %s, using the standard path: %s",
                                qualified, text.splitlines()[0] if text else type(exc).__name__)
            self.arrow_fallbacks += 1
        client.insert(qualified, buf.python_columns(), column_names=list(buf.names), column_oriented=True)
        self.inserts["standard"] += 1
        if refused:  # the standard path wrote what Arrow could not: it keeps this table until the client is reopened
            self._encoders[(qualified, buf.names)] = None

    def _arrow_encoders(self, client: Client, qualified: str, names: tuple[str, ...]) -> list[_ArrowColumn] | None:
        """How to build each column as Arrow, or None when one of them cannot be (or is not in the table)."""
        key = (qualified, names)
        if key in self._encoders:
            return self._encoders[key]
        types = self._table_types.get(qualified)
        if types is None:
            # the standard path runs the same DESCRIBE before each insert, so its errors are the same
            types = {row[0]: row[1] for row in client.query(f"DESCRIBE TABLE {qualified}").result_rows}
            self._table_types[qualified] = types
        try:
            encoders = [_ArrowColumn(types[name]) for name in names]
        except (KeyError, _NotForArrow, ImportError) as exc:
            log.debug("%s is inserted through the standard path (%s: %s)", qualified, type(exc).__name__, exc)
            encoders = None
        self._encoders[key] = encoders
        return encoders

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # the connection is already broken; a new client replaces it
                log.debug("closing a failed ClickHouse client", exc_info=True)

    def close(self) -> None:
        """Stop: wake a flush that is waiting to retry (it raises SinkClosed) and release the client.

        Rows not yet written stay unwritten; their offsets were not committed,
        so the next run writes them. Call flush() first for a clean stop.
        """
        self._closed.set()
        with self._flush_lock:
            self._drop_client()
            self._state = "closed"

    def __enter__(self) -> ClickHouseWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
