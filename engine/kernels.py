"""Item kernels: pure functions from an enterprise's month views to item values.

Each item id of ``specs/products.toml`` has exactly one kernel here (checked when a product
is assembled and by a test); a kernel serves every product its item belongs to, over the
months of the product's period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.periods import Period

__all__ = ["KERNELS", "History", "MonthView", "Value"]

Value = int | float | str | None


@dataclass(frozen=True, slots=True)
class MonthView:
    """One month of one enterprise as published by a worker (see state/month.py)."""

    in_amount: int
    in_count: int
    out_amount: int
    out_count: int
    counterparties: frozenset[str]
    balances: Mapping[str, int]  # account pseudonym -> balance after its last booking

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> MonthView:
        return cls(
            doc["in_amount"],
            doc["in_count"],
            doc["out_amount"],
            doc["out_count"],
            frozenset(doc["counterparties"]),
            doc["balances"],
        )


_EMPTY = MonthView(0, 0, 0, 0, frozenset(), {})


@dataclass(frozen=True, slots=True)
class History:
    """Every month of an enterprise that has data, by month ordinal."""

    months: Mapping[int, MonthView]

    def has_data_until(self, month: int) -> bool:
        return any(m <= month for m in self.months)

    def period_months(self, period: Period) -> list[MonthView]:
        return [self.months.get(m, _EMPTY) for m in period.months]

    def closing_balance(self, month: int) -> int:
        """Sum over accounts of the balance after their last booking at or before ``month``."""
        seen: dict[str, int] = {}
        for m in sorted((m for m in self.months if m <= month), reverse=True):
            for account, balance in self.months[m].balances.items():
                seen.setdefault(account, balance)
        return sum(seen.values())


Kernel = Callable[[History, Period], Value]
KERNELS: dict[str, Kernel] = {}


def _kernel(item_id: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        if item_id in KERNELS:
            raise ValueError(f"two kernels for item {item_id!r}")
        KERNELS[item_id] = fn
        return fn

    return register


def _sum(views: Iterable[MonthView], attribute: str) -> int:
    return sum(getattr(view, attribute) for view in views)


@_kernel("inflow_amount_fen")
def _inflow_amount(history: History, period: Period) -> int:
    return _sum(history.period_months(period), "in_amount")


@_kernel("inflow_count")
def _inflow_count(history: History, period: Period) -> int:
    return _sum(history.period_months(period), "in_count")


@_kernel("outflow_amount_fen")
def _outflow_amount(history: History, period: Period) -> int:
    return _sum(history.period_months(period), "out_amount")


@_kernel("outflow_count")
def _outflow_count(history: History, period: Period) -> int:
    return _sum(history.period_months(period), "out_count")


@_kernel("net_flow_fen")
def _net_flow(history: History, period: Period) -> int:
    views = history.period_months(period)
    return _sum(views, "in_amount") - _sum(views, "out_amount")


@_kernel("distinct_counterparties")
def _distinct_counterparties(history: History, period: Period) -> int:
    union: set[str] = set()
    for view in history.period_months(period):
        union |= view.counterparties
    return len(union)


@_kernel("closing_balance_fen")
def _closing_balance(history: History, period: Period) -> int:
    return history.closing_balance(period.last_month)
