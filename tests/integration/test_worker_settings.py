"""What a worker's settings and its state decide, against a real broker: the partition count
must match the routed topic's, state ahead of the topic is refused, a non-default
CREDITFLOW_HISTORY_MONTHS is what the intake rejects as too old and what the worker prunes
from its state and from the views, and the API is not ready while a partition has no views
(issue 18)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import rocksdict
from redis import Redis

from engine.errors import ConfigurationError, StateError
from engine.events.partitioner import partition_for
from engine.events.rejects import read_rejects
from engine.periods import CST, current_month, format_month
from engine.runtime.observe import worker_samples
from engine.runtime.runner import EmbeddedStack, embedded_stack, prepare_worker
from engine.runtime.worker import state_dir
from state.ledger_types import META_KEY, Progress
from state.rocksdb import RocksDBStore, shared_block_cache
from state.views import CARRY_FIELD
from tests.factories import enterprise_ids, event
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    get,
    module_settings,
    publish_by_bank,
    reader,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

(ENTERPRISE,) = enterprise_ids(1, seed=2718)


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with embedded_stack(module_settings("settings"), banks=BANKS) as running:
        yield running


def test_a_partition_count_other_than_the_topics_is_refused(stack: EmbeddedStack) -> None:
    wrong = stack.settings.model_copy(update={"partitions": PARTITIONS + 1})
    with pytest.raises(ConfigurationError, match=f"has {PARTITIONS} partitions"):
        prepare_worker(wrong)


def test_state_ahead_of_the_routed_topic_is_refused(stack: EmbeddedStack, tmp_path: Path) -> None:
    settings = stack.settings.model_copy(update={"data_dir": tmp_path})
    prepare_worker(settings)  # no state: nothing to refuse
    path = state_dir(settings, 1)
    store = RocksDBStore(path, shared_block_cache(1 << 20))
    store.write({META_KEY: Progress(next_offset=10_000).encode()})  # the topic has far fewer
    store.close()
    with pytest.raises(StateError, match=f"Delete {path}"):
        prepare_worker(settings)


def _booking(txn_id: str, months_ago: int, **fields: object) -> dict[str, object]:
    month = current_month() - months_ago
    day = datetime(month // 12, month % 12 + 1, 10, 10, tzinfo=CST)
    return event(
        txn_id=txn_id,
        bank=BANKS[0],
        enterprise_id=ENTERPRISE,
        booked_at=day.isoformat(),
        **fields,
    )


def _pull(stack: EmbeddedStack, months_ago: int) -> tuple[int, dict[str, Any]]:
    label = format_month(current_month() - months_ago)
    lender = reader(stack, [ENTERPRISE])
    return get(stack.api_url + lender.path(ENTERPRISE, "monthly", label), lender.headers)


def _status(stack: EmbeddedStack, months_ago: int) -> int:
    return _pull(stack, months_ago)[0]


def _closing_balance(stack: EmbeddedStack, months_ago: int) -> int:
    body = _pull(stack, months_ago)[1]
    (balances,) = [s for s in body["segments"] if s["id"] == "balances"]
    return int(balances["items"]["closing_balance_fen"])


def _too_old(stack: EmbeddedStack) -> float:
    """Events the worker's intake rejected as too old since it started."""
    try:
        samples = worker_samples(stack.worker_url)["creditflow_rejected_events_total"]
    except (OSError, KeyError):
        return 0.0
    return sum(v for labels, v in samples.items() if ("reason", "too_old") in labels)


def test_a_shorter_history_is_rejected_at_intake_and_pruned_from_state_and_views(
    stack: EmbeddedStack,
) -> None:
    # With the default 36 months, a booking 20 months old is kept and served: the last of
    # a savings account, which holds CNY 15,000.00 since.
    old = _booking("OLD", 20, account="SAVINGS-9", balance_after_fen=1_500_000)
    # and a bank's correction, 20 months old too, of a booking that never came
    orphan = _booking("ORPHAN-REVERSAL", 20, reversal_of="NEVER-BOOKED")
    publish_by_bank(stack, [old, orphan, _booking("NEW", 1)])
    wait_until(lambda: _status(stack, 20) == 200 and _status(stack, 1) == 200)
    closing = _closing_balance(stack, 1)
    # The worker restarts keeping 15 months: it prunes the older month from its state and
    # its views at once (not only at the next hourly prune) ...
    stack.env["CREDITFLOW_HISTORY_MONTHS"] = "15"
    stack.restart_worker()
    wait_until(lambda: _status(stack, 20) == 404)
    # ... and what pruning removed still counts in balances (the carry, state/horizon.py)
    assert _status(stack, 1) == 200 and _closing_balance(stack, 1) == closing
    assert not any(
        key.startswith(b"M|") and b"|" + format_month(current_month() - 20).encode() in key
        for partition in range(PARTITIONS)
        if state_dir(stack.settings, partition).exists()
        for key in _state_keys(stack, partition)
    )
    # The correction waited for its original; leaving the kept history, it goes to the
    # rejects topic with its reason rather than vanishing with the pruned state.
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    wait_until(
        lambda: any(
            r["reason"] == "bad_reversal" and "ORPHAN-REVERSAL" in r["original"]
            for r in read_rejects(bootstrap)
        )
    )
    # ... and its intake rejects a booking 16 months old as too old, one 14 months old not.
    rejected = _too_old(stack)
    publish_by_bank(stack, [_booking("OLDER", 16), _booking("RECENT", 14)])
    # (At least one: delivery is at least once, and a redelivered step rejects it again.)
    wait_until(lambda: _too_old(stack) >= rejected + 1 and _status(stack, 14) == 200)


def _state_keys(stack: EmbeddedStack, partition: int) -> list[bytes]:
    """The keys of a partition's state, read while the worker holds it (a read-only open
    takes no lock, as state/rocksdb.py read_key)."""
    options = rocksdict.Options(raw_mode=True)
    path = str(state_dir(stack.settings, partition))
    db = rocksdict.Rdict(path, options, access_type=rocksdict.AccessType.read_only())
    try:
        keys = db.keys()  # an iterator over the database, not a dict's view
        return [bytes(key) for key in keys]
    finally:
        db.close()


def test_the_api_is_not_ready_while_a_partition_has_no_views(stack: EmbeddedStack) -> None:
    # Runs after the test above, whose pruning left ENTERPRISE a carry (the savings account).
    partition = partition_for(ENTERPRISE, PARTITIONS)
    wait_until(lambda: get(f"{stack.api_url}/readyz")[0] == 200)
    closing = _closing_balance(stack, 1)
    redis = Redis.from_url(stack.settings.redis_url.get_secret_value())
    views = f"{stack.settings.redis_prefix}:v1:ent:{{{ENTERPRISE}}}"
    try:
        assert redis.hexists(views, CARRY_FIELD)
        # its views are gone: the partition's marker and the enterprise's hash
        redis.delete(f"{stack.settings.redis_prefix}:v1:part:{partition}", views)
    finally:
        redis.close()
    status, body = get(f"{stack.api_url}/readyz")
    assert status == 503 and body["ready"] is False
    assert body["partitions_without_views"] == [partition] and body["redis"] is True
    # The next event of that partition shows the worker its views vanished: it republishes
    # them all, and the API is ready again.
    publish_by_bank(stack, [_booking("AGAIN", 2)])
    wait_until(lambda: get(f"{stack.api_url}/readyz")[0] == 200)
    # The carry is republished with the months: the pruned savings account still counts.
    assert _status(stack, 1) == 200 and _closing_balance(stack, 1) == closing
