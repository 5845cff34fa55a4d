"""Stage 1: validate bank messages, route valid events by enterprise, reject the rest.

Whatever partition a bank's client chose, every valid event is forwarded to the partition
of the routed topic that owns its enterprise (engine/partitioner.py), so one enterprise's
events from every bank meet in one place. Nothing is acknowledged before the broker has
the forwarded and rejected messages: a crash replays the step, and the ledger drops the
redelivered duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from agents.sending import Outbox, Sender, rejected_record
from engine import codec
from engine.contract import Invalid, split_message, validate
from engine.metrics import WorkerMetrics
from engine.partitioner import partition_for
from engine.periods import history_start, month_start_us, now_us
from engine.topics import ROUTED_TOPIC, bank_code_of

__all__ = ["ROUTED_CHUNK_EVENTS", "STEP_BYTES", "Intake", "Message", "in_steps"]

#: Events per routed message: well under Kafka's 1 MB default limit, and small enough that
#: Faust's prefetch buffer of routed messages stays below ~100 MB.
ROUTED_CHUNK_EVENTS = 250
#: Message bytes a stage decodes at once: about 25,000 events.
STEP_BYTES = 8 << 20


class Message(Protocol):
    topic: str
    partition: int
    offset: int
    value: bytes | None


def in_steps(messages: Sequence[Message], max_bytes: int = STEP_BYTES) -> Iterator[list[Message]]:
    """Consecutive runs of messages of at most ``max_bytes`` (at least one message each).

    A take of 500 batch messages can hold a quarter of a million events: decoded at once,
    they cost a worker gigabytes. Each run is processed, and its memory freed, in turn.
    """
    step: list[Message] = []
    size = 0
    for message in messages:
        length = len(message.value or b"")
        if step and size + length > max_bytes:
            yield step
            step, size = [], 0
        step.append(message)
        size += length
    if step:
        yield step


class Intake:
    def __init__(
        self, sender: Sender, partitions: int, metrics: WorkerMetrics, history_months: int = 36
    ) -> None:
        self._sender = sender
        self._partitions = partitions
        self._metrics = metrics
        self._history_months = history_months

    async def process(self, messages: Sequence[Message]) -> None:
        started = time.perf_counter()
        oldest_us = month_start_us(history_start(self._history_months))
        now = now_us()
        outbox = Outbox(self._sender)
        accepted = rejected = 0
        for step in in_steps(messages):
            routed: dict[int, list[list[Any]]] = {}
            for message in step:
                bank = bank_code_of(message.topic)
                if bank is None:  # not a bank topic: cannot happen with our subscription
                    continue
                elements = split_message(message.value)
                if isinstance(elements, Invalid):
                    await self._reject(outbox, message, None, elements, message.value or b"")
                    rejected += 1
                    continue
                for index, element in enumerate(elements.items):
                    result = validate(element, bank, oldest_us, now)
                    position = index if elements.is_batch else None
                    if isinstance(result, Invalid):
                        original = (
                            codec.dumps(element) if elements.is_batch else message.value or b""
                        )
                        await self._reject(outbox, message, position, result, original)
                        rejected += 1
                        continue
                    partition = partition_for(result.enterprise_id, self._partitions)
                    routed.setdefault(partition, []).append(
                        [*result, message.topic, message.partition, message.offset, position]
                    )
                    accepted += 1
            for partition, rows in routed.items():
                for start in range(0, len(rows), ROUTED_CHUNK_EVENTS):
                    chunk = rows[start : start + ROUTED_CHUNK_EVENTS]
                    await outbox.send(ROUTED_TOPIC, None, codec.dumps(chunk), partition)
        await outbox.flush()
        self._metrics.bank_messages.inc(len(messages))
        self._metrics.intake_events.labels("accepted").inc(accepted)
        self._metrics.intake_events.labels("rejected").inc(rejected)
        self._metrics.step_seconds.labels("intake").observe(time.perf_counter() - started)

    async def _reject(
        self, outbox: Outbox, message: Message, index: int | None, invalid: Invalid, original: bytes
    ) -> None:
        record = rejected_record(
            invalid.reason,
            invalid.detail,
            "intake",
            message.topic,
            message.partition,
            message.offset,
            index,
            original,
        )
        key = f"{message.topic}/{message.partition}/{message.offset}".encode()
        await outbox.reject(key, record)
        self._metrics.rejected.labels(invalid.reason.value, "intake").inc()
