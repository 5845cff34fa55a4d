"""The items of both products over W(12), the 12 months ending with the period (spec
version 8): public payments month by month, and the tax burden.

``W(12)`` of a period ``p`` is the months of ``ms`` (on record only: none before the record
starts) from ``p.w1 - 11`` to ``p.w1``, where ``w1`` is the period's last month or, while
the period is partial, the month before the pull's: a month not over is not a month without
payments.
"""

from __future__ import annotations

__all__ = ["ITEMS"]


def _w12(value: str) -> str:
    """``value``, an aggregate over the ``ms`` rows ``w`` of W(12), for every period."""
    return f"""
    SELECT p.ent, p.label, {value} AS value
    FROM periods p LEFT JOIN ms w ON w.ent = p.ent AND w.month BETWEEN p.w1 - 11 AND p.w1
    GROUP BY p.ent, p.label
    """


ITEMS: dict[str, str] = {
    "power_months_12m": _w12("count(*) FILTER (WHERE w.power_out > 0)"),
    "water_months_12m": _w12("count(*) FILTER (WHERE w.water_out > 0)"),
    "gas_months_12m": _w12("count(*) FILTER (WHERE w.gas_out > 0)"),
    # tax paid (refunds not netted) over operating inflow, both over the 12 months
    "tax_burden_12m": _w12(
        "CASE WHEN coalesce(sum(w.op_in), 0) = 0 THEN NULL "
        "ELSE sum(w.tax_out)::DOUBLE / sum(w.op_in)::DOUBLE END"
    ),
    # salaries paid, and nothing to social insurance (the housing fund is not)
    "payroll_without_social_months_12m": _w12(
        "count(*) FILTER (WHERE w.payroll_out > 0 AND w.si_out = 0)"
    ),
    # how many months of the 12 are on record (the quarterly report's own item)
    "months_covered_12m": _w12("count(w.month)"),
}
