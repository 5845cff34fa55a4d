"""The bank-side publisher creditflow ships (confluent-kafka).

A batch is grouped by the partition that owns each enterprise (engine/events/partitioner.py) and
each group goes to that partition as one JSON-array message, so a batch message holds only
enterprises of its partition. Any client may publish instead: the intake stage re-routes
whatever lands elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaException, Producer

from engine import codec
from engine.events.kafka_clients import client_config
from engine.events.partitioner import partition_for
from engine.events.topics import bank_topic

__all__ = ["BankPublisher"]


class BankPublisher:
    def __init__(
        self,
        bootstrap: str,
        bank: str,
        partitions: int,
        max_batch: int = 500,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = bank_topic(bank)
        self._partitions = partitions
        self._max_batch = max_batch
        self._errors: list[str] = []
        self._producer = Producer(
            client_config(
                bootstrap,
                {
                    "acks": "all",
                    "linger.ms": 5,
                    "queue.buffering.max.messages": 1_000_000,
                    "message.max.bytes": 4_000_000,
                    **(config or {}),
                },
            )
        )

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self._errors.append(str(error))

    def _produce(self, value: bytes, key: bytes | None, partition: int) -> None:
        while True:
            try:
                self._producer.produce(
                    self.topic, value, key, partition=partition, on_delivery=self._on_delivery
                )
                return
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)

    def publish(self, event: Mapping[str, Any]) -> None:
        """One event as one message, keyed by its enterprise id."""
        enterprise_id = str(event["enterprise_id"])
        self._produce(
            codec.dumps(event),
            enterprise_id.encode(),
            partition_for(enterprise_id, self._partitions),
        )
        self._producer.poll(0)

    def publish_batch(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Events as partition-aligned batch messages; returns the number of messages."""
        groups: dict[int, list[Mapping[str, Any]]] = {}
        for event in events:
            groups.setdefault(
                partition_for(str(event["enterprise_id"]), self._partitions), []
            ).append(event)
        messages = 0
        for partition, group in groups.items():
            for start in range(0, len(group), self._max_batch):
                self._produce(codec.dumps(group[start : start + self._max_batch]), None, partition)
                messages += 1
        self._producer.poll(0)
        return messages

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until the broker has every message; raise if any was refused."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise KafkaException(f"{remaining} messages not delivered within {timeout} s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaException(f"{len(errors)} messages failed: {errors[0]}")
