"""Kernels of the information subject's items: query records, disputes and statements, as of
the pull. They read ``Context.subject`` only (engine/products/subject.py), never the history.
"""

from __future__ import annotations

from engine.periods import us_to_cst_date
from engine.products.kernels._base import Context, Value, kernel
from engine.products.subject import ANSWERED, QueryFact, dispute_marks

_DAY_US = 86_400_000_000
_QUERY_WINDOW_DAYS = 90
_RESOLVED_WINDOW_DAYS = 365


def _recent_queries(ctx: Context) -> list[QueryFact]:
    now = ctx.subject.now_us
    since = now - _QUERY_WINDOW_DAYS * _DAY_US
    return [q for q in ctx.subject.queries if since <= q.at_us < now]


@kernel("queries_90d")
def _queries_90d(ctx: Context) -> Value:
    return len(_recent_queries(ctx))


@kernel("distinct_queriers_90d")
def _distinct_queriers_90d(ctx: Context) -> Value:
    return len({q.institution for q in _recent_queries(ctx)})


@kernel("last_query_date")
def _last_query_date(ctx: Context) -> Value:
    before = [q.at_us for q in ctx.subject.queries if q.at_us < ctx.subject.now_us]
    return us_to_cst_date(max(before)) if before else None


@kernel("open_disputes")
def _open_disputes(ctx: Context) -> Value:
    return sum(1 for d in ctx.subject.disputes if d.status == "received")


@kernel("disputes_resolved_12m")
def _disputes_resolved_12m(ctx: Context) -> Value:
    since = ctx.subject.now_us - _RESOLVED_WINDOW_DAYS * _DAY_US
    return sum(
        1
        for d in ctx.subject.disputes
        if d.status in ANSWERED and d.answered_at_us is not None and d.answered_at_us >= since
    )


@kernel("disputed_items")
def _disputed_items(ctx: Context) -> Value:
    marks, _ = dispute_marks(ctx.subject.disputes, ctx.period.kind, ctx.period.label)
    return len(marks)


@kernel("has_statement")
def _has_statement(ctx: Context) -> Value:
    return 1 if ctx.subject.statements else 0


@kernel("statement_date")
def _statement_date(ctx: Context) -> Value:
    filed = [s.filed_at_us for s in ctx.subject.statements]
    return us_to_cst_date(max(filed)) if filed else None
