"""Redis announces changed views to the API's cache (state/tracking.py), against real Redis.

The cache is only as exact as these announcements: every write of a watched key must
drop what was kept, a barrier must order announcements after the reads before it, and a
listener that loses Redis must say so until it has subscribed again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from engine.access.model import Authorization
from engine.api.access_view import AccessView
from engine.api.product_cache import ProductCache
from engine.runtime.embedded import start_redis
from state.access import AccessKeys, encode_entity
from state.tracking import InvalidationListener
from state.views import ViewStore

pytestmark = pytest.mark.integration

E = "91350100M000100Y43"


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def delaying_proxy(target_port: int, delay: float) -> tuple[asyncio.Server, int]:
    """A TCP proxy to local Redis that delivers Redis's bytes ``delay`` seconds late: the
    announcements then come well after the replies other connections get."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lag: float) -> None:
        try:
            while data := await reader.read(65536):
                if lag:
                    await asyncio.sleep(lag)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(
            pipe(reader, upstream_writer, 0.0), pipe(upstream_reader, writer, delay)
        )

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def with_listener(
    url: str,
    body: Callable[[ProductCache, InvalidationListener, ViewStore], Awaitable[None]],
    listener_url: str | None = None,
) -> None:
    prefix = f"cfann-{secrets.token_hex(3)}"
    client = Redis.from_url(url)
    views = ViewStore(client, prefix)
    cache = ProductCache(100, prefix)
    listener = InvalidationListener(
        listener_url or url, [views.key_prefix], cache.changed, cache.set_live
    )
    await listener.start()
    try:
        assert await listener.wait_live(5.0)
        await body(cache, listener, views)
    finally:
        await listener.stop()
        await views.delete_all()
        await client.aclose()


async def keep(cache: ProductCache, key: tuple[str, str, str]) -> None:
    async def read() -> bytes:
        return b"{}"

    await cache.fill_product(key, read)
    assert cache.product(key) == b"{}"


def test_every_write_of_an_enterprises_views_drops_its_cached_products(redis_url: str) -> None:
    async def body(cache: ProductCache, listener: InvalidationListener, views: ViewStore) -> None:
        key = ("monthly", E, "2026-03")
        for write in (
            lambda: views.publish(0, {E: {"m:2026-03": b"{}"}}, None),
            lambda: views.drop_months({E: ["2026-03"]}),
        ):
            await keep(cache, key)
            await write()
            assert await eventually(lambda: cache.product(key) is None, 2.0)
        other = ("monthly", "91000000000000000X", "2026-03")
        await keep(cache, other)
        await views.publish(0, {E: {"m:2026-04": b"{}"}}, {"routed_offset": 1})
        assert await listener.barrier()
        assert cache.product(other) == b"{}"  # another enterprise's write leaves it be
        assert cache.progress(0) == (False, None, False)

    asyncio.run(with_listener(redis_url, body))


def test_after_a_barrier_every_write_a_read_saw_has_been_announced(redis_url: str) -> None:
    """What the API relies on to serve a new progress with cached products; the listener's
    connection is slowed down, so that without the barrier announcements would come late."""

    async def body(cache: ProductCache, listener: InvalidationListener, views: ViewStore) -> None:
        key = ("monthly", E, "2026-03")
        for k in range(20):
            await keep(cache, key)
            await views.publish(0, {E: {"m:2026-03": b"%d" % k}}, {"k": k}, create=True)
            assert await views.progress_raw(0) is not None  # a read that saw the write
            assert await listener.barrier()
            assert cache.product(key) is None, f"round {k}: not announced by the barrier"

    async def slowed() -> None:
        server, port = await delaying_proxy(_port_of(redis_url), 0.05)
        try:
            await with_listener(redis_url, body, f"redis://127.0.0.1:{port}/0")
        finally:
            server.close()

    asyncio.run(slowed())


def test_a_listener_that_loses_redis_says_so_and_comes_back(tmp_path: Path) -> None:
    url, child = start_redis(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    restarted = []

    async def body(cache: ProductCache, listener: InvalidationListener, views: ViewStore) -> None:
        key = ("monthly", E, "2026-03")
        await keep(cache, key)
        child.kill()
        assert await eventually(lambda: not listener.live, 10.0)
        assert not cache.live and cache.product(key) is None
        assert not await listener.barrier()
        restarted.append(start_redis(tmp_path, port=port)[1])
        assert await eventually(lambda: listener.live, 10.0)
        assert cache.live
        await keep(cache, key)
        await views.publish(0, {E: {"m:2026-03": b"{}"}}, None)
        assert await eventually(lambda: cache.product(key) is None, 2.0)

    try:
        asyncio.run(with_listener(url, body))
    finally:
        for extra in restarted:
            extra.kill()
        child.kill()


def test_a_change_of_an_access_entity_drops_what_another_api_process_kept(
    redis_url: str,
) -> None:
    """How a revocation made through one API process reaches the others: the process that
    made it reads it back at once (engine/api/access_log.py), every other one drops its kept
    copy when Redis announces the key."""
    prefix = f"cfacc-{secrets.token_hex(3)}"
    keys = AccessKeys(prefix)
    active = Authorization(
        id="a" * 32,
        enterprise_id=E,
        institution="BANKA001",
        products=("monthly",),
        purpose="credit_application",
        valid_until_us=2**62,
        status="active",
        requested_by="institution",
        created_at_us=0,
        history=(),
    )

    async def body() -> None:
        client = Redis.from_url(redis_url)
        view = AccessView(client, keys)
        listener = InvalidationListener(redis_url, [keys.prefix], view.changed, view.set_live)
        await listener.start()
        try:
            assert await listener.wait_live(5.0)
            key = keys.entity("authorization", active.id)
            await client.set(key, encode_entity(active))

            async def status() -> str | None:
                found = await view.get("authorization", active.id, Authorization)
                return None if found is None else found.status

            assert await status() == "active"  # kept: served without Redis from now on
            # Another process revokes it: announced, dropped, read again.
            await client.set(key, encode_entity(msgspec.structs.replace(active, status="revoked")))
            assert await listener.barrier()
            assert await status() == "revoked"
        finally:
            await listener.stop()
            await client.delete(keys.entity("authorization", active.id))
            await client.aclose()

    asyncio.run(body())
