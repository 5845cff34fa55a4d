"""Fixtures of the integration tests, shared: the fault scenarios run on the same stacks."""

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from tests.integration.conftest import (  # noqa: F401  (fixtures)
    own_redis,
    redis_cluster,
    redis_url,
    stack,
)

#: Every fault scenario's marks (`make faults` selects them; `make test` leaves them out),
#: before its own timeout.
FAULT_MARKS = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


def read_until_quiet(
    bootstrap: str, group: str, partitions: list[TopicPartition], quiet_seconds: float = 1.0
) -> Iterator[Message]:
    """Every message of ``partitions`` from their offsets, until none comes for
    ``quiet_seconds`` (the embedded broker's high watermarks can be too low to stop at)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.assign(partitions)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_seconds:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            quiet_since = time.monotonic()
            yield message
    finally:
        consumer.close()
