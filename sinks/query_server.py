"""Read-only queries into an embedded store that another process owns.

Only one process may open an embedded (chDB) store, and while the worker or
`hotspot run` owns it, `hotspot sql` cannot. So the owning process calls
`serve_readonly_queries(dsn, data_dir)`: a small HTTP server on 127.0.0.1, on
a free port, in a daemon thread, answering

    POST /query   Authorization: Bearer <token>
                  {"sql": "SELECT ...", "format": "json"}

Each request is checked and run by sinks/sql_guard.py on a chDB handle of its
own, opened with readonly=1 and the `sql_max_*` limits as session settings:
one read-only statement, nothing shared with another request. The query runs
in a thread of its own while the request's thread watches the client's
socket; if the client goes away first, the query is killed (KILL QUERY by its
`log_comment` tag, from the owner's own handle), so an abandoned query does
not hold the engine until `sql_max_execution_time_s` cuts it.
"json" answers {"columns": [...], "types": [...], "rows": [[...], ...]}
(values JSON can't carry, such as dates, as their str()); any other ClickHouse
output format name (CSVWithNames, JSONEachRow, ...) answers that format as text.
A refused query or a ClickHouse error answers 400 {"error": "<one line>"}, a
missing or wrong token 401.

Where to find it: `<data_dir>/clickhouse.owner`, JSON {pid, host, port, token,
store, database, started_ms}, mode 0600 so only the same OS user (who could
read the store's files anyway) learns the token, written atomically and
removed on close(). `query_owner()` is the other side, used by `hotspot sql`;
a file left behind by a killed process is recognised as stale (its pid is gone
or nothing answers on its port).
"""
from __future__ import annotations

import atexit
import errno
import hmac
import json
import logging
import os
import re
import secrets
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from core.datadir import write_private
from sinks.clickhouse import is_embedded, make_client, mask_dsn
from sinks.sql_guard import (QueryFailed, QueryNotAllowed, ReadonlyLimits, new_tag, run_readonly_query,
                             run_readonly_raw)

log = logging.getLogger(__name__)

OWNER_FILE = "clickhouse.owner"
MAX_REQUEST_BYTES = 1 << 20
WATCH_INTERVAL_S = 0.2  # how often a running query's client is checked for having gone away
_FORMAT = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def owner_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / OWNER_FILE


def store_of(dsn: str) -> str:
    """What the owner file names as the store: the chDB path, or the masked server DSN."""
    if is_embedded(dsn):
        return str(Path(urlsplit(dsn).path).resolve())
    return mask_dsn(dsn)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # queries may name devices: keep them out of the log
        log.debug("query server: " + fmt, *args)

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, json.dumps({"error": message}).encode())

    def do_GET(self):
        self._error(405, "use POST /query")

    def do_POST(self):
        if self.path != "/query":
            self._error(404, "unknown path; use POST /query")
            return
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            self._error(401, "missing or wrong token")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_REQUEST_BYTES:
            self._error(400, f"body must be JSON of at most {MAX_REQUEST_BYTES} bytes")
            return
        try:
            request = json.loads(self.rfile.read(length))
            sql = request["sql"]
            fmt = request.get("format", "json")
            if not isinstance(sql, str) or not isinstance(fmt, str) or not (fmt == "json" or _FORMAT.match(fmt)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self._error(400, 'body must be {"sql": "...", "format": "json" or a ClickHouse format name}')
            return
        tag, cancelled, outcome = new_tag(), threading.Event(), {}

        def run() -> None:
            try:
                if fmt == "json":
                    r = run_readonly_query(self.server.dsn, self.server.database, sql, self.server.limits, tag, cancelled)
                    outcome["reply"] = (json.dumps({"columns": r.columns, "types": r.types, "rows": r.rows},
                                                   default=str).encode(), "application/json")
                else:
                    body = run_readonly_raw(self.server.dsn, self.server.database, sql, fmt, self.server.limits,
                                            tag, cancelled)
                    outcome["reply"] = (body, "text/plain; charset=utf-8")
            except BaseException as exc:  # handed to the request's thread
                outcome["error"] = exc

        worker = threading.Thread(target=run, name="query-server-query", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(WATCH_INTERVAL_S)
            if worker.is_alive() and _client_gone(self.connection):
                cancelled.set()
                while worker.is_alive():  # the statement may not be in system.processes yet: kill until it ends
                    self.server.kill(tag)
                    worker.join(WATCH_INTERVAL_S)
                log.info("query server: the client went away; its query was cancelled")
                self.close_connection = True
                return
        error = outcome.get("error")
        if isinstance(error, (QueryNotAllowed, QueryFailed)):
            self._error(400, str(error))
        elif error is not None:  # a bug here must not kill the owner's server thread
            log.error("query server failed on a query", exc_info=error)
            self._error(500, _first_line(error))
        else:
            self._reply(200, *outcome["reply"])


def _client_gone(conn: socket.socket) -> bool:
    """Whether the peer closed its end: hung up, or readable with nothing to read (poll: the owner may hold
    more than select()'s 1,024 descriptors)."""
    try:
        poller = select.poll()
        poller.register(conn, select.POLLIN | select.POLLRDHUP)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLRDHUP | select.POLLNVAL):
            return True
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections when a few analysts' scripts ask at once

    def __init__(self, address, token: str, dsn: str, database: str, limits: ReadonlyLimits, control):
        super().__init__(address, _Handler)
        self.token = token
        self.dsn = dsn
        self.database = database
        self.limits = limits
        self._control = control  # the owner's own handle: only ever runs KILL QUERY for a tag we made
        self._control_lock = threading.Lock()

    def kill(self, tag: str) -> None:
        with self._control_lock:
            try:
                self._control.command("KILL QUERY WHERE Settings['log_comment'] = {tag:String} ASYNC",
                                      parameters={"tag": tag})
            except Exception:
                log.warning("query server: could not kill an abandoned query", exc_info=True)


@dataclass
class QueryServer:
    """A running read-only query server; close() stops it and removes the owner file."""

    host: str
    port: int
    token: str
    owner_file: Path
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/query"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _remove_if_ours(self.owner_file, self.token)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        try:
            self._server._control.close()
        except Exception:
            log.debug("closing the query server's control client", exc_info=True)

    def __enter__(self) -> QueryServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remove_if_ours(path: Path, token: str) -> None:
    """Remove the owner file unless it now belongs to someone else."""
    try:
        if json.loads(path.read_text()).get("token") == token:
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def serve_readonly_queries(dsn: str, data_dir: str | os.PathLike[str], database: str = "hotspot",
                           host: str = "127.0.0.1", limits: ReadonlyLimits | None = None) -> QueryServer:
    """Start answering read-only queries for `hotspot sql`; call in the process that owns the store.

    `limits`: per query; default the `sql_max_*` settings in force.
    """
    if limits is None:
        from core.settings import get_settings

        limits = ReadonlyLimits.from_settings(get_settings())
    control = make_client(dsn)
    token = secrets.token_urlsafe(32)
    server = _Server((host, 0), token, dsn, database, limits, control)
    thread = threading.Thread(target=server.serve_forever, name="clickhouse-query-server", daemon=True)
    thread.start()
    port = server.server_address[1]
    path = owner_path(data_dir)
    write_private(path, json.dumps({"pid": os.getpid(), "host": host, "port": port, "token": token,
                                     "store": store_of(dsn), "database": database,
                                     "started_ms": int(time.time() * 1000)}))
    qs = QueryServer(host, port, token, path, server, thread)
    atexit.register(_remove_if_ours, path, token)
    log.info("read-only queries for %s served on %s:%d (owner file %s)", store_of(dsn), host, port, path)
    return qs


# --------------------------------------------------------------------- client side
class OwnerUnavailable(Exception):
    """No live owner answers for the store: no owner file, a stale one, or a refused token."""


class QueryRefused(Exception):
    """The owner ran the query and ClickHouse refused it (message: ClickHouse's first line)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_owner(data_dir: str | os.PathLike[str], dsn: str | None = None) -> dict:
    """The owner file's contents, checked: present, readable, for this store, its process alive."""
    path = owner_path(data_dir)
    try:
        owner = json.loads(path.read_text())
        pid, port, token = int(owner["pid"]), int(owner["port"]), str(owner["token"])
    except FileNotFoundError:
        raise OwnerUnavailable(f"the owning process does not serve queries (no {path})") from None
    except (ValueError, KeyError, TypeError):
        raise OwnerUnavailable(f"{path} is not a valid owner file") from None
    except PermissionError:
        raise OwnerUnavailable(f"{path} is not readable by this user") from None
    if dsn is not None and owner.get("store") not in (None, store_of(dsn)):
        raise OwnerUnavailable(f"{path} is for the store {owner.get('store')}, not {store_of(dsn)}")
    if not _pid_alive(pid):
        raise OwnerUnavailable(f"{path} is stale: process {pid} is not running")
    return {**owner, "pid": pid, "port": port, "token": token}


def query_owner(data_dir: str | os.PathLike[str], sql: str, dsn: str | None = None,
                timeout_s: float = 300.0) -> tuple[list[str], list[list]]:
    """Run `sql` through the owning process; return (column names, rows)."""
    owner = read_owner(data_dir, dsn)
    url = f"http://{owner.get('host', '127.0.0.1')}:{owner['port']}/query"
    request = urllib.request.Request(url, method="POST", data=json.dumps({"sql": sql, "format": "json"}).encode(),
                                     headers={"Authorization": f"Bearer {owner['token']}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", "")
        except ValueError:
            message = ""
        if exc.code == 400:
            raise QueryRefused(message or "the query was refused") from None
        if exc.code == 401:
            raise OwnerUnavailable(f"process {owner['pid']} refused the token in {owner_path(data_dir)}") from None
        raise OwnerUnavailable(f"process {owner['pid']} answered {exc.code}: {message}") from None
    except TimeoutError:
        raise OwnerUnavailable(f"process {owner['pid']} did not answer within {timeout_s:g}s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError) or getattr(reason, "errno", None) == errno.ECONNREFUSED:
            raise OwnerUnavailable(f"{owner_path(data_dir)} is stale: nothing answers on port {owner['port']}") from None
        raise OwnerUnavailable(f"cannot reach process {owner['pid']} on port {owner['port']}: {reason}") from None
    return answer["columns"], answer["rows"]
