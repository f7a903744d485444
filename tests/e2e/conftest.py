"""Browser tests against a real system use the integration tests' Kafka fixtures (one definition of each)."""
from tests.integration.conftest import kafka_broker, make_broker  # noqa: F401  (pytest fixtures, re-exported)
