"""Load and validate the product declarations in ``specs/products.toml``.

The file is the single source of the products: segments and items with their names, units,
definitions, formulas and null rules. Loading fails with a :class:`SpecError` that names the
offending id when the file is inconsistent.
"""

from __future__ import annotations

import tomllib
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

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"
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


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """One data item of a product."""

    id: str
    segment: str
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

    @property
    def items(self) -> tuple[ItemSpec, ...]:
        return tuple(item for segment in self.segments for item in segment.items)


def _require(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise SpecError(f"{where}: {key!r} must be a non-empty {kind.__name__}")
    return value


def _products_of(table: dict[str, Any], where: str, default: list[str] | None) -> list[str]:
    products = table.get("products", default)
    if not isinstance(products, list) or not products or any(p not in PRODUCTS for p in products):
        raise SpecError(f"{where}: 'products' must be a non-empty subset of {list(PRODUCTS)}")
    return products


def parse_products(doc: dict[str, Any]) -> dict[str, ProductSpec]:
    """Validate a parsed specs document and build the product specs."""
    version = _require(doc, "version", int, "specs")
    segments_by_id: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for table in doc.get("segments", []):
        seg_id = _require(table, "id", str, "segment")
        if seg_id in segments_by_id:
            raise SpecError(f"segment {seg_id!r} is declared twice")
        for key in ("name_zh", "name_en"):
            _require(table, key, str, f"segment {seg_id!r}")
        segments_by_id[seg_id] = (table, _products_of(table, f"segment {seg_id!r}", None))

    items_by_segment: dict[str, list[tuple[ItemSpec, list[str]]]] = {s: [] for s in segments_by_id}
    seen: set[str] = set()
    for table in doc.get("items", []):
        item_id = _require(table, "id", str, "item")
        where = f"item {item_id!r}"
        if item_id in seen:
            raise SpecError(f"{where} is declared twice")
        seen.add(item_id)
        segment = _require(table, "segment", str, where)
        if segment not in segments_by_id:
            raise SpecError(f"{where}: unknown segment {segment!r}")
        unit = _require(table, "unit", str, where)
        if unit not in Unit.__members__.values():
            raise SpecError(f"{where}: unit {unit!r} is not one of {[u.value for u in Unit]}")
        seg_products = segments_by_id[segment][1]
        products = _products_of(table, where, seg_products)
        if not set(products) <= set(seg_products):
            raise SpecError(f"{where}: products {products} are not all in its segment's")
        item = ItemSpec(
            id=item_id,
            segment=segment,
            name_zh=_require(table, "name_zh", str, where),
            name_en=_require(table, "name_en", str, where),
            unit=Unit(unit),
            definition=_require(table, "definition", str, where),
            formula=_require(table, "formula", str, where),
            null_when=_require(table, "null_when", str, where),
        )
        items_by_segment[segment].append((item, products))

    result: dict[str, ProductSpec] = {}
    for product in PRODUCTS:
        header = doc.get("products", {}).get(product)
        if not isinstance(header, dict):
            raise SpecError(f"product {product!r} has no [products.{product}] table")
        segments = []
        for seg_id, (table, seg_products) in segments_by_id.items():
            if product not in seg_products:
                continue
            items = tuple(i for i, products in items_by_segment[seg_id] if product in products)
            if not items:
                raise SpecError(f"segment {seg_id!r} has no item in product {product!r}")
            segments.append(SegmentSpec(seg_id, table["name_zh"], table["name_en"], items))
        spec = ProductSpec(
            product,
            version,
            _require(header, "name_zh", str, product),
            _require(header, "name_en", str, product),
            tuple(segments),
        )
        want_segments = _require(header, "segments", int, product)
        want_items = _require(header, "items", int, product)
        if len(spec.segments) != want_segments or len(spec.items) != want_items:
            raise SpecError(
                f"product {product!r} declares {want_segments} segments and {want_items} items "
                f"but has {len(spec.segments)} and {len(spec.items)}"
            )
        missing = set(PINNED_ITEMS) - {i.id for i in spec.items}
        if missing:
            raise SpecError(f"product {product!r} lacks pinned items {sorted(missing)}")
        result[product] = spec
    return result


@cache
def load_products(path: Path = SPECS_DIR / "products.toml") -> dict[str, ProductSpec]:
    """The validated product specs (read once per process)."""
    with path.open("rb") as handle:
        return parse_products(tomllib.load(handle))
