"""creditflow on a Redis Cluster of three primaries (and a replica each), started locally
from Debian's redis-server: the stores, the API cache's invalidations on every primary,
and a failover of one primary while a lender pulls (issue 17).

The stores are checked key by key on every primary; the whole stack (broker, worker, API)
then runs on the cluster and serves every product exactly as the reference computes it,
and keeps doing so through a ``CLUSTER FAILOVER``. A primary killed outright, with ingest
running, is tests/faults/test_redis_cluster_primary_killed.py (make faults).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from agents.access import AccessLogStage
from agents.sending import Sender
from engine.access.model import Authorization
from engine.api.product_cache import NotFound, ProductCache
from engine.metrics import WorkerMetrics
from engine.runtime.embedded import free_port
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.runtime.status import collect_status
from state.access import AccessStore, StepWrites
from state.queries import QueryIndex
from state.redis_client import connect
from state.signal_feeds import SignalFeeds
from state.tracking import InvalidationListener
from state.views import ViewStore
from tests import reference
from tests.cluster_checks import by_primary, cache_live, invalidated_on_every_primary
from tests.factories import enterprise_ids
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    assert_products,
    generated_log,
    get,
    module_settings,
    publish_by_bank,
    reader,
    wait_until,
)
from tests.pulls import Puller
from tests.redis_cluster import LocalCluster

pytestmark = pytest.mark.integration

# A pull while a primary fails over either reads it (a manual failover loses no write and
# pauses writes for milliseconds) or gets 503 store_unavailable at once.
_MAX_PULL_SECONDS = 4.0


async def _eventually(check: Any, timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_every_store_reads_and_writes_across_the_primaries(redis_cluster: LocalCluster) -> None:
    """Views, access state, signal feeds and the query index, with keys on every primary:
    multi-key commands, transactions, scripts and scans each stay within their slot."""
    prefix = f"cfcl-stores-{secrets.token_hex(3)}"
    enterprises = enterprise_ids(12, seed=5)

    async def body() -> None:
        client = connect(redis_cluster.url, cluster=True)
        views = ViewStore(client, prefix)
        try:
            on = by_primary(redis_cluster, enterprises)
            assert len(on) == 3, "the enterprises must cover every primary"
            months = {e: {b"m:2026-03": b'{"e":"%s"}' % e.encode()} for e in enterprises}
            assert not await views.publish(0, months, {"routed_offset": 1})  # no progress yet
            assert await views.publish(0, {}, {"routed_offset": 1}, create=True) is False
            assert await views.publish(0, months, {"routed_offset": 2})
            for e in enterprises:
                progress, fields = await views.read(e, 0)
                assert progress == b'{"routed_offset":2}' and fields == months[e]
            await views.drop_months({e: ["2026-03"] for e in enterprises})
            assert await views.fields(enterprises[0]) == {}

            access = AccessStore(client, prefix)
            auth = Authorization(
                id="b" * 32,
                enterprise_id=enterprises[0],
                institution="BANKA001",
                products=("monthly",),
                purpose="credit_application",
                valid_until_us=2**62,
                status="active",
                requested_by="institution",
                created_at_us=0,
                history=(),
            )
            step = StepWrites({("authorization", auth.id): auth}, {"c1": b"{}"}, 7)
            assert await access.commit(step, 0) is None  # one script under {a}
            assert await access.applied() == 7
            assert await access.load([("authorization", auth.id)]) == {
                ("authorization", auth.id): auth
            }
            assert await access.authorizations_of(enterprises[:2]) == {
                enterprises[0]: [auth],
                enterprises[1]: [],
            }

            feeds = SignalFeeds(client, prefix, 1)
            institutions = [f"INST{n:04d}" for n in range(12)]
            assert len(by_primary(redis_cluster, institutions)) == 3
            deliveries = [(i, "s1", "raised", b'{"i":1}', ("a1",)) for i in institutions]
            now_ms = int(time.time() * 1000)
            assert await feeds.add(deliveries, {0: 3}, now_ms) == len(institutions)
            assert await feeds.add(deliveries, {0: 3}, now_ms) == 0  # each transition once
            assert [len(await feeds.read(i, None, 10)) for i in institutions] == [1] * 12
            await feeds.track_open(
                [(e, "r", "x", "raised", b'{"id":"x"}') for e in enterprises]
                + [(enterprises[0], "r", "x", "cleared", b'{"id":"x"}')]
            )
            assert await feeds.open_episodes(enterprises[0]) == []
            assert await feeds.open_episodes(enterprises[1]) == [b'{"id":"x"}']

            queries = QueryIndex(client, prefix, 10**15)
            assert await queries.sweep(time.time_ns() // 1000) == 0  # scans every primary
        finally:
            deleted = await views.delete_all()
            async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                deleted += await client.delete(key)
            assert deleted > 0
            await client.aclose()

    asyncio.run(body())


def test_a_progress_waits_until_a_replica_has_the_views_it_covers(
    redis_cluster: LocalCluster,
) -> None:
    """A primary that dies takes along the writes its replica had not received: a progress
    written only once a replica has the views it covers never claims views a failover lost.
    With the replica stopped the write waits (100 ms at most) and goes on."""
    prefix = f"cfcl-wait-{secrets.token_hex(3)}"
    enterprise = enterprise_ids(1, seed=8)[0]
    replica = redis_cluster.replica_of(next(iter(by_primary(redis_cluster, [enterprise]))))

    async def body() -> None:
        client = connect(redis_cluster.url, cluster=True)
        views = ViewStore(client, prefix)

        async def publish(offset: int) -> float:
            started = time.monotonic()
            month = {b"m:2026-03": b"%d" % offset}
            await views.publish(0, {enterprise: month}, {"routed_offset": offset}, create=True)
            return time.monotonic() - started

        try:
            await publish(1)
            assert await publish(2) < 0.05
            redis_cluster.nodes[replica].process.send_signal(signal.SIGSTOP)
            try:
                waited = await publish(3)
            finally:
                redis_cluster.nodes[replica].process.send_signal(signal.SIGCONT)
            assert waited >= 0.1, "the progress did not wait for the replica"
            assert await views.progress_raw(0) == b'{"routed_offset":3}'
        finally:
            await views.delete_all()
            await client.aclose()

    asyncio.run(body())
    redis_cluster.wait_ok()


def test_the_listener_hears_every_primary_and_moves_with_a_failover(
    redis_cluster: LocalCluster,
) -> None:
    prefix = f"cfcl-listen-{secrets.token_hex(3)}"
    enterprises = enterprise_ids(12, seed=6)
    key = ("monthly", "", "2026-03")

    async def body() -> None:
        client = connect(redis_cluster.url, cluster=True)
        views = ViewStore(client, prefix)
        cache = ProductCache(100, prefix)
        lives: list[bool] = []

        def on_live(live: bool) -> None:
            lives.append(live)
            cache.set_live(live)

        listener = InvalidationListener(
            redis_cluster.url, [views.key_prefix], cache.changed, on_live, cluster=True
        )
        await listener.start()
        try:
            assert await listener.wait_live(5.0)
            assert sorted(port for _, port in listener.primaries) == redis_cluster.primaries()
            on = by_primary(redis_cluster, enterprises)
            assert len(on) == 3

            async def dropped_by_a_write(enterprise: str) -> bool:
                product = (key[0], enterprise, key[2])
                await cache.fill_product(product, _empty)
                assert cache.product(product) is not None
                await views.publish(0, {enterprise: {"m:2026-03": b"{}"}}, None)
                return await _eventually(lambda: cache.product(product) is None, 2.0)

            for primary, enterprise in sorted(on.items()):
                assert await dropped_by_a_write(enterprise), f"no announcement from {primary}"
            # The barrier: a read of one node, then every announcement of the others.
            for enterprise in on.values():
                product = (key[0], enterprise, key[2])
                await cache.fill_product(product, _empty)
                await views.publish(0, {enterprise: {"m:2026-03": b"1"}}, {"k": 1}, create=True)
                assert await views.progress_raw(0) is not None
                assert await listener.barrier()
                assert cache.product(product) is None

            failed_over, enterprise = next(iter(sorted(on.items())))
            await cache.fill_product((key[0], enterprise, key[2]), _empty)
            new_primary = await asyncio.to_thread(redis_cluster.failover, failed_over)
            # The listener left the demoted primary: not live meanwhile (the cache emptied,
            # an announcement may have been missed), then live on the new one.
            assert await _eventually(
                lambda: ("127.0.0.1", new_primary) in listener.primaries, 10.0
            ), f"still listening to {listener.primaries}"
            assert lives[-2:] == [False, True] and cache.live
            assert cache.product((key[0], enterprise, key[2])) is None
            assert await dropped_by_a_write(enterprise), "no announcement from the new primary"
        finally:
            await listener.stop()
            await views.delete_all()
            await client.aclose()

    asyncio.run(body())


def test_access_state_that_a_failover_set_back_is_applied_again(
    redis_cluster: LocalCluster,
) -> None:
    """A primary that dies before its replica has its latest writes takes them along: the
    access state (one slot) is then as a whole at an older offset, and the access stage
    applies the log again from there, so a revocation it had applied is not lost."""
    prefix = f"cfcl-back-{secrets.token_hex(3)}"

    async def body() -> None:
        client = connect(redis_cluster.url, cluster=True)
        store = AccessStore(client, prefix)
        seeks: list[int] = []

        async def seek(offset: int) -> None:
            seeks.append(offset)

        stage = AccessLogStage(store, cast(Sender, None), seek, WorkerMetrics(CollectorRegistry()))
        try:
            await store.commit(StepWrites(next_offset=10), 0)
            await stage.assigned()
            assert (stage.next_offset, seeks) == (10, [10])
            assert not await stage.check()
            await store.commit(StepWrites(next_offset=7), 10)  # as the promoted replica holds it
            assert await stage.check()
            assert (stage.next_offset, seeks) == (7, [10, 7])
            assert not await stage.check()
        finally:
            async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                await client.delete(key)
            await client.aclose()

    asyncio.run(body())


async def _empty() -> NotFound:
    return NotFound("no data")


# -- the whole stack ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_stack(redis_cluster: LocalCluster) -> Iterator[EmbeddedStack]:
    settings = module_settings(
        "cl", redis_url=redis_cluster.url, redis_cluster=True, api_metrics_port=free_port()
    )
    with embedded_stack(settings, banks=BANKS) as running:
        yield running


def test_products_exact_on_a_cluster_through_a_failover_during_pulls(
    cluster_stack: EmbeddedStack, redis_cluster: LocalCluster
) -> None:
    stack = cluster_stack
    log = generated_log(61, 15, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))
    publish_by_bank(stack, log, max_batch=100)
    assert_products(stack, reference.products(log), timeout=90)
    assert cache_live(stack), "the API must listen to every primary"
    status = collect_status(stack.settings)  # creditflow status, on the cluster
    assert status.redis_error is None, status.redis_error
    assert [p.source for p in status.stage("ledger")] == ["state"] * PARTITIONS
    assert get(f"{stack.api_url}/readyz")[0] == 200
    lender = reader(stack)
    queries = f"{stack.api_url}/v1/institutions/{lender.code}/queries"
    # The query index, per institution and per enterprise, on keys of several nodes.
    wait_until(lambda: bool(get(queries, lender.headers)[1]["queries"]), 10, "query records")
    invalidated_on_every_primary(stack, redis_cluster, log, 100)
    expected = reference.products(log)

    failed_over = redis_cluster.primaries()[0]
    with Puller(stack, expected, _MAX_PULL_SECONDS) as puller:
        puller.wait(lambda: puller.count(200) >= 50, 30, "pulls served before the failover")
        started = time.monotonic()
        new_primary = redis_cluster.failover(failed_over)
        failover_seconds = time.monotonic() - started
        puller.wait(lambda: cache_live(stack), 15, "the API listening again")
        back_at = time.monotonic()
        puller.wait(lambda: puller.all_served_since(back_at), 20, "every product served after it")
    assert puller.problems == [], puller.problems[:10]
    assert puller.slowest <= _MAX_PULL_SECONDS
    assert_products(stack, expected, timeout=10)
    assert new_primary in redis_cluster.primaries()
    invalidated_on_every_primary(stack, redis_cluster, log, 200)
    print(
        f"failover of {failed_over} to {new_primary} in {failover_seconds:.2f} s; answers "
        f"{sorted(puller.statuses.items())}, 503 by code {puller.unavailable}, slowest pull "
        f"{puller.slowest:.2f} s"
    )
