"""What the information subject's segments are computed from: the pull itself (who asks,
why, when), the records of who queried the enterprise before, its disputes and its
statements, as of the moment of the pull.

Plain data, filled by the API from the access layer; the products room knows nothing of
how they are stored. The subject segments (``SUBJECT_SEGMENTS``) are computed at every pull,
because they depend on the moment of the pull; every other segment depends only on the
enterprise's history and its disputes, and is rendered once and cached. The header opens the
quarterly report (``OPENING_SEGMENTS``), the others close it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.periods import us_to_cst_iso

__all__ = [
    "MARKING",
    "OPENING_SEGMENTS",
    "SUBJECT_SEGMENTS",
    "DisputeFact",
    "Pull",
    "QueryFact",
    "StatementFact",
    "Subject",
    "dispute_marks",
]

#: The segments computed at the pull: the header opens the quarterly report, the rest close it.
OPENING_SEGMENTS = ("header",)
SUBJECT_SEGMENTS = ("header", "query_records", "disputes", "statements")
#: Dispute statuses whose items products mark.
MARKING = frozenset({"received", "unresolved"})


@dataclass(frozen=True, slots=True)
class QueryFact:
    """One query of the enterprise's products by an institution that was answered."""

    at_us: int
    institution: str
    purpose: str | None = None  # its authorization's


@dataclass(frozen=True, slots=True)
class Pull:
    """The request a report answers: what its header says."""

    request_id: str | None = None  # the response's X-Request-Id, and its query record's
    institution: str | None = None  # None: the enterprise reads its own
    purpose: str | None = None  # of the authorization the pull is made under
    data_as_of: str | None = None  # the partition's watermark (the response's as_of)


@dataclass(frozen=True, slots=True)
class DisputeFact:
    id: str
    product: str
    period: str
    items: tuple[str, ...]
    statement: str
    status: str
    filed_at_us: int
    due_at_us: int
    answered_at_us: int | None


@dataclass(frozen=True, slots=True)
class StatementFact:
    id: str
    text: str
    filed_at_us: int


_NO_PULL = Pull()


@dataclass(frozen=True, slots=True)
class Subject:
    """Everything the subject segments read, as of ``now_us``."""

    now_us: int = 0
    queries: tuple[QueryFact, ...] = ()
    disputes: tuple[DisputeFact, ...] = ()
    statements: tuple[StatementFact, ...] = field(default=())
    pull: Pull = field(default=_NO_PULL)


def dispute_marks(
    disputes: Iterable[DisputeFact], product: str, period: str
) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """The marks a product shows: item id -> ids of the disputes that mark it, and the
    disputes themselves (id, status, items, statement, when filed and when due)."""
    marks: dict[str, list[str]] = {}
    shown: list[dict[str, Any]] = []
    for dispute in sorted(disputes, key=lambda d: (d.filed_at_us, d.id)):
        if dispute.product != product or dispute.period != period:
            continue
        if dispute.status not in MARKING:
            continue
        for item in dispute.items:
            marks.setdefault(item, []).append(dispute.id)
        shown.append(
            {
                "id": dispute.id,
                "status": dispute.status,
                "items": list(dispute.items),
                "statement": dispute.statement,
                "filed_at": us_to_cst_iso(dispute.filed_at_us),
                "due_at": us_to_cst_iso(dispute.due_at_us),
            }
        )
    return marks, shown
