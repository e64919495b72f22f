from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict

import pandas as pd
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

import workbench as wb
from workbench import events
from workbench.settings import Settings

MESSAGES = 10_000
KEYS = 97


def _topic(services: Settings, partitions: int = 3) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    assert events.ensure_topics([name], partitions=partitions, settings=services) == [name]
    return name


def _consume_all(services: Settings, topic: str, partitions: int) -> list[tuple[str, dict]]:
    consumer = Consumer(
        {
            "bootstrap.servers": services.kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    received: list[tuple[str, dict]] = []
    at_end: set[int] = set()
    try:
        while len(at_end) < partitions:
            for message in consumer.consume(500, timeout=5):
                if message.error():
                    assert message.error().code() == KafkaError._PARTITION_EOF
                    at_end.add(message.partition())
                    continue
                received.append((message.key().decode(), json.loads(message.value())))
    finally:
        consumer.close()
    return received


def test_keyed_messages_arrive_once_each_in_per_key_order(services: Settings) -> None:
    topic = _topic(services)
    sent = pd.DataFrame(
        {
            "card_id": [f"card-{i % KEYS}" for i in range(MESSAGES)],
            "sequence": [i // KEYS for i in range(MESSAGES)],
            "event_id": [f"e-{i}" for i in range(MESSAGES)],
        }
    )

    delivered = wb.publish(sent, topic, key="card_id", progress=False)
    received = _consume_all(services, topic, partitions=3)

    assert delivered == MESSAGES
    assert len(received) == MESSAGES
    assert len({value["event_id"] for _, value in received}) == MESSAGES
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, value in received:
        assert key == value["card_id"]
        by_key[key].append(value["sequence"])
    for key, sequences in by_key.items():
        expected = sorted(sent.loc[sent["card_id"] == key, "sequence"])
        assert sequences == expected, f"{key} arrived out of order"


def test_tail_reads_back_what_was_published_with_its_position(services: Settings) -> None:
    topic = _topic(services)
    sent = pd.DataFrame({"event_id": [f"t-{i}" for i in range(50)], "amount": range(50)})
    wb.publish(sent, topic, key="event_id", progress=False)

    everything = wb.tail(topic)
    last = wb.tail(topic, n=10)

    assert sorted(everything["event_id"]) == sorted(sent["event_id"])
    assert {"partition", "offset", "timestamp", "key"} <= set(everything.columns)
    assert len(last) == 10
    assert set(last["event_id"]) <= set(sent["event_id"])


def test_publish_paces_events_to_the_rate_asked_for(services: Settings) -> None:
    topic = _topic(services)
    started = time.monotonic()

    delivered = wb.publish([{"n": i} for i in range(40)], topic, rate=80, progress=False)

    # 40 events at 80 a second cannot all leave in less than (40 - 1) / 80 s.
    assert delivered == 40
    assert time.monotonic() - started >= 39 / 80


def test_a_non_positive_rate_is_refused(services: Settings) -> None:
    with pytest.raises(wb.DataError, match=r"rate must be a positive number"):
        wb.publish([{"n": 1}], "transactions", rate=0, progress=False)


def test_topics_lists_partitions_and_message_counts(services: Settings) -> None:
    topic = _topic(services, partitions=2)
    wb.publish([{"n": i} for i in range(7)], topic, progress=False)

    listing = wb.topics().set_index("topic")

    assert listing.loc[topic, "partitions"] == 2
    assert listing.loc[topic, "messages"] == 7
    for name in events.TOPICS:
        assert listing.loc[name, "partitions"] == services.kafka_partitions


def test_the_broker_never_creates_a_topic_by_accident(services: Settings) -> None:
    with pytest.raises(wb.DataError, match=r"topic 'no-such-topic' does not exist"):
        wb.publish([{"n": 1}], "no-such-topic", progress=False)
    assert "no-such-topic" not in set(wb.topics()["topic"])


def test_reading_a_missing_topic_says_how_to_list_topics(services: Settings) -> None:
    with pytest.raises(wb.DataError, match=r"'absent' does not exist; wb.topics\(\)"):
        wb.tail("absent")
