"""Checks of the stack on a Redis Cluster, shared by tests/integration/test_redis_cluster.py
and the fault scenario that kills a primary."""

from __future__ import annotations

from typing import Any

from redis.crc import key_slot

from engine.events.publisher import BankPublisher
from engine.runtime.observe import worker_samples
from engine.runtime.runner import EmbeddedStack
from tests import reference
from tests.factories import event
from tests.integration.conftest import BANKS, PARTITIONS, assert_products, pull
from tests.redis_cluster import LocalCluster

__all__ = ["by_primary", "cache_live", "invalidated_on_every_primary", "one_more_inflow"]


def by_primary(cluster: LocalCluster, tags: list[str]) -> dict[int, str]:
    """One of ``tags`` for every primary that holds its hash tag (an enterprise's views,
    an institution's feed): primary port -> tag."""
    found: dict[int, str] = {}
    for tag in tags:
        found.setdefault(cluster.primary_of_slot(key_slot(tag.encode())), tag)
    return found


def cache_live(stack: EmbeddedStack) -> bool:
    url = f"http://127.0.0.1:{stack.settings.api_metrics_port}"
    return next(iter(worker_samples(url)["creditflow_api_cache_live"].values())) == 1


def one_more_inflow(stack: EmbeddedStack, enterprise: str, serial: int) -> dict[str, Any]:
    """A new inflow of ``enterprise`` in March 2026, published (and delivered) at once."""
    extra = event(
        txn_id=f"CL-{serial}",
        bank=BANKS[0],
        enterprise_id=enterprise,
        account=f"CL-ACCOUNT-{enterprise[-4:]}",
        booked_at="2026-03-15T10:00:00+08:00",
        amount_fen=1_000 + serial,
        balance_after_fen=1_000 + serial,
    )
    assert stack.settings.kafka_bootstrap is not None
    publisher = BankPublisher(stack.settings.kafka_bootstrap, BANKS[0], PARTITIONS)
    publisher.publish_batch([extra])
    publisher.flush()
    return extra


def invalidated_on_every_primary(
    stack: EmbeddedStack,
    cluster: LocalCluster,
    log: list[dict[str, Any]],
    serial: int,
) -> None:
    """For one enterprise on each primary: its product is pulled (and kept by the API),
    then an event changes it; the API must serve the change, which it only does if that
    primary announced the write."""
    before = reference.products(log)
    on = by_primary(cluster, sorted(e for e, periods in before.items() if "2026-03" in periods))
    assert sorted(on) == cluster.primaries(), "the log's enterprises must cover every primary"
    for primary, enterprise in sorted(on.items()):
        for _ in range(2):  # the second pull is served from the API's cache
            assert pull(stack, enterprise, "2026-03")[0] == 200
        log.append(one_more_inflow(stack, enterprise, serial + primary))
        expected = reference.products(log)
        assert_products(stack, {enterprise: {"2026-03": expected[enterprise]["2026-03"]}}, 15)
