"""The quarterly product's own items (not the 95 it shares with the monthly one)."""

from __future__ import annotations

__all__ = ["ITEMS"]

ITEMS: dict[str, str] = {}
