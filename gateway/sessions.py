"""Users' sessions: signed tokens, their server-side record, sign-out and revocation.

Owns what a session is. A token is `<payload>.<mac>`: the payload (base64url
JSON: session id, user, expiry) signed with HMAC-SHA256 under the secret key
(`HOTSPOT_SECRET_KEY`), so a forged or altered token fails before anything is
looked up. A valid signature is not enough: every session is also a row of
`<data_dir>/sessions.sqlite3`, and one that was signed out (or whose row is
gone) is refused. Every gateway process on the data directory reads that
file, reloading it when SQLite's `data_version` says another process wrote
(checked at most every `refresh_s`), so a sign-out on one instance stops the
session on all of them within that delay. Revoking the user's credential
(`hotspot users revoke`, or a new credential with another role) ends their
sessions through the credential check in `gateway.auth`.

The CSRF token of a session is derived from it (HMAC of the session id under
another label), so it needs no storage and is the same on every instance.

Keys: `load_secret_key` refuses an empty or placeholder key outside
development; in development it makes a random key once and keeps it 0600 in
the data directory, so sessions survive a restart.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "sessions.sqlite3"
KEY_FILE = "session.key"
MIN_KEY_CHARS = 32
# Values people leave in config files; none of them is a secret.
_PLACEHOLDERS = ("change-me", "changeme", "change_me", "placeholder", "secret", "password", "example", "xxx",
                 "todo", "default", "dev", "test")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id  TEXT PRIMARY KEY,
    user        TEXT NOT NULL,
    role        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
"""


class SecretKeyError(Exception):
    """The secret key is missing or a placeholder where a real one is required."""


@dataclass(frozen=True)
class SessionUser:
    """Who a request is from: what route dependencies resolve to."""

    name: str
    role: str
    device_id: str | None  # officers only: "app-" + name
    session_id: str


@dataclass(frozen=True)
class Session:
    session_id: str
    user: str
    role: str
    key_id: str   # of the credential signed in with: a new credential (another role) ends the session
    created_ms: int
    expires_ms: int


def is_placeholder(key: str) -> bool:
    lowered = key.strip().lower()
    return len(lowered) < MIN_KEY_CHARS or any(p in lowered for p in _PLACEHOLDERS[:4]) or lowered in _PLACEHOLDERS


def load_secret_key(configured: str, environment: str, data_dir: Path) -> bytes:
    """The key sessions are signed with.

    A configured key of at least MIN_KEY_CHARS that is not a placeholder is used as is. Otherwise:
    in production SecretKeyError; in development the random key of `<data_dir>/session.key`
    (made 0600 on first use).
    """
    if configured and not is_placeholder(configured):
        return configured.encode()
    if environment != "development":
        what = "empty" if not configured else "a placeholder (or shorter than 32 characters)"
        raise SecretKeyError(f"HOTSPOT_SECRET_KEY is {what}: set a random value of at least {MIN_KEY_CHARS} characters "
                             "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`), or run with "
                             "HOTSPOT_ENVIRONMENT=development")
    if configured:
        log.warning("HOTSPOT_SECRET_KEY looks like a placeholder; development: using the data directory's own key")
    path = Path(data_dir) / KEY_FILE
    Path(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) >= MIN_KEY_CHARS:
            return key.encode()
        raise SecretKeyError(f"{path} holds no usable key: remove it to have a new one made") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionStore:
    """Issues and checks session tokens; the sessions table is shared by every process on the data directory."""

    def __init__(self, path: Path, key: bytes, *, ttl_s: float = 12 * 3600, refresh_s: float = 1.0, clock=time.time):
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.refresh_s = refresh_s
        self.clock = clock
        self._mac_key = hmac.new(key, b"hotspot-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(key, b"hotspot-csrf", hashlib.sha256).digest()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not self.path.exists()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        if fresh:
            os.chmod(self.path, 0o600)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = float("-inf")
        self._sessions: dict[str, Session] = {}
        self._reload()

    def close(self) -> None:
        self._conn.close()

    # ---- tokens ---------------------------------------------------------------
    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._mac_key, payload.encode(), hashlib.sha256).digest())

    def csrf_token(self, session_id: str) -> str:
        return _b64(hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session_id), token)

    def issue(self, user: str, role: str, key_id: str) -> tuple[str, Session]:
        """A new session for a verified user: (token, session)."""
        now_ms = int(self.clock() * 1000)
        session = Session(secrets.token_urlsafe(18), user, role, key_id, now_ms, now_ms + int(self.ttl_s * 1000))
        with self._lock:
            # Expired rows carry nothing but history: dropped as new ones come.
            self._conn.execute("DELETE FROM sessions WHERE expires_ms < ?", (now_ms - 86_400_000,))
            self._conn.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,NULL)",
                               (session.session_id, user, role, key_id, session.created_ms, session.expires_ms))
            self._sessions[session.session_id] = session
        payload = _b64(json.dumps({"s": session.session_id, "u": user, "e": session.expires_ms},
                                  separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}", session

    def check(self, token: str | None) -> Session | None:
        """The live session of `token`, or None (forged, altered, expired, signed out, revoked)."""
        if not token or token.count(".") != 1 or len(token) > 512:
            return None
        payload, mac = token.split(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            return None
        try:
            claims = json.loads(_unb64(payload))
            sid, expires_ms = str(claims["s"]), int(claims["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires_ms <= self.clock() * 1000:
            return None
        self._maybe_reload()
        session = self._sessions.get(sid)
        if session is None:
            # Issued by another process since our last look: look once more before refusing.
            self._maybe_reload(force=True)
            session = self._sessions.get(sid)
        return session

    def revoke(self, session_id: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE sessions SET revoked_ms=? WHERE session_id=? AND revoked_ms IS NULL",
                               (int(self.clock() * 1000), session_id))
            self._sessions.pop(session_id, None)

    def revoke_user(self, user: str) -> int:
        """End every session of `user`; returns how many were live."""
        with self._lock:
            cur = self._conn.execute("UPDATE sessions SET revoked_ms=? WHERE user=? AND revoked_ms IS NULL",
                                     (int(self.clock() * 1000), user))
            for sid in [s for s, v in self._sessions.items() if v.user == user]:
                del self._sessions[sid]
            return cur.rowcount

    # ---- the shared table -------------------------------------------------------
    def _reload(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._version:
                return
            now_ms = int(self.clock() * 1000)
            rows = self._conn.execute("SELECT session_id, user, role, key_id, created_ms, expires_ms FROM sessions "
                                      "WHERE revoked_ms IS NULL AND expires_ms > ?", (now_ms,)).fetchall()
            self._sessions = {r[0]: Session(*r) for r in rows}
            self._version = version

    def _maybe_reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._checked_at >= self.refresh_s:
            self._checked_at = now
            self._reload()
