"""Today's patrol dosage as the gateway sees it: read from ClickHouse in the background, served from memory.

Owns the gateway's reads of ClickHouse (issue 14). They go the way `hotspot
sql` goes (sinks.sql_guard's checks and limits): with the embedded store, to
the query server of the process that owns it (the worker; the gateway never
opens chDB itself, which would take the store from the worker); with a
ClickHouse server, directly, as `clickhouse_readonly_dsn` when set.

Every `dosage_cache_s` one pass reads, for the current trial day (its bounds
given by the caller's clock):

- minutes per hot spot (every device: tasked, untasked, simulated), a visit
  shared with the day by its overlap as `dosage_daily` does;
- per officer app device (`app-…`): minutes per hot spot, and its open visit
  (dwell so far, as the worker rewrites it at each checkpoint).

Requests never wait for ClickHouse: they get the last snapshot and its age.
While no pass has succeeded for three periods the snapshot is `known=False`
and directions take every need as the full target, saying so.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenVisit:
    hotspot_id: str
    entered_ms: int
    dwell_s: float


@dataclass(frozen=True)
class Snapshot:
    day_start_ms: int = 0
    read_at_s: float = 0.0          # wall clock of the pass (0: never)
    known: bool = False
    problem: str | None = "not read yet"
    minutes: dict[str, float] = field(default_factory=dict)                 # hot spot -> minutes today
    device_minutes: dict[str, dict[str, float]] = field(default_factory=dict)  # app device -> hot spot -> minutes
    open_visits: dict[str, OpenVisit] = field(default_factory=dict)         # app device -> its open visit


def make_reader(settings):
    """A blocking `read(sql) -> rows` on the configured store, the `hotspot sql` way (see the module doc)."""
    from sinks.clickhouse import is_embedded

    dsn = settings.effective_clickhouse_dsn
    timeout_s = min(10.0, settings.sql_max_execution_time_s)
    if is_embedded(dsn):
        from sinks.query_server import query_owner

        def read(sql: str):
            return query_owner(settings.data_dir, sql, dsn=dsn, timeout_s=timeout_s)[1]
    else:
        from sinks.sql_guard import ReadonlyLimits, run_readonly_query

        limits = ReadonlyLimits(timeout_s, settings.sql_max_memory_bytes, settings.sql_max_result_rows)
        server = settings.clickhouse_readonly_dsn or dsn

        def read(sql: str):
            return run_readonly_query(server, settings.clickhouse_database, sql, limits).rows
    return read


def _visits_today(db: str, day_start_ms: int, day_end_ms: int, where: str = "") -> str:
    # A visit's end is exited_at, or entered_at + dwell so far while open; its dwell is shared with the
    # day by the overlap of [start, end) with the day, as in the dosage_daily view.
    return f"""
        SELECT device_id, hotspot_id, dwell_s, end_reason, start_ms, end_ms,
               greatest(0, least(end_ms, {day_end_ms}) - greatest(start_ms, {day_start_ms})) AS overlap_ms,
               if(end_ms > start_ms, overlap_ms / (end_ms - start_ms), 1.0) AS share
        FROM (
            SELECT device_id, hotspot_id, dwell_s, end_reason,
                   toUnixTimestamp64Milli(entered_at) AS start_ms,
                   if(exited_at IS NULL, start_ms + toInt64(dwell_s * 1000),
                      greatest(start_ms, toUnixTimestamp64Milli(assumeNotNull(exited_at)))) AS end_ms
            FROM {db}.visits FINAL
            WHERE entered_at >= fromUnixTimestamp64Milli(toInt64({day_start_ms - 86_400_000})) {where}
        )
        WHERE end_ms >= {day_start_ms} AND start_ms < {day_end_ms}"""


APP_DEVICES = "AND startsWith(device_id, 'app-')"  # the officer app's devices (gateway.auth.DEVICE_PREFIX)


def queries(db: str, day_start_ms: int, day_end_ms: int) -> tuple[str, str]:
    per_hotspot = (f"SELECT hotspot_id, round(sum(dwell_s * share) / 60, 3) AS minutes FROM ("
                   f"{_visits_today(db, day_start_ms, day_end_ms)}) GROUP BY hotspot_id")
    per_device = (f"SELECT device_id, hotspot_id, round(sum(dwell_s * share) / 60, 3) AS minutes, "
                  f"argMaxIf(start_ms, start_ms, end_reason = 'open') AS open_start_ms, "
                  f"maxIf(dwell_s, end_reason = 'open') AS open_dwell_s, countIf(end_reason = 'open') AS open_n FROM ("
                  f"{_visits_today(db, day_start_ms, day_end_ms, where=APP_DEVICES)}"
                  f") GROUP BY device_id, hotspot_id")
    return per_hotspot, per_device


def snapshot_from_rows(day_start_ms: int, read_at_s: float, per_hotspot, per_device) -> Snapshot:
    minutes = {str(h): float(m) for h, m in per_hotspot}
    device_minutes: dict[str, dict[str, float]] = {}
    open_visits: dict[str, OpenVisit] = {}
    for device, hotspot, m, open_start, open_dwell, open_n in per_device:
        device_minutes.setdefault(device, {})[hotspot] = float(m)
        if int(open_n) > 0:
            visit = OpenVisit(hotspot, int(open_start), float(open_dwell))
            if device not in open_visits or visit.entered_ms > open_visits[device].entered_ms:
                open_visits[device] = visit
    return Snapshot(day_start_ms, read_at_s, True, None, minutes, device_minutes, open_visits)


class DosageReader:
    """Keeps `snapshot` fresh (see the module doc). `day_bounds(now_ms) -> (start_ms, end_ms)` and `read`
    are given by the caller; `start()` runs the background loop, `refresh()` does one pass."""

    def __init__(self, read, day_bounds, *, database: str = "hotspot", interval_s: float = 10.0, clock=time.time):
        self.read = read
        self.day_bounds = day_bounds
        self.database = database
        self.interval_s = interval_s
        self.clock = clock
        self.snapshot = Snapshot()
        self._task: asyncio.Task | None = None

    @property
    def stale(self) -> bool:
        return not self.snapshot.known or self.clock() - self.snapshot.read_at_s > 3 * max(self.interval_s, 1.0)

    def age_s(self) -> float | None:
        return None if not self.snapshot.read_at_s else max(0.0, self.clock() - self.snapshot.read_at_s)

    async def refresh(self) -> None:
        now_s = self.clock()
        start_ms, end_ms = self.day_bounds(int(now_s * 1000))
        q1, q2 = queries(self.database, start_ms, end_ms)
        try:
            rows1 = await asyncio.to_thread(self.read, q1)
            rows2 = await asyncio.to_thread(self.read, q2)
        except Exception as exc:  # owner gone, server down, a refused query: degrade, say why, keep trying
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            if self.snapshot.problem != problem:
                log.warning("today's dosage not read from ClickHouse (%s): directions take need as the full target",
                            problem)
            old = self.snapshot
            self.snapshot = Snapshot(old.day_start_ms, old.read_at_s, old.known and old.day_start_ms == start_ms,
                                     problem, old.minutes, old.device_minutes, old.open_visits)
            return
        self.snapshot = snapshot_from_rows(start_ms, now_s, rows1, rows2)

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)  # the refresh period

    def start(self) -> None:
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.create_task(self._loop(), name="dosage-reader")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
