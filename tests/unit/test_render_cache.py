"""The API's render cache: a hit needs the same product, period and views token."""

from __future__ import annotations

from engine.render_cache import RenderCache

KEY = ("monthly", "91350100M000100Y43", "2026-03")


def test_a_hit_needs_the_same_key_and_the_same_digest() -> None:
    cache = RenderCache(10)
    cache.put(KEY, b"d1", {"segments": []})
    assert cache.get(KEY, b"d1") == {"segments": []}
    assert cache.get(KEY, b"d2") is None
    assert cache.get(("quarterly", KEY[1], "2026Q1"), b"d1") is None


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = RenderCache(2)
    a, b, c = (("monthly", "E", label) for label in ("2026-01", "2026-02", "2026-03"))
    cache.put(a, b"x", {"n": 1})
    cache.put(b, b"x", {"n": 2})
    assert cache.get(a, b"x") is not None  # a is now the most recent
    cache.put(c, b"x", {"n": 3})
    assert len(cache) == 2
    assert cache.get(b, b"x") is None and cache.get(a, b"x") == {"n": 1}


def test_capacity_zero_keeps_nothing() -> None:
    cache = RenderCache(0)
    cache.put(KEY, b"d", {"n": 1})
    assert len(cache) == 0 and cache.get(KEY, b"d") is None
