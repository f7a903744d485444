"""Pure patrol-analytics logic: validation, geofence matching, visit/stop/mode
state machines, hot-spot building and trial allocation.

Nothing in this package does I/O, reads a clock or talks to Kafka or ClickHouse:
the live Faust worker and the batch replay call the same functions with the same
data, so they must produce the same events.
"""
