-- Retention of the tables that the analysts' (0007: crimes) and the officer
-- app's (0009: audit) migrations created beside 0008: the settings' defaults
-- (core/settings.py, audit_ttl_days, crimes_ttl_days), so every table holding
-- data about people has its TTL as soon as the migrations have run, before any
-- worker starts. As in 0008, the worker applies configured values at start.
ALTER TABLE {db}.audit MODIFY TTL toDateTime(ts) + toIntervalDay({audit_ttl_days});
ALTER TABLE {db}.crimes MODIFY TTL toDateTime(occurred_at) + toIntervalDay({crimes_ttl_days});
