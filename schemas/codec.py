"""The one Avro codec of Hotspot Patrol: schemas in, framed bytes out, and back.

Owns how a message names its writer schema. Every value on a Kafka topic is
framed so a reader can find the schema it was written with:

* Avro single-object encoding (the default): ``C3 01`` + the 8-byte
  little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing
  Canonical Form + the Avro binary body. No registry service is needed; a
  reader resolves the fingerprint against the writer schemas it knows: the
  current ``schemas/*.avsc`` files and every published version kept in
  ``schemas/history/``.
* Confluent wire format when a schema registry is configured: ``00`` + 4-byte
  big-endian schema id + body. Writers register their schema under the
  subject ``<topic>-value``; readers fetch unknown ids from the registry.

Decoding accepts both framings whatever the writer side uses, so a deployment
can switch to a registry without draining topics.

Timestamps are ``timestamp-millis`` in the .avsc files (for other languages and
tools) but this codec reads and writes them as plain ints (epoch ms): the
logical types are stripped from the schemas it hands to fastavro. That keeps
the hot path free of datetime objects and does not change fingerprints, which
are computed on the canonical form (logical types are not part of it).
"""
from __future__ import annotations

import io
import json
import struct
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent
HISTORY_DIR = SCHEMA_DIR / "history"
NAMESPACE = "org.hotspotpatrol"

# Load order matters only for named types used by other files (RejectedPing uses Ping).
SCHEMA_NAMES = ("Ping", "Hotspot", "PatrolEvent", "RejectedPing", "Assignment", "Activity", "Allocation", "Audit")

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SO_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CF_HEADER = 5


class CodecError(Exception):
    """Root of the codec's errors."""


class UnknownSchemaError(CodecError):
    """The message names a writer schema this process does not know."""


class CorruptMessageError(CodecError):
    """The bytes are not a framed Avro message of the expected schema."""


class IncompatibleSchemaError(CodecError):
    """A writer schema cannot be read with the reader schema."""


# --------------------------------------------------------------------------- schemas

def _strip_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


def _read_json(path: Path) -> dict:
    with open(path, "rb") as fh:
        return json.load(fh)


def _expanded(schema: dict, named: dict[str, Any]) -> dict:
    """The schema with references to other files' named types written out in full."""
    return parse_schema(schema, named_schemas=dict(named), expand=True, _write_hint=False)


@lru_cache(maxsize=1)
def _current_library() -> dict[str, dict]:
    """Short name -> self-contained JSON schema of the current version."""
    named: dict[str, Any] = {}
    out: dict[str, dict] = {}
    for name in SCHEMA_NAMES:
        raw = _read_json(SCHEMA_DIR / f"{name}.avsc")
        out[name] = _expanded(raw, named)
        parse_schema(raw, named_schemas=named)  # make its named types visible to later files
    return out


def schema_json(name: str) -> dict:
    """The current schema `name` (e.g. "Ping") as self-contained JSON."""
    try:
        return _current_library()[name]
    except KeyError:
        raise CodecError(f"no schema named {name!r}; known: {', '.join(SCHEMA_NAMES)}") from None


def canonical_form(schema: dict) -> str:
    return to_parsing_canonical_form(parse_schema(schema, _write_hint=False))


def fingerprint(schema: dict) -> bytes:
    """8-byte CRC-64-AVRO fingerprint of the schema's canonical form, little-endian (as framed)."""
    return bytes.fromhex(_avro_fingerprint(canonical_form(schema), "CRC-64-AVRO"))


def full_name(schema: dict) -> str:
    name = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace")
    return f"{ns}.{name}" if ns else name


@dataclass(frozen=True)
class KnownSchema:
    full_name: str
    fingerprint: bytes
    json: dict
    parsed: Any  # fastavro-parsed, logical types stripped
    origin: str  # file it came from, for error messages


def _parse_for_io(schema: dict) -> Any:
    # The write hint marks the result as parsed; without it fastavro re-parses on every call.
    return parse_schema(_strip_logical_types(schema))


class SchemaStore:
    """Every writer schema this process can read, by fingerprint.

    Built from the current files plus the history directory, where each
    published version is kept as ``<Name>.v<N>.avsc`` (self-contained, named
    types written out). Registering the same schema twice is harmless.
    """

    def __init__(self, history_dirs: Iterable[Path] = (HISTORY_DIR,), *, include_current: bool = True):
        self._by_fp: dict[bytes, KnownSchema] = {}
        self._lock = threading.Lock()
        if include_current:
            for name, schema in _current_library().items():
                self.add(schema, origin=f"schemas/{name}.avsc")
        for d in history_dirs:
            d = Path(d)
            if d.is_dir():
                for path in sorted(d.glob("*.avsc")):
                    self.add(_read_json(path), origin=str(path))

    def add(self, schema: dict, origin: str = "runtime") -> KnownSchema:
        fp = fingerprint(schema)
        with self._lock:
            known = self._by_fp.get(fp)
            if known is None:
                known = KnownSchema(full_name(schema), fp, schema, _parse_for_io(schema), origin)
                self._by_fp[fp] = known
            return known

    def get(self, fp: bytes) -> KnownSchema:
        try:
            return self._by_fp[fp]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown writer schema fingerprint {fp.hex()}: not among the {len(self._by_fp)} schemas "
                f"in schemas/ and schemas/history/ (a newer producer? add its .avsc to schemas/history/)") from None

    def versions(self, full: str) -> list[KnownSchema]:
        return [k for k in self._by_fp.values() if k.full_name == full]

    def __len__(self) -> int:
        return len(self._by_fp)


@lru_cache(maxsize=1)
def default_store() -> SchemaStore:
    return SchemaStore()


# --------------------------------------------------------------------------- registry

class SchemaRegistry(Protocol):
    """What the Confluent framing needs from a schema registry."""

    def register(self, subject: str, schema: dict) -> int: ...

    def schema_by_id(self, schema_id: int) -> dict: ...


class InMemorySchemaRegistry:
    """A registry kept in this process: for development, tests and tools that only read back what they wrote."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, dict] = {}

    def register(self, subject: str, schema: dict) -> int:
        key = canonical_form(schema)
        if key not in self._ids:
            new_id = len(self._schemas) + 1
            self._ids[key] = new_id
            self._schemas[new_id] = schema
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> dict:
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise UnknownSchemaError(f"schema id {schema_id} is not in the registry") from None


class HttpSchemaRegistry:
    """Client of a Confluent-compatible schema registry (REST), with caches.

    Calls are synchronous and happen once per schema and process: writers at
    their first encode, readers at the first message of an unseen id.
    """

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict] = {}

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/vnd.schemaregistry.v1+json",
                                              "Accept": "application/vnd.schemaregistry.v1+json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            if exc.code == 404:
                raise UnknownSchemaError(f"schema registry {self.url}{path}: not found ({detail})") from None
            raise CodecError(f"schema registry {self.url}{path}: HTTP {exc.code} ({detail})") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CodecError(f"schema registry {self.url} unreachable: {exc}") from None

    def register(self, subject: str, schema: dict) -> int:
        key = (subject, canonical_form(schema))
        if key not in self._ids:
            answer = self._call("POST", f"/subjects/{subject}/versions", {"schema": json.dumps(schema)})
            self._ids[key] = int(answer["id"])
            self._schemas[self._ids[key]] = schema
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> dict:
        if schema_id not in self._schemas:
            answer = self._call("GET", f"/schemas/ids/{schema_id}")
            self._schemas[schema_id] = json.loads(answer["schema"])
        return self._schemas[schema_id]


# --------------------------------------------------------------------------- fast encoders

def _zigzag_varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _SMALL[n]
    if n >> 64:
        raise OverflowError("integer out of the 64-bit range of an Avro long")
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes([i]) for i in range(0x80)]
_PACK_DOUBLE = struct.Struct("<d").pack
_PACK_FLOAT = struct.Struct("<f").pack


def _int32(n: int) -> bytes:
    if not -0x80000000 <= n <= 0x7FFFFFFF:
        raise OverflowError("integer out of the 32-bit range of an Avro int")
    return _zigzag_varint(n)


def _str_bytes(value: str) -> bytes:
    b = value.encode()
    return _zigzag_varint(len(b)) + b


def _compile_encoder(schema: dict):
    """A function record -> Avro body for flat records, generated from the schema; None if it has other shapes.

    fastavro's writer is generic and spends ~5 us per Ping walking the schema;
    straight-line code for a flat record (primitives, nullable primitives,
    enums, maps of strings) does the same job in about half. The result is
    checked against fastavro in tests; anything the generator does not handle
    falls back to fastavro.
    """
    if schema.get("type") != "record":
        return None
    lines, env = [], {"V": _zigzag_varint, "I": _int32, "D": _PACK_DOUBLE, "F": _PACK_FLOAT, "S": _str_bytes, "N": b"\x00",
                      "ONE": b"\x02", "T": b"\x01", "FALSE": b"\x00"}

    def prim(t: str, expr: str) -> str | None:
        return {"string": f"S({expr})", "long": f"V({expr})", "int": f"I({expr})", "double": f"D({expr})",
                "float": f"F({expr})", "boolean": f"(T if {expr} else FALSE)",
                "bytes": f"V(len({expr})) + {expr}"}.get(t)

    def plain(t):  # {"type": "long"} (what a logical type leaves once stripped) is just "long"
        if isinstance(t, dict) and t.get("type") in _PRIMITIVES:
            return t["type"]
        if isinstance(t, list):
            return [plain(b) for b in t]
        return t

    for i, field in enumerate(schema["fields"]):
        t = plain(field["type"])
        expr = f"r[{field['name']!r}]"
        if isinstance(t, str):
            code = prim(t, expr)
            if code is None:
                return None
            lines.append(f"    a({code})")
        elif isinstance(t, list) and len(t) == 2 and t[0] == "null" and isinstance(t[1], str) and prim(t[1], "x"):
            lines.append(f"    x = {expr}")
            lines.append(f"    a(N if x is None else ONE + {prim(t[1], 'x')})")
        elif isinstance(t, dict) and t.get("type") == "enum":
            env[f"E{i}"] = {sym: _zigzag_varint(j) for j, sym in enumerate(t["symbols"])}
            lines.append(f"    a(E{i}[{expr}])")
        elif isinstance(t, dict) and t.get("type") == "map" and t.get("values") == "string":
            lines.append(f"    m = {expr}")
            lines.append("    if m:")
            lines.append("        a(V(len(m)))")
            lines.append("        for k, v in m.items():")
            lines.append("            a(S(k)); a(S(v))")
            lines.append("    a(N)")
        else:
            return None
    source = "def encode(r):\n    out = []\n    a = out.append\n" + "\n".join(lines) + "\n    return b''.join(out)\n"
    exec(compile(source, f"<avro encoder {schema.get('name')}>", "exec"), env)
    return env["encode"]


# --------------------------------------------------------------------------- codec

class Codec:
    """Encode records of one schema; decode any known version of it into the current shape.

    >>> ping = Codec("Ping")
    >>> ping.decode(ping.encode(record)) == record
    """

    def __init__(self, name: str, *, store: SchemaStore | None = None,
                 registry: SchemaRegistry | None = None, subject: str | None = None,
                 reader_schema: dict | None = None):
        self.name = name
        self.store = store or default_store()
        self.registry = registry
        self.subject = subject or f"{name}-value"
        schema = reader_schema if reader_schema is not None else schema_json(name)
        self.schema = schema
        self.full_name = full_name(schema)
        self._known = self.store.add(schema, origin=f"reader {name}")
        self._parsed = self._known.parsed
        self.fingerprint = self._known.fingerprint
        self._so_header = SINGLE_OBJECT_MAGIC + self.fingerprint
        self._cf_header: bytes | None = None
        # Resolution is checked once per writer schema, then remembered.
        self._readers: dict[bytes, Any] = {self.fingerprint: None}
        self._registry_writers: dict[int, tuple[Any, Any]] = {}
        self._fast = _compile_encoder(_strip_logical_types(schema))

    # ---- writing
    def _header(self) -> bytes:
        if self.registry is None:
            return self._so_header
        if self._cf_header is None:
            schema_id = self.registry.register(self.subject, self.schema)
            self._cf_header = CONFLUENT_MAGIC + struct.pack(">I", schema_id)
        return self._cf_header

    def encode(self, record: dict) -> bytes:
        """Framed bytes of `record`; raises CodecError naming the problem if it does not fit the schema."""
        if self._fast is not None and self.registry is None:
            try:
                return self._so_header + self._fast(record)
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error, UnicodeError):
                pass  # let fastavro produce the precise error message
        buf = io.BytesIO()
        buf.write(self._header())
        try:
            schemaless_writer(buf, self._parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CodecError(f"{self.name} record does not fit its schema: {exc}") from None
        return buf.getvalue()

    def encode_many(self, records: Iterable[dict]) -> list[bytes]:
        return [self.encode(r) for r in records]

    # ---- reading
    def _resolver_for_fp(self, fp: bytes) -> Any:
        """The writer schema to pass fastavro for `fp` (None: same as reader)."""
        try:
            return self._readers[fp]
        except KeyError:
            pass
        known = self.store.get(fp)
        problems = check_compatibility(known.json, self.schema)
        if problems:
            raise IncompatibleSchemaError(
                f"writer schema {known.full_name} {fp.hex()} ({known.origin}) cannot be read as {self.full_name}: "
                + "; ".join(problems))
        self._readers[fp] = known.parsed
        return known.parsed

    def _resolver_for_id(self, schema_id: int) -> Any:
        try:
            return self._registry_writers[schema_id]
        except KeyError:
            pass
        if self.registry is None:
            raise UnknownSchemaError(
                f"message is in the Confluent wire format (schema id {schema_id}) but no schema registry is configured")
        writer = self.registry.schema_by_id(schema_id)
        known = self.store.add(writer, origin=f"registry id {schema_id}")
        writer_parsed = self._resolver_for_fp(known.fingerprint)
        self._registry_writers[schema_id] = writer_parsed
        return writer_parsed

    def decode(self, data: bytes) -> dict:
        """The record in the current schema's shape; CodecError subclasses for anything wrong."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CorruptMessageError(f"{self.name}: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SO_HEADER:
                raise CorruptMessageError(f"{self.name}: truncated single-object header ({len(data)} bytes)")
            writer = self._resolver_for_fp(data[2:_SO_HEADER])
            start = _SO_HEADER
        elif data[:1] == CONFLUENT_MAGIC:
            if len(data) < _CF_HEADER:
                raise CorruptMessageError(f"{self.name}: truncated Confluent header ({len(data)} bytes)")
            writer = self._resolver_for_id(struct.unpack(">I", data[1:_CF_HEADER])[0])
            start = _CF_HEADER
        else:
            raise CorruptMessageError(
                f"{self.name}: no schema identifier (starts {data[:4].hex() or 'empty'}; expected c301 or 00)")
        return self._body(data, start, writer)

    def _body(self, data: bytes, start: int, writer: Any) -> dict:
        buf = io.BytesIO(data)
        buf.seek(start)
        try:
            if writer is None:
                record = schemaless_reader(buf, self._parsed, None)
            else:
                record = schemaless_reader(buf, writer, self._parsed)
        except CodecError:
            raise
        except Exception as exc:  # fastavro raises assorted errors on garbage (EOFError, IndexError, UnicodeDecodeError ...)
            raise CorruptMessageError(f"{self.name}: corrupt Avro body: {type(exc).__name__}: {exc}") from None
        if buf.tell() != len(data):
            raise CorruptMessageError(f"{self.name}: {len(data) - buf.tell()} trailing bytes after the record")
        return record

    def decode_many(self, datas: Iterable[bytes]) -> list[dict]:
        """Decode a batch; the common case (current writer, single-object) skips the per-message dispatch."""
        out = []
        parsed = self._parsed
        header = self._so_header
        append = out.append
        for data in datas:
            if data[:_SO_HEADER] == header:
                buf = io.BytesIO(data)
                buf.seek(_SO_HEADER)
                try:
                    rec = schemaless_reader(buf, parsed, None)
                except Exception as exc:
                    raise CorruptMessageError(f"{self.name}: corrupt Avro body: {type(exc).__name__}: {exc}") from None
                if buf.tell() != len(data):
                    raise CorruptMessageError(f"{self.name}: {len(data) - buf.tell()} trailing bytes after the record")
                append(rec)
            else:
                append(self.decode(data))
        return out


@lru_cache(maxsize=None)
def _codec_cached(name: str, registry_url: str) -> Codec:
    registry = HttpSchemaRegistry(registry_url) if registry_url else None
    subject = None
    if registry is not None:
        subject = f"{TOPIC_OF.get(name, name)}-value"
    return Codec(name, registry=registry, subject=subject)


# Topic each record type is published on; the registry subject follows the topic (TopicNameStrategy).
TOPIC_OF = {
    "Ping": "pings",
    "Hotspot": "hotspots",
    "PatrolEvent": "patrol-events",
    "RejectedPing": "pings-rejected",
    "Assignment": "assignments",
    "Activity": "activity",
}


def codec_for(name: str, registry_url: str = "") -> Codec:
    """The process-wide codec of schema `name`; Confluent framing when `registry_url` is set."""
    return _codec_cached(name, registry_url or "")


# --------------------------------------------------------------------------- evolution

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def check_compatibility(writer: dict | str | list, reader: dict | str | list) -> list[str]:
    """Problems that stop data written with `writer` from being read with `reader` (Avro resolution rules).

    Empty list: compatible. Both schemas must be self-contained JSON (named
    types written out at first use, as `schema_json` and history files are).
    """
    problems: list[str] = []
    _check(_named_index(writer), _named_index(reader), writer, reader, "", problems, set())
    return problems


def _named_index(schema: Any) -> dict[str, dict]:
    index: dict[str, dict] = {}

    def walk(node: Any, ns: str | None) -> None:
        if isinstance(node, list):
            for n in node:
                walk(n, ns)
        elif isinstance(node, dict):
            t = node.get("type")
            if t in ("record", "enum", "fixed", "error"):
                name = node["name"]
                space = node.get("namespace", ns)
                full = name if "." in name else (f"{space}.{name}" if space else name)
                index.setdefault(full, node)
                index.setdefault(full.rsplit(".", 1)[-1], node)
                ns_here = full.rsplit(".", 1)[0] if "." in full else None
                for f in node.get("fields", []):
                    walk(f["type"], ns_here)
            elif t == "array":
                walk(node["items"], ns)
            elif t == "map":
                walk(node["values"], ns)
            elif isinstance(t, (dict, list)):
                walk(t, ns)

    walk(schema, None)
    return index


def _resolve(node: Any, index: dict[str, dict]) -> Any:
    if isinstance(node, str) and node not in _PRIMITIVES:
        return index.get(node, index.get(node.rsplit(".", 1)[-1], node))
    if isinstance(node, dict) and isinstance(node.get("type"), (str, list, dict)) and node["type"] not in (
            "record", "enum", "fixed", "error", "array", "map"):
        return _resolve(node["type"], index)  # {"type": "long", "logicalType": ...} and friends
    return node


def _kind(node: Any) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, str):
        return node
    t = node["type"]
    return "record" if t == "error" else t


def _short(node: Any) -> str:
    return node.get("name", "").rsplit(".", 1)[-1] if isinstance(node, dict) else ""


def _check(wi, ri, w, r, path, problems, seen) -> None:
    w, r = _resolve(w, wi), _resolve(r, ri)
    wk, rk = _kind(w), _kind(r)
    where = path or "<root>"
    if wk == "union":
        # Every branch the writer may have used must be readable.
        for branch in w:
            sub: list[str] = []
            _check(wi, ri, branch, r, path, sub, seen)
            problems.extend(sub)
        return
    if rk == "union":
        for branch in r:
            sub = []
            _check(wi, ri, w, branch, path, sub, seen)
            if not sub:
                return
        problems.append(f"{where}: writer type {_describe(w)} matches no branch of the reader's union")
        return
    if wk in _PRIMITIVES or rk in _PRIMITIVES:
        if rk != wk and rk not in _PROMOTIONS.get(wk, {wk}):
            problems.append(f"{where}: writer {_describe(w)} cannot be read as {_describe(r)}")
        return
    if wk != rk:
        problems.append(f"{where}: writer {wk} cannot be read as {rk}")
        return
    if wk in ("record", "enum", "fixed") and _short(w) != _short(r) and _short(w) not in r.get("aliases", []):
        problems.append(f"{where}: writer {wk} {_short(w)} does not match reader {_short(r)}")
        return
    if wk == "record":
        key = (id(w), id(r))
        if key in seen:
            return  # recursive type already being checked
        seen.add(key)
        wfields = {f["name"]: f for f in w["fields"]}
        for wf in w["fields"]:
            for alias in wf.get("aliases", []):
                wfields.setdefault(alias, wf)
        for rf in r["fields"]:
            wf = wfields.get(rf["name"])
            if wf is None:
                for alias in rf.get("aliases", []):
                    wf = wfields.get(alias)
                    if wf is not None:
                        break
            fpath = f"{path}.{rf['name']}" if path else rf["name"]
            if wf is None:
                if "default" not in rf:
                    problems.append(f"{fpath}: new reader field has no default, so old records cannot fill it")
                continue
            _check(wi, ri, wf["type"], rf["type"], fpath, problems, seen)
    elif wk == "enum":
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            problems.append(f"{where}: reader enum {_short(r)} lacks symbols {missing} and has no default")
    elif wk == "fixed":
        if w.get("size") != r.get("size"):
            problems.append(f"{where}: fixed size {w.get('size')} != {r.get('size')}")
    elif wk == "array":
        _check(wi, ri, w["items"], r["items"], f"{path}[]", problems, seen)
    elif wk == "map":
        _check(wi, ri, w["values"], r["values"], f"{path}{{}}", problems, seen)


def _describe(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return f"{node.get('type')} {_short(node)}".strip()
    return "union"
