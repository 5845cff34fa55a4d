"""Views never go back to an older state (state/views.py), against real Redis.

A worker cut off from the group keeps the partitions another worker takes meanwhile, and
when it reaches Redis again it may publish what it had applied (tests/faults/
test_worker_partitioned.py saw a partition's views go from routed offset 381 back to 65).
Every write says the offset of the state it comes from, and Redis leaves out what is older,
key by key (on a Redis Cluster as well).
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agents.ledger import LedgerStage
from engine import codec
from engine.metrics import WorkerMetrics
from engine.periods import format_month
from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from state.memory import MemoryStore
from state.redis_client import RedisClient
from state.views import NewerViewsError, ViewStore, month_field
from tests.factories import ENTERPRISE, enterprise_ids, event
from tests.stage_harness import RoutedMessage, routed, with_views

pytestmark = pytest.mark.integration

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")
OTHER = enterprise_ids(1, seed=7)[0]


@pytest.fixture(params=["redis", "cluster"])
def target(request: pytest.FixtureRequest, redis_url: str) -> tuple[str, bool]:
    """(URL, whether it names a Redis Cluster): one Redis, or a cluster of three primaries."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster").url, True
    return redis_url, False


async def _hash(client: RedisClient, views: ViewStore, enterprise_id: str) -> dict[bytes, bytes]:
    return await client.hgetall(views.enterprise_key(enterprise_id))  # type: ignore[no-any-return]


async def _progress(views: ViewStore) -> int:
    progress = await views.progress(0)
    assert progress is not None
    return int(progress["routed_offset"])


def test_a_write_from_an_older_state_leaves_newer_views_alone_key_by_key(
    target: tuple[str, bool],
) -> None:
    async def body(client: RedisClient, views: ViewStore) -> None:
        await views.publish(0, {ENTERPRISE: {"m:2026-03": b"5"}}, {"routed_offset": 5}, True, 5)
        # The newer owner wrote OTHER's views from offset 7, not yet its progress.
        await views.publish(0, {OTHER: {"m:2026-03": b"7"}}, None, offset=7)
        with pytest.raises(NewerViewsError) as raised:
            await views.publish(
                0,
                {ENTERPRISE: {"m:2026-03": b"6"}, OTHER: {"m:2026-03": b"6"}},
                {"routed_offset": 6},
                offset=6,
            )
        assert (raised.value.offset, raised.value.newer) == (6, 7)
        # What was not older went in: ENTERPRISE's views and the progress (from 5).
        assert await _hash(client, views, ENTERPRISE) == {b"m:2026-03": b"6", b"o": b"6"}
        assert await _hash(client, views, OTHER) == {b"m:2026-03": b"7", b"o": b"7"}
        assert await _progress(views) == 6
        # A progress from an older state is left alone too; the same offset again is written.
        await views.publish(0, {}, {"routed_offset": 9}, offset=9)
        with pytest.raises(NewerViewsError):
            await views.publish(0, {}, {"routed_offset": 8}, offset=8)
        assert await _progress(views) == 9
        assert await views.publish(0, {OTHER: {"m:2026-03": b"9"}}, {"routed_offset": 9}, offset=9)
        assert await _hash(client, views, OTHER) == {b"m:2026-03": b"9", b"o": b"9"}
        # Progress missing (Redis restarted empty) is still reported, and created on demand.
        await client.delete(views.partition_key(0))
        assert not await views.publish(0, {}, {"routed_offset": 3}, offset=3)
        assert await views.progress(0) is None
        assert not await views.publish(0, {}, {"routed_offset": 3}, create=True, offset=3)
        assert await _progress(views) == 3

    with_views(target[0], body, cluster=target[1])


def _log(count: int) -> list[RoutedMessage]:
    """One routed message of one row per offset: two enterprises' inflows in March 2026."""
    return routed(
        [
            event(
                txn_id=f"T{offset:04d}",
                enterprise_id=(ENTERPRISE, OTHER)[offset % 2],
                amount_fen=1_000 + offset,
                booked_at=f"2026-03-{1 + offset % 28:02d}T10:00:00+08:00",
            )
            for offset in range(count)
        ]
    )


def _stage(views: ViewStore) -> LedgerStage:
    """A ledger stage on a state of its own (a worker on its own machine) that commits and
    publishes every step."""
    return LedgerStage(
        open_store=lambda _: MemoryStore(),
        pseudonym=Pseudonymizer(b"test-key"),
        registry=lambda: _REGISTRY,
        views=views,
        sender=None,  # type: ignore[arg-type]  # no rejection to send
        metrics=WorkerMetrics(CollectorRegistry()),
    )


def _views_of(stage: LedgerStage) -> dict[str, dict[bytes, bytes]]:
    """The month views of the stage's state, as Redis holds them."""
    return {
        enterprise_id: {
            month_field(format_month(m)).encode(): codec.dumps(agg.view())
            for m, agg in months.items()
        }
        for enterprise_id, months in stage.ledger(0).enterprises()
    }


def test_a_worker_that_lost_its_partition_publishes_nothing_over_its_new_owner(
    redis_url: str,
) -> None:
    log = _log(40)

    async def served(client: RedisClient, views: ViewStore) -> dict[str, dict[bytes, bytes]]:
        return {
            e: {k: v for k, v in (await _hash(client, views, e)).items() if k != b"o"}
            for e in (ENTERPRISE, OTHER)
        }

    async def body(client: RedisClient, views: ViewStore) -> None:
        a, b = _stage(views), _stage(views)
        await a.open({0})
        await a.refresh_views({0})
        await a.process(log[:10])
        assert await _progress(views) == 10
        # A is cut off; B takes the partition, rebuilds it from the log and goes further.
        await b.open({0})
        await b.refresh_views({0})
        await b.process(log[:25])
        assert await _progress(views) == 25
        # A, back, still holds the partition until the group tells it otherwise: it applies
        # what it fetches and commits, then commits again as the partition is revoked.
        await a.process(log[10:18])
        await a.revoke({0})
        assert await _progress(views) == 25
        assert await served(client, views) == _views_of(b)
        # B goes on publishing.
        await b.process(log[25:])
        assert await _progress(views) == 40
        assert await served(client, views) == _views_of(b)

    with_views(redis_url, body)


def test_a_worker_behind_the_views_publishes_once_its_state_gets_there(redis_url: str) -> None:
    """The stale worker keeps the partition (it was the group's choice after all): once its
    state passes the views it found, it republishes all of it."""
    log = _log(30)

    async def body(client: RedisClient, views: ViewStore) -> None:
        a, b = _stage(views), _stage(views)
        for stage in (a, b):
            await stage.open({0})
            await stage.refresh_views({0})
        await b.process(log[:20])
        await a.process(log[:12])  # refused: B's views come from offset 20
        assert await _progress(views) == 20
        await b.revoke({0})
        await a.process(log[12:20])  # the same state as B's views: written again, or not
        await a.process(log[20:])
        assert await _progress(views) == 30
        assert {
            e: {k: v for k, v in (await _hash(client, views, e)).items() if k != b"o"}
            for e in (ENTERPRISE, OTHER)
        } == _views_of(a)

    with_views(redis_url, body)
