"""Assemble a product response from the specs, the kernels and an enterprise's history.

A response has two parts. What depends only on the enterprise's history and its disputes
(``render_items``: every segment but the subject's, the marks of disputed items, the disputes
themselves) is rendered once and cached by the API. The subject segments (header, query
records, disputes, statements) depend on the pull and are computed at every pull
(``subject_segments``); the header opens the report and the others close it, so the API
splices them in around the cached segments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.errors import NotFoundError, SpecError
from engine.periods import Period, format_month
from engine.products.history import History
from engine.products.kernels import KERNELS, Context, elapsed_days
from engine.products.specs import ProductSpec
from engine.products.subject import (
    OPENING_SEGMENTS,
    SUBJECT_SEGMENTS,
    DisputeFact,
    Subject,
    dispute_marks,
)

__all__ = [
    "assemble",
    "check_kernels",
    "check_subject_segments_placed",
    "clock_day",
    "render",
    "render_items",
    "subject_segments",
]


def check_kernels(products: dict[str, ProductSpec]) -> None:
    """Every declared item has a kernel and every kernel a declared item."""
    declared = {item.id for spec in products.values() for item in spec.items}
    if declared - KERNELS.keys():
        raise SpecError(f"items without a kernel: {sorted(declared - KERNELS.keys())}")
    if KERNELS.keys() - declared:
        raise SpecError(f"kernels without an item: {sorted(KERNELS.keys() - declared)}")


def check_subject_segments_placed(products: dict[str, ProductSpec]) -> None:
    """The opening subject segments open a product and the others close it (the API splices
    them in before and after the cached part)."""
    for spec in products.values():
        ids = [segment.id for segment in spec.segments]
        opening = [i for i in ids if i in OPENING_SEGMENTS]
        closing = [i for i in ids if i in SUBJECT_SEGMENTS and i not in OPENING_SEGMENTS]
        if ids[: len(opening)] != opening:
            raise SpecError(f"{spec.id}: the segments {opening} must come first")
        if closing and ids[-len(closing) :] != closing:
            raise SpecError(f"{spec.id}: the segments {closing} must come last")


def clock_day(period: Period, now_us: int) -> int | None:
    """What of the pull's instant the items of ``period`` depend on: the number of its days
    that have begun while it is not over (China time), None once it is. Renderings with the
    same clock day are the same."""
    if not period.is_partial(now_us):
        return None
    return elapsed_days(period, now_us)


def render(
    spec: ProductSpec,
    enterprise_id: str,
    period: Period,
    history: History,
    as_of: dict[str, Any],
    now_us: int,
    subject: Subject | None = None,
) -> dict[str, Any]:
    """The response body of one product; raises NotFoundError when there is no data."""
    subject = subject or Subject(now_us=now_us)
    items = render_items(spec, period, history, now_us, subject.disputes)
    return assemble(spec, enterprise_id, period, items, subject, as_of, now_us)


def render_items(
    spec: ProductSpec,
    period: Period,
    history: History,
    now_us: int,
    disputes: Iterable[DisputeFact] = (),
) -> dict[str, Any]:
    """The part of a product that depends only on the history, the disputes and, while the
    period is not over, the pull's day (what the API caches: see :func:`clock_day`)."""
    if not history.has_data_until(period.last_month):
        raise NotFoundError(f"no transaction of this enterprise at or before {period.label}")
    kept_from = history.kept_from
    if kept_from is not None and period.first_month < kept_from:
        # a quarter is its three months: none is served from the part of it still kept
        raise NotFoundError(
            f"{period.label} begins before the kept history (from {format_month(kept_from)})"
        )
    ctx = Context(history, period, spec.parameters, as_of_us=now_us)
    versions = sorted({v for m in period.months for v in history.month(m).registry})
    marks, shown = dispute_marks(disputes, spec.id, period.label)
    segments = []
    for segment in spec.segments:
        if segment.id in SUBJECT_SEGMENTS:
            continue
        rendered: dict[str, Any] = {
            "id": segment.id,
            "name": segment.name_zh,
            "name_en": segment.name_en,
            "items": {item.id: KERNELS[item.id](ctx) for item in segment.items},
        }
        disputed = {item.id: marks[item.id] for item in segment.items if item.id in marks}
        if disputed:
            rendered["disputed"] = disputed
        segments.append(rendered)
    return {
        "registry_versions": versions,
        "coverage": ctx.coverage(spec.windows),
        "segments": segments,
        "disputes": shown,
    }


def subject_segments(spec: ProductSpec, period: Period, subject: Subject) -> list[dict[str, Any]]:
    """The subject segments of ``spec`` (none in the monthly summary), as of the pull, in the
    spec's order: the opening ones (the header) first."""
    ctx = Context(History({}), period, spec.parameters, subject)
    return [
        {
            "id": segment.id,
            "name": segment.name_zh,
            "name_en": segment.name_en,
            "items": {item.id: KERNELS[item.id](ctx) for item in segment.items},
        }
        for segment in spec.segments
        if segment.id in SUBJECT_SEGMENTS
    ]


def assemble(
    spec: ProductSpec,
    enterprise_id: str,
    period: Period,
    items: dict[str, Any],
    subject: Subject,
    as_of: dict[str, Any],
    now_us: int,
) -> dict[str, Any]:
    """A response body from rendered items and what depends on the moment of the pull."""
    at_pull = subject_segments(spec, period, subject)
    opening = [s for s in at_pull if s["id"] in OPENING_SEGMENTS]
    closing = [s for s in at_pull if s["id"] not in OPENING_SEGMENTS]
    return {
        "enterprise_id": enterprise_id,
        "product": spec.id,
        "spec_version": spec.version,
        "period": period.label,
        "partial": period.is_partial(now_us),
        "as_of": as_of,
        "registry_versions": items["registry_versions"],
        "coverage": items["coverage"],
        "segments": [*opening, *items["segments"], *closing],
        "disputes": items["disputes"],
    }
