"""A primary of the Redis Cluster killed (SIGKILL) while a bank publishes and a lender
pulls (issue 17, Redis Cluster).

Its replica takes over once the other nodes have seen it fail (a second here, seconds in
production). Meanwhile every pull is the exact product or a 503 with a JSON error, at once:
never a hang, a 500, or a 404 for data that exists. The worker retries what it could not
publish, the API's listener leaves the dead primary (its cache emptied) and listens to the
new one; afterwards every product of the whole log is exact, the killed node rejoins as a
replica, and a write on the new primary still drops what the API kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from engine.runtime.embedded import free_port
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests import reference
from tests.cluster_checks import by_primary, cache_live, invalidated_on_every_primary
from tests.faults.conftest import FAULT_MARKS
from tests.integration.conftest import (
    BANKS,
    assert_products,
    generated_log,
    module_settings,
    publish_by_bank,
)
from tests.pulls import Puller
from tests.redis_cluster import LocalCluster

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(240)]

# A pull in flight when the primary dies is retried by redis-py for about a second, then
# answered 503; one that waits on the API's listener gives up after its barrier (3 s).
_MAX_PULL_SECONDS = 4.0


@pytest.fixture(scope="module")
def cluster_stack(redis_cluster: LocalCluster) -> Iterator[EmbeddedStack]:
    settings = module_settings(
        "clk", redis_url=redis_cluster.url, redis_cluster=True, api_metrics_port=free_port()
    )
    with embedded_stack(settings, banks=BANKS, split_stages=True) as running:
        yield running


def test_a_primary_killed_during_ingest_and_pulls(
    cluster_stack: EmbeddedStack, redis_cluster: LocalCluster
) -> None:
    stack = cluster_stack
    now = datetime(2026, 7, 1, tzinfo=UTC)
    pulled = generated_log(71, 15, 2026 * 12 + 5, now)
    publish_by_bank(stack, pulled, max_batch=100)
    expected_pulled = reference.products(pulled)
    assert_products(stack, expected_pulled, timeout=90)
    # Other enterprises arrive while the primary dies; those pulled do not change meanwhile,
    # so every 200 must be exactly their product.
    arriving = [
        e
        for e in generated_log(72, 40, 2026 * 12 + 5, now)
        if e["enterprise_id"] not in expected_pulled
    ]
    # The primary that holds the most pulled enterprises' views.
    on: dict[int, int] = {}
    for enterprise in expected_pulled:
        primary = next(iter(by_primary(redis_cluster, [enterprise])))
        on[primary] = on.get(primary, 0) + 1
    victim = max(on, key=lambda port: on[port])
    replica = redis_cluster.replica_of(victim)
    with Puller(stack, expected_pulled, _MAX_PULL_SECONDS) as puller:
        puller.wait(lambda: puller.count(200) >= 50, 30, "pulls served before the kill")
        publish_by_bank(stack, arriving[: len(arriving) // 2], max_batch=50)
        redis_cluster.kill(victim)
        killed_at = time.monotonic()
        publish_by_bank(stack, arriving[len(arriving) // 2 :], max_batch=50)
        puller.wait(lambda: replica in redis_cluster.primaries(), 30, "the replica taking over")
        took_over = time.monotonic() - killed_at
        redis_cluster.wait_ok(30)
        puller.wait(lambda: cache_live(stack), 20, "the API listening to the new primary")
        back_at = time.monotonic()
        puller.wait(lambda: puller.all_served_since(back_at), 20, "every product served")
    assert puller.problems == [], puller.problems[:10]
    assert puller.slowest <= _MAX_PULL_SECONDS
    log = pulled + arriving
    assert_products(stack, reference.products(log), timeout=60)
    redis_cluster.restart(victim)  # back as a replica of its replacement
    redis_cluster.wait_ok(30)
    assert victim not in redis_cluster.primaries()
    invalidated_on_every_primary(stack, redis_cluster, log, 300)
    print(
        f"primary {victim} killed: {replica} took over in {took_over:.1f} s; answers "
        f"{sorted(puller.statuses.items())}, 503 by code {puller.unavailable}, slowest pull "
        f"{puller.slowest:.2f} s"
    )
