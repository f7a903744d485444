"""The Kafka topic names of Hotspot Patrol, and which record type each carries: the one list.

Every producer, consumer, feed and the codec factory (core/codecs.py: the
registry subject is `<topic>-value`) names a topic through these constants,
so a topic is renamed, or a new one added, here and in `core.kafka.TOPICS`
(partitions, compaction) only. The names themselves are user-facing (ACLs,
dashboards, other consumers) and do not change.
"""
from __future__ import annotations

PINGS = "pings"
HOTSPOTS = "hotspots"
PATROL_EVENTS = "patrol-events"
PINGS_REJECTED = "pings-rejected"
ASSIGNMENTS = "assignments"
ACTIVITY = "activity"
ALLOCATIONS = "allocations"
AUDIT = "audit"  # sign-ins and views of officers' locations (gateway/audit.py)
# The worker's compacted device-state changelog (streams/statestore.py): the Faust-style name kept for
# compatibility with stores written before it was our own.
DEVICE_STATE_CHANGELOG = "hotspot-worker-device-state-changelog"

# Avro record type -> the topic it is published on (the registry subject follows the topic: TopicNameStrategy).
TOPIC_OF_SCHEMA = {
    "Ping": PINGS,
    "Hotspot": HOTSPOTS,
    "PatrolEvent": PATROL_EVENTS,
    "RejectedPing": PINGS_REJECTED,
    "Assignment": ASSIGNMENTS,
    "Activity": ACTIVITY,
    "Allocation": ALLOCATIONS,
    "Audit": AUDIT,
}
