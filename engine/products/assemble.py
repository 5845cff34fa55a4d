"""Assemble a product response from the specs, the kernels and an enterprise's history."""

from __future__ import annotations

from typing import Any

from engine.errors import NotFoundError, SpecError
from engine.periods import Period
from engine.products.history import History
from engine.products.kernels import KERNELS, Context
from engine.products.specs import ProductSpec

__all__ = ["assemble", "check_kernels", "render", "render_items"]


def check_kernels(products: dict[str, ProductSpec]) -> None:
    """Every declared item has a kernel and every kernel a declared item."""
    declared = {item.id for spec in products.values() for item in spec.items}
    if declared - KERNELS.keys():
        raise SpecError(f"items without a kernel: {sorted(declared - KERNELS.keys())}")
    if KERNELS.keys() - declared:
        raise SpecError(f"kernels without an item: {sorted(KERNELS.keys() - declared)}")


def render(
    spec: ProductSpec,
    enterprise_id: str,
    period: Period,
    history: History,
    as_of: dict[str, Any],
    now_us: int,
) -> dict[str, Any]:
    """The response body of one product; raises NotFoundError when there is no data."""
    return assemble(spec, enterprise_id, period, render_items(spec, period, history), as_of, now_us)


def render_items(spec: ProductSpec, period: Period, history: History) -> dict[str, Any]:
    """The part of a product that depends only on the history (what the API caches)."""
    if not history.has_data_until(period.last_month):
        raise NotFoundError(f"no transaction of this enterprise at or before {period.label}")
    ctx = Context(history, period, spec.parameters)
    versions = sorted({v for m in period.months for v in history.month(m).registry})
    return {
        "registry_versions": versions,
        "segments": [
            {
                "id": segment.id,
                "name": segment.name_zh,
                "name_en": segment.name_en,
                "items": {item.id: KERNELS[item.id](ctx) for item in segment.items},
            }
            for segment in spec.segments
        ],
    }


def assemble(
    spec: ProductSpec,
    enterprise_id: str,
    period: Period,
    items: dict[str, Any],
    as_of: dict[str, Any],
    now_us: int,
) -> dict[str, Any]:
    """A response body from rendered items and what depends on the moment of the pull."""
    return {
        "enterprise_id": enterprise_id,
        "product": spec.id,
        "spec_version": spec.version,
        "period": period.label,
        "partial": period.is_partial(now_us),
        "as_of": as_of,
        **items,
    }
