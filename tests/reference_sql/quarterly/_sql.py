"""Building blocks of the quarterly queries: windows of months around a quarter ``q``.

``W(n)``: the n months ending with ``q.w1``, the quarter's last month or, while the quarter
is partial, the month before the pull's; ``M(a..b)``: the months a to b before the
quarter's first (``q.m0``); ``Q-1`` / ``Q-4``: the quarter before and the same quarter a
year earlier. Monthly sums come from table ``ms``, counterparty sums from ``cpm``, both
over the months on record (from ``q.r0``: a month before the firm's first, or pruned, is no
month of a window). An earlier quarter is a base only when wholly on record: else what is
compared with it is null. While a quarter is partial (``q.partial``: the pull on or before
its last day), a flow of it is compared with the same number of first days of the earlier
quarter (``earlier_sum``), and a comparison of counterparties is null (``whole_only``).
"""

from __future__ import annotations

from tests.reference_sql import balances, flows, trade

__all__ = [
    "SHARED",
    "earlier_sum",
    "growth",
    "item",
    "on_record",
    "per_quarter",
    "quarter_sum",
    "share",
    "whole_only",
    "window",
]

# the 95 items both products have, by id: their queries give every period's value
SHARED: dict[str, str] = {**flows.ITEMS, **balances.ITEMS, **trade.ITEMS}


def per_quarter(value: str, joins: str = "") -> str:
    """``value`` for every quarter ``q``; ``joins`` may bring other rows in."""
    return (
        f"SELECT q.ent, q.label, {value} AS value FROM quarters q {joins} "
        "GROUP BY q.ent, q.label, q.m0, q.m1, q.d0, q.d1, q.e1, q.w1, q.r0, q.partial"
    )


def window(n: int, value: str, alias: str = "w") -> str:
    """``value``, an aggregate over the ``ms`` rows of W(n), for every quarter."""
    return per_quarter(
        value,
        f"LEFT JOIN ms {alias} ON {alias}.ent = q.ent "
        f"AND {alias}.month BETWEEN q.w1 - {n - 1} AND q.w1",
    )


def on_record(quarters_back: int, value: str) -> str:
    """``value`` of the quarter ``quarters_back`` before ``q`` (0: ``q`` itself), null when
    that earlier quarter is not wholly on record."""
    if quarters_back == 0:
        return value
    return f"(CASE WHEN q.m0 - {3 * quarters_back} < q.r0 THEN NULL ELSE {value} END)"


def quarter_sum(column: str, quarters_back: int, base: bool = True) -> str:
    """The sum of ``ms.column`` over the quarter ``quarters_back`` quarters before ``q``'s
    months on record; as a ``base`` of comparison, null when that quarter is not wholly on
    record."""
    shift = 3 * quarters_back
    total = (
        f"(SELECT coalesce(sum(x.{column}), 0) FROM ms x WHERE x.ent = q.ent "
        f"AND x.month BETWEEN q.m0 - {shift} AND q.m0 - {shift} + 2)"
    )
    return on_record(quarters_back, total) if base else total


# the transactions each ``ms`` column sums
_COLUMN_FILTER = {
    "in_all": "x.inflow",
    "out_all": "NOT x.inflow",
    "op_in": "x.inflow AND x.cls IN ('TRADE', 'PSP', 'CASH')",
    "power_out": "NOT x.inflow AND x.cls = 'UTILITY' AND x.sub = 'power'",
    "water_out": "NOT x.inflow AND x.cls = 'UTILITY' AND x.sub = 'water'",
    "gas_out": "NOT x.inflow AND x.cls = 'UTILITY' AND x.sub = 'gas'",
    "payroll_out": "NOT x.inflow AND x.cls = 'PAYROLL'",
    "tax_out": "NOT x.inflow AND x.cls = 'TAX'",
}


def earlier_sum(column: str, quarters_back: int) -> str:
    """``quarter_sum``, or while ``q`` is partial the same sum over the earlier quarter's
    first as many days as ``q`` has had."""
    start = f"month_first_day(q.m0 - {3 * quarters_back})"
    same_days = (
        f"(SELECT coalesce(sum(x.amount) FILTER (WHERE {_COLUMN_FILTER[column]}), 0) "
        f"FROM txn x WHERE x.ent = q.ent AND x.day >= {start} "
        f"AND x.day - {start} < q.e1 - q.d0 + 1)"
    )
    whole = quarter_sum(column, quarters_back)
    return on_record(quarters_back, f"(CASE WHEN q.partial THEN {same_days} ELSE {whole} END)")


def growth(column: str, back: int) -> str:
    """(this quarter - that quarter) / that quarter of ``ms.column``, null when that quarter
    is no base or its sum is 0; a partial quarter against as many first days of that one."""
    now, then = quarter_sum(column, 0), earlier_sum(column, back)
    return per_quarter(share(f"{now} - {then}", then))


def whole_only(value: str) -> str:
    """``value``, a comparison with Q-1's counterparties: null while the quarter is partial,
    or when Q-1 is not wholly on record."""
    return f"CASE WHEN q.partial OR q.m0 - 3 < q.r0 THEN NULL ELSE {value} END"


def item(name: str, alias: str, source: dict[str, str] | None = None) -> str:
    """A join bringing item ``name``'s value of the same period in as ``alias.value``."""
    query = (SHARED if source is None else source)[name]
    return f"LEFT JOIN ({query}) {alias} ON {alias}.ent = q.ent AND {alias}.label = q.label"


def share(part: str, whole: str) -> str:
    """part / whole as a decimal fraction; null when the whole is 0 or null."""
    return (
        f"CASE WHEN coalesce({whole}, 0) = 0 THEN NULL "
        f"ELSE ({part})::DOUBLE / ({whole})::DOUBLE END"
    )
