"""Kernels of the quarterly-only items the history determines: key indicators and the analytic
segments (the items at the pull are in subject.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from itertools import pairwise

from engine.products.classify import LENDING
from engine.products.history import Day
from engine.products.kernels._base import (
    ALL,
    OP_IN,
    OP_OUT,
    TRADE,
    Context,
    Value,
    cv,
    kernel,
    ratio,
)
from engine.products.kernels.building_blocks import (
    hhi,
    loan_days,
    paid_months,
    top_share,
)

_BANK = frozenset({"BANK_OWN"})
_FIN = frozenset({"FIN_PARTNER"})
_UTILITY = frozenset({"UTILITY"})


def _op_in_by_month(ctx: Context, months: list[int]) -> list[int]:
    return [ctx.amount_in(OP_IN, [m]) for m in months]


def _has_flows(ctx: Context, month: int) -> bool:
    return bool(ctx.history.month(month).flows)


def _growth(current: float | None, previous: float | None) -> float | None:
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / abs(previous)


def _spread(measure: Callable[[list[int]], float | None], values: list[int]) -> float | None:
    """A measure of spread over monthly values: none from fewer than two months on record
    (a young firm's single month has no volatility to show)."""
    return None if len(values) < 2 else measure(values)


def _previous_whole(ctx: Context) -> Context | None:
    """Q-1 for the counterparty comparisons: kept by month, not by day, so a partial quarter
    cannot be compared with the same days of Q-1, and against the whole of it a customer
    who pays at the quarter's end would read as lost; None then, and when Q-1 is not wholly
    on record."""
    return None if ctx.partial else ctx.earlier(1)


def _longest_run(flags: list[bool]) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


# -- history and coverage (key indicators; the header's until spec version 6) -----------


@kernel("reporting_banks")
def _reporting_banks(ctx: Context) -> Value:
    return len({bank for m in ctx.months for bank, _ in ctx.history.month(m).accounts.values()})


@kernel("first_transaction_date")
def _first_transaction_date(ctx: Context) -> Value:
    first = ctx.history.first_day()  # pruned or not: it does not drift as history ages
    return None if first is None else first.isoformat()


@kernel("last_transaction_date")
def _last_transaction_date(ctx: Context) -> Value:
    last = ctx.history.last_day(ctx.period.last_month)
    return None if last is None else last.isoformat()


@kernel("history_months")
def _history_months(ctx: Context) -> Value:
    first = ctx.history.first_month()
    # to the quarter's last month, or to the pull's month while the quarter is partial
    last = ctx.last_whole_month + 1 if ctx.partial else ctx.period.last_month
    return 0 if first is None else max(0, min(36, last - first + 1))


# -- key indicators -----------------------------------------------------------------------


@kernel("ttm_operating_inflow_fen")
def _ttm_operating_inflow(ctx: Context) -> Value:
    return ctx.amount_in(OP_IN, ctx.window(12))


@kernel("ttm_net_flow_fen")
def _ttm_net_flow(ctx: Context) -> Value:
    return ctx.amount_in(ALL, ctx.window(12)) - ctx.amount_out(ALL, ctx.window(12))


@kernel("ttm_average_daily_balance_fen")
def _ttm_average_daily_balance(ctx: Context) -> Value:
    values = [b for b in ctx.window_eod(ctx.window(12)) if b is not None]
    return None if not values else sum(values) // len(values)


@kernel("cash_cover_months")
def _cash_cover_months(ctx: Context) -> Value:
    months = ctx.window(12)
    outflow = ctx.amount_out(OP_OUT, months)
    closing = sum(ctx.history.balances_at_end_of(ctx.period.last_month).values())
    # the mean monthly outflow over the months on record, not over twelve
    return None if outflow == 0 else closing / (outflow / len(months))


# -- trend --------------------------------------------------------------------------------


# A flow of a partial quarter is compared with the same number of days of the earlier one
# (its first days, from the daily totals); a whole quarter with the whole earlier quarter.
def _inflow(ctx: Context) -> int:
    return ctx.amount_in()


def _operating_inflow(ctx: Context) -> int:
    return ctx.amount_in(OP_IN)


def _outflow(ctx: Context) -> int:
    return ctx.amount_out()


def _net_flow(ctx: Context) -> int:
    return ctx.amount_in() - ctx.amount_out()


_BY_DAY: dict[Callable[[Context], int], Callable[[Day], int]] = {
    _inflow: lambda d: d.inflow,
    _operating_inflow: lambda d: d.operating_in,
    _outflow: lambda d: d.outflow,
    _net_flow: lambda d: d.inflow - d.outflow,
}


def _base(ctx: Context, value: Callable[[Context], int], quarters: int) -> int | None:
    """``value`` of the quarter ``quarters`` back, over as many days as P has had; None when
    that quarter is not wholly on record (no base)."""
    earlier = ctx.earlier(quarters)
    if earlier is None:
        return None
    if not ctx.partial:
        return value(earlier)
    return sum(_BY_DAY[value](d) for d in ctx.base_days(earlier))


def _flow_trend(item: str, value: Callable[[Context], int], quarters: int) -> None:
    def compute(ctx: Context) -> Value:
        return _growth(value(ctx), _base(ctx, value, quarters))

    kernel(item)(compute)


def _balance_trend(item: str, quarters: int) -> None:
    # a mean per day: the days of P so far against every day of the earlier quarter
    def compute(ctx: Context) -> Value:
        earlier = ctx.earlier(quarters)
        base = None if earlier is None else earlier.average_daily_balance()
        return _growth(ctx.average_daily_balance(), base)

    kernel(item)(compute)


_flow_trend("inflow_qoq_growth", _inflow, 1)
_flow_trend("inflow_yoy_growth", _inflow, 4)
_flow_trend("operating_inflow_qoq_growth", _operating_inflow, 1)
_flow_trend("operating_inflow_yoy_growth", _operating_inflow, 4)
_flow_trend("outflow_qoq_growth", _outflow, 1)
_flow_trend("outflow_yoy_growth", _outflow, 4)
_balance_trend("average_daily_balance_qoq_growth", 1)
_balance_trend("average_daily_balance_yoy_growth", 4)


def _change(current: int, base: int | None) -> int | None:
    return None if base is None else current - base


@kernel("net_flow_qoq_change_fen")
def _net_flow_qoq(ctx: Context) -> Value:
    return _change(_net_flow(ctx), _base(ctx, _net_flow, 1))


@kernel("net_flow_yoy_change_fen")
def _net_flow_yoy(ctx: Context) -> Value:
    return _change(_net_flow(ctx), _base(ctx, _net_flow, 4))


# Counterparties are kept by month, not by day: a partial quarter's counterparties cannot be
# compared with the same days of the previous quarter, and against the whole of it they
# would read as customers lost or concentration risen because the quarter is not over.
@kernel("customers_qoq_change")
def _customers_qoq(ctx: Context) -> Value:
    previous = _previous_whole(ctx)
    return None if previous is None else len(ctx.customers()) - len(previous.customers())


@kernel("operating_inflow_slope_6m_fen")
def _operating_inflow_slope(ctx: Context) -> Value:
    # Least squares over x = 1..k, the k months of W(6) on record: slope =
    # sum((2x - k - 1) * y) * 6 / (k^3 - k), exactly, then floored (35 when k = 6).
    values = _op_in_by_month(ctx, ctx.window(6))
    k = len(values)
    if k < 2:
        return None
    return sum((2 * x - k - 1) * y for x, y in enumerate(values, start=1)) * 6 // (k**3 - k)


# -- stability ----------------------------------------------------------------------------


@kernel("operating_inflow_cv_6m")
def _operating_inflow_cv_6m(ctx: Context) -> Value:
    return _spread(cv, _op_in_by_month(ctx, ctx.window(6)))


@kernel("zero_operating_inflow_months_12m")
def _zero_operating_inflow_months(ctx: Context) -> Value:
    return sum(1 for a in _op_in_by_month(ctx, ctx.window(12)) if a == 0)


@kernel("largest_mom_drop_12m")
def _largest_mom_drop(ctx: Context) -> Value:
    values = _op_in_by_month(ctx, ctx.window(12))
    drops = [(a - b) / a for a, b in pairwise(values) if a > 0]
    return None if not drops else max(max(drops), 0.0)


@kernel("outflow_cv_6m")
def _outflow_cv_6m(ctx: Context) -> Value:
    return _spread(cv, [ctx.amount_out(ALL, [m]) for m in ctx.window(6)])


@kernel("negative_net_flow_months_12m")
def _negative_net_flow_months(ctx: Context) -> Value:
    months = ctx.window(12)
    return sum(1 for m in months if ctx.amount_in(ALL, [m]) < ctx.amount_out(ALL, [m]))


@kernel("daily_balance_cv")
def _daily_balance_cv(ctx: Context) -> Value:
    return cv(ctx.defined_eod)


@kernel("min_to_mean_operating_inflow_6m")
def _min_to_mean(ctx: Context) -> Value:
    return _spread(
        lambda values: ratio(min(values), sum(values) / len(values)),
        _op_in_by_month(ctx, ctx.window(6)),
    )


# -- concentration ------------------------------------------------------------------------


def _trade_inflows(ctx: Context, months: list[int] | None = None) -> list[int]:
    return [p.inflow for p in ctx.of_class(TRADE, months).values()]


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@kernel("top1_customer_share_change_qoq")
def _top1_change(ctx: Context) -> Value:
    previous = _previous_whole(ctx)
    if previous is None:
        return None
    return _difference(top_share(_trade_inflows(ctx), 1), top_share(_trade_inflows(previous), 1))


@kernel("customer_hhi_change_qoq")
def _hhi_change(ctx: Context) -> Value:
    previous = _previous_whole(ctx)
    if previous is None:
        return None
    return _difference(hhi(_trade_inflows(ctx)), hhi(_trade_inflows(previous)))


@kernel("dominant_customer_months")
def _dominant_customer_months(ctx: Context) -> Value:
    months = 0
    for m in ctx.months:
        inflows = _trade_inflows(ctx, [m])
        if inflows and 2 * max(inflows) > sum(inflows):
            months += 1
    return months


@kernel("top1_customer_share_12m")
def _top1_customer_12m(ctx: Context) -> Value:
    return top_share(_trade_inflows(ctx, ctx.window(12)), 1)


# -- stickiness ---------------------------------------------------------------------------


def _known_share(ctx: Context, months: int, inflow: bool) -> float | None:
    known = ctx.known(ctx.before(months))
    amounts = {k: p.inflow if inflow else p.outflow for k, p in ctx.trade.items()}
    return ratio(sum(a for k, a in amounts.items() if k in known), sum(amounts.values()))


@kernel("inflow_share_known_12m")
def _inflow_known_12m(ctx: Context) -> Value:
    return _known_share(ctx, 12, True)


@kernel("outflow_share_known_12m")
def _outflow_known_12m(ctx: Context) -> Value:
    return _known_share(ctx, 12, False)


@kernel("new_customers")
def _new_customers(ctx: Context) -> Value:
    return len(ctx.customers() - ctx.known(ctx.before(12)))


@kernel("lost_customers")
def _lost_customers(ctx: Context) -> Value:
    previous = _previous_whole(ctx)
    return None if previous is None else len(previous.customers() - ctx.ids())


@kernel("new_suppliers")
def _new_suppliers(ctx: Context) -> Value:
    return len(ctx.suppliers() - ctx.known(ctx.before(12)))


@kernel("lost_suppliers")
def _lost_suppliers(ctx: Context) -> Value:
    previous = _previous_whole(ctx)
    return None if previous is None else len(previous.suppliers() - ctx.ids())


@kernel("customer_retention_ratio")
def _retention(ctx: Context) -> Value:
    previous = _previous_whole(ctx)
    if previous is None:
        return None
    customers = previous.customers()
    return ratio(len(customers & ctx.ids()), len(customers))


@kernel("customer_active_months_12m")
def _customer_active_months(ctx: Context) -> Value:
    customers = ctx.customers()
    if not customers:
        return None
    months = ctx.window(12)
    by_month = [ctx.ids([m]) for m in months]
    active = sum(1 for c in customers for ids in by_month if c in ids)
    return active / len(customers)


# -- obligations --------------------------------------------------------------------------


def _debt_service(ctx: Context, months: list[int] | None = None) -> int:
    """Debt only (spec version 11): the bank's principal and interest, and what partners
    that lend are paid; a guarantor's fee and an investor's dividend are not debt."""
    return (
        ctx.amount_out(_BANK, months, bank_channel="loan")
        + ctx.amount_out(_BANK, months, bank_channel="interest")
        + sum(ctx.amount_out(_FIN, months, subtype=subtype) for subtype in sorted(LENDING))
    )


@kernel("debt_service_fen")
def _debt_service_item(ctx: Context) -> Value:
    return _debt_service(ctx)


@kernel("debt_service_coverage")
def _debt_service_coverage(ctx: Context) -> Value:
    return ratio(ctx.amount_in(OP_IN), _debt_service(ctx))


@kernel("bank_loans_disbursed_ttm_fen")
def _loans_ttm(ctx: Context) -> Value:
    return ctx.amount_in(_BANK, ctx.window(12), bank_channel="loan")


@kernel("debt_service_ttm_fen")
def _debt_service_ttm(ctx: Context) -> Value:
    return _debt_service(ctx, ctx.window(12))


@kernel("new_financing_partners")
def _new_financing_partners(ctx: Context) -> Value:
    known = ctx.known(ctx.before(12))
    return len(set(ctx.of_class("FIN_PARTNER")) - known)


@kernel("months_covered_12m")
def _months_covered(ctx: Context) -> Value:
    return len(ctx.window(12))


@kernel("judicial_months_12m")
def _judicial_months(ctx: Context) -> Value:
    return sum(1 for m in ctx.window(12) if ctx.amount_out(frozenset({"JUDICIAL"}), [m]) > 0)


# financing partners by kind (spec version 11): debt apart from equity and guarantees
_FIN_BY_KIND = (
    ("online_lender_inflow_fen", True, "lender"),
    ("leasing_paid_fen", False, "lessor"),
    ("factoring_inflow_fen", True, "factor"),
    ("guarantee_fees_paid_fen", False, "guarantor"),
)


def _fin_kind_kernel(inflow: bool, subtype: str) -> Callable[[Context], Value]:
    def compute(ctx: Context) -> Value:
        return ctx.flows(inflow, _FIN, subtype)[0]

    return compute


for _fin_item, _fin_inflow, _fin_subtype in _FIN_BY_KIND:
    kernel(_fin_item)(_fin_kind_kernel(_fin_inflow, _fin_subtype))


# where loan proceeds went within three days (spec version 11): each loan day on its own


@kernel("loan_proceeds_to_individuals_3d_fen")
def _proceeds_to_individuals(ctx: Context) -> Value:
    return sum(min(d.lent, d.to_persons) for d in loan_days(ctx))


@kernel("loan_proceeds_to_self_3d_fen")
def _proceeds_to_self(ctx: Context) -> Value:
    return sum(min(d.lent, d.to_self) for d in loan_days(ctx))


@kernel("loan_proceeds_to_operations_3d_fen")
def _proceeds_to_operations(ctx: Context) -> Value:
    return sum(min(d.lent, d.operating_out) for d in loan_days(ctx))


# -- continuity ---------------------------------------------------------------------------


@kernel("utility_months_12m")
def _utility_months_12m(ctx: Context) -> Value:
    return paid_months(ctx, ctx.window(12), _UTILITY)


@kernel("tax_months_12m")
def _tax_months(ctx: Context) -> Value:
    return paid_months(ctx, ctx.window(12), frozenset({"TAX"}))


@kernel("social_insurance_months_12m")
def _social_months(ctx: Context) -> Value:
    return paid_months(ctx, ctx.window(12), frozenset({"SOCIAL"}))


@kernel("payroll_months_12m")
def _payroll_months(ctx: Context) -> Value:
    return paid_months(ctx, ctx.window(12), frozenset({"PAYROLL"}))


@kernel("longest_utility_gap_12m")
def _longest_utility_gap(ctx: Context) -> Value:
    months = ctx.window(12)
    return _longest_run([ctx.amount_out(_UTILITY, [m]) == 0 for m in months])


@kernel("utility_payment_cv_12m")
def _utility_cv(ctx: Context) -> Value:
    paid = [a for a in (ctx.amount_out(_UTILITY, [m]) for m in ctx.window(12)) if a > 0]
    return None if len(paid) < 2 else cv(paid)


# The public payments year on year: a whole quarter's flows against Q-4's; a partial quarter's
# against as many first days of Q-4, from the day marks (state/month.py mark_of), as the flows
# of the trend segment are compared over the days.
def _paid_yoy(item: str, mark: str, classes: frozenset[str], subtype: str | None) -> None:
    def compute(ctx: Context) -> Value:
        earlier = ctx.earlier(4)
        if earlier is None:
            return None
        if ctx.partial:
            days = earlier.history.marks(earlier.months)[: ctx.elapsed_days]
            base = sum(marks.get(mark, 0) for marks in days)
        else:
            base = earlier.amount_out(classes, subtype=subtype)
        return _growth(ctx.amount_out(classes, subtype=subtype), base)

    kernel(item)(compute)


_paid_yoy("power_paid_yoy_growth", "power_paid", _UTILITY, "power")
_paid_yoy("water_paid_yoy_growth", "water_paid", _UTILITY, "water")
_paid_yoy("gas_paid_yoy_growth", "gas_paid", _UTILITY, "gas")
_paid_yoy("payroll_paid_yoy_growth", "payroll_paid", frozenset({"PAYROLL"}), None)
_paid_yoy("tax_paid_yoy_growth", "tax_paid", frozenset({"TAX"}), None)


@kernel("tax_quarters_4q")
def _tax_quarters(ctx: Context) -> Value:
    # the last four quarters that are over: P, or while P is partial the four before it
    start = 1 if ctx.partial else 0
    quarters = [ctx.shifted(q) for q in range(start, start + 4)]
    return sum(1 for q in quarters if q.amount_out(frozenset({"TAX"})) > 0)


# -- quality flags: the signals raised in the quarter --------------------------------------

# The evaluated rules of specs/signals.toml, each with its item signal_<rule>_days (spec
# version 13): days of the quarter so far covered by an episode of the rule the workers kept.
SIGNAL_RULES = (
    "operating_inflow_stopped",
    "operating_inflow_collapse",
    "account_overdrawn",
    "balance_cover_low",
    "recurring_payment_lapsed",
    "loan_proceeds_diverted",
    "financing_partner_stacking",
    "largest_customer_stopped",
    "fast_in_fast_out",
    "judicial_deduction",
)


def _longest_without_operating_inflow(ctx: Context) -> int:
    return _longest_run([d.operating_in == 0 for d in ctx.lived_days])


def _signal_days_kernel(rule: str) -> Callable[[Context], Value]:
    def compute(ctx: Context) -> Value:
        year, m0 = divmod(ctx.months[0], 12)
        first = date(year, m0 + 1, 1)
        days = [first + timedelta(days=k) for k in range(ctx.elapsed_days)]
        return ctx.history.signal_days(rule, days)

    return compute


for _rule in SIGNAL_RULES:
    kernel(f"signal_{_rule}_days")(_signal_days_kernel(_rule))


@kernel("longest_no_operating_inflow_days")
def _longest_no_operating_inflow(ctx: Context) -> Value:
    return _longest_without_operating_inflow(ctx)
