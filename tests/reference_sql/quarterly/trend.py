"""Trend and stability: the quarter against the one before and the year before, and the
shape of the monthly series over W(6) and W(12)."""

from __future__ import annotations

from tests.reference_sql.quarterly._sql import (
    earlier_sum,
    growth,
    item,
    on_record,
    per_quarter,
    whole_only,
    window,
)

__all__ = ["ITEMS"]


def _net(back: int) -> str:
    return f"({earlier_sum('in_all', back)} - {earlier_sum('out_all', back)})"


def _adb_growth(back: int) -> str:
    """The average daily balance (the item, floored) against a quarter before, relative to
    the absolute value of that one: its days are those of that quarter with a balance."""
    then = on_record(
        back,
        f"""(SELECT fdiv(sum(e.eod), count(e.eod)) FROM eod_daily e WHERE e.ent = q.ent
        AND e.day BETWEEN month_first_day(q.m0 - {3 * back})
                      AND month_first_day(q.m0 - {3 * back} + 3) - INTERVAL 1 DAY)""",
    )
    return per_quarter(
        f"CASE WHEN any_value(a.value) IS NULL OR coalesce({then}, 0) = 0 THEN NULL "
        f"ELSE (any_value(a.value) - {then})::DOUBLE / abs({then})::DOUBLE END",
        item("average_daily_balance_fen", "a"),
    )


def _customers(back: int) -> str:
    """Trade counterparties that were net payers over the quarter ``back`` quarters ago."""
    shift = 3 * back
    return f"""(SELECT count(*) FROM (
        SELECT c.cp FROM cpm c WHERE c.ent = q.ent AND c.cls = 'TRADE'
          AND c.month BETWEEN q.m0 - {shift} AND q.m0 - {shift} + 2
        GROUP BY c.cp HAVING sum(c.cp_in) > sum(c.cp_out)))"""


# a spread needs two months on record at least: one month shows no volatility
_FEW = "count(w.month) < 2"


def _cv(n: int, column: str) -> str:
    """Population standard deviation over mean of a monthly series over W(n) on record."""
    return window(
        n,
        f"CASE WHEN {_FEW} OR avg(w.{column}) = 0 THEN NULL "
        f"ELSE stddev_pop(w.{column}::DOUBLE) / avg(w.{column}::DOUBLE) END",
    )


def _months_where(n: int, condition: str) -> str:
    """Months of W(n) on record that meet ``condition``."""
    return window(n, f"count(*) FILTER (WHERE {condition})")


# the least-squares slope of op_in over the k months of W(6) on record, x = 1..k for the
# months w1 - k + 1 .. w1: sum((x - (k + 1) / 2) * y) / (k (k^2 - 1) / 12); with
# x = month - w1 + k, 2x - k - 1 = 2 (month - w1) + k - 1, so the numerator (doubled) is
# sum((2 (month - w1) - 1) * y) + k * sum(y)
_SLOPE = window(
    6,
    f"CASE WHEN {_FEW} THEN NULL ELSE fdiv(6 * (sum((2 * (w.month - q.w1) - 1) * w.op_in) "
    "+ count(w.month) * sum(w.op_in)), count(w.month) * (count(w.month) * count(w.month) - 1)) END",
)

# the largest fall from a month to the next, both in W(12), relative to the earlier month
_DROP = per_quarter(
    "CASE WHEN count(*) FILTER (WHERE a.op_in > 0) = 0 THEN NULL "
    "ELSE greatest(max((a.op_in - b.op_in)::DOUBLE / a.op_in) FILTER (WHERE a.op_in > 0), 0) "
    "END",
    "LEFT JOIN ms a ON a.ent = q.ent AND a.month BETWEEN q.w1 - 11 AND q.w1 - 1 "
    "LEFT JOIN ms b ON b.ent = q.ent AND b.month = a.month + 1",
)

ITEMS: dict[str, str] = {
    "inflow_qoq_growth": growth("in_all", 1),
    "inflow_yoy_growth": growth("in_all", 4),
    "operating_inflow_qoq_growth": growth("op_in", 1),
    "operating_inflow_yoy_growth": growth("op_in", 4),
    "outflow_qoq_growth": growth("out_all", 1),
    "outflow_yoy_growth": growth("out_all", 4),
    "net_flow_qoq_change_fen": per_quarter(f"{_net(0)} - {_net(1)}"),
    "net_flow_yoy_change_fen": per_quarter(f"{_net(0)} - {_net(4)}"),
    "average_daily_balance_qoq_growth": _adb_growth(1),
    "average_daily_balance_yoy_growth": _adb_growth(4),
    "customers_qoq_change": per_quarter(whole_only(f"{_customers(0)} - {_customers(1)}")),
    "operating_inflow_slope_6m_fen": _SLOPE,
    # stability
    "operating_inflow_cv_6m": _cv(6, "op_in"),
    "zero_operating_inflow_months_12m": _months_where(12, "w.op_in = 0"),
    "largest_mom_drop_12m": _DROP,
    "outflow_cv_6m": _cv(6, "out_all"),
    "negative_net_flow_months_12m": _months_where(12, "w.out_all > w.in_all"),
    "daily_balance_cv": per_quarter(
        "CASE WHEN count(e.eod) = 0 OR avg(e.eod) = 0 THEN NULL "
        "ELSE stddev_pop(e.eod::DOUBLE) / abs(avg(e.eod::DOUBLE)) END",
        "LEFT JOIN eod e ON e.ent = q.ent AND e.label = q.label",
    ),
    "min_to_mean_operating_inflow_6m": window(
        6,
        f"CASE WHEN {_FEW} OR avg(w.op_in) = 0 THEN NULL "
        "ELSE min(w.op_in)::DOUBLE / avg(w.op_in) END",
    ),
}
