"""Reference, part 2: every item of specs/products.toml, computed naively from transactions.

Each item is a plain loop over the enterprise's counted transactions, written from the
item's definition in the spec, not from the engine's kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from tests.reference.events import CST, Txn

OP_IN = {"TRADE", "PSP", "CASH"}
OP_OUT = {"TRADE", "PAYROLL", "UTILITY", "TAX", "SOCIAL", "GOV_OTHER", "PSP", "CASH"}
ITEMS: dict[str, Callable[[list[Txn], list[int], dict[str, Any]], Any]] = {}


def item(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        ITEMS[name] = fn
        return fn

    return register


# -- plain helpers -------------------------------------------------------------------------


def month_days(m: int) -> list[date]:
    year, month0 = divmod(m, 12)
    first = date(year, month0 + 1, 1)
    nxt = date(year + (month0 == 11), (month0 + 1) % 12 + 1, 1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


# The pull's day in China time (set by products() for each call): a day after it has not
# happened, so it has no end-of-day balance and is not a day without inflow.
CLOCK: dict[str, date] = {}


def as_of_day() -> date:
    return CLOCK.get("day", date.max)


def elapsed(months: list[int]) -> tuple[int, int]:
    """(days of the months that have begun at the pull, every day of the months)."""
    every = [d for m in months for d in month_days(m)]
    return sum(1 for d in every if d <= as_of_day()), len(every)


def partial(months: list[int]) -> bool:
    """The period is not over at the pull (its last day included)."""
    return as_of_day() <= month_days(months[-1])[-1]


def of(txns: list[Txn], months: list[int]) -> list[Txn]:
    return [t for t in txns if t.month in months]


def bank_channel(t: Txn) -> str:
    return t.channel if t.channel in ("loan", "interest", "fee", "margin", "bill") else "other"


def matching(
    txns: list[Txn],
    months: list[int],
    inflow: bool | None,
    classes: set[str] | None = None,
    subtype: str | None = None,
    channel: str | None = None,
) -> list[Txn]:
    """The transactions of ``months`` that pass every given filter."""
    chosen = []
    for t in of(txns, months):
        if inflow is not None and t.inflow != inflow:
            continue
        if classes is not None and t.cls not in classes:
            continue
        if subtype is not None and t.subtype != subtype:
            continue
        if channel is not None and (t.cls != "BANK_OWN" or bank_channel(t) != channel):
            continue
        chosen.append(t)
    return chosen


def total(
    txns: list[Txn],
    months: list[int],
    inflow: bool | None,
    classes: set[str] | None = None,
    subtype: str | None = None,
    channel: str | None = None,
) -> int:
    return sum(t.amount for t in matching(txns, months, inflow, classes, subtype, channel))


def count(
    txns: list[Txn],
    months: list[int],
    inflow: bool | None,
    classes: set[str] | None = None,
    subtype: str | None = None,
    channel: str | None = None,
) -> int:
    return len(matching(txns, months, inflow, classes, subtype, channel))


def share(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def coefficient_of_variation(values: list[float]) -> float | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    if mean == 0:
        return None
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / abs(mean)


def balance_at(txns: list[Txn], moment: datetime) -> int | None:
    """Sum over accounts of the balance after their last transaction strictly before moment."""
    last: dict[tuple[str, str], Txn] = {}
    for t in txns:
        if t.when < moment:
            seen = last.get(t.account)
            if seen is None or (t.when, t.txn_id) > (seen.when, seen.txn_id):
                last[t.account] = t
    return None if not last else sum(t.balance for t in last.values())


def start_of(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=CST)


_EOD: dict[tuple[int, tuple[int, ...]], list[int]] = {}  # cleared per products() call


def eod_series(txns: list[Txn], months: list[int]) -> list[int]:
    key = (id(txns), tuple(months))
    if key in _EOD:
        return _EOD[key]
    values = []
    for m in months:
        for d in month_days(m):
            if d > as_of_day():
                break
            b = balance_at(txns, start_of(d + timedelta(days=1)))
            if b is not None:
                values.append(b)
    _EOD[key] = values
    return values


def last_whole_month(months: list[int]) -> int:
    """The period's last month, or while it is partial the month before the pull's."""
    if not partial(months):
        return months[-1]
    day = as_of_day()
    return day.year * 12 + day.month - 2


# The enterprise's first month (set by products() for each enterprise): a month before it is
# not a month without flows, so windows and earlier quarters leave it out (spec version 5).
# This reference sees every event, so nothing is pruned: the record starts there.
RECORD: dict[str, int] = {}


def on_record(months: list[int]) -> list[int]:
    return [m for m in months if m >= RECORD.get("start", m)]


def window(months: list[int], n: int) -> list[int]:
    """The n months ending with the period, or with the last whole month while it is
    partial; those on record."""
    last = last_whole_month(months)
    return on_record(list(range(last - n + 1, last + 1)))


def before(months: list[int], k: int) -> list[int]:
    return on_record(list(range(months[0] - k, months[0])))


def base(months: list[int], quarters: int) -> list[int] | None:
    """Q-1 (Q-4) when the whole of it is on record, else None: no base to compare with."""
    earlier = back(months, quarters)
    return earlier if earlier == on_record(earlier) else None


def back(months: list[int], quarters: int) -> list[int]:
    return [m - 3 * quarters for m in months]


def first_month(txns: list[Txn]) -> int:
    return min(t.month for t in txns)


def parties(txns: list[Txn], months: list[int], cls: str | None = None) -> dict[str, list[int]]:
    """cp -> [inflow, outflow] over months (every class but SELF, or only ``cls``)."""
    result: dict[str, list[int]] = {}
    for t in of(txns, months):
        if t.cls == "SELF" or (cls is not None and t.cls != cls):
            continue
        entry = result.setdefault(t.cp, [0, 0])
        entry[0 if t.inflow else 1] += t.amount
    return result


def customers(txns: list[Txn], months: list[int]) -> set[str]:
    return {cp for cp, (i, o) in parties(txns, months, "TRADE").items() if i > o}


def suppliers(txns: list[Txn], months: list[int]) -> set[str]:
    return {cp for cp, (i, o) in parties(txns, months, "TRADE").items() if o > i}


def known(txns: list[Txn], months: list[int]) -> set[str]:
    return {t.cp for t in of(txns, months) if t.cls != "SELF"}


def top(values: list[int], n: int) -> float | None:
    return share(sum(sorted(values, reverse=True)[:n]), sum(values))


def herfindahl(values: list[int]) -> float | None:
    s = sum(values)
    return None if s == 0 else sum((v / s) ** 2 for v in values)


def days_of(months: list[int]) -> list[date]:
    """The days of the months up to the pull's day."""
    return [d for m in months for d in month_days(m) if d <= as_of_day()]


_BY_DAY: dict[int, dict[date, list[Txn]]] = {}  # cleared per products() call


def day_total(txns: list[Txn], d: date, inflow: bool, classes: set[str] | None = None) -> int:
    by_day = _BY_DAY.get(id(txns))
    if by_day is None:
        by_day = _BY_DAY[id(txns)] = {}
        for t in txns:
            by_day.setdefault(t.day, []).append(t)
    return sum(
        t.amount
        for t in by_day.get(d, [])
        if t.inflow == inflow and (classes is None or t.cls in classes)
    )


def longest_run(flags: list[bool]) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


# -- building blocks -----------------------------------------------------------------------

_SIMPLE: dict[str, tuple[str, bool | None, set[str] | None, str | None, str | None]] = {
    # item: (sum or count, inflow, classes, subtype, bank channel)
    "inflow_amount_fen": ("sum", True, None, None, None),
    "inflow_count": ("count", True, None, None, None),
    "outflow_amount_fen": ("sum", False, None, None, None),
    "outflow_count": ("count", False, None, None, None),
    "operating_inflow_fen": ("sum", True, OP_IN, None, None),
    "operating_outflow_fen": ("sum", False, OP_OUT, None, None),
    "cash_deposit_fen": ("sum", True, {"CASH"}, None, None),
    "cash_deposit_count": ("count", True, {"CASH"}, None, None),
    "cash_withdrawal_fen": ("sum", False, {"CASH"}, None, None),
    "cash_withdrawal_count": ("count", False, {"CASH"}, None, None),
    "self_transfer_in_fen": ("sum", True, {"SELF"}, None, None),
    "self_transfer_out_fen": ("sum", False, {"SELF"}, None, None),
    "bank_loan_disbursed_fen": ("sum", True, {"BANK_OWN"}, None, "loan"),
    "bank_loan_disbursed_count": ("count", True, {"BANK_OWN"}, None, "loan"),
    "bank_loan_repaid_fen": ("sum", False, {"BANK_OWN"}, None, "loan"),
    "bank_loan_repayment_count": ("count", False, {"BANK_OWN"}, None, "loan"),
    "bank_interest_paid_fen": ("sum", False, {"BANK_OWN"}, None, "interest"),
    "bank_fees_paid_fen": ("sum", False, {"BANK_OWN"}, None, "fee"),
    # money into margin accounts, bills paid at maturity: what the bank books on the channel
    "margin_deposit_fen": ("sum", False, {"BANK_OWN"}, None, "margin"),
    "acceptance_bill_paid_fen": ("sum", False, {"BANK_OWN"}, None, "bill"),
    "utility_paid_fen": ("sum", False, {"UTILITY"}, None, None),
    "power_paid_fen": ("sum", False, {"UTILITY"}, "power", None),
    "water_paid_fen": ("sum", False, {"UTILITY"}, "water", None),
    "gas_paid_fen": ("sum", False, {"UTILITY"}, "gas", None),
    "heating_paid_fen": ("sum", False, {"UTILITY"}, "heating", None),
    "telecom_paid_fen": ("sum", False, {"UTILITY"}, "telecom", None),
    "tax_paid_fen": ("sum", False, {"TAX"}, None, None),
    "tax_refund_fen": ("sum", True, {"TAX"}, None, None),
    "social_insurance_paid_fen": ("sum", False, {"SOCIAL"}, "social_insurance", None),
    "housing_fund_paid_fen": ("sum", False, {"SOCIAL"}, "housing_fund", None),
    "government_received_fen": ("sum", True, {"GOV_OTHER"}, None, None),
    "government_paid_fen": ("sum", False, {"GOV_OTHER"}, None, None),
    "payroll_paid_fen": ("sum", False, {"PAYROLL"}, None, None),
    "payroll_payment_count": ("count", False, {"PAYROLL"}, None, None),
    "psp_inflow_fen": ("sum", True, {"PSP"}, None, None),
    "psp_inflow_count": ("count", True, {"PSP"}, None, None),
    "psp_outflow_fen": ("sum", False, {"PSP"}, None, None),
    "trade_inflow_fen": ("sum", True, {"TRADE"}, None, None),
    "trade_inflow_count": ("count", True, {"TRADE"}, None, None),
    "trade_outflow_fen": ("sum", False, {"TRADE"}, None, None),
    "trade_outflow_count": ("count", False, {"TRADE"}, None, None),
    "fin_partner_inflow_fen": ("sum", True, {"FIN_PARTNER"}, None, None),
    "fin_partner_inflow_count": ("count", True, {"FIN_PARTNER"}, None, None),
    "fin_partner_outflow_fen": ("sum", False, {"FIN_PARTNER"}, None, None),
    "equity_inflow_fen": ("sum", True, {"FIN_PARTNER"}, "investor", None),
    "judicial_deduction_fen": ("sum", False, {"JUDICIAL"}, None, None),
}


def _simple(
    kind: str,
    inflow: bool | None,
    classes: set[str] | None,
    subtype: str | None,
    channel: str | None,
) -> Callable[[list[Txn], list[int], dict[str, Any]], Any]:
    def compute(txns: list[Txn], months: list[int], params: dict[str, Any]) -> Any:
        fn = total if kind == "sum" else count
        return fn(txns, months, inflow, classes, subtype, channel)

    return compute


for _name, _args in _SIMPLE.items():
    ITEMS[_name] = _simple(*_args)


def net(
    txns: list[Txn],
    months: list[int],
    classes: set[str] | None = None,
    out_classes: set[str] | None = None,
) -> int:
    return total(txns, months, True, classes) - total(
        txns, months, False, classes if out_classes is None else out_classes
    )


def flow_share(txns: list[Txn], months: list[int], cls: str) -> float | None:
    return share(
        total(txns, months, True, {cls}) + total(txns, months, False, {cls}),
        total(txns, months, True) + total(txns, months, False),
    )


@item("net_flow_fen")
def _(t: list[Txn], m: list[int], p: dict[str, Any]) -> Any:
    return net(t, m)


@item("distinct_counterparties")
def _(t, m, p):
    return len({x.cp for x in of(t, m) if x.cp != x.enterprise})


@item("active_days")
def _(t, m, p):
    return len({x.day for x in of(t, m) if x.day <= as_of_day()})


@item("inflow_days")
def _(t, m, p):
    return len({x.day for x in of(t, m) if x.inflow and x.day <= as_of_day()})


@item("max_daily_inflow_fen")
def _(t, m, p):
    return max([day_total(t, d, True) for d in days_of(m)], default=0)


@item("opening_balance_fen")
def _(t, m, p):
    return balance_at(t, start_of(month_days(m[0])[0])) or 0


@item("closing_balance_fen")
def _(t, m, p):
    return balance_at(t, start_of(month_days(m[-1])[-1] + timedelta(days=1))) or 0


def adb(t: list[Txn], m: list[int]) -> int | None:
    values = eod_series(t, m)
    return None if not values else sum(values) // len(values)


@item("average_daily_balance_fen")
def _(t, m, p):
    return adb(t, m)


@item("max_daily_balance_fen")
def _(t, m, p):
    return max(eod_series(t, m), default=None)


@item("min_daily_balance_fen")
def _(t, m, p):
    return min(eod_series(t, m), default=None)


@item("low_balance_days")
def _(t, m, p):
    return sum(1 for b in eod_series(t, m) if b < p["low_balance_fen"])


def overdrawn_series(txns: list[Txn], months: list[int]) -> list[bool]:
    """For each day so far with a balance: does any one account end it below zero?"""
    result = []
    for m in months:
        for d in month_days(m):
            if d > as_of_day():
                break
            moment = start_of(d + timedelta(days=1))
            last: dict[str, Txn] = {}
            for t in txns:
                seen = last.get(t.account)
                if t.when < moment and (
                    seen is None or (t.when, t.txn_id) > (seen.when, seen.txn_id)
                ):
                    last[t.account] = t
            if last:
                result.append(any(t.balance < 0 for t in last.values()))
    return result


@item("negative_balance_days")
def _(t, m, p):
    return sum(overdrawn_series(t, m))


@item("accounts_with_activity")
def _(t, m, p):
    return len({x.account for x in of(t, m)})


@item("cash_share_of_flow")
def _(t, m, p):
    return flow_share(t, m, "CASH")


@item("self_transfer_share")
def _(t, m, p):
    return flow_share(t, m, "SELF")


@item("distinct_psps")
def _(t, m, p):
    return len({x.cp for x in of(t, m) if x.cls == "PSP"})


@item("distinct_customers")
def _(t, m, p):
    return len(customers(t, m))


@item("distinct_suppliers")
def _(t, m, p):
    return len(suppliers(t, m))


def trade_in(t: list[Txn], m: list[int]) -> list[int]:
    return [i for i, _ in parties(t, m, "TRADE").values()]


def trade_out(t: list[Txn], m: list[int]) -> list[int]:
    return [o for _, o in parties(t, m, "TRADE").values()]


@item("top1_customer_share")
def _(t, m, p):
    return top(trade_in(t, m), 1)


@item("top5_customer_share")
def _(t, m, p):
    return top(trade_in(t, m), 5)


@item("customer_hhi")
def _(t, m, p):
    return herfindahl(trade_in(t, m))


@item("top1_supplier_share")
def _(t, m, p):
    return top(trade_out(t, m), 1)


@item("top5_supplier_share")
def _(t, m, p):
    return top(trade_out(t, m), 5)


@item("supplier_hhi")
def _(t, m, p):
    return herfindahl(trade_out(t, m))


@item("distinct_fin_partners")
def _(t, m, p):
    return len({x.cp for x in of(t, m) if x.cls == "FIN_PARTNER"})


@item("external_financing_share")
def _(t, m, p):
    financing = total(t, m, True, {"BANK_OWN"}, channel="loan") + total(t, m, True, {"FIN_PARTNER"})
    return share(financing, total(t, m, True))


def xb(t: list[Txn], m: list[int], inflow: bool) -> tuple[int, int]:
    chosen = [x for x in of(t, m) if x.cross_border and x.inflow == inflow]
    return sum(x.amount for x in chosen), len(chosen)


@item("cross_border_inflow_fen")
def _(t, m, p):
    return xb(t, m, True)[0]


@item("cross_border_outflow_fen")
def _(t, m, p):
    return xb(t, m, False)[0]


@item("cross_border_share_of_flow")
def _(t, m, p):
    return share(xb(t, m, True)[0] + xb(t, m, False)[0], total(t, m, True) + total(t, m, False))


@item("foreign_currencies")
def _(t, m, p):
    return len({x.currency for x in of(t, m) if x.currency != "CNY"})


# -- spec version 7: account, balances, individuals, trade ----------------------------------


def days_with(t: list[Txn], m: list[int], inflow: bool, classes: set[str]) -> int:
    """Days of the period so far with a flow of ``classes`` in that direction."""
    return len(
        {
            x.day
            for x in of(t, m)
            if x.inflow == inflow and x.cls in classes and x.day <= as_of_day()
        }
    )


def fast_ratio(t: list[Txn], m: list[int]) -> float | None:
    same_day = sum(min(day_total(t, d, True), day_total(t, d, False)) for d in days_of(m))
    return share(same_day, total(t, m, True))


@item("fast_in_out_ratio")
def _(t, m, p):
    return fast_ratio(t, m)


@item("operating_inflow_days")
def _(t, m, p):
    return days_with(t, m, True, OP_IN)


@item("month_end_inflow_share")
def _(t, m, p):
    if partial(m):  # the period's last five days have not all come
        return None
    last_five = set(month_days(m[-1])[-5:])
    return share(
        sum(x.amount for x in of(t, m) if x.inflow and x.day in last_five), total(t, m, True)
    )


@item("judicial_deduction_days")
def _(t, m, p):
    return days_with(t, m, False, {"JUDICIAL"})


LENDING = {"bank", "lender", "lessor", "factor"}


def to_a_lender(x: Txn) -> bool:
    return (x.cls == "BANK_OWN" and x.channel == "loan") or (
        x.cls == "FIN_PARTNER" and x.subtype in LENDING
    )


@item("company_to_individual_fen")
def _(t, m, p):
    return sum(
        x.amount
        for x in of(t, m)
        if not x.inflow
        and x.individual
        and x.cls not in ("PAYROLL", "SELF", "JUDICIAL")
        and not to_a_lender(x)
    )


# -- spec version 9: money from persons, cash and platform settlements by day ---------------


@item("individual_inflow_fen")
def _(t, m, p):
    return sum(x.amount for x in of(t, m) if x.inflow and x.individual and x.cls != "SELF")


@item("cash_deposit_days")
def _(t, m, p):
    return days_with(t, m, True, {"CASH"})


@item("psp_inflow_days")
def _(t, m, p):
    return days_with(t, m, True, {"PSP"})


@item("two_way_counterparties")
def _(t, m, p):
    return sum(1 for i, o in parties(t, m, "TRADE").values() if i > 0 and o > 0)


@item("new_customers_inflow_fen")
def _(t, m, p):
    seen = known(t, before(m, 12))
    return sum(i for cp, (i, o) in parties(t, m, "TRADE").items() if i > o and cp not in seen)


# -- spec version 8: financing by kind ------------------------------------------------------


def lends(x: Txn) -> bool:
    """A loan paid in: by the account-holding bank on channel loan, or a partner that lends."""
    return x.inflow and (
        (x.cls == "BANK_OWN" and x.channel == "loan")
        or (x.cls == "FIN_PARTNER" and x.subtype in LENDING)
    )


@item("lender_inflow_fen")
def _(t, m, p):
    return sum(
        x.amount for x in of(t, m) if x.cls == "FIN_PARTNER" and x.subtype in LENDING and x.inflow
    )


@item("lenders_disbursing")
def _(t, m, p):
    return len({x.cp for x in of(t, m) if lends(x)})


# -- spec version 8: public payments over the 12 months ending with the period ------------


def months_paying(
    t: list[Txn], months: list[int], cls: str, subtype: str | None = None
) -> list[int]:
    """The months among ``months`` with an outflow to ``cls`` (of ``subtype``)."""
    return [x for x in months if total(t, [x], False, {cls}, subtype) > 0]


@item("water_months_12m")
def _(t, m, p):
    return len(months_paying(t, window(m, 12), "UTILITY", "water"))


@item("gas_months_12m")
def _(t, m, p):
    return len(months_paying(t, window(m, 12), "UTILITY", "gas"))


@item("tax_burden_12m")
def _(t, m, p):
    months = window(m, 12)
    return share(total(t, months, False, {"TAX"}), total(t, months, True, OP_IN))


@item("payroll_without_social_months_12m")
def _(t, m, p):
    months = window(m, 12)
    insured = set(months_paying(t, months, "SOCIAL", "social_insurance"))
    return len([x for x in months_paying(t, months, "PAYROLL") if x not in insured])


# -- spec version 8: loan proceeds within three days ----------------------------------------


def to_a_lender_out(x: Txn) -> bool:
    return not x.inflow and to_a_lender(x)


def loan_days(t: list[Txn], m: list[int]) -> list[tuple[int, int, int]]:
    """(loans received, outflow of the day and the two after, paid in those days to lenders
    that lent nothing that day) for each day of the period so far with a loan."""
    found = []
    for d in days_of(m):
        loans = [x for x in t if x.day == d and lends(x)]
        if not loans:
            continue
        lenders = {x.cp for x in loans}
        ahead = [d + timedelta(days=k) for k in range(3)]
        out = sum(x.amount for x in t if x.day in ahead and not x.inflow)
        others = sum(
            x.amount for x in t if x.day in ahead and to_a_lender_out(x) and x.cp not in lenders
        )
        found.append((sum(x.amount for x in loans), out, others))
    return found


@item("loan_proceeds_out_3d_share")
def _(t, m, p):
    days = loan_days(t, m)
    return share(sum(min(a, o) for a, o, _ in days), sum(a for a, _, _ in days))


@item("loan_proceeds_to_lenders_3d_fen")
def _(t, m, p):
    return sum(min(a, o) for a, _, o in loan_days(t, m))
