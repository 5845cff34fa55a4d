"""Item kernels: pure functions from an enterprise's month views to item values.

Each item id of ``specs/products.toml`` has exactly one kernel here (checked when a product
is assembled and by a test); a kernel serves every product its item belongs to, over the
months of the product's period.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.history import History
from engine.periods import Period

__all__ = ["KERNELS", "Value"]

Value = int | float | str | None


Kernel = Callable[[History, Period], Value]
KERNELS: dict[str, Kernel] = {}


def _kernel(item_id: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        if item_id in KERNELS:
            raise ValueError(f"two kernels for item {item_id!r}")
        KERNELS[item_id] = fn
        return fn

    return register


@_kernel("inflow_amount_fen")
def _inflow_amount(history: History, period: Period) -> int:
    return history.flows(period.months, inflow=True)[0]


@_kernel("inflow_count")
def _inflow_count(history: History, period: Period) -> int:
    return history.flows(period.months, inflow=True)[1]


@_kernel("outflow_amount_fen")
def _outflow_amount(history: History, period: Period) -> int:
    return history.flows(period.months, inflow=False)[0]


@_kernel("outflow_count")
def _outflow_count(history: History, period: Period) -> int:
    return history.flows(period.months, inflow=False)[1]


@_kernel("net_flow_fen")
def _net_flow(history: History, period: Period) -> int:
    return (
        history.flows(period.months, inflow=True)[0] - history.flows(period.months, inflow=False)[0]
    )


@_kernel("distinct_counterparties")
def _distinct_counterparties(history: History, period: Period) -> int:
    return len(history.parties(period.months))


@_kernel("closing_balance_fen")
def _closing_balance(history: History, period: Period) -> int:
    return sum(history.balances_at_end_of(period.last_month).values())
