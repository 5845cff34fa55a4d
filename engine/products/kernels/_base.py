"""The kernel registry and the per-request context every kernel reads.

A kernel is a pure function ``(Context) -> value``; the context memoizes what several items
share (flows by class, daily balances, counterparties of a set of months), so one product is
computed from one pass over the enterprise's months.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from engine.periods import (
    DAY_US,
    Period,
    day_start_us,
    format_month,
    month_of_us,
    month_start_us,
    time_of_day_us,
)
from engine.products.classify import OPERATING_IN, OPERATING_OUT, CounterpartyClass
from engine.products.history import Day, History, Party
from engine.products.subject import Subject

__all__ = [
    "ALL",
    "KERNELS",
    "OP_IN",
    "OP_OUT",
    "Context",
    "Value",
    "cv",
    "elapsed_days",
    "kernel",
    "ratio",
]

Value = int | float | str | None
Kernel = Callable[["Context"], Value]
KERNELS: dict[str, Kernel] = {}

ALL: frozenset[str] | None = None
OP_IN = frozenset(c.value for c in OPERATING_IN)
OP_OUT = frozenset(c.value for c in OPERATING_OUT)
TRADE = CounterpartyClass.TRADE.value


def kernel(*item_ids: str) -> Callable[[Kernel], Kernel]:
    """Register ``fn`` as the kernel of ``item_ids`` (one id per kernel, as a rule)."""

    def register(fn: Kernel) -> Kernel:
        for item_id in item_ids:
            if item_id in KERNELS:
                raise ValueError(f"two kernels for item {item_id!r}")
            KERNELS[item_id] = fn
        return fn

    return register


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def cv(values: Sequence[float]) -> float | None:
    """Population standard deviation over mean; None when the mean is 0 or no value."""
    if not values:
        return None
    mean = sum(values) / len(values)
    if mean == 0:
        return None
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return math.sqrt(variance) / abs(mean)


def elapsed_days(period: Period, as_of_us: int | None) -> int:
    """The days of ``period`` that have begun at ``as_of_us`` (China time), the pull's own
    day included: all of them when the period is over or no clock is given."""
    return _begun(period.first_month, period.last_month, as_of_us)


def _begun(first_month: int, last_month: int, as_of_us: int | None) -> int:
    start = month_start_us(first_month)
    total = (month_start_us(last_month + 1) - start) // DAY_US
    if as_of_us is None:
        return total
    # month_start_us is a midnight in China time, so whole days from it are China days
    begun = (as_of_us - time_of_day_us(as_of_us) - start) // DAY_US + 1
    return max(0, min(total, begun))


class Context:
    """One product request: an enterprise's history, the period, the spec parameters, and
    the pull's instant (``as_of_us``; None: the period is over).

    Days that have not happened yet are not days: a partial period (one that is not over at
    the pull) has only its days up to the pull's day, and every item over its days (daily
    balances, dry runs, averages per month) reads those (spec version 4)."""

    def __init__(
        self,
        history: History,
        period: Period,
        parameters: Mapping[str, Any],
        subject: Subject | None = None,
        as_of_us: int | None = None,
    ) -> None:
        self.history = history
        self.period = period
        self.params = parameters
        # The information subject's records as of the pull (subject segments only).
        self.subject = subject or Subject()
        self.as_of_us = as_of_us
        self.months = list(period.months)
        self.period_days = elapsed_days(period, None)
        self.elapsed_days = elapsed_days(period, as_of_us)
        self._flows: dict[tuple[Any, ...], tuple[int, int]] = {}

    @property
    def partial(self) -> bool:
        """The period is not over at the pull (the response's ``partial``; on its last day
        every day of it has begun, and it is still partial)."""
        return self.as_of_us is not None and self.period.is_partial(self.as_of_us)

    # -- windows ----------------------------------------------------------------------------

    @property
    def last_whole_month(self) -> int:
        """The period's last month, or while the period is partial the last month that is
        over at the pull: where W(n) ends."""
        if not self.partial:
            return self.period.last_month
        assert self.as_of_us is not None  # a period is partial only at a pull
        return month_of_us(self.as_of_us) - 1

    @cached_property
    def record_start(self) -> int | None:
        """The first month on record: the firm's first, or the first kept (History)."""
        return self.history.record_start()

    def on_record(self, months: Iterable[int]) -> list[int]:
        """The months at or after the first month on record: months before the firm existed,
        or pruned from the kept history, are not months without flows (spec version 5)."""
        start = self.record_start
        return [] if start is None else [m for m in months if m >= start]

    def window(self, n: int) -> list[int]:
        """W(n) on record: of the n months ending with the period's last month (while the
        period is partial, the n whole months before the pull's month: a month to come, or
        the pull's own, is not a month without flows), those on record."""
        last = self.last_whole_month
        return self.on_record(range(last - n + 1, last + 1))

    def before(self, k: int) -> list[int]:
        """M(1..k) on record: of the k months before the period's first month, those on
        record."""
        first = self.period.first_month
        return self.on_record(range(first - k, first))

    def shifted(self, quarters: int) -> Context:
        """The same request for the period ``quarters`` quarters earlier (Q-1, Q-4)."""
        months = tuple(m - 3 * quarters for m in self.period.months)
        label = f"{format_month(months[0])}..{format_month(months[-1])}"
        return Context(
            self.history, Period(self.period.kind, label, months), self.params, None, self.as_of_us
        )

    def earlier(self, quarters: int) -> Context | None:
        """Q-1 (Q-4) as a base of comparison: only a quarter wholly on record is one (a
        quarter the firm lived in part, or whose months were pruned, is no base)."""
        earlier = self.shifted(quarters)
        start = self.record_start
        if start is None or earlier.period.first_month < start:
            return None
        return earlier

    def coverage(self, windows: Sequence[int]) -> dict[str, Any]:
        """Where the record starts and, for a product that reads windows, how many months
        of each it really covers and whether Q-1 and Q-4 are bases: the response's
        ``coverage``, which says where a young firm's or pruned history changes a reading."""
        start, kept_from = self.record_start, self.history.kept_from
        coverage: dict[str, Any] = {
            "record_start": None if start is None else format_month(start),
            "kept_from": None if kept_from is None else format_month(kept_from),
        }
        if windows:
            coverage["window_months"] = {str(n): len(self.window(n)) for n in windows}
        if windows and self.period.kind == "quarterly":  # only a quarter compares with
            coverage["previous_quarter"] = self.earlier(1) is not None
            coverage["same_quarter_last_year"] = self.earlier(4) is not None
        return coverage

    # -- flows ------------------------------------------------------------------------------

    def flows(
        self,
        inflow: bool | None,
        classes: Iterable[str] | None = ALL,
        subtype: str | None = None,
        bank_channel: str | None = None,
        months: Sequence[int] | None = None,
    ) -> tuple[int, int]:
        """(amount, count) of the flows of ``months`` (default: the period) matching."""
        chosen = tuple(self.months if months is None else months)
        wanted = None if classes is None else frozenset(classes)
        key = (inflow, wanted, subtype, bank_channel, chosen)
        found = self._flows.get(key)
        if found is None:
            found = self.history.flows(chosen, inflow, wanted, subtype, bank_channel)
            self._flows[key] = found
        return found

    def amount_in(
        self,
        classes: Iterable[str] | None = ALL,
        months: Sequence[int] | None = None,
        subtype: str | None = None,
        bank_channel: str | None = None,
    ) -> int:
        return self.flows(True, classes, subtype, bank_channel, months)[0]

    def amount_out(
        self,
        classes: Iterable[str] | None = ALL,
        months: Sequence[int] | None = None,
        subtype: str | None = None,
        bank_channel: str | None = None,
    ) -> int:
        return self.flows(False, classes, subtype, bank_channel, months)[0]

    def cross(self, direction: str) -> tuple[int, int]:
        amount = count = 0
        for month in self.months:
            a, c = self.history.month(month).cross.get(direction, (0, 0))
            amount += a
            count += c
        return amount, count

    # -- days and balances ------------------------------------------------------------------

    @cached_property
    def days(self) -> list[Day]:
        """Every day of the period that has begun at the pull, in order."""
        return self.history.days(self.months)[: self.elapsed_days]

    @cached_property
    def marks(self) -> list[Mapping[str, int]]:
        """The marks (state/month.py ``mark_of``) of every day of the period that has begun
        at the pull, aligned with :attr:`days`."""
        return self.history.marks(self.months)[: self.elapsed_days]

    @cached_property
    def positions(self) -> list[tuple[int, bool] | None]:
        """(end-of-day total balance, an account overdrawn) of every day of the period that
        has begun at the pull (None before any booking; the pull's day: so far)."""
        return self.history.daily_positions(self.months)[: self.elapsed_days]

    @cached_property
    def eod(self) -> list[int | None]:
        """End-of-day balance of every day of the period that has begun at the pull (None
        before any booking; the pull's day: its balance so far)."""
        return [None if p is None else p[0] for p in self.positions]

    @cached_property
    def overdrawn(self) -> list[bool]:
        """Of every day with a balance: whether one account at least ended it below zero."""
        return [p[1] for p in self.positions if p is not None]

    @cached_property
    def lived_days(self) -> list[Day]:
        """The days of the period so far from the firm's first transaction on: days before
        the firm existed are not days without inflow."""
        first = self.history.first_day()
        start = month_start_us(self.period.first_month)
        if first is None:
            return []
        first_month = first.year * 12 + first.month - 1
        skip = (day_start_us(first_month, first.day) - start) // DAY_US
        return self.days[max(0, skip) :]

    def window_eod(self, months: list[int]) -> list[int | None]:
        """End-of-day balances of the days of ``months`` (consecutive) that have begun at
        the pull."""
        if not months:
            return []
        values = self.history.daily_balances(months)
        return values[: _begun(months[0], months[-1], self.as_of_us)]

    def base_days(self, earlier: Context) -> list[Day]:
        """The days of an earlier whole period that match this period's days so far: its
        first as many days as this period has had (all of them when this one is over)."""
        days = earlier.history.days(earlier.months)
        return days if not self.partial else days[: self.elapsed_days]

    @cached_property
    def defined_eod(self) -> list[int]:
        return [b for b in self.eod if b is not None]

    def average_daily_balance(self) -> int | None:
        values = self.defined_eod
        return None if not values else sum(values) // len(values)

    # -- counterparties ---------------------------------------------------------------------

    @cached_property
    def parties(self) -> dict[tuple[str, str], Party]:
        """(class, counterparty) -> flows in the period."""
        return self.history.parties(self.months)

    def of_class(self, cls: str, months: Sequence[int] | None = None) -> dict[str, Party]:
        """Counterparty -> its flows of class ``cls`` in ``months`` (default: the period)."""
        parties = self.parties if months is None else self.history.parties(months)
        return {cp: p for (c, cp), p in parties.items() if c == cls}

    def ids(self, months: Sequence[int] | None = None) -> set[str]:
        """Counterparties with at least one transaction (any class) in ``months``."""
        parties = self.parties if months is None else self.history.parties(months)
        return {cp for _, cp in parties}

    @cached_property
    def trade(self) -> dict[str, Party]:
        return self.of_class(TRADE)

    def customers(self) -> set[str]:
        return {k for k, p in self.trade.items() if p.inflow > p.outflow}

    def suppliers(self) -> set[str]:
        return {k for k, p in self.trade.items() if p.outflow > p.inflow}

    def known(self, months: Sequence[int]) -> set[str]:
        """Counterparties with at least one transaction in ``months``."""
        return self.ids(months)
