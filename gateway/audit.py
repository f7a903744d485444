"""The audit trail: who signed in (or failed to), who viewed officers' locations.

Owns the `audit` topic's records. `record()` publishes one Avro `Audit` record
(key: its id) through the gateway's producer; the worker's record sink
(streams.recordsink) stores it in ClickHouse table `audit`. Each record has a
fresh random id, so a sink that inserts it twice (after a crash) replaces
rather than doubles it.

Publishing waits for Kafka's acknowledgement. When Kafka cannot take it,
`record(..., required=False)` logs and returns False (a sign-in still
works while Kafka is away; the failure is counted), while `required=True`
raises ApiError 503: a view that must be audited is not served unaudited.
"""
from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import orjson

from gateway.deps import ApiError
from gateway.publisher import KafkaUnavailable

TOPIC = "audit"
log = logging.getLogger(__name__)

_codec = None


def codec():
    global _codec
    if _codec is None:
        from schemas.codec import codec_for

        _codec = codec_for("Audit", "")
    return _codec


def audit_record(user: Any, action: str, subject: str, detail: dict, address: str = "",
                 now_ms: int | None = None) -> dict:
    """The Avro `Audit` record; `user` is a SessionUser, a Principal, or a plain name (failed sign-in)."""
    name = user if isinstance(user, str) else getattr(user, "name", "") if user is not None else ""
    role = "" if isinstance(user, str) or user is None else (getattr(user, "role", "") or "")
    return {"audit_id": secrets.token_hex(12), "ts_ms": now_ms if now_ms is not None else time.time_ns() // 1_000_000,
            "user": name, "role": role, "action": action, "subject": subject or "",
            "detail_json": orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS).decode(), "address": address or ""}


_background: set = set()  # audit sends not awaited by their request (kept referenced until done)


async def record(state, user: Any, action: str, subject: str, detail: dict, *, address: str = "",
                 required: bool = False, background: bool = False) -> bool:
    """Publish one audit record to Kafka `audit`; True once acknowledged (see the module doc for failures).

    `background=True` (sign-ins): the request does not wait for Kafka's acknowledgement, so a broker that
    is away does not hold every sign-in for the acknowledgement timeout; a failure is still logged and counted.
    """
    if background:
        import asyncio

        task = asyncio.ensure_future(record(state, user, action, subject, detail, address=address))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return True
    rec = audit_record(user, action, subject, detail, address)
    codec_ = getattr(state, "audit_codec", None) or codec()
    try:
        await state.publisher.send_to(TOPIC, [(rec["audit_id"].encode(), codec_.encode(rec))])
        return True
    except KafkaUnavailable as exc:
        from gateway import metrics

        metrics.KAFKA_FAILURES.labels("audit").inc()
        log.warning("audit record %s of %r not stored: %s", action, rec["user"], exc)
        if required:
            raise ApiError(503, "audit_unavailable", f"cannot record this access in the audit trail: {exc}",
                           headers={"Retry-After": "5"}) from None
        return False
