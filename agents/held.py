"""Kafka events held unacknowledged until the state they went into is committed.

The ledger commits a partition's applied events together, up to a commit interval after
the first of them (agents/ledger.py). An event is acknowledged to Kafka only once its
partition's committed state has moved past it, so a crash replays every event whose state
was not written (the ledger skips what it has, by offset).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

__all__ = ["HeldEvents"]


class _Message(Protocol):
    partition: int
    offset: int


class _Event(Protocol):
    message: _Message


Ack = Callable[[Any], Awaitable[Any]]  # a Faust stream's ack
CommittedOffset = Callable[[int], "int | None"]  # partition -> next offset of its state


class HeldEvents:
    def __init__(self) -> None:
        self._by_partition: dict[int, list[_Event]] = {}

    def __len__(self) -> int:
        return sum(map(len, self._by_partition.values()))

    def hold(self, events: Iterable[_Event]) -> None:
        for event in events:
            self._by_partition.setdefault(event.message.partition, []).append(event)

    async def release(self, ack: Ack, committed_offset: CommittedOffset) -> int:
        """Acknowledge the events below their partition's committed offset; forget those of
        partitions no longer held (their next owner resumes from the state's own offset).
        Returns how many were acknowledged."""
        acked = 0
        for partition in list(self._by_partition):
            through = committed_offset(partition)
            if through is None:
                del self._by_partition[partition]
                continue
            events = self._by_partition[partition]
            keep = [event for event in events if event.message.offset >= through]
            if len(keep) == len(events):
                continue
            for event in events:
                if event.message.offset < through:
                    await ack(event)
                    acked += 1
            if keep:
                self._by_partition[partition] = keep
            else:
                del self._by_partition[partition]
        return acked
