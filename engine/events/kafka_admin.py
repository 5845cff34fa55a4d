"""Topic administration and offset probes with confluent-kafka (never a consumer group)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from engine.events.kafka_clients import client_config
from engine.events.topics import (
    ACCESS_LOG_TOPIC,
    ACCESS_STATE_TOPIC,
    BANK_TOPIC_RE,
    QUERY_RECORDS_TOPIC,
)

__all__ = [
    "ensure_access_topics",
    "ensure_topics",
    "high_watermarks",
    "list_bank_topics",
    "low_watermark",
    "offset_exists",
    "read_to_end",
    "topic_partitions",
]

_TIMEOUT_S = 15.0


def _probe(bootstrap: str, settings: Mapping[str, Any] | None = None) -> Consumer:
    """A consumer that reads offsets and messages by assignment: it never joins its group."""
    return Consumer(
        client_config(
            bootstrap,
            {
                "group.id": "creditflow-offset-probe",
                "enable.auto.commit": False,
                **(settings or {}),
            },
        )
    )


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient(client_config(bootstrap))


def topic_partitions(bootstrap: str) -> dict[str, int]:
    """Every topic of the cluster with its partition count."""
    metadata = _admin(bootstrap).list_topics(timeout=_TIMEOUT_S)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def list_bank_topics(bootstrap: str) -> list[str]:
    return sorted(name for name in topic_partitions(bootstrap) if BANK_TOPIC_RE.match(name))


def ensure_topics(
    bootstrap: str,
    wanted: Mapping[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet, with their ``configs`` (topic name -> Kafka
    topic settings); returns the names created (idempotent)."""
    admin = _admin(bootstrap)
    existing = topic_partitions(bootstrap)
    configs = configs or {}
    missing = [
        NewTopic(name, partitions, config=dict(configs.get(name, {})))
        for name, partitions in wanted.items()
        if name not in existing
    ]
    created = []
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=_TIMEOUT_S).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    return created


def ensure_access_topics(bootstrap: str, partitions: int, query_retention_days: int) -> None:
    """The access log (one partition, kept forever), the compacted access state and the
    query records (kept ``query_retention_days``)."""
    day_ms = 86_400_000
    ensure_topics(
        bootstrap,
        {ACCESS_LOG_TOPIC: 1, ACCESS_STATE_TOPIC: 1, QUERY_RECORDS_TOPIC: partitions},
        {
            ACCESS_LOG_TOPIC: {"retention.ms": "-1", "cleanup.policy": "delete"},
            ACCESS_STATE_TOPIC: {"cleanup.policy": "compact"},
            QUERY_RECORDS_TOPIC: {
                "retention.ms": str(query_retention_days * day_ms),
                "cleanup.policy": "delete",
            },
        },
    )


def low_watermark(bootstrap: str, topic: str, partition: int) -> int:
    """The earliest offset still in the log of one partition."""
    consumer = _probe(bootstrap)
    try:
        low: int = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=_TIMEOUT_S
        )[0]
        return low
    finally:
        consumer.close()


def offset_exists(
    bootstrap: str, topic: str, partition: int, offset: int, timeout: float = 5.0
) -> bool:
    """Whether the log of one partition still holds ``offset`` (read it to be sure).

    The high watermark cannot be trusted alone: Tansu 0.6 reports it too low after a
    multi-record batch from aiokafka (seen here: 3 records, watermark 2).
    """
    consumer = _probe(bootstrap, {"auto.offset.reset": "error"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                return False
            found = message.offset()
            return found is not None and found >= offset
        return False
    finally:
        consumer.close()


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> list[int]:
    """The end offset of each partition of ``topic``."""
    consumer = _probe(bootstrap)
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT_S)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def read_to_end(
    bootstrap: str,
    topic: str,
    starts: Mapping[int, int],
    idle: float = 1.0,
    stall_timeout: float = 30.0,
) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of every message of ``topic``'s partitions from
    ``starts`` (partition -> first offset) to their ends as the call starts.

    Reads on past the high watermarks until nothing new arrives for ``idle`` seconds (Tansu
    reports watermarks too low after a multi-record batch). Never a partial read passed off
    as whole: ``TimeoutError`` when nothing arrives for ``stall_timeout`` seconds before the
    watermarks are reached.
    """
    consumer = _probe(bootstrap, {"auto.offset.reset": "earliest"})
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT_S)[1]
            for p in starts
        }
        positions = dict(starts)
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        last_message = time.monotonic()
        while True:
            message = consumer.poll(0.2)
            now = time.monotonic()
            if message is None or message.error():
                caught_up = all(positions[p] >= ends[p] for p in positions)
                if caught_up and now - last_message > idle:
                    return
                if not caught_up and now - last_message > stall_timeout:
                    raise TimeoutError(
                        f"{topic}: nothing read for {stall_timeout} s at {positions}, before "
                        f"the ends ({ends})"
                    )
                continue
            last_message = now
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            positions[partition] = offset + 1
            yield partition, offset, message.key(), message.value()
    finally:
        consumer.close()
