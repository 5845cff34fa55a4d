"""Kernels of the information subject's items: the pull itself (the report's header), query
records, disputes and statements, as of the pull. They read ``Context.subject`` only
(engine/products/subject.py), never the history.
"""

from __future__ import annotations

from engine.periods import us_to_cst_date, us_to_cst_iso
from engine.products.kernels._base import Context, Value, kernel
from engine.products.subject import QueryFact, dispute_marks

_DAY_US = 86_400_000_000
_QUERY_WINDOW_DAYS = 90
_CREDIT_QUERIERS_WINDOW_DAYS = 30
_CREDIT = "credit_application"


# -- header: what the report is, for whom, as of when -------------------------------------


@kernel("report_id")
def _report_id(ctx: Context) -> Value:
    return ctx.subject.pull.request_id


@kernel("generated_at")
def _generated_at(ctx: Context) -> Value:
    return us_to_cst_iso(ctx.subject.now_us)


@kernel("data_as_of")
def _data_as_of(ctx: Context) -> Value:
    return ctx.subject.pull.data_as_of


@kernel("querying_institution")
def _querying_institution(ctx: Context) -> Value:
    return ctx.subject.pull.institution


@kernel("query_purpose")
def _query_purpose(ctx: Context) -> Value:
    return ctx.subject.pull.purpose


# -- query records --------------------------------------------------------------------------


def _recent_queries(ctx: Context, days: int = _QUERY_WINDOW_DAYS) -> list[QueryFact]:
    now = ctx.subject.now_us
    since = now - days * _DAY_US
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


@kernel("credit_application_queries_90d")
def _credit_queries_90d(ctx: Context) -> Value:
    return sum(1 for q in _recent_queries(ctx) if q.purpose == _CREDIT)


@kernel("credit_application_queriers_30d")
def _credit_queriers_30d(ctx: Context) -> Value:
    recent = _recent_queries(ctx, _CREDIT_QUERIERS_WINDOW_DAYS)
    return len({q.institution for q in recent if q.purpose == _CREDIT})


# -- disputes and statements ----------------------------------------------------------------


@kernel("open_disputes")
def _open_disputes(ctx: Context) -> Value:
    return sum(1 for d in ctx.subject.disputes if d.status == "received")


@kernel("disputed_items")
def _disputed_items(ctx: Context) -> Value:
    marks, _ = dispute_marks(ctx.subject.disputes, ctx.period.kind, ctx.period.label)
    return len(marks)


@kernel("statement_date")
def _statement_date(ctx: Context) -> Value:
    filed = [s.filed_at_us for s in ctx.subject.statements]
    return us_to_cst_date(max(filed)) if filed else None
