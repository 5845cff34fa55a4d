"""The API's product cache: kept until Redis announces a change, never kept when overtaken."""

from __future__ import annotations

import asyncio

import pytest

from engine.api.product_cache import NotFound, ProductCache

E = "91350100M000100Y43"
KEY = ("monthly", E, "2026-03")
ENT_KEY = f"cf:v1:ent:{{{E}}}".encode()


def live_cache(capacity: int = 10) -> ProductCache:
    cache = ProductCache(capacity, "cf")
    cache.set_live(True)
    return cache


async def value(result: bytes | NotFound) -> bytes | NotFound:
    return result


def test_a_fill_is_kept_until_its_enterprise_is_announced() -> None:
    cache = live_cache()
    assert asyncio.run(cache.fill_product(KEY, lambda: value(b"{}"))) == b"{}"
    assert cache.product(KEY) == b"{}"
    cache.changed([b"cf:v1:ent:{91000000000000000X}", b"cf:v1:part:3"])  # others
    assert cache.product(KEY) == b"{}"
    cache.changed([ENT_KEY])
    assert cache.product(KEY) is None and len(cache) == 0


def test_an_announcement_during_a_fill_keeps_it_from_being_kept() -> None:
    cache = live_cache()

    async def read_while_views_change() -> bytes:
        cache.changed([ENT_KEY])  # Redis changed the views while we were reading them
        return b"old"

    assert asyncio.run(cache.fill_product(KEY, read_while_views_change)) == b"old"
    assert cache.product(KEY) is None


def test_a_flush_or_a_lost_listener_drops_everything() -> None:
    cache = live_cache()
    asyncio.run(cache.fill_product(KEY, lambda: value(NotFound("no data"))))
    assert cache.product(KEY) == NotFound("no data")
    cache.changed(None)
    assert cache.product(KEY) is None and cache.progress(0) == (False, None, False)
    asyncio.run(cache.fill_product(KEY, lambda: value(b"{}")))
    cache.set_live(False)
    assert cache.product(KEY) is None
    asyncio.run(cache.fill_product(KEY, lambda: value(b"{}")))
    assert cache.product(KEY) is None  # nothing is kept while announcements do not flow


def test_concurrent_pulls_of_one_product_share_one_read() -> None:
    cache = live_cache()
    reads = 0

    async def slow_read() -> bytes:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return b"{}"

    async def pulls() -> list[bytes | NotFound]:
        return await asyncio.gather(*(cache.fill_product(KEY, slow_read) for _ in range(5)))

    assert asyncio.run(pulls()) == [b"{}"] * 5
    assert reads == 1


def test_a_pull_after_an_announcement_does_not_share_an_older_read() -> None:
    cache = live_cache()
    reads: list[bytes] = []

    async def read() -> bytes:
        reads.append(b"r")
        n = len(reads)
        await asyncio.sleep(0.01)
        return b"v%d" % n

    async def scenario() -> tuple[bytes | NotFound, bytes | NotFound]:
        first = asyncio.create_task(cache.fill_product(KEY, read))
        await asyncio.sleep(0.001)
        cache.changed([ENT_KEY])  # the first read may predate this change
        second = await cache.fill_product(KEY, read)
        return await first, second

    assert asyncio.run(scenario()) == (b"v1", b"v2")
    assert len(reads) == 2


def test_announced_progress_is_still_served_but_stale_until_read_again() -> None:
    cache = live_cache()
    assert cache.progress(3) == (False, None, False)
    asyncio.run(cache.fill_progress(3, lambda: value(b'{"p":1}')))  # type: ignore[arg-type]
    assert cache.progress(3) == (True, b'{"p":1}', False)
    cache.changed([b"cf:v1:part:3"])
    assert cache.progress(3) == (True, b'{"p":1}', True)  # a true "at least", to refresh

    async def overtaken() -> bytes:
        cache.changed([b"cf:v1:part:3"])  # announced again while being read
        return b'{"p":2}'

    asyncio.run(cache.fill_progress(3, overtaken))
    assert cache.progress(3) == (True, b'{"p":2}', True)
    asyncio.run(cache.fill_progress(3, lambda: value(b'{"p":3}')))  # type: ignore[arg-type]
    assert cache.progress(3) == (True, b'{"p":3}', False)


def test_a_stale_progress_is_read_once_in_the_background() -> None:
    cache = live_cache()
    reads = 0

    async def read() -> bytes:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return b'{"p":%d}' % reads

    async def scenario() -> None:
        await cache.fill_progress(0, read)
        cache.changed([b"cf:v1:part:0"])
        for _ in range(5):  # five pulls see the stale progress: one read between them
            assert cache.progress(0)[:2] == (True, b'{"p":1}')
            cache.refresh_progress(0, read)
        await asyncio.sleep(0.05)
        assert cache.progress(0) == (True, b'{"p":2}', False)

    asyncio.run(scenario())
    assert reads == 2


def test_the_least_recently_used_product_goes_first() -> None:
    cache = live_cache(capacity=2)
    a, b, c = (("monthly", E, label) for label in ("2026-01", "2026-02", "2026-03"))
    for key in (a, b):
        asyncio.run(cache.fill_product(key, lambda: value(b"{}")))
    assert cache.product(a) is not None  # a is now the most recent
    asyncio.run(cache.fill_product(c, lambda: value(b"{}")))
    assert len(cache) == 2 and cache.product(b) is None and cache.product(a) is not None


def test_capacity_zero_keeps_nothing() -> None:
    cache = live_cache(capacity=0)
    asyncio.run(cache.fill_product(KEY, lambda: value(b"{}")))
    assert len(cache) == 0


def test_a_failed_read_is_not_kept_and_reaches_the_caller() -> None:
    cache = live_cache()

    async def broken() -> bytes:
        raise OSError("redis went away")

    with pytest.raises(OSError):
        asyncio.run(cache.fill_product(KEY, broken))
    assert cache.product(KEY) is None
