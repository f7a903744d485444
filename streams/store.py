"""Opening the worker's ClickHouse store: migrations once it answers, and the read-only query server.

Kept out of `LivePipeline`'s constructor (`LivePipeline.open()` calls it) so a
pipeline can be built without a store, and the waiting is visible where the
worker starts.
"""
from __future__ import annotations

import logging
import random
import time

from core.settings import Settings
from sinks import metrics
from sinks.clickhouse import is_embedded, make_client, migrate
from sinks.query_server import serve_readonly_queries
from sinks.writer import RetryPolicy, is_permanent

log = logging.getLogger("hotspot.worker")


def open_when_available(settings: Settings):
    """Apply migrations, waiting for ClickHouse for as long as it takes; return the client that did.

    Until it answers, the worker consumes nothing: pings wait in Kafka, which is
    the backpressure, and are processed once the store is back. Only errors that
    retrying cannot cure (bad SQL, refused credentials) stop the worker.
    """
    rng = random.Random()
    policy = RetryPolicy(initial_delay_s=0.5, max_delay_s=5.0)
    attempt = 0
    while True:
        try:
            client = make_client(settings.effective_clickhouse_dsn)
            migrate(client, settings.clickhouse_database, settings.pings_ttl_days)
            metrics.SINK_HEALTHY.labels(sink="worker").set(1)
            return client
        except Exception as exc:
            if is_permanent(exc):
                raise
            attempt += 1
            delay_s = policy.delay_s(attempt, rng)
            metrics.SINK_HEALTHY.labels(sink="worker").set(0)
            log.warning("ClickHouse is not available (%s); retrying in %.1fs while pings wait in Kafka",
                        str(exc).splitlines()[0][:200], delay_s)
            time.sleep(delay_s)  # nothing else to do before the store opens: the consumer has not started


def open_store(settings: Settings, *, joined_store: bool = False):
    """Open the store for a worker; return the query server when this process now owns an embedded store.

    A worker that joined another's store (sinks.shared_store) writes through the owner and opens nothing.
    """
    if joined_store:
        return None
    # The client that migrated is held until the query server has its own: an embedded store stays open in
    # this process throughout, so a `hotspot sql` that opened the store directly while this worker started
    # (its owner file not written yet) cannot take it in between. The wait above outlasts such a reader.
    client = open_when_available(settings)
    try:
        if is_embedded(settings.effective_clickhouse_dsn):
            # This process owns the embedded store now: it answers `hotspot sql` for everyone else.
            return serve_readonly_queries(settings.effective_clickhouse_dsn, settings.data_dir,
                                          settings.clickhouse_database)
        return None
    finally:
        del client
