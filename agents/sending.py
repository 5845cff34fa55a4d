"""Producing to Kafka from a stage, with delivery confirmed before the input is acknowledged."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Protocol

from engine import codec
from engine.events.contract import RejectReason
from engine.events.topics import REJECTED_TOPIC

__all__ = ["Outbox", "Sender", "rejected_record"]


class Sender(Protocol):
    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Awaitable[Any]:
        """Queue a message (a None value: a tombstone); the returned awaitable completes
        when the broker has it."""
        ...


def rejected_record(
    reason: RejectReason,
    detail: str,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    index: int | None,
    original: bytes,
) -> bytes:
    """One message of txns.rejected: why, where from, and the bytes to replay."""
    try:
        text, encoding = original.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(original).decode("ascii"), "base64"
    return codec.dumps(
        {
            "reason": reason.value,
            "detail": detail,
            "stage": stage,
            "source": {"topic": topic, "partition": partition, "offset": offset, "index": index},
            "original": text,
            "original_encoding": encoding,
            "rejected_at": datetime.now(UTC).isoformat(),
        }
    )


class Outbox:
    """Messages of one processing step; :meth:`flush` returns once the broker has all of them."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._pending: list[Awaitable[Any]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self._pending.append(await self._sender.send(topic, key, value, partition))

    async def reject(self, key: bytes, record: bytes) -> None:
        await self.send(REJECTED_TOPIC, key, record)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
