"""Crashes, lost state and lost Redis: the products end up as if nothing had happened."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import pytest

from engine.periods import CST
from engine.runtime.embedded import Child, free_port, start_redis
from engine.runtime.observe import total, worker_samples
from engine.runtime.runner import EmbeddedStack, delete_views, embedded_stack
from engine.runtime.worker import state_dir
from state.content import CONTENT_KEY
from state.rocksdb import RocksDBStore, shared_block_cache
from tests import reference
from tests.factories import enterprise_ids, event
from tests.integration.conftest import (
    BANKS,
    assert_products,
    generated_log,
    get,
    kept_episodes,
    module_settings,
    publish_by_bank,
    reader,
    wait_signals_judged,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(own_redis: tuple[str, Child, Path]) -> Iterator[EmbeddedStack]:
    settings = module_settings(
        "rec", redis_url=own_redis[0], batch_max_messages=20, api_metrics_port=free_port()
    )
    with embedded_stack(settings, banks=BANKS) as running:
        yield running


def _log(seed: int, enterprises: int) -> list[dict[str, Any]]:
    return generated_log(seed, enterprises, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))


def _publish(stack: EmbeddedStack, events: list[dict[str, Any]]) -> None:
    publish_by_bank(stack, events, max_batch=100)


def _cache_live(stack: EmbeddedStack) -> float:
    """From the API's internal metrics port: it answers while Redis is away (the API port's
    /metrics checks an operator's token, which needs the access state in Redis)."""
    url = f"http://127.0.0.1:{stack.settings.api_metrics_port}"
    return next(iter(worker_samples(url)["creditflow_api_cache_live"].values()))


def _until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _applied(stack: EmbeddedStack) -> float:
    return total(stack.worker_url, "creditflow_ledger_events_total")


def test_a_worker_killed_mid_stream_neither_loses_nor_doubles(stack: EmbeddedStack) -> None:
    log = _log(seed=21, enterprises=80)
    _publish(stack, log)
    deadline = time.monotonic() + 60
    while _applied(stack) < len(log) * 0.2 and time.monotonic() < deadline:
        time.sleep(0.02)
    applied_at_kill = _applied(stack)
    stack.restart_worker(kill=True)  # SIGKILL: no shutdown, no commit
    assert 0 < applied_at_kill < len(log), "the kill must land mid-stream"
    expected = reference.products(log)
    assert_products(stack, expected, timeout=120)


def _overdrawn_then_back_in_credit() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A firm overdrawn from six days ago (an open episode once judged), then the receipt
    of yesterday that ends it (a closed one): (the first events, the receipt)."""
    (firm,) = enterprise_ids(1, seed=4242)
    today = datetime.now(CST).date()

    def booking(days_ago: int, number: int, **fields: Any) -> dict[str, Any]:
        at = datetime.combine(today - timedelta(days=days_ago), dt_time(10), CST)
        return event(
            bank=BANKS[0],
            enterprise_id=firm,
            txn_id=f"OD{number}",
            booked_at=at.isoformat(),
            **fields,
        )

    return [
        booking(8, 1, amount_fen=900_000, balance_after_fen=900_000),
        booking(6, 2, direction="out", amount_fen=1_000_000, balance_after_fen=-100_000),
    ], [booking(1, 3, amount_fen=500_000, balance_after_fen=400_000)]


def test_lost_worker_state_is_rebuilt_from_the_routed_topic(stack: EmbeddedStack) -> None:
    """State and views both lost: the months come back from the routed topic, the signal
    episodes from their changelog (agents/signal_restore.py): which closed and when depends
    on when the data arrived, so the routed topic alone gives only those open after it."""
    log = _log(seed=21, enterprises=80)  # what the test before published
    overdrawn, receipt = _overdrawn_then_back_in_credit()
    new = _log(seed=22, enterprises=20)[-1:]  # so that the group has committed far ahead
    for events in ([*new, *overdrawn], receipt):  # an episode raised, then cleared
        _publish(stack, events)
        log += events
        assert_products(stack, reference.products(log), timeout=120)
        wait_signals_judged(stack)
    expected = reference.products(log)
    episodes = kept_episodes(stack, expected)
    closed = sum(closed is not None for kept in episodes.values() for *_, closed in kept)
    assert closed, "no closed episode: the test would not see them lost"
    stack.worker.stop()
    shutil.rmtree(stack.settings.data_dir / "state")
    delete_views(stack.settings)
    stack.restart_worker()
    assert_products(stack, expected, timeout=120)
    wait_signals_judged(stack)
    assert kept_episodes(stack, expected) == episodes


def test_products_never_go_back_in_time_while_an_older_engines_state_is_rebuilt(
    stack: EmbeddedStack,
) -> None:
    """The state was folded by an engine that kept less of each event (no content number:
    state/content.py) and Redis still serves the views: the worker drops the state and folds
    the routed topic again by itself; meanwhile its state is behind the views, and it must
    publish nothing until it has caught up (a product must not show an older state than it
    already did). The same holds for a lost state, rebuilt the same way."""
    log = _log(seed=21, enterprises=80) + _log(seed=22, enterprises=20)[-1:]
    expected = reference.products(log)
    assert_products(stack, expected, timeout=120)
    watched = sorted(expected)[:3]
    lender = reader(stack, watched)

    def offsets() -> list[int]:
        found = []
        for enterprise_id in watched:
            periods = sorted(expected[enterprise_id])
            url = stack.api_url + lender.path(enterprise_id, _kind(periods[-1]), periods[-1])
            status, body = get(url, lender.headers)
            assert status == 200, body  # never "no data" either
            found.append(int(body["as_of"]["routed_offset"]))
        return found

    before = offsets()
    stack.worker.stop()
    for partition in range(stack.settings.partitions):  # as an older engine left it
        store = RocksDBStore(state_dir(stack.settings, partition), shared_block_cache(1 << 20))
        assert store.get(CONTENT_KEY) is not None
        store.write({CONTENT_KEY: None})
        store.close()
    stack.restart_worker()  # Redis keeps the views
    deadline = time.monotonic() + 20
    seen = [before]
    while time.monotonic() < deadline:  # the rebuild runs meanwhile
        seen.append(offsets())
        time.sleep(0.02)
    for earlier, later in itertools.pairwise(seen):
        assert all(b >= a for a, b in zip(earlier, later, strict=True)), (earlier, later)
    assert_products(stack, expected, timeout=120)
    assert _applied(stack) >= len(log)  # folded again from the start, not resumed


def _kind(label: str) -> str:
    return "quarterly" if "Q" in label else "monthly"


def test_views_lost_in_redis_are_republished(
    stack: EmbeddedStack, own_redis: tuple[str, Child, Path]
) -> None:
    before = _log(seed=23, enterprises=15)
    _publish(stack, before)
    assert_products(stack, reference.products(before), timeout=120)
    # Redis restarts empty while the worker runs, and events keep coming meanwhile.
    url, child, workdir = own_redis
    child.kill()
    # The API says it is not ready while Redis is away (and answers at once, as JSON), and
    # its render cache stops serving: nothing would tell it of a change meanwhile.
    status, body = get(f"{stack.api_url}/readyz")
    assert status == 503 and body["ready"] is False and body["redis"] is False
    assert _until(lambda: _cache_live(stack) == 0.0)
    during = _log(seed=24, enterprises=15)
    failed = total(stack.worker_url, "creditflow_view_publish_errors_total")
    _publish(stack, during)
    # Redis comes back only once the worker has failed to publish what arrived meanwhile.
    assert _until(lambda: total(stack.worker_url, "creditflow_view_publish_errors_total") > failed)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    _, restarted = start_redis(workdir, port=port)
    child.process = restarted.process
    expected = reference.products(before + during)
    assert_products(stack, expected, timeout=120)
    status, body = get(f"{stack.api_url}/readyz")
    assert status == 200 and body["ready"] and body["partitions_without_views"] == []
    assert _until(lambda: _cache_live(stack) == 1.0)
