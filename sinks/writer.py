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

Threads. add() may be called while a flush runs in another thread (the
async variant runs the blocking insert in a worker thread so the event loop
keeps serving Kafka heartbeats); such rows belong to the next flush. Flushes
are serialised.
"""
from __future__ import annotations

import asyncio
import logging
import random
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
    """Rows of one table as columns; every row names the same columns."""

    __slots__ = ("names", "keys", "columns", "rows")

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)
        self.keys = frozenset(self.names)
        self.columns: list[list[Any]] = [[] for _ in self.names]
        self.rows = 0

    def check(self, table: str, names) -> None:
        if names != self.keys:
            given = set(names)
            raise ValueError(f"rows for {table} must name the same columns: "
                             f"missing {sorted(self.keys - given)}, unexpected {sorted(given - self.keys)}")


_Batch = dict[str, _TableBuffer]


class ClickHouseWriter:
    """Buffered, retrying, column-oriented writer to ClickHouse tables.

    `dsn`/`database`: where to write (through `sinks.clickhouse.make_client`);
    tables are named bare (`visits`) and qualified with `database`.
    `max_rows`, `max_age_s`: what `due()` considers a full or an old batch.
    `client_factory`: opens the client instead of make_client (tests, pools).
    """

    def __init__(self, dsn: str | None = None, database: str = "hotspot", *,
                 max_rows: int = 20_000, max_age_s: float = 0.5, retry: RetryPolicy = RetryPolicy(),
                 client_factory: Callable[[], Client] | None = None, name: str = "clickhouse",
                 clock: Callable[[], float] = time.monotonic, seed: int | None = None):
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
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns for {table} differ in length: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if n == 0:
            return
        with self._buf_lock:
            buf = self._table_buffer(table, columns.keys())
            for col, name in zip(buf.columns, buf.names):
                values = columns[name]
                # numpy scalars are not accepted by the client's serialisers: tolist() makes Python values
                col.extend(values.tolist() if hasattr(values, "tolist") else values)
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
                self._client.insert(qualified, buf.columns, column_names=list(buf.names), column_oriented=True)
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
