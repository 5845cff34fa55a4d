"""Building blocks of the quarterly queries: windows of months around a quarter ``q``.

``W(n)``: the n months ending with the quarter's last month (``q.m1``); ``M(a..b)``: the
months a to b before the quarter's first (``q.m0``); ``Q-1`` / ``Q-4``: the quarter before
and the same quarter a year earlier. Monthly sums come from table ``ms``, counterparty sums
from ``cpm``, both over every counted transaction (pruned or not).
"""

from __future__ import annotations

from tests.reference_sql import balances, flows, trade

__all__ = ["SHARED", "item", "per_quarter", "quarter_sum", "share", "window"]

# the 95 items both products have, by id: their queries give every period's value
SHARED: dict[str, str] = {**flows.ITEMS, **balances.ITEMS, **trade.ITEMS}


def per_quarter(value: str, joins: str = "") -> str:
    """``value`` for every quarter ``q``; ``joins`` may bring other rows in."""
    return (
        f"SELECT q.ent, q.label, {value} AS value FROM quarters q {joins} "
        "GROUP BY q.ent, q.label, q.m0, q.m1, q.d0, q.d1, q.e1"
    )


def window(n: int, value: str, alias: str = "w") -> str:
    """``value``, an aggregate over the ``ms`` rows of W(n), for every quarter."""
    return per_quarter(
        value,
        f"LEFT JOIN ms {alias} ON {alias}.ent = q.ent "
        f"AND {alias}.month BETWEEN q.m1 - {n - 1} AND q.m1",
    )


def quarter_sum(column: str, quarters_back: int) -> str:
    """The sum of ``ms.column`` over the quarter ``quarters_back`` quarters before ``q``."""
    shift = 3 * quarters_back
    return (
        f"(SELECT coalesce(sum(x.{column}), 0) FROM ms x WHERE x.ent = q.ent "
        f"AND x.month BETWEEN q.m0 - {shift} AND q.m0 - {shift} + 2)"
    )


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
