"""The product specs: their shape, their validation, and what derives from them."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from engine.errors import SpecError
from engine.products.assemble import check_kernels, check_subject_segments_placed
from engine.products.docs import PRODUCTS_DOC, render_products_doc
from engine.products.kernels import KERNELS
from engine.products.specs import PINNED_ITEMS, SPECS_DIR, load_products, parse_products

DOC: dict[str, Any] = tomllib.loads((SPECS_DIR / "products.toml").read_text())


def test_the_products_have_the_official_shape() -> None:
    products = load_products()
    assert (len(products["monthly"].segments), len(products["monthly"].items)) == (11, 95)
    assert (len(products["quarterly"].segments), len(products["quarterly"].items)) == (18, 184)
    for spec in products.values():
        assert set(PINNED_ITEMS) <= {item.id for item in spec.items}


def test_every_monthly_item_is_also_a_quarterly_building_block() -> None:
    products = load_products()
    assert {i.id for i in products["monthly"].items} <= {i.id for i in products["quarterly"].items}


def test_every_item_has_exactly_one_kernel() -> None:
    check_kernels(load_products())
    assert len(KERNELS) == 184


def _broken(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["items"].append(dict(d["items"][0])), "declared twice"),
        (lambda d: d["items"][0].update(unit="percent"), "unit 'percent'"),
        (lambda d: d["items"][0].pop("null_when"), "null_when"),
        (lambda d: d["segments"][0]["items"].append("no_such_item"), "unknown items"),
        (lambda d: d["segments"][0]["items"].pop(), "must have 11 segments and 95 items"),
        (lambda d: d["products"]["monthly"]["segments"].append("trend"), "must have"),
        (
            lambda d: d["segments"][1]["items"].append(d["segments"][0]["items"][0]),
            "in two segments",
        ),
        (lambda d: d["items"].append({**d["items"][0], "id": "orphan"}), "in no product"),
    ],
)
def test_invalid_specs_are_refused_with_the_offending_id(change: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_products(_broken(change))


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (lambda s: [s[1], s[0], *s[2:]], "must come first"),  # the header second
        (lambda s: [*s[:-2], s[-1], s[-2]], None),  # the closing ones in another order: fine
        (lambda s: [*s[:-3], s[-2], s[-1], s[-3]], None),
        (lambda s: [*s[:2], s[-1], *s[2:-1]], "must come last"),  # statements mid-report
    ],
)
def test_the_segments_at_the_pull_open_and_close_the_report(order: Any, message: str) -> None:
    """The API splices the header in before the cached segments and the other subject
    segments after them: a spec that puts them elsewhere must not load into the API."""
    doc = copy.deepcopy(DOC)
    doc["products"]["quarterly"]["segments"] = order(doc["products"]["quarterly"]["segments"])
    products = parse_products(doc)
    if message is None:
        check_subject_segments_placed(products)
    else:
        with pytest.raises(SpecError, match=message):
            check_subject_segments_placed(products)
    check_subject_segments_placed(load_products())


def test_docs_are_current() -> None:
    assert PRODUCTS_DOC.read_text(encoding="utf-8") == render_products_doc(), (
        "docs/products.md is out of date: run `creditflow docs`"
    )
