"""A second reference for the products: SQL over a table of the raw events (DuckDB).

Written from the definitions alone (specs/products.toml, docs/products.md, the README's
event contract, specs/registries.toml and the classification rules of
engine/products/classify.py's docstring), without reading the kernels or the first
reference, on another computational model: set-based queries, one per item, over the views
of ``_pipeline`` (dedupe, reversals, classification, China-time periods, end-of-day
balances). Python only loads the events, runs the queries and shapes the result.

``products(events, as_of)`` -> enterprise -> period label ("YYYY-MM" / "YYYYQn") -> item ->
value, for every month and quarter from the enterprise's first transaction (or the first
kept month, ``history_months`` months ending with ``as_of``'s month) to ``as_of``'s; the
period holding ``as_of`` is partial and its days stop at ``as_of``'s day. ``events`` are
the events as delivered, each one that was not rejected at intake (too_old included).
The segments the subject's facts make (query records, disputes, statements) are left out.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from tests.reference_sql import balances, flows, quarterly, trade, windows
from tests.reference_sql._pipeline import SPECS, connect

__all__ = ["ITEMS", "NOT_COVERED", "product_items", "products"]

SUBJECT_SEGMENTS = ("header", "query_records", "disputes", "statements")

# item id -> its query: rows (ent, label, value) for every period it applies to
ITEMS: dict[str, str] = {
    **flows.ITEMS,
    **balances.ITEMS,
    **trade.ITEMS,
    **windows.ITEMS,
    **quarterly.ITEMS,
}


def product_items() -> dict[str, list[str]]:
    """Item ids of each product that transactions determine, in spec order."""
    with (SPECS / "products.toml").open("rb") as handle:
        doc = tomllib.load(handle)
    segments = {s["id"]: s["items"] for s in doc["segments"]}
    return {
        product: [
            item
            for segment in doc["products"][product]["segments"]
            if segment not in SUBJECT_SEGMENTS
            for item in segments[segment]
        ]
        for product in ("monthly", "quarterly")
    }


# Items of the products that this reference does not compute yet.
NOT_COVERED: dict[str, list[str]] = {
    product: [item for item in items if item not in ITEMS]
    for product, items in product_items().items()
}


def products(
    events: Iterable[Mapping[str, Any]],
    as_of: datetime,
    history_months: int = 36,
    registries: Sequence[tuple[int, Mapping[str, Any]]] = (),
    episodes: Mapping[str, Iterable[tuple[str, date, date | None]]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every covered item of every period a pull at ``as_of`` can name (``registries``:
    reloads, as ``_pipeline.connect`` takes them; ``episodes``: each enterprise's signal
    episodes (rule, opened, closed or None), none when not given)."""
    db = connect(events, as_of, history_months, registries, episodes)
    try:
        kinds = {
            (ent, label): kind
            for ent, label, kind in db.execute("SELECT ent, label, kind FROM periods").fetchall()
        }
        wanted = {kind: set(items) for kind, items in product_items().items()}
        result: dict[str, dict[str, dict[str, Any]]] = {}
        for (ent, label), _ in sorted(kinds.items()):
            result.setdefault(ent, {})[label] = {}
        for item, query in ITEMS.items():
            for ent, label, value in db.execute(query).fetchall():
                if item in wanted[kinds[ent, label]]:
                    result[ent][label][item] = value
        return result
    finally:
        db.close()
