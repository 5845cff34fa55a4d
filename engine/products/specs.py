"""Load and validate the product declarations in ``specs/products.toml``.

The file is the single source of the products: segments and items with their names, units,
definitions, formulas and null rules. Loading fails with a :class:`SpecError` that names the
offending id when the file is inconsistent.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import SpecError

__all__ = [
    "PINNED_ITEMS",
    "PRODUCTS",
    "SPECS_DIR",
    "ItemSpec",
    "ProductSpec",
    "SegmentSpec",
    "Unit",
    "load_products",
    "parse_products",
]

SPECS_DIR = Path(__file__).resolve().parents[2] / "specs"
PRODUCTS = ("monthly", "quarterly")

#: Items whose ids and meanings are fixed by the pipeline contract (issue 2).
PINNED_ITEMS = (
    "inflow_amount_fen",
    "inflow_count",
    "outflow_amount_fen",
    "outflow_count",
    "net_flow_fen",
    "closing_balance_fen",
    "distinct_counterparties",
)


class Unit(StrEnum):
    FEN = "fen"
    COUNT = "count"
    RATIO = "ratio"
    DAYS = "days"
    MONTHS = "months"
    FLAG = "flag"
    DATE = "date"
    DATETIME = "datetime"  # an instant, RFC 3339 with its offset (+08:00)
    TEXT = "text"  # a code or an id, as it is


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """One data item: what it means, how it is computed, when it is null."""

    id: str
    name_zh: str
    name_en: str
    unit: Unit
    definition: str
    formula: str
    null_when: str


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """One information segment: an ordered group of items."""

    id: str
    name_zh: str
    name_en: str
    items: tuple[ItemSpec, ...]


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """A product (monthly or quarterly) as its ordered segments."""

    id: str
    version: int
    name_zh: str
    name_en: str
    segments: tuple[SegmentSpec, ...]
    parameters: Mapping[str, int | float]
    # the months of the windows W(n) its items read, and so what its ``coverage`` tells
    windows: tuple[int, ...] = ()

    @property
    def items(self) -> tuple[ItemSpec, ...]:
        return tuple(item for segment in self.segments for item in segment.items)


def _require(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise SpecError(f"{where}: {key!r} must be a non-empty {kind.__name__}")
    return value


def _windows(header: Mapping[str, Any], product: str) -> tuple[int, ...]:
    windows = header.get("windows", [])
    if not isinstance(windows, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in windows
    ):
        raise SpecError(f"{product}: 'windows' must be a list of month counts")
    return tuple(windows)


def _items(doc: Mapping[str, Any]) -> dict[str, ItemSpec]:
    items: dict[str, ItemSpec] = {}
    for table in doc.get("items", []):
        item_id = _require(table, "id", str, "item")
        where = f"item {item_id!r}"
        if item_id in items:
            raise SpecError(f"{where} is declared twice")
        unit = _require(table, "unit", str, where)
        if unit not in Unit.__members__.values():
            raise SpecError(f"{where}: unit {unit!r} is not one of {[u.value for u in Unit]}")
        items[item_id] = ItemSpec(
            id=item_id,
            name_zh=_require(table, "name_zh", str, where),
            name_en=_require(table, "name_en", str, where),
            unit=Unit(unit),
            definition=_require(table, "definition", str, where),
            formula=_require(table, "formula", str, where),
            null_when=_require(table, "null_when", str, where),
        )
    return items


def _segments(doc: Mapping[str, Any], items: Mapping[str, ItemSpec]) -> dict[str, SegmentSpec]:
    segments: dict[str, SegmentSpec] = {}
    for table in doc.get("segments", []):
        seg_id = _require(table, "id", str, "segment")
        where = f"segment {seg_id!r}"
        if seg_id in segments:
            raise SpecError(f"{where} is declared twice")
        ids = _require(table, "items", list, where)
        unknown = [i for i in ids if i not in items]
        if unknown:
            raise SpecError(f"{where}: unknown items {unknown}")
        segments[seg_id] = SegmentSpec(
            seg_id,
            _require(table, "name_zh", str, where),
            _require(table, "name_en", str, where),
            tuple(items[i] for i in ids),
        )
    return segments


def parse_products(doc: Mapping[str, Any]) -> dict[str, ProductSpec]:
    """Validate a parsed specs document and build the product specs."""
    version = _require(doc, "version", int, "specs")
    parameters = doc.get("parameters", {})
    if not all(isinstance(v, int | float) for v in parameters.values()):
        raise SpecError("specs: every parameter must be a number")
    items = _items(doc)
    segments = _segments(doc, items)
    result: dict[str, ProductSpec] = {}
    used_segments: set[str] = set()
    used_items: set[str] = set()
    for product in PRODUCTS:
        header = doc.get("products", {}).get(product)
        if not isinstance(header, dict):
            raise SpecError(f"product {product!r} has no [products.{product}] table")
        seg_ids = _require(header, "segments", list, product)
        missing = [s for s in seg_ids if s not in segments]
        if missing:
            raise SpecError(f"product {product!r}: unknown segments {missing}")
        spec = ProductSpec(
            product,
            version,
            _require(header, "name_zh", str, product),
            _require(header, "name_en", str, product),
            tuple(segments[s] for s in seg_ids),
            dict(parameters),
            _windows(header, product),
        )
        ids = [item.id for item in spec.items]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise SpecError(f"product {product!r} has items in two segments: {twice}")
        want = (
            _require(header, "expected_segments", int, product),
            _require(header, "expected_items", int, product),
        )
        if (len(spec.segments), len(ids)) != want:
            raise SpecError(
                f"product {product!r} must have {want[0]} segments and {want[1]} items, "
                f"has {len(spec.segments)} and {len(ids)}"
            )
        pinned = set(PINNED_ITEMS) - set(ids)
        if pinned:
            raise SpecError(f"product {product!r} lacks pinned items {sorted(pinned)}")
        used_segments.update(seg_ids)
        used_items.update(ids)
        result[product] = spec
    if set(segments) - used_segments:
        raise SpecError(f"segments in no product: {sorted(set(segments) - used_segments)}")
    if set(items) - used_items:
        raise SpecError(f"items in no product: {sorted(set(items) - used_items)}")
    return result


@cache
def load_products(path: Path = SPECS_DIR / "products.toml") -> dict[str, ProductSpec]:
    """The validated product specs (read once per process)."""
    with path.open("rb") as handle:
        return parse_products(tomllib.load(handle))
