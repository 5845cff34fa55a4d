"""Rendered products, kept until the views they were rendered from change.

Rendering a product decodes every published month of the enterprise and runs ~100 item
kernels: about a millisecond, and the whole enterprise hash (~20 KB) crosses from Redis.
A lender watching a firm after the loan pulls the same product again and again while its
views stand still, so the API keeps the rendered items keyed by (product, enterprise,
period) with the views' token (state/views.py), which changes with every write of the
enterprise's views: a pull reads the token, and only on a change the hash. A stale product
is never served. Fields that depend on the moment of the pull (``as_of``, ``partial``) are
not cached.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

__all__ = ["RenderCache"]


class RenderCache:
    """A bounded LRU of rendered product parts; ``capacity`` 0 turns it off."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str, str], tuple[bytes, dict[str, Any]]] = (
            OrderedDict()
        )

    def get(self, key: tuple[str, str, str], version: bytes) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: tuple[str, str, str], version: bytes, parts: dict[str, Any]) -> None:
        if self._capacity <= 0:
            return
        self._entries[key] = (version, parts)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
