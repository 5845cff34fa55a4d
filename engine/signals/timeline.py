"""An enterprise's days, from its first day on record to the as-of day: what the rules read.

Built from the months the workers keep (engine/products/history.py): operating inflow and
outflow per day, and each account's end-of-day balance. Cumulative sums make a window's total
one subtraction, so a rule can be judged on every day of a run cheaply (an episode's start is
the first day of the run on which its rule held).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta

from engine.periods import days_in_month
from engine.products.history import History

__all__ = ["Timeline", "month_of", "timeline"]


def month_of(day: date) -> int:
    """The month ordinal (year * 12 + month - 1) of ``day``."""
    return day.year * 12 + day.month - 1


@dataclass(frozen=True, slots=True)
class Timeline:
    first: date  # the firm's first day on record: index 0
    op_in: tuple[int, ...]  # operating inflow of each day, first to the as-of day
    op_out: tuple[int, ...]
    eod: dict[str, tuple[int | None, ...]]  # account -> end-of-day balance (None before it)
    _in_sums: tuple[int, ...]  # _in_sums[k] = op_in[0] + ... + op_in[k - 1]
    _out_sums: tuple[int, ...]
    _last_in: tuple[int, ...]  # index of the last day at or before k with an inflow, or -1

    def index(self, day: date) -> int:
        return (day - self.first).days

    def day(self, index: int) -> date:
        return self.first + timedelta(days=index)

    @property
    def last(self) -> int:
        """Index of the as-of day."""
        return len(self.op_in) - 1

    def inflow(self, start: int, end: int) -> int:
        """Operating inflow of days start..end (inclusive), clipped to the firm's days."""
        start, end = max(start, 0), min(end, self.last)
        return self._in_sums[end + 1] - self._in_sums[start] if start <= end else 0

    def outflow(self, start: int, end: int) -> int:
        start, end = max(start, 0), min(end, self.last)
        return self._out_sums[end + 1] - self._out_sums[start] if start <= end else 0

    def last_inflow(self, index: int) -> int | None:
        """Index of the last day at or before ``index`` with an operating inflow."""
        last = self._last_in[index] if index >= 0 else -1
        return None if last < 0 else last

    def balances(self, index: int) -> list[int]:
        """The end-of-day balance of every account that has one on that day."""
        return [b for days in self.eod.values() if (b := days[index]) is not None]


def timeline(history: History, as_of: date) -> Timeline | None:
    """The enterprise's days up to ``as_of``; None before its first transaction."""
    first = _first_day(history)
    if first is None or as_of < first:
        return None
    first_month = month_of(first)
    op_in: list[int] = []
    op_out: list[int] = []
    eod: dict[str, list[int | None]] = {}
    for month in range(first_month, month_of(as_of) + 1):
        view = history.month(month)
        start = first.day if month == first_month else 1
        end = as_of.day if month == month_of(as_of) else days_in_month(month)
        for account in view.accounts:
            eod.setdefault(account, [None] * len(op_in))
        for d in range(start, end + 1):
            day = view.days.get(d)
            op_in.append(day.operating_in if day else 0)
            op_out.append(day.operating_out if day else 0)
            for account, days in eod.items():
                booked_balance = view.accounts.get(account, ("", {}))[1].get(d)
                days.append(
                    booked_balance if booked_balance is not None else days[-1] if days else None
                )
    return Timeline(
        first,
        tuple(op_in),
        tuple(op_out),
        {account: tuple(days) for account, days in eod.items()},
        (0, *itertools.accumulate(op_in)),
        (0, *itertools.accumulate(op_out)),
        tuple(
            itertools.accumulate((k if amount > 0 else -1 for k, amount in enumerate(op_in)), max)
        ),
    )


def _first_day(history: History) -> date | None:
    """The day of the first transaction that counts (a month may hold only reversed ones)."""
    for month in sorted(history.months):
        booked = [d for d, day in history.month(month).days.items() if day.txns]
        if booked:
            return _date(month, min(booked))
    return None


def _date(month: int, day: int) -> date:
    return date(month // 12, month % 12 + 1, day)
