"""Reference, part 3: the quarterly-only items, naively, from their definitions in the spec."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from tests.reference.events import Txn
from tests.reference.items import (
    ITEMS,
    LENDING,
    OP_IN,
    OP_OUT,
    adb,
    back,
    balance_at,
    base,
    before,
    coefficient_of_variation,
    customers,
    day_total,
    days_of,
    elapsed,
    eod_series,
    first_month,
    herfindahl,
    item,
    known,
    last_whole_month,
    lends,
    longest_run,
    matching,
    month_days,
    of,
    partial,
    parties,
    share,
    start_of,
    suppliers,
    to_a_lender,
    top,
    total,
    window,
)

T = list[Txn]


def op_in(t: T, m: int) -> int:
    return total(t, [m], True, OP_IN)


def growth(cur: float | None, prev: float | None) -> float | None:
    if cur is None or prev is None or prev == 0:
        return None
    return (cur - prev) / abs(prev)


def spread(measure: Any, values: list[int]) -> float | None:
    """No spread from fewer than two months on record."""
    return None if len(values) < 2 else measure(values)


# -- header -------------------------------------------------------------------------------


@item("reporting_banks")
def _(t, m, p):
    return len({x.bank for x in of(t, m)})


@item("first_transaction_date")
def _(t, m, p):
    return min(x.day for x in t).isoformat()


def last_day(t: T, m: list[int]) -> date | None:
    days = [x.day for x in t if x.month <= m[-1]]
    return max(days) if days else None


@item("last_transaction_date")
def _(t, m, p):
    d = last_day(t, m)
    return None if d is None else d.isoformat()


@item("history_months")
def _(t, m, p):
    last = last_whole_month(m) + 1 if partial(m) else m[-1]  # the pull's month if partial
    return max(0, min(36, last - first_month(t) + 1))


# -- key indicators -----------------------------------------------------------------------


@item("ttm_operating_inflow_fen")
def _(t, m, p):
    return total(t, window(m, 12), True, OP_IN)


@item("ttm_net_flow_fen")
def _(t, m, p):
    w = window(m, 12)
    return total(t, w, True) - total(t, w, False)


@item("ttm_average_daily_balance_fen")
def _(t, m, p):
    return adb(t, window(m, 12))


@item("cash_cover_months")
def _(t, m, p):
    out = total(t, window(m, 12), False, OP_OUT)
    closing = balance_at(t, start_of(month_days(m[-1])[-1] + timedelta(days=1))) or 0
    return None if out == 0 else closing / (out / len(window(m, 12)))


# -- trend --------------------------------------------------------------------------------


def earlier(t: T, m: list[int], quarters: int, inflow: bool, classes: Any = None) -> int | None:
    """A flow of the quarter ``quarters`` back; while P is partial, over its first as many
    days as P has had; None when that quarter is not wholly on record."""
    before_m = base(m, quarters)
    if before_m is None:
        return None
    if not partial(m):
        return total(t, before_m, inflow, classes)
    lived, _ = elapsed(m)
    days = set([d for x in before_m for d in month_days(x)][:lived])
    return sum(
        x.amount
        for x in of(t, before_m)
        if x.day in days and x.inflow == inflow and (classes is None or x.cls in classes)
    )


def _trend(name: str, inflow: bool, classes: Any, quarters: int) -> None:
    ITEMS[name] = lambda t, m, p: growth(
        total(t, m, inflow, classes), earlier(t, m, quarters, inflow, classes)
    )


_trend("inflow_qoq_growth", True, None, 1)
_trend("inflow_yoy_growth", True, None, 4)
_trend("operating_inflow_qoq_growth", True, OP_IN, 1)
_trend("operating_inflow_yoy_growth", True, OP_IN, 4)
_trend("outflow_qoq_growth", False, None, 1)
_trend("outflow_yoy_growth", False, None, 4)


def adb_of(t: T, months: list[int] | None) -> int | None:
    return None if months is None else adb(t, months)


ITEMS["average_daily_balance_qoq_growth"] = lambda t, m, p: growth(adb(t, m), adb_of(t, base(m, 1)))
ITEMS["average_daily_balance_yoy_growth"] = lambda t, m, p: growth(adb(t, m), adb_of(t, base(m, 4)))


def net_of(t: T, m: list[int]) -> int:
    return total(t, m, True) - total(t, m, False)


def net_earlier(t: T, m: list[int], quarters: int) -> int | None:
    inflow, outflow = earlier(t, m, quarters, True), earlier(t, m, quarters, False)
    return None if inflow is None or outflow is None else inflow - outflow


def change(current: int, previous: int | None) -> int | None:
    return None if previous is None else current - previous


@item("net_flow_qoq_change_fen")
def _(t, m, p):
    return change(net_of(t, m), net_earlier(t, m, 1))


@item("net_flow_yoy_change_fen")
def _(t, m, p):
    return change(net_of(t, m), net_earlier(t, m, 4))


def previous_quarter(m: list[int]) -> list[int] | None:
    """Q-1 for counterparty comparisons: none while P is partial or Q-1 not on record."""
    return None if partial(m) else base(m, 1)


@item("customers_qoq_change")
def _(t, m, p):
    q1 = previous_quarter(m)
    return None if q1 is None else len(customers(t, m)) - len(customers(t, q1))


@item("operating_inflow_slope_6m_fen")
def _(t, m, p):
    ys = [op_in(t, x) for x in window(m, 6)]
    k = len(ys)
    if k < 2:
        return None
    # exact least squares over x = 1..k: slope = sum((x - xbar) y) / sum((x - xbar)^2)
    # = sum((2x - k - 1) y) / 2 / (k (k^2 - 1) / 12), floored
    numerator = sum((2 * x - k - 1) * y for x, y in enumerate(ys, start=1))
    return numerator * 6 // (k * (k * k - 1))


# -- stability ----------------------------------------------------------------------------


@item("operating_inflow_cv_6m")
def _(t, m, p):
    return spread(coefficient_of_variation, [op_in(t, x) for x in window(m, 6)])


@item("zero_operating_inflow_months_12m")
def _(t, m, p):
    return sum(1 for x in window(m, 12) if op_in(t, x) == 0)


@item("largest_mom_drop_12m")
def _(t, m, p):
    w = window(m, 12)
    drops = [(op_in(t, a) - op_in(t, b)) / op_in(t, a) for a, b in pairwise(w) if op_in(t, a) > 0]
    return max(max(drops), 0.0) if drops else None


@item("outflow_cv_6m")
def _(t, m, p):
    return spread(coefficient_of_variation, [total(t, [x], False) for x in window(m, 6)])


@item("negative_net_flow_months_12m")
def _(t, m, p):
    return sum(1 for x in window(m, 12) if net_of(t, [x]) < 0)


@item("daily_balance_cv")
def _(t, m, p):
    return coefficient_of_variation(eod_series(t, m))


@item("min_to_mean_operating_inflow_6m")
def _(t, m, p):
    ys = [op_in(t, x) for x in window(m, 6)]
    return None if len(ys) < 2 else share(min(ys), sum(ys) / len(ys))


# -- concentration ------------------------------------------------------------------------


def trade_inflows(t: T, m: list[int]) -> list[int]:
    return [i for i, _ in parties(t, m, "TRADE").values()]


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@item("top1_customer_share_change_qoq")
def _(t, m, p):
    q1 = previous_quarter(m)
    if q1 is None:
        return None
    return diff(top(trade_inflows(t, m), 1), top(trade_inflows(t, q1), 1))


@item("customer_hhi_change_qoq")
def _(t, m, p):
    q1 = previous_quarter(m)
    if q1 is None:
        return None
    return diff(herfindahl(trade_inflows(t, m)), herfindahl(trade_inflows(t, q1)))


@item("dominant_customer_months")
def _(t, m, p):
    n = 0
    for x in m:
        inflows = trade_inflows(t, [x])
        if inflows and max(inflows) > 0.5 * sum(inflows):
            n += 1
    return n


@item("top1_customer_share_12m")
def _(t, m, p):
    return top(trade_inflows(t, window(m, 12)), 1)


# -- stickiness ---------------------------------------------------------------------------


def known_share(t: T, m: list[int], k: int, inflow: bool) -> float | None:
    seen = known(t, before(m, k))
    chosen = [x for x in of(t, m) if x.cls == "TRADE" and x.inflow == inflow]
    return share(sum(x.amount for x in chosen if x.cp in seen), sum(x.amount for x in chosen))


@item("inflow_share_known_12m")
def _(t, m, p):
    return known_share(t, m, 12, True)


@item("outflow_share_known_12m")
def _(t, m, p):
    return known_share(t, m, 12, False)


@item("new_customers")
def _(t, m, p):
    return len(customers(t, m) - known(t, before(m, 12)))


@item("lost_customers")
def _(t, m, p):
    q1 = previous_quarter(m)
    return None if q1 is None else len(customers(t, q1) - known(t, m))


@item("new_suppliers")
def _(t, m, p):
    return len(suppliers(t, m) - known(t, before(m, 12)))


@item("lost_suppliers")
def _(t, m, p):
    q1 = previous_quarter(m)
    return None if q1 is None else len(suppliers(t, q1) - known(t, m))


@item("customer_retention_ratio")
def _(t, m, p):
    q1 = previous_quarter(m)
    if q1 is None:
        return None
    previous = customers(t, q1)
    return share(len(previous & known(t, m)), len(previous))


@item("customer_active_months_12m")
def _(t, m, p):
    current = customers(t, m)
    if not current:
        return None
    return sum(sum(1 for x in window(m, 12) if c in known(t, [x])) for c in current) / len(current)


# -- obligations --------------------------------------------------------------------------


def debt_service(t: T, m: list[int]) -> int:
    """Debt only: the bank's loans and interest, and what partners that lend were paid."""
    to_lenders = sum(
        x.amount
        for x in of(t, m)
        if not x.inflow and x.cls == "FIN_PARTNER" and x.subtype in LENDING
    )
    return (
        total(t, m, False, {"BANK_OWN"}, channel="loan")
        + total(t, m, False, {"BANK_OWN"}, channel="interest")
        + to_lenders
    )


@item("debt_service_fen")
def _(t, m, p):
    return debt_service(t, m)


@item("debt_service_coverage")
def _(t, m, p):
    return share(total(t, m, True, OP_IN), debt_service(t, m))


@item("bank_loans_disbursed_ttm_fen")
def _(t, m, p):
    return total(t, window(m, 12), True, {"BANK_OWN"}, channel="loan")


@item("debt_service_ttm_fen")
def _(t, m, p):
    return debt_service(t, window(m, 12))


@item("new_financing_partners")
def _(t, m, p):
    partners = {x.cp for x in of(t, m) if x.cls == "FIN_PARTNER"}
    return len(partners - known(t, before(m, 12)))


@item("months_covered_12m")
def _(t, m, p):
    return len(window(m, 12))


@item("judicial_months_12m")
def _(t, m, p):
    return sum(1 for x in window(m, 12) if total(t, [x], False, {"JUDICIAL"}) > 0)


# -- continuity ---------------------------------------------------------------------------


def paid_months(t: T, months: list[int], cls: str, subtype: str | None = None) -> int:
    return sum(1 for x in months if total(t, [x], False, {cls}, subtype) > 0)


@item("utility_months_12m")
def _(t, m, p):
    return paid_months(t, window(m, 12), "UTILITY")


@item("tax_months_12m")
def _(t, m, p):
    return paid_months(t, window(m, 12), "TAX")


@item("social_insurance_months_12m")
def _(t, m, p):
    return paid_months(t, window(m, 12), "SOCIAL")


@item("payroll_months_12m")
def _(t, m, p):
    return paid_months(t, window(m, 12), "PAYROLL")


@item("power_months_12m")
def _(t, m, p):
    return paid_months(t, window(m, 12), "UTILITY", "power")


@item("longest_utility_gap_12m")
def _(t, m, p):
    return longest_run([total(t, [x], False, {"UTILITY"}) == 0 for x in window(m, 12)])


@item("utility_payment_cv_12m")
def _(t, m, p):
    paid = [total(t, [x], False, {"UTILITY"}) for x in window(m, 12)]
    paid = [a for a in paid if a > 0]
    return coefficient_of_variation(paid) if len(paid) >= 2 else None


@item("tax_quarters_4q")
def _(t, m, p):
    quarters = range(1, 5) if partial(m) else range(4)  # the four last quarters over
    return sum(1 for q in quarters if total(t, back(m, q), False, {"TAX"}) > 0)


def paid_a_year_before(t: T, m: list[int], cls: str, subtype: str | None) -> int | None:
    """Paid to (cls, subtype) in the same quarter a year earlier: on its first as many days
    as P has had while P is partial; None when that quarter is not wholly on record."""
    q4 = base(m, 4)
    if q4 is None:
        return None
    days = [d for x in q4 for d in month_days(x)]
    if partial(m):
        days = days[: elapsed(m)[0]]
    return sum(x.amount for x in matching(t, q4, False, {cls}, subtype) if x.day in set(days))


def _paid_yoy(name: str, cls: str, subtype: str | None) -> None:
    ITEMS[name] = lambda t, m, p: growth(
        total(t, m, False, {cls}, subtype), paid_a_year_before(t, m, cls, subtype)
    )


_paid_yoy("power_paid_yoy_growth", "UTILITY", "power")
_paid_yoy("water_paid_yoy_growth", "UTILITY", "water")
_paid_yoy("gas_paid_yoy_growth", "UTILITY", "gas")
_paid_yoy("payroll_paid_yoy_growth", "PAYROLL", None)
_paid_yoy("tax_paid_yoy_growth", "TAX", None)


# -- quality flags ------------------------------------------------------------------------


def longest_dry(t: T, m: list[int]) -> int:
    # counted from the firm's first transaction: days before it are not days without inflow
    first = min(x.day for x in t)
    return longest_run([day_total(t, d, True, OP_IN) == 0 for d in days_of(m) if d >= first])


# The signal episodes of the enterprise being computed (set by products() for each one):
# (rule, the day it opened, the day it closed or None while open), as the workers kept them.
# The rules themselves are tests/reference/signals.py's; here they are input data.
EPISODES: dict[str, list[tuple[str, date, date | None]]] = {"current": []}

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


def under_signal(rule: str, d: date) -> bool:
    """An episode of ``rule`` covers day ``d``: opened on or before it, not closed by it (the
    day it closed is the first day the rule no longer held)."""
    return any(
        r == rule and opened <= d and (closed is None or d < closed)
        for r, opened, closed in EPISODES["current"]
    )


for _rule in SIGNAL_RULES:
    ITEMS[f"signal_{_rule}_days"] = (
        lambda rule: lambda t, m, p: sum(1 for d in days_of(m) if under_signal(rule, d))
    )(_rule)


@item("longest_no_operating_inflow_days")
def _(t, m, p):
    return longest_dry(t, m)


# -- spec version 11: financing partners by kind, loan proceeds by destination --------------


@item("online_lender_inflow_fen")
def _(t, m, p):
    return total(t, m, True, {"FIN_PARTNER"}, "lender")


@item("leasing_paid_fen")
def _(t, m, p):
    return total(t, m, False, {"FIN_PARTNER"}, "lessor")


@item("factoring_inflow_fen")
def _(t, m, p):
    return total(t, m, True, {"FIN_PARTNER"}, "factor")


@item("guarantee_fees_paid_fen")
def _(t, m, p):
    return total(t, m, False, {"FIN_PARTNER"}, "guarantor")


def proceeds_to(t: T, m: list[int], goes_there: Any) -> int:
    """For each day of the quarter so far on which a loan came in, the smaller of the loans
    and what was paid, that day or the two after, to where ``goes_there`` says; summed."""
    found = 0
    for d in days_of(m):
        lent = sum(x.amount for x in t if x.day == d and lends(x))
        if lent == 0:
            continue
        three_days = {d, d + timedelta(days=1), d + timedelta(days=2)}
        paid = sum(x.amount for x in t if x.day in three_days and not x.inflow and goes_there(x))
        found += min(lent, paid)
    return found


def to_a_person(x: Txn) -> bool:
    """Paid to an individual as anything but wages, the firm's own money, a court's or a
    lender's (the spec's to_person)."""
    return x.individual and x.cls not in ("PAYROLL", "SELF", "JUDICIAL") and not to_a_lender(x)


@item("loan_proceeds_to_individuals_3d_fen")
def _(t, m, p):
    return proceeds_to(t, m, to_a_person)


@item("loan_proceeds_to_self_3d_fen")
def _(t, m, p):
    return proceeds_to(t, m, lambda x: x.cls == "SELF")


@item("loan_proceeds_to_operations_3d_fen")
def _(t, m, p):
    return proceeds_to(t, m, lambda x: x.cls in OP_OUT)
