"""Comparing products: integers exactly, ratios within 1e-9 relative (the issue's rule)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        if expected is None or actual is None:
            return False
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12)
    return type(expected) is type(actual) and expected == actual


def differences(
    expected: Mapping[str, Mapping[str, Mapping[str, Any]]],
    actual: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
) -> list[str]:
    """Every (enterprise, period, item) whose values differ, as readable lines."""
    lines = []
    for enterprise, periods in expected.items():
        for label, items in periods.items():
            served = actual.get(enterprise, {}).get(label)
            if served is None:
                lines.append(f"{enterprise} {label}: nothing served")
                continue
            for item_id, want in items.items():
                got = served.get(item_id, "<missing>")
                if not same(want, got):
                    lines.append(f"{enterprise} {label} {item_id}: expected {want!r}, got {got!r}")
    return lines
