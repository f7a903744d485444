"""How ensure_topics reads the broker's per-topic answer to CreateTopics."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaError

from core.kafka import _created_topics


def _response(*entries):
    return SimpleNamespace(topic_errors=list(entries))


def test_only_topics_the_broker_created_are_reported():
    got = _created_topics(_response(("pings", 0, None), ("hotspots", 36, "Topic 'hotspots' already exists.")))
    assert got == ["pings"]


def test_a_topic_that_already_exists_is_not_an_error():
    assert _created_topics(_response(("pings", 36, "exists"))) == []


def test_v0_answers_without_messages_are_read():
    assert _created_topics(_response(("a", 0), ("b", 36))) == ["a"]


def test_any_other_per_topic_error_is_raised_with_topic_and_message():
    with pytest.raises(KafkaError, match=r"bad: error 40 \(Unknown topic config name: nope\)"):
        _created_topics(_response(("good", 0, None), ("bad", 40, "Unknown topic config name: nope")))
