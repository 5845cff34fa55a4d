"""The ledger's vocabulary: the keys of a partition's store, the outcome of each event, where
an event was published, a rejection the ledger decided, and the partition's progress.

Kept apart from state/ledger.py, which applies events, so that the stages, the runner and
the tests can speak of outcomes and progress without the machinery that produces them.
``Progress`` is stored under ``META_KEY`` in every partition's store: changing its encoding
is a migration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine import codec
from engine.events.contract import RejectReason
from engine.periods import format_month

__all__ = [
    "META_KEY",
    "Outcome",
    "Progress",
    "Rejection",
    "SetAside",
    "Source",
    "carry_key",
    "evaluate_key",
    "ledger_key",
    "month_key",
    "pending_key",
]

#: Where a partition's Progress is stored.
META_KEY = b"_meta"


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REVERSAL_APPLIED = "reversal_applied"
    REVERSAL_PENDING = "reversal_pending"
    REVERSED_ON_ARRIVAL = "reversed_on_arrival"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Source:
    """Where an event was published: bank topic, partition, offset, index in a batch."""

    topic: str
    partition: int
    offset: int
    index: int | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event the ledger sends to the rejects topic. ``original``: the bytes to send as the
    record's original when they are not ``event`` (a routed row or message that reads as no
    transaction, set aside with ``event`` empty)."""

    reason: RejectReason
    detail: str
    event: dict[str, Any]
    source: Source
    original: bytes | None = None


@dataclass(frozen=True, slots=True)
class SetAside:
    """A routed row whose apply raised (``index`` None: the whole message, unreadable as
    rows), set aside to the rejects topic as ``rejection`` instead of holding its partition."""

    offset: int  # of the routed message
    index: int | None  # of the row in it
    error: Exception
    rejection: Rejection


@dataclass(slots=True)
class Progress:
    next_offset: int = 0  # next offset of the routed partition to apply
    watermark_us: int | None = None  # latest booked_at applied
    sources: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> last offset

    def encode(self) -> bytes:
        return codec.dumps([self.next_offset, self.watermark_us, self.sources])

    @classmethod
    def decode(cls, data: bytes | None) -> Progress:
        if data is None:
            return cls()
        next_offset, watermark_us, sources = codec.loads(data)
        return cls(next_offset, watermark_us, sources)


# The keys of a partition's store (state/ledger.py lists them; renaming one is a migration).


def ledger_key(enterprise_id: str, bank: str, txn_id: str) -> bytes:
    return f"L|{enterprise_id}|{bank}|{txn_id}".encode()


def pending_key(enterprise_id: str, bank: str, txn_id: str) -> bytes:
    return f"P|{enterprise_id}|{bank}|{txn_id}".encode()


def month_key(enterprise_id: str, month: int) -> bytes:
    return f"M|{enterprise_id}|{format_month(month)}".encode()


def carry_key(enterprise_id: str) -> bytes:
    return f"C|{enterprise_id}".encode()


def evaluate_key(enterprise_id: str) -> bytes:
    """Marks an enterprise whose committed state changed since its signals were evaluated."""
    return f"E|{enterprise_id}".encode()
