"""Reference, part 3: the evaluated rules of specs/signals.toml, judged naively.

Plain loops over an enterprise's counted transactions (tests/reference/events.py) and calendar
days, written from each rule's definition in the spec, not from engine/signals/: no
timeline, no cumulative sums. A run's start is found by judging every earlier day again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from tests.reference.events import Txn
from tests.reference.items import OP_IN, OP_OUT

Judge = Callable[[list[Txn], date, Mapping[str, float]], dict[str, Any] | None]


def _first_day(txns: list[Txn]) -> date:
    return min(t.day for t in txns)


def _op(txns: list[Txn], inflow: bool, start: date, end: date) -> int:
    """Operating inflow (or outflow) booked on the days start..end, both included."""
    classes = OP_IN if inflow else OP_OUT
    return sum(
        t.amount for t in txns if t.inflow == inflow and t.cls in classes and start <= t.day <= end
    )


def _balances(txns: list[Txn], day: date) -> list[int]:
    """Each account's balance after its last transaction at or before the end of ``day``."""
    last: dict[tuple[str, str], Txn] = {}
    for t in txns:
        if t.day <= day:
            seen = last.get(t.account)
            if seen is None or (t.when, t.txn_id) > (seen.when, seen.txn_id):
                last[t.account] = t
    return [t.balance for t in last.values()]


def _inflow_days(txns: list[Txn]) -> list[date]:
    """The days with an operating inflow, in order."""
    return sorted({t.day for t in txns if t.inflow and t.cls in OP_IN})


def stopped(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    first = _first_day(txns)
    paid = [d for d in _inflow_days(txns) if d <= day]
    last = paid[-1] if paid else None
    longest = 0
    if last is not None:
        for earlier, later in itertools.pairwise(paid):
            if (last - later).days < 365:
                longest = max(longest, (later - earlier).days)
    n = max(int(p["days"]), math.ceil(p["gap_factor"] * longest))
    if (day - first).days < n:
        return None
    if _op(txns, True, day - timedelta(days=n - 1), day) > 0:
        return None
    return {
        "last_operating_inflow_on": None if last is None else last.isoformat(),
        "days_without": (day - last).days if last else (day - first).days + 1,
        "days_required": n,
    }


def collapse(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    w = int(p["window_days"])
    first = _first_day(txns)
    window_start = day - timedelta(days=w - 1)
    if window_start < first:
        return None
    before = [window_start - timedelta(days=k) for k in range(1, 91)]
    paid = set(_inflow_days(txns))
    if sum(1 for d in before if d in paid) < p["min_inflow_days"]:
        return None
    inflow = _op(txns, True, window_start, day)
    year_ago_start = window_start - timedelta(days=365)
    if year_ago_start >= first:
        level = float(_op(txns, True, year_ago_start, day - timedelta(days=365)))
        basis = "same_window_last_year"
    else:
        end = window_start - timedelta(days=1)
        start = max(first, end - timedelta(days=179))
        counted = (end - start).days + 1
        if counted < w:
            return None
        level = _op(txns, True, start, end) / counted * w
        basis = "trailing_180_days"
    if level < p["min_level_fen"] or inflow >= p["ratio"] * level:
        return None
    return {
        "window_inflow_fen": inflow,
        "level_fen": round(level),
        "level_basis": basis,
        "ratio": round(inflow / level, 4),
    }


def _days_ending(day: date, n: int) -> list[date]:
    return [day - timedelta(days=k) for k in range(n)]


def overdrawn(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    first = _first_day(txns)
    for d in _days_ending(day, int(p["persist_days"])):
        if d < first or not any(b < 0 for b in _balances(txns, d)):
            return None
    negative = [b for b in _balances(txns, day) if b < 0]
    return {"overdrawn_accounts": len(negative), "lowest_balance_fen": min(negative)}


def _short(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    """Day ``day``'s balance against its usual outflow, when it is short."""
    first = _first_day(txns)
    balances = _balances(txns, day)
    if (day - first).days < 30 or not balances:
        return None
    start = max(first, day - timedelta(days=90))
    per_day = [
        _op(txns, False, d, d)
        for d in (start + timedelta(days=k) for k in range((day - start).days))
    ]
    per_day.remove(max(per_day))
    usual = sum(per_day) / len(per_day)
    if usual <= 0 or sum(balances) >= p["days"] * usual:
        return None
    return {
        "balance_fen": sum(balances),
        "usual_daily_outflow_fen": round(usual),
        "days_covered": round(sum(balances) / usual, 2),
    }


def cover(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    found = [_short(txns, d, p) for d in _days_ending(day, int(p["persist_days"]))]
    return found[0] if all(f is not None for f in found) else None


def lapsed(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    """A stream paid every month that stopped: read from calendar months, as the spec says."""
    m = day.year * 12 + day.month - 1
    months: dict[tuple[str, str], set[int]] = {}
    for t in txns:
        if not t.inflow and t.cls in ("UTILITY", "TAX", "SOCIAL", "PAYROLL") and t.day <= day:
            months.setdefault((t.cls, t.subtype), set()).add(t.month)
    found = []
    for (cls, subtype), paid in sorted(months.items()):
        before = sorted(x for x in paid if x < m)
        if not before:
            continue
        last = before[-1]
        if not all(last - k in paid for k in range(int(p["months"]))):
            continue
        gone = m - last  # months from the last payment's month to D's
        if gone >= 3 or (gone == 2 and day.day >= p["grace_days"]):
            label = f"{last // 12:04d}-{last % 12 + 1:02d}"
            found.append({"class": cls, "subtype": subtype, "last_paid_month": label})
    return {"streams": found} if found else None


def _month(day: date) -> int:
    return day.year * 12 + day.month - 1


def stacking(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    """New financing partners in the complete months before D's, as the spec says."""
    m, window, lookback = _month(day), int(p["months"]), int(p["lookback_months"])
    if _month(_first_day(txns)) > m - window - lookback:
        return None
    financing = [t for t in txns if t.cls == "FIN_PARTNER"]
    new = []
    for cp in sorted({t.cp for t in financing}):
        mine = [t for t in financing if t.cp == cp]
        lent = sorted(t.month for t in mine if t.inflow and m - window <= t.month < m)
        if lent and not any(lent[0] - lookback <= t.month < lent[0] for t in mine):
            new.append(cp)
    if len(new) < p["partners"]:
        return None
    inflow = sum(
        t.amount for t in financing if t.cp in new and t.inflow and m - window <= t.month < m
    )
    return {"new_partners": len(new), "inflow_fen": inflow}


def customer(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    """The largest TRADE customer of the months up to its last payment, stopped."""
    m, span = _month(day), int(p["months"])
    paying = [t for t in txns if t.cls == "TRADE" and t.inflow and t.month < m]
    first_month = _month(_first_day(txns))
    found = []
    for cp in sorted({t.cp for t in paying}):
        last = max(t.month for t in paying if t.cp == cp)
        months = range(last - span + 1, last + 1)
        if not (m - last >= 3 or (m - last == 2 and day.day >= p["grace_days"])):
            continue
        if first_month > months[0]:
            continue
        totals: dict[str, int] = {}
        for t in paying:
            if t.month in months:
                totals[t.cp] = totals.get(t.cp, 0) + t.amount
        if any(amount >= totals[cp] for other, amount in totals.items() if other != cp):
            continue
        paid = len({t.month for t in paying if t.cp == cp and t.month in months})
        share = totals[cp] / sum(totals.values())
        if paid >= p["paid_months"] and share >= p["share"]:
            found.append((share, last))
    if not found:
        return None
    share, last = max(found)
    return {
        "customer_share": round(share, 4),
        "last_paid_month": f"{last // 12:04d}-{last % 12 + 1:02d}",
    }


def fast(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    """Days of the window whose inflow left by the next day's end and did not stay."""
    w = int(p["window_days"])
    if (day - _first_day(txns)).days < w:
        return None
    passed = []
    for k in range(1, w + 1):
        d = day - timedelta(days=k)
        after = d + timedelta(days=1)
        inflow = sum(t.amount for t in txns if t.inflow and t.day == d)
        left = sum(t.amount for t in txns if not t.inflow and d <= t.day <= after)
        before = d - timedelta(days=1)
        held = (sum(_balances(txns, before)), sum(_balances(txns, after)))
        if (
            inflow >= p["min_inflow_fen"]
            and left >= p["share"] * inflow
            and all(0 <= h < (1 - p["share"]) * inflow for h in held)
        ):
            passed.append(inflow)
    if len(passed) < p["days"]:
        return None
    return {"pass_through_days": len(passed), "inflow_fen": sum(passed)}


_LENDING = ("bank", "lender", "lessor", "factor")


def _lends(t: Txn) -> bool:
    """A lender of the rule: the account-holding bank on channel loan, or a lending partner."""
    return (t.cls == "BANK_OWN" and t.channel == "loan") or (
        t.cls == "FIN_PARTNER" and t.subtype in _LENDING
    )


def _destination(t: Txn) -> str | None:
    """Where an outflow of diverted proceeds went, each counted once, in the spec's order."""
    if _lends(t):
        return "lenders"
    if t.cls == "SELF":
        return "own_accounts"
    if t.individual and t.cls not in ("PAYROLL", "JUDICIAL"):
        return "individuals"
    return None


def diverted(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    """The latest loan day of the hold window whose proceeds had left by the end of ``day``."""
    for back in range(int(p["hold_days"])):
        loan_day = day - timedelta(days=back)
        loans = [t for t in txns if t.inflow and _lends(t) and t.day == loan_day]
        received = sum(t.amount for t in loans)
        if received < p["min_loan_fen"]:
            continue
        until = min(loan_day + timedelta(days=int(p["days"])), day)
        to = {"lenders": 0, "own_accounts": 0, "individuals": 0}
        for t in txns:
            where = None if t.inflow else _destination(t)
            renewal = where == "lenders" and any((t.cls, t.cp) == (u.cls, u.cp) for u in loans)
            if where is not None and not renewal and loan_day <= t.day <= until:
                to[where] += t.amount
        if sum(to.values()) >= p["share"] * received:
            return {
                "disbursed_on": loan_day.isoformat(),
                "disbursed_fen": received,
                "left_fen": sum(to.values()),
                "to": to,
            }
    return None


def judicial(txns: list[Txn], day: date, p: Mapping[str, float]) -> dict[str, Any] | None:
    since = day - timedelta(days=int(p["hold_days"]) - 1)
    found = [t for t in txns if not t.inflow and t.cls == "JUDICIAL" and since <= t.day <= day]
    if not found:
        return None
    return {
        "booked_on": max(t.day for t in found).isoformat(),
        "amount_fen": sum(t.amount for t in found),
    }


JUDGES: dict[str, Judge] = {
    "operating_inflow_stopped": stopped,
    "operating_inflow_collapse": collapse,
    "account_overdrawn": overdrawn,
    "balance_cover_low": cover,
    "recurring_payment_lapsed": lapsed,
    "financing_partner_stacking": stacking,
    "largest_customer_stopped": customer,
    "fast_in_fast_out": fast,
    "loan_proceeds_diverted": diverted,
    "judicial_deduction": judicial,
}


def finding(
    rule: str, txns: list[Txn], day: date, p: Mapping[str, float]
) -> tuple[date, dict[str, Any]] | None:
    """(start of the run, evidence on ``day``) when the rule holds on ``day``."""
    judge = JUDGES[rule]
    evidence = judge(txns, day, p)
    if evidence is None:
        return None
    start, first = day, _first_day(txns)
    while start > first and judge(txns, start - timedelta(days=1), p) is not None:
        start -= timedelta(days=1)
    return start, evidence
