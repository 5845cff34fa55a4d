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
from engine.signals.timeline import Timeline

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


def month_end(month: int) -> date:
    return date(month // 12, month % 12 + 1, days_in_month(month))


RULES: dict[str, Rule] = {
    "operating_inflow_stopped": operating_inflow_stopped,
    "operating_inflow_collapse": operating_inflow_collapse,
    "account_overdrawn": account_overdrawn,
    "balance_cover_low": balance_cover_low,
    "recurring_payment_lapsed": recurring_payment_lapsed,
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
