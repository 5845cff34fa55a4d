"""The shapes of request and response bodies, declared once: FastAPI validates requests
against them and generates the OpenAPI document (GET /openapi.json) from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from engine.access.commands import MAX_STATEMENT_CHARS
from engine.access.model import (
    Authorization,
    Dispute,
    Institution,
    Purpose,
    Statement,
    Step,
)
from engine.access.records import QueryRecord
from engine.periods import us_to_cst_iso

__all__ = [
    "AuthorizationIn",
    "AuthorizationOut",
    "DisputeIn",
    "DisputeOut",
    "ErrorOut",
    "InstitutionOut",
    "QueryPage",
    "RejectOut",
    "RejectsOut",
    "ResolutionIn",
    "SignalOut",
    "SignalsOut",
    "StatementIn",
    "StatementOut",
    "authorization_out",
    "dispute_out",
    "institution_out",
    "query_out",
    "statement_out",
    "to_us",
]

ProductName = Literal["monthly", "quarterly"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STRICT = ConfigDict(extra="forbid", str_max_length=MAX_STATEMENT_CHARS)


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable reason, stable across versions.")
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class StepOut(BaseModel):
    status: str
    at: str
    by: str
    note: str | None = None


class AuthorizationIn(BaseModel):
    model_config = _STRICT
    institution: str = Field(pattern=r"^[A-Z0-9]{4,12}$")
    products: list[ProductName] = Field(min_length=1, max_length=2)
    purpose: Purpose
    valid_until: AwareDatetime = Field(description="RFC 3339 with an offset.")


class AuthorizationOut(BaseModel):
    id: str
    enterprise_id: str
    institution: str
    products: list[str]
    purpose: str
    valid_until: str
    status: str = Field(description="pending, active, rejected, revoked or expired")
    requested_by: str
    created_at: str
    history: list[StepOut]


class DisputeIn(BaseModel):
    model_config = _STRICT
    period: str = Field(description="YYYY-MM (monthly summary) or YYYYQn (quarterly report)")
    items: list[str] = Field(min_length=1, max_length=200)
    statement: str = Field(min_length=1, max_length=MAX_STATEMENT_CHARS)


class ResolutionIn(BaseModel):
    model_config = _STRICT
    outcome: Literal["corrected", "confirmed", "unresolved"]
    note: str = Field(default="", max_length=MAX_STATEMENT_CHARS)


class DisputeOut(BaseModel):
    id: str
    enterprise_id: str
    product: str
    period: str
    items: list[str]
    statement: str
    status: str = Field(description="received, corrected, confirmed or unresolved")
    filed_at: str
    due_at: str
    history: list[StepOut]


class StatementIn(BaseModel):
    model_config = _STRICT
    text: str = Field(min_length=1, max_length=MAX_STATEMENT_CHARS)


class StatementOut(BaseModel):
    id: str
    enterprise_id: str
    text: str
    filed_at: str


class InstitutionOut(BaseModel):
    code: str
    name: str
    roles: list[str]
    status: str
    created_at: str
    updated_at: str


class QueryOut(BaseModel):
    request_id: str
    at: str
    by: str
    institution: str | None
    enterprise_id: str | None
    product: str
    period: str | None
    authorization_id: str | None
    purpose: str | None
    outcome: str
    status: int


class QueryPage(BaseModel):
    queries: list[QueryOut]
    next: str | None = Field(description="Cursor of the next (older) page; null at the end.")


class RejectSource(BaseModel):
    topic: str
    partition: int
    offset: int
    index: int | None = Field(description="Position in a batch message; null for one event.")


class RejectOut(BaseModel):
    reason: str = Field(description="Stable reason code (the README's reject reasons).")
    detail: str
    stage: str
    source: RejectSource
    original: str = Field(description="The bytes as the bank sent them, to fix and replay.")
    original_encoding: Literal["utf-8", "base64"]
    rejected_at: str


class RejectsOut(BaseModel):
    by_reason: dict[str, int] = Field(description="Every rejected event so far, by reason.")
    rejects: list[RejectOut] = Field(description="The most recent, newest first.")


class SignalOut(BaseModel):
    """A transition of a signal episode, as published on credit.signals (docs/signals.md)."""

    id: str = Field(description="The episode's id: the same for its raised, cleared, retracted.")
    enterprise_id: str
    rule: str = Field(description="A rule of specs/signals.toml.")
    severity: Literal["info", "warning", "critical"]
    state: Literal["raised", "cleared", "retracted"]
    date: str = Field(description="The episode's first day (China time), YYYY-MM-DD.")
    evidence: dict[str, Any] = Field(description="The rule's evidence when it was raised.")
    raised_at: str = Field(description="Start of the episode's first day, in event time.")
    emitted_at: str = Field(description="When the worker published the transition.")
    as_of: str = Field(description="The day the rules were judged on.")


class SignalsOut(BaseModel):
    signals: list[SignalOut] = Field(description="Oldest first.")
    next: str = Field(description="The cursor to pass as `since` next time.")


def _steps(history: tuple[Step, ...]) -> list[dict[str, Any]]:
    return [
        {"status": s.status, "at": us_to_cst_iso(s.at_us), "by": s.by, "note": s.note}
        for s in history
    ]


def authorization_out(a: Authorization, now_us: int) -> dict[str, Any]:
    return {
        "id": a.id,
        "enterprise_id": a.enterprise_id,
        "institution": a.institution,
        "products": list(a.products),
        "purpose": a.purpose,
        "valid_until": us_to_cst_iso(a.valid_until_us),
        "status": a.status_at(now_us).value,
        "requested_by": a.requested_by,
        "created_at": us_to_cst_iso(a.created_at_us),
        "history": _steps(a.history),
    }


def dispute_out(d: Dispute) -> dict[str, Any]:
    return {
        "id": d.id,
        "enterprise_id": d.enterprise_id,
        "product": d.product,
        "period": d.period,
        "items": list(d.items),
        "statement": d.statement,
        "status": d.status,
        "filed_at": us_to_cst_iso(d.filed_at_us),
        "due_at": us_to_cst_iso(d.due_at_us),
        "history": _steps(d.history),
    }


def statement_out(s: Statement) -> dict[str, Any]:
    return {
        "id": s.id,
        "enterprise_id": s.enterprise_id,
        "text": s.text,
        "filed_at": us_to_cst_iso(s.filed_at_us),
    }


def institution_out(i: Institution) -> dict[str, Any]:
    return {
        "code": i.code,
        "name": i.name,
        "roles": list(i.roles),
        "status": i.status,
        "created_at": us_to_cst_iso(i.created_at_us),
        "updated_at": us_to_cst_iso(i.updated_at_us),
    }


def query_out(r: QueryRecord) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "at": us_to_cst_iso(r.at_us),
        "by": r.by,
        "institution": r.institution,
        "enterprise_id": r.enterprise_id,
        "product": r.product,
        "period": r.period,
        "authorization_id": r.authorization_id,
        "purpose": r.purpose,
        "outcome": r.outcome,
        "status": r.status,
    }


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)
