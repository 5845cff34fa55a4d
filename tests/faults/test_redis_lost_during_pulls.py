"""Fault 4 of issue 17: Redis killed while a lender pulls, and restarted empty.

Meanwhile every pull is answered at once: 503 with a JSON error, never a 500, never a hang,
and not a traceback in the API's log for every request. Afterwards every product comes back
by itself within seconds, with no new event to trigger a publish, and exact. A product
missing from Redis is never served as "no data": a 404 for an enterprise and period that
have data is a lie a lender would act on, and must not happen at any moment.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.runtime.embedded import Child, free_port, start_redis
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests import reference
from tests.faults.conftest import FAULT_MARKS
from tests.integration.conftest import (
    BANKS,
    assert_products,
    generated_log,
    module_settings,
    publish_by_bank,
)
from tests.pulls import Puller

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(180)]

# A pull that takes longer than this is a hang, as a lender sees it. A pull in flight when
# Redis dies may wait for the invalidation listener to give up on its connection: 3 s
# without a heartbeat answer (state/tracking.py).
_MAX_PULL_SECONDS = 4.0
# "Within seconds": from the ledger going on to every product served exactly.
_BACK_WITHIN_SECONDS = 20.0


@pytest.fixture(scope="module")
def stack(own_redis: tuple[str, Child, Path]) -> Iterator[EmbeddedStack]:
    settings = module_settings("f4", redis_url=own_redis[0], api_metrics_port=free_port())
    # Stages apart: the ledger worker can be held while the access stage restores its state.
    with embedded_stack(settings, banks=BANKS, split_stages=True) as running:
        yield running


def _tracebacks(stack: EmbeddedStack, since: int) -> int:
    assert stack.api.log_path is not None
    return stack.api.log_path.read_bytes()[since:].count(b"Traceback")


def _log_size(stack: EmbeddedStack) -> int:
    assert stack.api.log_path is not None
    return stack.api.log_path.stat().st_size


def test_redis_lost_during_pulls_answers_503_and_every_product_comes_back_by_itself(
    stack: EmbeddedStack, own_redis: tuple[str, Child, Path]
) -> None:
    log = generated_log(41, 15, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))
    publish_by_bank(stack, log, max_batch=100)
    expected = reference.products(log)
    assert_products(stack, expected, timeout=90)
    url, redis, workdir = own_redis
    with Puller(stack, expected, _MAX_PULL_SECONDS) as puller:
        puller.wait(lambda: puller.count(200) >= 100, 30, "pulls served before the fault")
        log_at_kill = _log_size(stack)
        redis.kill()  # SIGKILL: everything in it is gone
        puller.wait(lambda: puller.count(503) >= 300, 30, "pulls answered while Redis is away")
        tracebacks = _tracebacks(stack, log_at_kill)
        answered_503 = puller.count(503)
        # Restarted empty, and no event arrives: nothing would trigger a publish. The ledger
        # worker is held meanwhile, as a large state takes minutes to republish: the access
        # stage restores the lender's authorizations first, and the views stay missing.
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        stack.worker.process.send_signal(signal.SIGSTOP)
        try:
            _, restarted = start_redis(workdir, port=port)
            redis.process = restarted.process
            rebuilding = puller.unavailable.get("views_unavailable", 0)
            puller.wait(
                lambda: puller.unavailable.get("views_unavailable", 0) >= rebuilding + 200,
                30,
                "pulls authorized again while the views are not back",
            )
        finally:
            stack.worker.process.send_signal(signal.SIGCONT)
        back_at = time.monotonic()
        puller.wait(
            lambda: puller.all_served_since(back_at),
            _BACK_WITHIN_SECONDS,
            "every product served again after Redis came back empty",
        )
        back_after = time.monotonic() - back_at
    assert puller.problems == [], puller.problems[:10]
    assert puller.slowest <= _MAX_PULL_SECONDS
    # One line per request would drown the log an operator reads: a few are allowed (the
    # first failures of each connection), not one per answer.
    assert tracebacks <= 5, (
        f"{tracebacks} tracebacks for {answered_503} answers while Redis was away"
    )
    assert_products(stack, expected, timeout=5)
    print(
        f"Redis away: {answered_503} answers 503, {tracebacks} tracebacks logged, slowest pull "
        f"{puller.slowest:.2f} s; every product back {back_after:.1f} s after the ledger went on; "
        f"statuses {sorted(puller.statuses.items())}, 503 by code {puller.unavailable}"
    )
