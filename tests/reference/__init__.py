"""A deliberately simple reference for every item of both products, from raw events.

``products(events)`` -> enterprise id -> period label ("YYYY-MM" or "YYYYQn") -> item -> value,
for every month from an enterprise's first counted transaction to its last and every quarter
touching those months, pulled at ``as_of`` (default: now): a period not over at the pull has
only its days up to the pull's day (China time). It shares no code with the engine: only
specs/products.toml (item lists, parameters) and specs/registries.toml. The signal items
count the days of the signal episodes given (``episodes``; tests/reference/signals.py
checks the rules that raise them).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tests.reference import quarterly
from tests.reference.events import CST, counted_events, transactions
from tests.reference.items import _BY_DAY as DAY_CACHE
from tests.reference.items import _EOD as EOD_CACHE
from tests.reference.items import CLOCK, ITEMS, RECORD

__all__ = ["counted_events", "product_items", "products", "signal_items"]

_SPECS = Path(__file__).resolve().parents[2] / "specs" / "products.toml"


# Segments computed from query records, disputes and statements, not from transactions:
# their reference is tests/reference/subject.py.
SUBJECT_SEGMENTS = ("header", "query_records", "disputes", "statements")


def product_items() -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Item ids of each product that transactions determine, in spec order, and the
    parameters."""
    with _SPECS.open("rb") as handle:
        doc = tomllib.load(handle)
    segments = {s["id"]: s["items"] for s in doc["segments"]}
    items = {
        product: [
            i
            for seg in doc["products"][product]["segments"]
            if seg not in SUBJECT_SEGMENTS
            for i in segments[seg]
        ]
        for product in ("monthly", "quarterly")
    }
    return items, doc["parameters"]


def _label(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def products(
    events: Iterable[Mapping[str, Any]],
    pinned_only: bool = False,
    as_of: datetime | None = None,
    episodes: Mapping[str, Iterable[tuple[str, date, date | None]]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``episodes``: each enterprise's signal episodes (rule, opened, closed or None), the
    input of the signal items (none when not given)."""
    items, params = product_items()
    CLOCK["day"] = (as_of or datetime.now(UTC)).astimezone(CST).date()
    if pinned_only:
        pinned = [
            "inflow_amount_fen",
            "inflow_count",
            "outflow_amount_fen",
            "outflow_count",
            "net_flow_fen",
            "distinct_counterparties",
            "closing_balance_fen",
        ]
        items = {product: pinned for product in items}
    result: dict[str, dict[str, dict[str, Any]]] = {}
    EOD_CACHE.clear()  # caches keyed by list identity: valid within one call only
    DAY_CACHE.clear()
    for enterprise, txns in transactions(events).items():
        first, last = min(t.month for t in txns), max(t.month for t in txns)
        RECORD["start"] = first
        quarterly.EPISODES["current"] = list((episodes or {}).get(enterprise, ()))
        periods: dict[str, dict[str, Any]] = {}
        for month in range(first, last + 1):
            periods[_label(month)] = {i: ITEMS[i](txns, [month], params) for i in items["monthly"]}
        for start in sorted({m - m % 3 for m in range(first, last + 1)}):
            label = f"{start // 12}Q{start % 12 // 3 + 1}"
            months = [start, start + 1, start + 2]
            periods[label] = {i: ITEMS[i](txns, months, params) for i in items["quarterly"]}
        result[enterprise] = periods
    return result


def signal_items(
    episodes: Iterable[tuple[str, date, date | None]], label: str, as_of: datetime | None = None
) -> dict[str, int]:
    """The signal items of quarter ``label`` ("YYYYQn") pulled at ``as_of`` (default: now),
    from one enterprise's episodes alone (what products() computes for them)."""
    CLOCK["day"] = (as_of or datetime.now(UTC)).astimezone(CST).date()
    year, quarter = int(label[:4]), int(label[-1])
    start = year * 12 + (quarter - 1) * 3
    quarterly.EPISODES["current"] = list(episodes)
    return {
        f"signal_{rule}_days": ITEMS[f"signal_{rule}_days"]([], [start, start + 1, start + 2], {})
        for rule in quarterly.SIGNAL_RULES
    }
