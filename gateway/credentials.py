"""Device and user credentials in `<data_dir>/credentials.sqlite3`.

Owns who may talk to the gateway. A secret is generated here with `secrets`,
shown once, and stored only as a salted scrypt hash. A secret has the shape
`<key id>.<random>`: the key id (`d...` for devices, `u...` for users) lets a
Bearer token be looked up without scanning every hash; the random part is what
is hashed. OwnTracks sends the same secret as its HTTP Basic password with the
device id as user name.

OsmAnd / Traccar Client carry nothing but a device identifier, so for a device
registered for OsmAnd (`hotspot devices add NAME --osmand`) that identifier is
the secret: 192 random bits, URL-safe, shown once. It is stored only as its
SHA-256, which is also the lookup key (one dict lookup per ping; a salted slow
hash is not needed for a random value of that length and would make every
ping cost scrypt). Pings are stored under the device's registered name, never
under the identifier. Such a device gets no usable Bearer secret: it speaks
OsmAnd only.

scrypt costs tens of milliseconds on purpose, far too slow for every ping, so
a process remembers the secrets it has verified (keyed by a SHA-256 of the
secret) until the database changes. Revocation from the CLI bumps SQLite's
`data_version`, which the gateway checks at most every `refresh_s`, so a
revoked credential stops working within that delay.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROLES = ("officer", "supervisor", "analyst", "admin")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
FILE_NAME = "credentials.sqlite3"

# scrypt cost: n=2^14, r=8 uses 16 MiB and ~50 ms per check on a laptop core.
_SCRYPT = dict(n=2 ** 14, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS principals (
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('device', 'user')),
    role        TEXT,
    key_id      TEXT NOT NULL UNIQUE,
    salt        BLOB NOT NULL,
    hash        BLOB NOT NULL,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER,
    PRIMARY KEY (kind, name)
);
"""

# Migrations of the file, by PRAGMA user_version. 1: the OsmAnd identifier's SHA-256
# (NULL for devices registered before it, which keep their Bearer/Basic secret).
_MIGRATIONS = (
    (1, ("ALTER TABLE principals ADD COLUMN osmand_sha256 BLOB",
         "CREATE UNIQUE INDEX IF NOT EXISTS principals_osmand ON principals (osmand_sha256) "
         "WHERE osmand_sha256 IS NOT NULL")),
)
OSMAND_ID_BYTES = 24  # 192 bits


class CredentialError(Exception):
    """A credential operation the caller asked for cannot be done (duplicate name, unknown name, bad role)."""


@dataclass(frozen=True)
class Principal:
    name: str
    kind: str  # "device" | "user"
    role: str | None
    key_id: str
    revoked: bool
    created_ms: int
    osmand: bool = False  # registered for OsmAnd: its secret is its OsmAnd identifier

    @property
    def device_id(self) -> str:
        return self.name


@dataclass(frozen=True)
class _Row:
    principal: Principal
    salt: bytes
    hash: bytes


def _hash(secret_part: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret_part.encode(), salt=salt, **_SCRYPT)


def osmand_digest(identifier: str) -> bytes:
    return hashlib.sha256(identifier.encode("utf-8", "surrogatepass")).digest()


def path_in(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


class CredentialStore:
    """Read-mostly view of the credentials database, shared by all requests of a process."""

    def __init__(self, path: Path, *, refresh_s: float = 1.0):
        self.path = Path(path)
        self.refresh_s = refresh_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._migrate()
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = 0.0
        self._by_key: dict[str, _Row] = {}
        self._by_name: dict[tuple[str, str], _Row] = {}
        self._by_osmand: dict[bytes, _Row] = {}
        self._verified: dict[bytes, Principal] = {}
        self._reload()

    def close(self) -> None:
        self._conn.close()

    def _migrate(self) -> None:
        for number, statements in _MIGRATIONS:
            if self._conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                continue
            # The version is read again under the write lock: another process may have migrated meanwhile.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute("PRAGMA user_version").fetchone()[0] < number:
                    for statement in statements:
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # ---- administration (CLI) -------------------------------------------------
    def add(self, name: str, kind: str, role: str | None = None, *, osmand: bool = False) -> tuple[Principal, str]:
        """Create a credential; returns it and its secret (the only time the secret exists in clear).

        `osmand=True` (devices only): the secret returned is the device's OsmAnd identifier.
        """
        if osmand and kind != "device":
            raise CredentialError("only devices speak OsmAnd")
        if not NAME_RE.match(name):
            raise CredentialError(f"invalid name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
        if kind == "user" and role not in ROLES:
            raise CredentialError(f"role must be one of {', '.join(ROLES)}")
        key_id = kind[0] + secrets.token_hex(6)
        random_part = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        identifier = secrets.token_urlsafe(OSMAND_ID_BYTES) if osmand else None
        now = int(time.time() * 1000)
        with self._lock:
            existing = self._conn.execute("SELECT revoked_ms FROM principals WHERE kind=? AND name=?", (kind, name)).fetchone()
            if existing is not None and existing[0] is None:
                raise CredentialError(f"{kind} {name!r} already exists; revoke it first to issue a new secret")
            self._conn.execute("DELETE FROM principals WHERE kind=? AND name=?", (kind, name))
            self._conn.execute("INSERT INTO principals (name, kind, role, key_id, salt, hash, created_ms, revoked_ms, "
                               "osmand_sha256) VALUES (?,?,?,?,?,?,?,NULL,?)",
                               (name, kind, role, key_id, salt, _hash(random_part, salt), now,
                                None if identifier is None else osmand_digest(identifier)))
            self._version = -1  # our own writes do not change data_version for this connection
        self._reload()
        if identifier is not None:
            return self._by_name[(kind, name)].principal, identifier  # the Bearer secret is never shown
        return self._by_name[(kind, name)].principal, f"{key_id}.{random_part}"

    def revoke(self, name: str, kind: str) -> None:
        with self._lock:
            cur = self._conn.execute("UPDATE principals SET revoked_ms=? WHERE kind=? AND name=? AND revoked_ms IS NULL",
                                     (int(time.time() * 1000), kind, name))
            if cur.rowcount == 0:
                raise CredentialError(f"no active {kind} named {name!r}")
            self._version = -1
        self._reload()

    def list(self, kind: str) -> list[Principal]:
        self._maybe_reload(force=True)
        return sorted((r.principal for (k, _), r in self._by_name.items() if k == kind), key=lambda p: p.name)

    # ---- checks (gateway) ------------------------------------------------------
    def _reload(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._version:
                return
            rows = self._conn.execute("SELECT name, kind, role, key_id, salt, hash, created_ms, revoked_ms, "
                                      "osmand_sha256 FROM principals").fetchall()
            by_key, by_name, by_osmand = {}, {}, {}
            for name, kind, role, key_id, salt, h, created, revoked, osmand in rows:
                row = _Row(Principal(name, kind, role, key_id, revoked is not None, created, osmand is not None), salt, h)
                by_key[key_id] = row
                by_name[(kind, name)] = row
                if osmand is not None:
                    by_osmand[bytes(osmand)] = row
            # Keep verified secrets of credentials still active: re-hashing every
            # device after each `devices add` elsewhere would stall the gateway.
            verified = {}
            for digest, p in self._verified.items():
                row = by_key.get(p.key_id)
                if row is not None and not row.principal.revoked:
                    verified[digest] = row.principal
            self._by_key, self._by_name, self._by_osmand, self._version = by_key, by_name, by_osmand, version
            self._verified = verified

    def _maybe_reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._checked_at >= self.refresh_s:
            self._checked_at = now
            self._reload()

    def osmand_device(self, identifier: str) -> Principal | None:
        """The active device whose OsmAnd identifier this is, or None (unknown and revoked alike).

        One SHA-256 and one dict lookup whatever the answer, so the time taken
        says nothing about which identifiers exist.
        """
        self._maybe_reload()
        row = self._by_osmand.get(osmand_digest(identifier))
        if row is None or row.principal.revoked:
            return None
        return row.principal

    def cached(self, secret: str, name: str | None = None) -> Principal | None:
        """The principal for an already-verified secret, without hashing; None if not verified yet."""
        self._maybe_reload()
        p = self._verified.get(hashlib.sha256(secret.encode()).digest())
        if p is None or (name is not None and p.name != name):
            return None
        return p

    def user(self, name: str) -> Principal | None:
        """The user named `name` (revoked ones too), or None; for checks made on every request (sessions)."""
        self._maybe_reload()
        row = self._by_name.get(("user", name))
        return None if row is None else row.principal

    def device(self, name: str) -> Principal | None:
        self._maybe_reload()
        row = self._by_name.get(("device", name))
        return None if row is None else row.principal

    def verify_user(self, name: str, secret: str) -> Principal | None:
        """Sign-in: the active user `name` if `secret` is theirs, else None.

        Does one scrypt whatever the outcome (an unknown name or key id is hashed against a
        dummy salt), so the time taken does not tell an unknown name from a wrong secret.
        Call it off the event loop.
        """
        self._maybe_reload()
        key_id, _, random_part = secret.partition(".")
        row = self._by_key.get(key_id)
        if row is None or row.principal.kind != "user" or row.principal.name != name or row.principal.revoked:
            _hash(random_part or secret, b"\0" * 16)
            return None
        if not hmac.compare_digest(_hash(random_part, row.salt), row.hash):
            return None
        return row.principal

    def verify(self, secret: str, name: str | None = None) -> Principal | None:
        """The active principal whose secret this is (and whose name is `name`, if given), else None.

        Runs scrypt on a cache miss: call it off the event loop.
        """
        self._maybe_reload()
        digest = hashlib.sha256(secret.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            return hit if name is None or hit.name == name else None
        key_id, sep, random_part = secret.partition(".")
        row = self._by_key.get(key_id) if sep else None
        if row is None or row.principal.revoked:
            return None
        if name is not None and row.principal.name != name:
            return None
        if not hmac.compare_digest(_hash(random_part, row.salt), row.hash):
            return None
        self._verified[digest] = row.principal
        return row.principal
