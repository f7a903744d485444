"""Prometheus metrics of the gateway, defined once per process (the default registry)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("gateway_requests_total", "HTTP requests answered", ["route", "status"])
PINGS_ACCEPTED = Counter("gateway_pings_accepted_total", "Pings acknowledged to a device (in Kafka or in the spool)", ["source"])
PINGS_REJECTED = Counter("gateway_pings_rejected_total", "Pings refused before Kafka", ["source", "reason"])
KAFKA_ACK_SECONDS = Histogram("gateway_kafka_ack_seconds", "From send to Kafka acknowledgement of a request's pings",
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
KAFKA_FAILURES = Counter("gateway_kafka_failures_total", "Requests whose pings Kafka did not acknowledge in time", ["outcome"])
SPOOL_DEPTH = Gauge("gateway_spool_depth", "Pings in the durable spool waiting for Kafka")
SPOOLED = Counter("gateway_spooled_total", "Pings written to the spool")
SPOOL_REPLAYED = Counter("gateway_spool_replayed_total", "Pings replayed from the spool into Kafka")
RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused with 429", ["source"])
HELD = Counter("gateway_owntracks_held_total", "OwnTracks pings over their device's rate, held durably instead of refused")
HELD_RELEASED = Counter("gateway_owntracks_held_released_total", "Held OwnTracks pings released into Kafka")
HELD_DEPTH = Gauge("gateway_owntracks_held_depth", "Held OwnTracks pings waiting for their device's rate")
PARKED = Gauge("gateway_owntracks_parked", "OwnTracks requests waiting unanswered for room in the held queues")
