"""Several workers on one embedded (chDB) store: one owner writes for all of them.

chDB lets one process open a store path. With several workers in one group
on one machine, the first one owns the store (it holds `<store>.lock`, see
core.datadir) and serves inserts to the others, which join with
`HOTSPOT_WORKER_JOIN_STORE=true`: their ClickHouse writer gets a
`RemoteStore` client instead of a chDB one. The owner runs each insert on its
own client, exactly as a local insert (Arrow batches as they are, other rows
as the standard path's Python values), so the tables cannot tell who wrote
a row, and the writer's retries and checkpoints work unchanged: an insert
the owner did not confirm was not done, and is retried.

When the owner dies (even by kill -9) the kernel frees its lock; the
joiners' inserts fail as an outage, their writers reconnect through
`JoinedStore`, and the first to take the lock becomes the owner: it opens the
store, applies migrations and serves queries (`hotspot sql`) and inserts. The
others find the new owner in `<data_dir>/clickhouse.inserts` (JSON {pid, host,
port, token}, 0600, like the query server's owner file).

This endpoint is separate from the read-only query server on purpose: that
one must never write.

Against a ClickHouse server none of this is needed: every worker writes to it.
"""
from __future__ import annotations

import atexit
import base64
import datetime as _dt
import hmac
import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError

from sinks.clickhouse import make_client

log = logging.getLogger(__name__)

INSERTS_FILE = "clickhouse.inserts"
MAX_INSERT_BYTES = 512 << 20
_IDENT = __import__("re").compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def inserts_path(data_dir) -> Path:
    return Path(data_dir) / INSERTS_FILE


# --- values over JSON: what the standard insert path carries --------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, _dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$dt" in value:
            return _dt.datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return _dt.date.fromisoformat(value["$d"])
        if "$b" in value:
            return base64.b64decode(value["$b"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


# --- the owner's side -------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: "_InsertServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # rows name devices: keep them out of the log
        log.debug("insert server: " + fmt, *args)

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if not hmac.compare_digest(self.headers.get("Authorization", "").encode(),
                                   f"Bearer {self.server.token}".encode()):
            self._reply(401, {"error": "missing or wrong token"})
            return
        try:
            length = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_INSERT_BYTES:
            self._reply(413, {"error": f"body of at most {MAX_INSERT_BYTES} bytes"})
            return
        body = self.rfile.read(length)
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        table = query.get("table", "")
        if not _IDENT.match(table):
            self._reply(400, {"error": "table must be [db.]name"})
            return
        try:
            with self.server.lock:
                client = self.server.client
                if url.path == "/describe":
                    rows = client.query(f"DESCRIBE TABLE {table}").result_rows
                    self._reply(200, {"rows": [list(r[:2]) for r in rows]})
                    return
                columns = query.get("columns", "").split(",")
                if not all(_IDENT.match(c) and "." not in c for c in columns):
                    self._reply(400, {"error": "columns must be names"})
                    return
                if url.path == "/insert/arrow":
                    client.raw_insert(table, columns, body, fmt="ArrowStream")
                elif url.path == "/insert/columns":
                    data = [_decode(col) for col in json.loads(body)]
                    client.insert(table, data, column_names=columns, column_oriented=True)
                else:
                    self._reply(404, {"error": "POST /describe, /insert/arrow or /insert/columns"})
                    return
            self._reply(200, {"ok": True})
        except ClickHouseError as exc:
            self._reply(400, {"error": str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                              "code": getattr(exc, "code", None)})
        except Exception as exc:  # a bug must not kill the owner's thread; the joiner retries or stops
            log.exception("insert server failed")
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})


class _InsertServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, token: str, client):
        super().__init__(address, _Handler)
        self.token, self.client = token, client
        self.lock = threading.Lock()  # one insert at a time on the owner's client


@dataclass
class InsertServer:
    port: int
    token: str
    path: Path
    _server: _InsertServer = field(repr=False)

    def close(self) -> None:
        from sinks.query_server import _remove_if_ours

        _remove_if_ours(self.path, self.token)
        self._server.shutdown()
        self._server.server_close()


def serve_inserts(dsn: str, data_dir, database: str = "hotspot", host: str = "127.0.0.1") -> InsertServer:
    """In the process that owns the embedded store: accept the other workers' inserts."""
    from core.datadir import write_private
    from sinks.query_server import _remove_if_ours

    token = secrets.token_urlsafe(32)
    server = _InsertServer((host, 0), token, make_client(dsn, database=database))
    threading.Thread(target=server.serve_forever, name="clickhouse-insert-server", daemon=True).start()
    port = server.server_address[1]
    path = inserts_path(data_dir)
    write_private(path, json.dumps({"pid": os.getpid(), "host": host, "port": port, "token": token,
                                     "started_ms": int(time.time() * 1000)}))
    atexit.register(_remove_if_ours, path, token)
    log.info("inserts of joining workers served on %s:%d (%s)", host, port, path)
    return InsertServer(port, token, path, server)


# --- the joiners' side --------------------------------------------------------------------
class _Result:
    def __init__(self, rows):
        self.result_rows = rows


class RemoteStore:
    """The part of a clickhouse-connect client the writer uses, carried out by the store's owner.

    Failing to reach the owner raises ConnectionError (an OSError): to the
    writer an outage, after which it reconnects (and may take the store over).
    """

    def __init__(self, data_dir, timeout_s: float = 300.0):
        path = inserts_path(data_dir)
        try:
            owner = json.loads(path.read_text())
            self.pid, self.port, self.token = int(owner["pid"]), int(owner["port"]), str(owner["token"])
            self.host = owner.get("host", "127.0.0.1")
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            raise ConnectionError(f"no owner of the store serves inserts yet ({path})") from None
        self.timeout_s = timeout_s

    def _post(self, path: str, params: dict, body: bytes) -> dict:
        from urllib.parse import urlencode

        request = urllib.request.Request(f"http://{self.host}:{self.port}{path}?{urlencode(params)}", data=body,
                                         method="POST", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                answer = json.loads(exc.read())
            except ValueError:
                answer = {}
            if exc.code == 400 and answer.get("code") is not None:
                error = DatabaseError(answer.get("error", "refused"))
                error.code = answer["code"]
                raise error from None
            raise ConnectionError(f"the store's owner (pid {self.pid}) answered {exc.code}: "
                                  f"{answer.get('error', '')}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ConnectionError(f"the store's owner (pid {self.pid}) is not reachable: {exc}") from None

    def query(self, sql: str, *args, **kwargs) -> _Result:
        prefix = "DESCRIBE TABLE "
        if not sql.startswith(prefix):
            raise NotImplementedError("a joined store answers DESCRIBE TABLE only")
        return _Result(self._post("/describe", {"table": sql[len(prefix):].strip()}, b"")["rows"])

    def raw_insert(self, table: str, column_names, insert_block, fmt: str = "ArrowStream") -> None:
        if fmt != "ArrowStream":
            raise NotImplementedError(fmt)
        self._post("/insert/arrow", {"table": table, "columns": ",".join(column_names)}, bytes(insert_block))

    def insert(self, table: str, data, column_names, column_oriented: bool = True) -> None:
        if not column_oriented:
            raise NotImplementedError("row-oriented inserts")
        body = json.dumps([[_encode(v) for v in col] for col in data]).encode()
        self._post("/insert/columns", {"table": table, "columns": ",".join(column_names)}, body)

    def close(self) -> None:
        pass


class JoinedStore:
    """The writer's client factory in a worker that joined another's store.

    Each call (the writer calls it after an outage) first tries to take the
    store over: the owner's lock is free only once the owner is gone.
    """

    def __init__(self, settings, lock_path: Path):
        self.settings = settings
        self.lock_path = lock_path
        self.owned = None  # (lock, query server, insert server) once this process took the store over

    def __call__(self):
        from core.datadir import Locked, RoleLock

        s = self.settings
        if self.owned is None:
            try:
                lock = RoleLock(self.lock_path).acquire()
            except Locked:
                return RemoteStore(s.data_dir)
            try:
                self.owned = self._take_over(lock)
            except BaseException:
                lock.release()  # let another joiner (or this one, next time) try
                raise
        return make_client(s.effective_clickhouse_dsn, s.clickhouse_database)

    def _take_over(self, lock):
        from sinks.clickhouse import migrate
        from sinks.retention import apply_retention_settings
        from sinks.query_server import serve_readonly_queries

        s = self.settings
        log.warning("the owner of %s is gone: this worker (pid %d) owns the store now", s.effective_clickhouse_dsn,
                    os.getpid())
        migrate(make_client(s.effective_clickhouse_dsn), s.clickhouse_database, s.pings_ttl_days)
        apply_retention_settings(s)  # as the first owner did at its start (issue 16)
        queries = serve_readonly_queries(s.effective_clickhouse_dsn, s.data_dir, s.clickhouse_database)
        inserts = serve_inserts(s.effective_clickhouse_dsn, s.data_dir, s.clickhouse_database)
        return lock, queries, inserts
