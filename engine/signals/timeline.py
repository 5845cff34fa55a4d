"""An enterprise's days, from its first day on record to the as-of day: what the rules read.

Built from one digest per month (:class:`MonthDays`: operating inflow and outflow per day,
each account's balance at its last booking of a day), whether the months come from the
published views (engine/products/history.py) or from a worker's state (state/signals.py).
The timeline keeps only the days that have something, sorted, with running sums: a window's
total is two bisections, an account's balance on a day one, so a rule can be judged on every
day of a run cheaply (an episode's start is the first day of the run on which it held), and
building it costs the days with bookings, not the calendar days.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from engine.products.history import History, MonthView

__all__ = [
    "STREAM_CLASSES",
    "MonthDays",
    "Timeline",
    "month_of",
    "timeline",
    "timeline_of",
    "transpose_marks",
]

#: Classes whose payments a firm makes every month, each subtype a stream of its own.
STREAM_CLASSES = frozenset({"UTILITY", "TAX", "SOCIAL", "PAYROLL"})


def month_of(day: date) -> int:
    """The month ordinal (year * 12 + month - 1) of ``day``."""
    return day.year * 12 + day.month - 1


def _date(month: int, day: int) -> date:
    return date(month // 12, month % 12 + 1, day)


@dataclass(frozen=True, slots=True)
class MonthDays:
    """What the rules read of one month, by day of month (days without bookings are absent)."""

    first_booked: int | None  # the first day with a counted transaction
    op_in: Mapping[int, int]  # day -> operating inflow
    op_out: Mapping[int, int]
    balances: Mapping[str, Mapping[int, int]]  # account -> day -> balance after its last booking
    paid: frozenset[tuple[str, str]] = frozenset()  # (class, subtype) of STREAM_CLASSES paid
    customers: Mapping[str, int] = field(default_factory=dict)  # TRADE party -> inflow > 0
    partners: Mapping[str, int] = field(default_factory=dict)  # FIN_PARTNER party -> inflow
    all_in: Mapping[int, int] = field(default_factory=dict)  # day -> inflow of every class
    all_out: Mapping[int, int] = field(default_factory=dict)
    marks: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # mark -> day -> amount

    @classmethod
    def of_view(cls, view: MonthView) -> MonthDays:
        booked = [d for d, day in view.days.items() if day.txns]
        return cls(
            min(booked) if booked else None,
            {d: day.operating_in for d, day in view.days.items() if day.operating_in},
            {d: day.operating_out for d, day in view.days.items() if day.operating_out},
            {account: days for account, (_, days) in view.accounts.items()},
            frozenset(
                (f.cls, f.subtype)
                for f in view.flows
                if not f.inflow and f.cls in STREAM_CLASSES and f.txns > 0
            ),
            {cp: p.inflow for (cls, cp), p in view.parties.items() if cls == "TRADE" and p.inflow},
            {cp: p.inflow for (cls, cp), p in view.parties.items() if cls == "FIN_PARTNER"},
            {d: day.inflow for d, day in view.days.items() if day.inflow},
            {d: day.outflow for d, day in view.days.items() if day.outflow},
            transpose_marks(view.marks),
        )


def transpose_marks(days: Mapping[Any, Mapping[str, int]]) -> dict[str, dict[int, int]]:
    """day -> mark -> amount turned into mark -> day -> amount (zero amounts left out)."""
    marks: dict[str, dict[int, int]] = {}
    for day, amounts in days.items():
        for mark, amount in amounts.items():
            if amount:
                marks.setdefault(mark, {})[int(day)] = amount
    return marks


class _Series:
    """A sparse daily series: the days with an amount, and running sums over them."""

    __slots__ = ("_amounts", "_days", "_sums")

    def __init__(self, days: list[int], amounts: list[int]) -> None:
        self._days = days  # in order, each once
        self._amounts = amounts
        self._sums = [0, *itertools.accumulate(amounts)]

    def _span(self, start: int, end: int) -> tuple[int, int]:
        return bisect_left(self._days, start), bisect_right(self._days, end)

    def count(self, start: int, end: int) -> int:
        """Days with an amount among start..end."""
        lo, hi = self._span(start, end)
        return max(0, hi - lo)

    def largest(self, start: int, end: int) -> int:
        """The largest amount of a day among start..end (0 when none)."""
        lo, hi = self._span(start, end)
        return max(self._amounts[lo:hi], default=0)

    def longest_gap(self, last: int, within: int) -> int:
        """The most days from one day with an amount to the next, over the pairs whose later
        day is at or before ``last`` and at most ``within`` - 1 days before it."""
        lo, hi = self._span(last - within + 1, last)
        days = self._days
        return max((days[j] - days[j - 1] for j in range(max(lo, 1), hi)), default=0)

    def total(self, start: int, end: int) -> int:
        """The sum over days start..end, both included."""
        if start > end:
            return 0
        return (
            self._sums[bisect_right(self._days, end)] - self._sums[bisect_left(self._days, start)]
        )

    def days_until(self, end: int) -> list[int]:
        return self._days[: bisect_right(self._days, end)]

    def last_at_or_before(self, index: int) -> int | None:
        k = bisect_right(self._days, index)
        return self._days[k - 1] if k else None


@dataclass(frozen=True, slots=True)
class Timeline:
    first: date  # the firm's first day on record: index 0
    days: int  # days from the first day to the as-of day, both included
    _in: _Series
    _out: _Series
    _all_in: _Series
    _all_out: _Series
    _balances: tuple[tuple[list[int], list[int]], ...]  # per account: sorted days, balances
    paid_months: Mapping[tuple[str, str], frozenset[int]]  # stream -> months it was paid in
    # Complete and partial months alike, up to the as-of month: the rules that read them
    # read complete months only (the state keeps counterparties by month, not by day).
    customers: Mapping[int, Mapping[str, int]]  # month -> TRADE party -> inflow
    partners: Mapping[int, Mapping[str, int]]  # month -> FIN_PARTNER party -> inflow
    _marks: Mapping[str, _Series]  # state/month.py's marks, day by day
    memo: dict[Any, Any] = field(default_factory=dict, compare=False)  # what rules derive once

    def index(self, day: date) -> int:
        return (day - self.first).days

    def day(self, index: int) -> date:
        return self.first + timedelta(days=index)

    @property
    def last(self) -> int:
        """Index of the as-of day."""
        return self.days - 1

    def inflow(self, start: int, end: int) -> int:
        """Operating inflow of days start..end (inclusive), clipped to the firm's days."""
        return self._in.total(max(start, 0), min(end, self.last))

    def outflow(self, start: int, end: int) -> int:
        return self._out.total(max(start, 0), min(end, self.last))

    def total_inflow(self, start: int, end: int) -> int:
        """Inflow of every class on days start..end (inclusive), clipped to the firm's days."""
        return self._all_in.total(max(start, 0), min(end, self.last))

    def total_outflow(self, start: int, end: int) -> int:
        return self._all_out.total(max(start, 0), min(end, self.last))

    def marked(self, mark: str, start: int, end: int) -> int:
        """The amount of one mark (state/month.py: loan_in, to_person, ...) on days
        start..end (inclusive), clipped to the firm's days."""
        return sum(self.marked_by(mark, start, end).values())

    def marked_by(self, mark: str, start: int, end: int) -> dict[str, int]:
        """:meth:`marked` by counterparty, for the marks kept by lender ("loan_in",
        "to_lender": "<class>|<counterparty>" -> amount; "" for the others)."""
        found = {}
        for key, series in self._marks.items():
            if key == mark or key.startswith(mark + "|"):
                amount = series.total(max(start, 0), min(end, self.last))
                if amount:
                    found[key[len(mark) + 1 :]] = amount
        return found

    def marked_days(self, mark: str) -> list[int]:
        """The days, up to the as-of day, with an amount of ``mark``, in order."""
        days = set()
        for key, series in self._marks.items():
            if key == mark or key.startswith(mark + "|"):
                days.update(series.days_until(self.last))
        return sorted(days)

    def last_inflow(self, index: int) -> int | None:
        """Index of the last day at or before ``index`` with an operating inflow."""
        return self._in.last_at_or_before(index) if index >= 0 else None

    def inflow_days(self, start: int, end: int) -> int:
        """Days with an operating inflow among start..end."""
        return self._in.count(max(start, 0), min(end, self.last))

    def largest_outflow(self, start: int, end: int) -> int:
        """The largest operating outflow of one day among start..end."""
        return self._out.largest(max(start, 0), min(end, self.last))

    def longest_inflow_gap(self, last: int, within: int) -> int:
        """The most days between consecutive days with an operating inflow, over the pairs
        whose later day lies in the ``within`` days ending with ``last``."""
        return self._in.longest_gap(last, within)

    def balances(self, index: int) -> list[int]:
        """The end-of-day balance of every account that has one on that day."""
        found = []
        for days, values in self._balances:
            k = bisect_right(days, index)
            if k:
                found.append(values[k - 1])
        return found


_Points = tuple[list[int], list[int]]  # days (timeline indices, in order), amounts


def timeline_of(
    months: Mapping[int, MonthDays], as_of: date, carried: Mapping[str, int] | None = None
) -> Timeline | None:
    """The enterprise's days up to ``as_of``, from its months; None before its first
    transaction. Bookings on days before the first counted one, or after ``as_of``, are not
    read."""
    first = _first_day(months)
    if first is None or as_of < first:
        return None
    last_month = month_of(as_of)
    # Each series gathered month by month, in order: days and amounts in lists of their own,
    # each month's days sorted once and shifted to the timeline's index by C loops (map);
    # building it is most of an evaluation, judged for every firm a commit changed.
    flows: tuple[_Points, ...] = (([], []), ([], []), ([], []), ([], []))
    balances: dict[str, _Points] = {}
    marked: dict[str, _Points] = {}
    for month in sorted(months):
        if month > last_month:
            break
        digest = months[month]
        offset = (_date(month, 1) - first).days - 1  # index of day d is offset + d
        end = as_of.day if month == last_month else 31
        for source, points in zip(
            (digest.op_in, digest.op_out, digest.all_in, digest.all_out), flows, strict=True
        ):
            _extend(points, source, offset, end)
        for mark, days in digest.marks.items():
            _extend(marked.setdefault(mark, ([], [])), days, offset, end)
        for account, days in digest.balances.items():
            kept = balances.get(account)
            if kept is None:
                kept = ([], [])
                if not _extend(kept, days, offset, end):
                    continue  # an account appears with its first kept booking
                balances[account] = kept
            else:
                _extend(kept, days, offset, end)
    paid: dict[tuple[str, str], set[int]] = {}
    for month, digest in months.items():
        for stream in digest.paid if month <= last_month else ():
            paid.setdefault(stream, set()).add(month)
    # accounts whose last booking was pruned (state/horizon.py) still hold their balance:
    # from before the first day on record, until a kept booking of theirs says otherwise
    for account, balance in (carried or {}).items():
        indices, values = balances.setdefault(account, ([], []))
        indices.insert(0, -1)
        values.insert(0, balance)
    return Timeline(
        first,
        (as_of - first).days + 1,
        _Series(*flows[0]),
        _Series(*flows[1]),
        _Series(*flows[2]),
        _Series(*flows[3]),
        tuple(balances.values()),
        {stream: frozenset(m) for stream, m in paid.items()},
        {m: d.customers for m, d in months.items() if m <= last_month and d.customers},
        {m: d.partners for m, d in months.items() if m <= last_month and d.partners},
        {mark: _Series(*points) for mark, points in marked.items()},
    )


def _extend(points: _Points, source: Mapping[int, int], offset: int, end: int) -> bool:
    """Add a month's days 1..``end`` of ``source`` (day of month -> amount) that fall on or
    after the timeline's first day (index ``offset`` + day); whether any did."""
    if not source:
        return False
    days = sorted(source)
    kept = days[bisect_left(days, -offset) : bisect_right(days, end)]
    if not kept:
        return False
    points[0].extend(map(offset.__add__, kept))
    points[1].extend(map(source.__getitem__, kept))
    return True


def timeline(history: History, as_of: date) -> Timeline | None:
    """The enterprise's days up to ``as_of``, from its published months and carry."""
    carried = (
        None
        if history.carried is None
        else {a: b for a, (_, b) in history.carried.accounts.items()}
    )
    return timeline_of({m: MonthDays.of_view(v) for m, v in history.months.items()}, as_of, carried)


def _first_day(months: Mapping[int, MonthDays]) -> date | None:
    """The day of the first transaction that counts (a month may hold only reversed ones)."""
    for month in sorted(months):
        first = months[month].first_booked
        if first is not None:
            return _date(month, first)
    return None
