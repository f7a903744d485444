"""Idempotent requests: a repeated key gets the first answer again and publishes nothing.

Owns `<data_dir>/idempotency.sqlite3` (0600): the first answer (status and
body) to each (scope, key), kept `ttl_s` (24 h by default). The scope is who
sent it (the device or user), so two officers' keys never collide. The web
app's offline queue sends every batch of pings with an `Idempotency-Key` and
every activity with its `client_id`: a request that reached Kafka but whose
answer was lost in a dead zone is answered again, not stored twice.

Two requests with the same key at once: the second waits for the first
(`lock`), then finds its answer. Only successful answers are kept; a refusal
(503 while Kafka is away) may be retried with the same key.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

FILE_NAME = "idempotency.sqlite3"
MAX_KEY_CHARS = 128


class IdempotencyStore:
    def __init__(self, path: Path, *, ttl_s: float = 86_400.0, clock=time.time):
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not self.path.exists()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        if fresh:
            os.chmod(self.path, 0o600)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS answers (scope TEXT, key TEXT, status INTEGER, body BLOB, "
                           "created_ms INTEGER, PRIMARY KEY (scope, key))")
        self._db_lock = threading.Lock()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._pruned_at = 0.0

    def close(self) -> None:
        self._conn.close()

    def lock(self, scope: str, key: str) -> asyncio.Lock:
        return self._locks.setdefault((scope, key), asyncio.Lock())

    def release(self, scope: str, key: str) -> None:
        lock = self._locks.get((scope, key))
        if lock is not None and not lock.locked():
            del self._locks[(scope, key)]

    def get(self, scope: str, key: str) -> tuple[int, bytes] | None:
        oldest_ms = int((self.clock() - self.ttl_s) * 1000)
        with self._db_lock:
            row = self._conn.execute("SELECT status, body FROM answers WHERE scope=? AND key=? AND created_ms >= ?",
                                     (scope, key, oldest_ms)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def put(self, scope: str, key: str, status: int, body: bytes) -> None:
        now = self.clock()
        with self._db_lock:
            self._conn.execute("INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?)",
                               (scope, key, status, body, int(now * 1000)))
            if now - self._pruned_at > 3600:
                self._pruned_at = now
                self._conn.execute("DELETE FROM answers WHERE created_ms < ?", (int((now - self.ttl_s) * 1000),))
