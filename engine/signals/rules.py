"""The evaluated rules of specs/signals.toml: one pure function each, judging one day.

A rule returns its evidence on a day it holds, None on a day it does not (or cannot be
judged). :func:`finding` judges the as-of day and, when the rule holds, walks back to the
first day of the run: the episode's start, a fact of the data, so that every evaluation of
the same data names the same episode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.periods import days_in_month, format_month
from engine.signals.timeline import Timeline, month_of

__all__ = ["RULES", "Finding", "finding"]

Evidence = dict[str, Any]
Rule = Callable[[Timeline, int, Mapping[str, float]], Evidence | None]

_YEAR_DAYS = 365  # "a year earlier": 365 days back
_TRAILING_DAYS = 180
_OUTFLOW_DAYS = 90  # the mean daily outflow a balance is compared with
_COVER_MIN_AGE_DAYS = 30
_REGULAR_DAYS = 90  # the days before a window whose inflow days show a regular payer


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    start: date  # first day of the run on which the rule held
    evidence: Evidence  # as of the as-of day


def operating_inflow_stopped(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    last = t.last_inflow(i)
    gap = 0 if last is None else t.longest_inflow_gap(last, _YEAR_DAYS)
    required = max(int(p["days"]), math.ceil(p["gap_factor"] * gap))
    if i < required or (last is not None and i - last < required):
        return None
    return {
        "last_operating_inflow_on": None if last is None else t.day(last).isoformat(),
        "days_without": i - last if last is not None else i + 1,
        "days_required": required,
    }


def operating_inflow_collapse(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    window = int(p["window_days"])
    if i < window - 1:
        return None
    if t.inflow_days(i - window - _REGULAR_DAYS + 1, i - window) < p["min_inflow_days"]:
        return None  # paid in a few large sums: a 30-day window says nothing
    inflow = t.inflow(i - window + 1, i)
    if i - _YEAR_DAYS >= window - 1:
        level = float(t.inflow(i - _YEAR_DAYS - window + 1, i - _YEAR_DAYS))
        basis = "same_window_last_year"
    else:
        end = i - window
        start = max(0, end - _TRAILING_DAYS + 1)
        counted = end - start + 1
        if counted < window:
            return None  # too young to have a level
        level = t.inflow(start, end) / counted * window
        basis = "trailing_180_days"
    if level < p["min_level_fen"] or inflow >= p["ratio"] * level:
        return None
    return {
        "window_inflow_fen": inflow,
        "level_fen": round(level),
        "level_basis": basis,
        "ratio": round(inflow / level, 4),
    }


def account_overdrawn(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    persist = int(p["persist_days"])
    if i < persist - 1:
        return None
    for day in range(i - persist + 1, i):
        if not any(b < 0 for b in t.balances(day)):
            return None
    overdrawn = [b for b in t.balances(i) if b < 0]
    if not overdrawn:
        return None
    return {"overdrawn_accounts": len(overdrawn), "lowest_balance_fen": min(overdrawn)}


def _cover(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    """The balance against the usual outflow on day ``i``: evidence when it is short."""
    balances = t.balances(i)
    if i < _COVER_MIN_AGE_DAYS or not balances:
        return None
    start = max(0, i - _OUTFLOW_DAYS)
    # The mean leaves the largest day out: a one-off payment does not raise the usual level.
    usual = (t.outflow(start, i - 1) - t.largest_outflow(start, i - 1)) / (i - start - 1)
    balance = sum(balances)
    if usual <= 0 or balance >= p["days"] * usual:
        return None
    return {
        "balance_fen": balance,
        "usual_daily_outflow_fen": round(usual),
        "days_covered": round(balance / usual, 2),
    }


def balance_cover_low(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    persist = int(p["persist_days"])
    if any(_cover(t, day, p) is None for day in range(i - persist + 1, i)):
        return None
    return _cover(t, i, p)


def _lapses(t: Timeline, p: Mapping[str, float]) -> list[tuple[int, int, dict[str, str]]]:
    """Every stretch of days on which a stream counts as lapsed: (first index, last index,
    the stream), from each regular paid month m to the month n of its next payment. Within
    it the last complete month paid is m: from day ``grace_days`` of month m + 2 to the end of
    month n (open: the timeline's end)."""
    key = ("lapses", p["months"], p["grace_days"])
    found: list[tuple[int, int, dict[str, str]]] | None = t.memo.get(key)
    if found is not None:
        return found
    found = []
    regular, grace = int(p["months"]), int(p["grace_days"])
    for (cls, subtype), paid in sorted(t.paid_months.items()):
        months = sorted(paid)
        for m, n in zip(months, [*months[1:], None], strict=True):
            if any(m - k not in paid for k in range(regular)) or (n is not None and n < m + 2):
                continue
            first = t.index(date((m + 2) // 12, (m + 2) % 12 + 1, grace))
            last = t.last if n is None else t.index(month_end(n))
            if first <= last:
                stream = {"class": cls, "subtype": subtype, "last_paid_month": format_month(m)}
                found.append((first, last, stream))
    t.memo[key] = found
    return found


def recurring_payment_lapsed(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    lapsed = [stream for first, last, stream in _lapses(t, p) if first <= i <= last]
    return {"streams": lapsed} if lapsed else None


def _lapsed_since(t: Timeline, i: int, p: Mapping[str, float]) -> int:
    """The first day of the run of lapsed days that holds ``i``: the stretches merged."""
    start, moved = i, True
    while moved:  # until no stretch reaches back further from ``start``
        moved = False
        for first, last, _ in _lapses(t, p):
            if first < start <= last + 1:
                start, moved = first, True
    return max(start, 0)


def _stopped_since(t: Timeline, i: int, p: Mapping[str, float]) -> int:
    """The first day of the run of days without inflow that holds ``i``: the wait is fixed
    by the inflows before the run, so the run starts once it has passed."""
    evidence = operating_inflow_stopped(t, i, p)
    assert evidence is not None
    last = t.last_inflow(i)
    return int(evidence["days_required"]) + (0 if last is None else last)


def financing_partner_stacking(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    month = month_of(t.day(i))  # judged on complete months: the same on every day of D's month
    key = ("stacking", month, tuple(p.items()))
    if key not in t.memo:
        t.memo[key] = _stacking(t, month, p)
    found: Evidence | None = t.memo[key]
    return found


def _stacking(t: Timeline, month: int, p: Mapping[str, float]) -> Evidence | None:
    window, lookback = int(p["months"]), int(p["lookback_months"])
    start = month - window
    if month_of(t.first) > start - lookback:
        return None  # too young to tell a new partner from an old one
    firsts: dict[str, int] = {}  # partner -> its first month with an inflow in the window
    for k in range(start, month):
        for party, inflow in t.partners.get(k, {}).items():
            if inflow > 0:
                firsts.setdefault(party, k)
    new = [
        party
        for party, first in firsts.items()
        if not any(party in t.partners.get(k, {}) for k in range(first - lookback, first))
    ]
    if len(new) < p["partners"]:
        return None
    inflow = sum(t.partners.get(k, {}).get(party, 0) for party in new for k in range(start, month))
    return {"new_partners": len(new), "inflow_fen": inflow}


def largest_customer_stopped(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    day = t.day(i)
    month, late = month_of(day), day.day >= p["grace_days"]
    key = ("customer", month, late, tuple(p.items()))
    if key not in t.memo:
        t.memo[key] = _customer_stopped(t, month, late, p)
    found: Evidence | None = t.memo[key]
    return found


def _customer_stopped(
    t: Timeline, month: int, late: bool, p: Mapping[str, float]
) -> Evidence | None:
    span = int(p["months"])
    complete = sorted(k for k in t.customers if k < month)
    last_paid: dict[str, int] = {}
    for k in complete:
        for party in t.customers[k]:
            last_paid[party] = k
    totals_by_last: dict[int, dict[str, int]] = {}  # a window's inflow by customer
    found: list[tuple[float, int]] = []
    for party, last in last_paid.items():
        gone = month - last
        if gone < 2 or (gone == 2 and not late) or month_of(t.first) > last - span + 1:
            continue
        totals = totals_by_last.get(last)
        if totals is None:
            totals = totals_by_last[last] = {}
            for k in range(last - span + 1, last + 1):
                for other, inflow in t.customers.get(k, {}).items():
                    totals[other] = totals.get(other, 0) + inflow
        mine = totals[party]
        if any(v >= mine for other, v in totals.items() if other != party):
            continue  # not the largest (a tie names no largest customer)
        paid = sum(1 for k in range(last - span + 1, last + 1) if party in t.customers.get(k, {}))
        share = mine / sum(totals.values())
        if paid >= p["paid_months"] and share >= p["share"]:
            found.append((share, last))
    if not found:
        return None
    share, last = max(found)
    return {"customer_share": round(share, 4), "last_paid_month": format_month(last)}


def _passes_through(t: Timeline, d: int, p: Mapping[str, float]) -> int:
    """Day ``d``'s inflow when it passed through (left by the end of the next day, and the
    balances held little of it, before it came and after), else 0."""
    key = ("passes", d, p["share"], p["min_inflow_fen"])
    found: int | None = t.memo.get(key)
    if found is None:
        inflow = t.total_inflow(d, d)
        left = t.total_outflow(d, d + 1) >= p["share"] * inflow
        little = (1 - p["share"]) * inflow
        held = [sum(t.balances(d - 1)), sum(t.balances(d + 1))]
        conduit = all(0 <= balance < little for balance in held)
        found = t.memo[key] = inflow if inflow >= p["min_inflow_fen"] and left and conduit else 0
    return found


def fast_in_fast_out(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    window = int(p["window_days"])
    if i < window:
        return None
    passed = [inflow for d in range(i - window, i) if (inflow := _passes_through(t, d, p))]
    if len(passed) < p["days"]:
        return None
    return {"pass_through_days": len(passed), "inflow_fen": sum(passed)}


#: Where diverted loan proceeds go: state/month.py's marks, by the evidence's names.
_DIVERTED_TO = {"to_lender": "lenders", "to_self": "own_accounts", "to_person": "individuals"}


def _diverted(t: Timeline, loan_day: int, end: int, p: Mapping[str, float]) -> Evidence | None:
    """The evidence when the loans of ``loan_day`` are a loan day's and their proceeds had
    left by the end of day ``end``."""
    lenders = t.marked_by("loan_in", loan_day, loan_day)
    received = sum(lenders.values())
    if received < p["min_loan_fen"]:
        return None
    last = min(loan_day + int(p["days"]), end)
    left = {name: t.marked(mark, loan_day, last) for mark, name in _DIVERTED_TO.items()}
    # Repaying a lender that lent that day renews its loan: not a diversion.
    renewed = t.marked_by("to_lender", loan_day, last)
    left["lenders"] -= sum(amount for lender, amount in renewed.items() if lender in lenders)
    total = sum(left.values())
    if total < p["share"] * received:
        return None
    disbursed_on = t.day(loan_day).isoformat()
    return {"disbursed_on": disbursed_on, "disbursed_fen": received, "left_fen": total, "to": left}


def loan_proceeds_diverted(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    hold = int(p["hold_days"])
    for loan_day in reversed(t.marked_days("loan_in")):  # the latest first
        if loan_day <= i - hold:
            break
        if loan_day <= i and (evidence := _diverted(t, loan_day, i, p)) is not None:
            return evidence
    return None


def judicial_deduction(t: Timeline, i: int, p: Mapping[str, float]) -> Evidence | None:
    first = i - int(p["hold_days"]) + 1
    days = [d for d in t.marked_days("judicial") if first <= d <= i]
    if not days:
        return None
    return {"booked_on": t.day(days[-1]).isoformat(), "amount_fen": t.marked("judicial", first, i)}


def month_end(month: int) -> date:
    return date(month // 12, month % 12 + 1, days_in_month(month))


RULES: dict[str, Rule] = {
    "operating_inflow_stopped": operating_inflow_stopped,
    "operating_inflow_collapse": operating_inflow_collapse,
    "account_overdrawn": account_overdrawn,
    "balance_cover_low": balance_cover_low,
    "recurring_payment_lapsed": recurring_payment_lapsed,
    "financing_partner_stacking": financing_partner_stacking,
    "largest_customer_stopped": largest_customer_stopped,
    "fast_in_fast_out": fast_in_fast_out,
    "loan_proceeds_diverted": loan_proceeds_diverted,
    "judicial_deduction": judicial_deduction,
}


#: Rules whose run start has a closed form: walking back day by day over a run of months
#: cost them milliseconds per evaluation (a stream lapsed long ago, inflows long stopped).
RUN_STARTS: dict[str, Callable[[Timeline, int, Mapping[str, float]], int]] = {
    "operating_inflow_stopped": _stopped_since,
    "recurring_payment_lapsed": _lapsed_since,
}


def finding(rule: str, t: Timeline, parameters: Mapping[str, float]) -> Finding | None:
    """The rule on the as-of day: its evidence and the start of its run, or None."""
    judge = RULES[rule]
    evidence = judge(t, t.last, parameters)
    if evidence is None:
        return None
    closed_form = RUN_STARTS.get(rule)
    if closed_form is not None:
        return Finding(rule, t.day(closed_form(t, t.last, parameters)), evidence)
    start = t.last
    while start > 0 and judge(t, start - 1, parameters) is not None:
        start -= 1
    return Finding(rule, t.day(start), evidence)
