"""The one codec factory: which framing a process's Avro codecs use, decided once from the settings.

`codec_for(name, settings)` is how the gateway, the worker, the CLI, the
simulators and the tests get a `schemas.codec.Codec`. With
`HOTSPOT_SCHEMA_REGISTRY_URL` set, writers use the Confluent wire format and
register their schema under `<topic>-value` (the topic from core/topics.py),
and readers fetch unknown schema ids from the same registry; unset, Avro
single-object encoding with no service. Readers accept both framings either
way, so a fleet can switch without draining topics.

There used to be two ways to build a codec (`Codec("Ping")` in the worker,
`codec_for("Ping", url)` in the gateway), and the worker, built the first way,
rejected every Confluent-framed ping the gateway wrote once a registry was
configured (issue 11). Production code builds codecs here only; tests of the
codec itself build `Codec` directly.

`HttpSchemaRegistry` is the client of a Confluent-compatible registry
(`POST /subjects/{subject}/versions`, `GET /schemas/ids/{id}`): the only
network I/O of the codec, kept here so `schemas/` stays a contract library.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from functools import lru_cache

from core.topics import TOPIC_OF_SCHEMA
from schemas.codec import Codec, CodecError, UnknownSchemaError, canonical_form


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


@lru_cache(maxsize=None)
def _codec_cached(name: str, registry_url: str) -> Codec:
    if not registry_url:
        return Codec(name)
    return Codec(name, registry=HttpSchemaRegistry(registry_url),
                 subject=f"{TOPIC_OF_SCHEMA.get(name, name)}-value")


def codec_for(name: str, settings=None) -> Codec:
    """The process-wide codec of Avro schema `name` under `settings` (default: the process's settings)."""
    if settings is None:
        from core.settings import get_settings

        settings = get_settings()
    return _codec_cached(name, settings.schema_registry_url or "")
