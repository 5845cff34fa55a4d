"""Stage 1: validate bank messages, route valid events by enterprise, reject the rest.

Whatever partition a bank's client chose, every valid event is forwarded to the partition
of the routed topic that owns its enterprise (engine/events/partitioner.py), so one enterprise's
events from every bank meet in one place. Nothing is acknowledged before the broker has
the forwarded and rejected messages: a crash replays the step, and the ledger drops the
redelivered duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from agents.sending import Outbox, Sender, rejected_record
from engine import codec
from engine.events.contract import Invalid, split_message, validate
from engine.events.fast_contract import valid_rows
from engine.events.partitioner import partition_for
from engine.events.topics import REJECTED_TOPIC, ROUTED_TOPIC, bank_code_of
from engine.metrics import WorkerMetrics
from engine.periods import history_start, month_start_us, now_us

__all__ = [
    "ROUTED_CHUNK_EVENTS",
    "STEP_BYTES",
    "Intake",
    "Message",
    "Reject",
    "RoutedStep",
    "in_steps",
    "route",
]

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


Record = tuple[str, bytes | None, bytes, int | None]  # topic, key, value, partition


@dataclass
class RoutedStep:
    """What one intake step sends: routed rows and rejects, encoded, with its counts."""

    started: float
    messages: int
    records: list[Record] = field(default_factory=list)
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)  # the reason of each reject


class Reject(NamedTuple):
    position: int | None  # index in a batch; None for a single-event or a whole message
    invalid: Invalid
    original: bytes  # the message, or for a batch element that element, to fix and replay


def route(
    value: bytes | None,
    bank: str,
    topic: str,
    partition: int,
    offset: int,
    oldest_us: int | None,
    now: int,
) -> tuple[list[list[Any]], list[Reject]]:
    """The routed rows of one bank message's valid events, and its rejects.

    A row is a Txn's fields, then the source (topic, partition, offset, index): the routed
    wire format the ledger reads. Most messages are wholly valid and take the fast path;
    any other takes the contract's reference path, which alone says why an event is not.
    The worker and the profile target (loadtest/stages.py) both run this.
    """
    rows = valid_rows(value, bank, topic, partition, offset, oldest_us, now)
    if rows is not None:
        return rows, []
    rows, rejects = [], []
    elements = split_message(value)
    if isinstance(elements, Invalid):
        return rows, [Reject(None, elements, value or b"")]
    for index, element in enumerate(elements.items):
        result = validate(element, bank, oldest_us, now)
        position = index if elements.is_batch else None
        if isinstance(result, Invalid):
            if elements.is_batch:
                original, result = _element_bytes(element, value or b"", result)
            else:
                original = value or b""
            rejects.append(Reject(position, result, original))
        else:
            rows.append([*result, topic, partition, offset, position])
    return rows, rejects


def _element_bytes(element: Any, message: bytes, invalid: Invalid) -> tuple[bytes, Invalid]:
    """A rejected batch element as bytes to replay. orjson reads JSON nested up to 1,024
    levels but writes only 255: an element nested deeper cannot be written back alone, so
    the reject holds the whole message instead, and says so."""
    try:
        return codec.dumps(element), invalid
    except TypeError:
        detail = (
            f"{invalid.detail} ('original' holds the whole batch: this element is nested "
            "too deeply to be written alone)"
        )
        return message, Invalid(invalid.reason, detail)


class Intake:
    def __init__(
        self, sender: Sender, partitions: int, metrics: WorkerMetrics, history_months: int = 36
    ) -> None:
        self._sender = sender
        self._partitions = partitions
        self._metrics = metrics
        self._history_months = history_months

    def prepare(self, messages: Sequence[Message]) -> RoutedStep:
        """Validate and route one step's messages into the records to send (no I/O)."""
        step = RoutedStep(started=time.perf_counter(), messages=len(messages))
        oldest_us = month_start_us(history_start(self._history_months))
        now = now_us()
        for chunk in in_steps(messages):
            routed: dict[int, list[list[Any]]] = {}
            for message in chunk:
                bank = bank_code_of(message.topic)
                if bank is None:  # not a bank topic: cannot happen with our subscription
                    continue
                valid, rejects = route(
                    message.value,
                    bank,
                    message.topic,
                    message.partition,
                    message.offset,
                    oldest_us,
                    now,
                )
                for reject in rejects:
                    step.records.append(_rejected(message, reject))
                    step.rejected.append(reject.invalid.reason.value)
                step.accepted += len(valid)
                for row in valid:
                    routed.setdefault(partition_for(row[0], self._partitions), []).append(row)
            for partition, rows in routed.items():
                for start in range(0, len(rows), ROUTED_CHUNK_EVENTS):
                    chunk_rows = rows[start : start + ROUTED_CHUNK_EVENTS]
                    step.records.append((ROUTED_TOPIC, None, codec.dumps(chunk_rows), partition))
        return step

    async def deliver(self, step: RoutedStep) -> None:
        """Send a step's records; return once the broker has all of them. A retry sends
        them all again: the ledger drops the duplicates."""
        outbox = Outbox(self._sender)
        for topic, key, value, partition in step.records:
            await outbox.send(topic, key, value, partition)
        await outbox.flush()
        self._metrics.bank_messages.inc(step.messages)
        self._metrics.intake_events.labels("accepted").inc(step.accepted)
        self._metrics.intake_events.labels("rejected").inc(len(step.rejected))
        for reason in step.rejected:
            self._metrics.rejected.labels(reason, "intake").inc()
        self._metrics.step_seconds.labels("intake").observe(time.perf_counter() - step.started)


def _rejected(message: Message, reject: Reject) -> Record:
    record = rejected_record(
        reject.invalid.reason,
        reject.invalid.detail,
        "intake",
        message.topic,
        message.partition,
        message.offset,
        reject.position,
        reject.original,
    )
    key = f"{message.topic}/{message.partition}/{message.offset}".encode()
    return (REJECTED_TOPIC, key, record, None)
