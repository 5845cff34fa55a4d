"""A partition that moves keeps its signal episodes: the judge writes each enterprise's
episodes to the signal-state changelog, and a partition rebuilt from the routed topic
restores them before it is judged (agents/signal_restore.py).

Without it, a rebuild from the routed topic knew only the episodes its rules found open
after the replay: a closed one was gone (the quarterly's signal days read low after a
move) and one that ended meanwhile was never cleared for subscribers.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any, cast

from prometheus_client import CollectorRegistry

from agents.ledger import LedgerStage
from agents.signals import SignalStage
from engine import codec
from engine.events.topics import SIGNAL_STATE_TOPIC
from engine.metrics import WorkerMetrics
from engine.signals.evaluate import RuleSet
from engine.signals.spec import load_signals
from state.memory import MemoryStore
from state.signals import SignalState
from tests.factories import enterprise_ids
from tests.signal_stand_ins import RecordingSender, StandInLedger

RULES = RuleSet.of(load_signals())
OVERDRAWN = "account_overdrawn"
CLEARED_FIRM, OPEN_FIRM = enterprise_ids(2, seed=21)

# (firm, booked at, fields), judged as each day comes: CLEARED_FIRM overdrawn from the 12th
# (an episode from the 14th, the third day), in credit again on the 16th; OPEN_FIRM overdrawn
# from the 15th on (an episode from the 17th).
HISTORY: list[tuple[str, str, dict[str, Any]]] = [
    (CLEARED_FIRM, "2026-03-10T10:00:00+08:00", {"balance_after_fen": 900_000}),
    (OPEN_FIRM, "2026-03-10T11:00:00+08:00", {"balance_after_fen": 500_000}),
    (
        CLEARED_FIRM,
        "2026-03-12T10:00:00+08:00",
        {"direction": "out", "amount_fen": 1_000_000, "balance_after_fen": -100_000},
    ),
    (
        OPEN_FIRM,
        "2026-03-15T10:00:00+08:00",
        {"direction": "out", "amount_fen": 600_000, "balance_after_fen": -100_000},
    ),
    (
        CLEARED_FIRM,
        "2026-03-16T10:00:00+08:00",
        {"amount_fen": 500_000, "balance_after_fen": 400_000},
    ),
]
TODAY = date(2026, 3, 20)


def _stage(
    ledger: StandInLedger, sender: RecordingSender, today: list[date], restore: Any = None
) -> SignalStage:
    clock = [0.0]

    def monotonic() -> float:
        clock[0] += 100.0  # every change has settled by the next look
        return clock[0]

    return SignalStage(
        cast(LedgerStage, ledger),
        sender,
        RULES,
        WorkerMetrics(CollectorRegistry()),
        today=lambda: today[0],
        monotonic=monotonic,
        changelog=restore,
    )


async def _judge_everything(stage: SignalStage) -> None:
    while await stage.evaluate_pending():
        pass


def _episodes(store: MemoryStore) -> dict[bytes, Any]:
    """What the partition keeps of its signals: open (S|) and kept (G|) episodes."""
    return {
        key: codec.loads(raw) for head in (b"S|", b"G|") for key, raw in store.scan_prefix(head)
    }


async def _first_owner() -> tuple[StandInLedger, RecordingSender]:
    """The partition's first worker, judging as the data arrive, day by day."""
    ledger, sender, today = StandInLedger(1), RecordingSender(), [date(2026, 3, 10)]
    stage = _stage(ledger, sender, today)
    while today[0] <= TODAY:
        for firm, at, fields in HISTORY:
            if date.fromisoformat(at[:10]) == today[0]:
                stage.committed(0, ledger.book(0, firm, at, **fields))
        await _judge_everything(stage)  # the day's bookings, and the day's sweep
        today[0] += timedelta(days=1)
    return ledger, sender


def _rebuilt() -> StandInLedger:
    """The partition on another worker: its months rebuilt from the routed topic."""
    ledger = StandInLedger(1)
    for firm, at, fields in HISTORY:
        ledger.book(0, firm, at, **fields)
    return ledger


def test_a_rebuilt_partition_restores_its_episodes_before_it_is_judged() -> None:
    async def scenario() -> None:
        first, first_sender = await _first_owner()
        states = [(s["enterprise_id"], s["state"]) for s in first_sender.sent]
        assert states == [
            (CLEARED_FIRM, "raised"),
            (CLEARED_FIRM, "cleared"),
            (OPEN_FIRM, "raised"),
        ]
        kept = SignalState(first.stores[0]).kept(CLEARED_FIRM)
        assert kept == {(OVERDRAWN, date(2026, 3, 14)): date(2026, 3, 16)}

        moved, sender = _rebuilt(), RecordingSender()
        stage = _stage(moved, sender, [TODAY], first_sender.read_changelog)
        stage.opened({0})
        assert await stage.evaluate_pending() == 0  # not judged before it is restored
        await stage.restore({0})
        await _judge_everything(stage)
        assert sender.sent == []  # nothing raised twice, nothing left to clear
        assert _episodes(moved.stores[0]) == _episodes(first.stores[0])
        state = SignalState(moved.stores[0])
        assert state.changelog_offset() == len(first_sender.changelog[0])

    asyncio.run(scenario())


def test_without_the_changelog_a_rebuild_loses_the_closed_episode() -> None:
    """The defect the changelog mends, shown on the same data: this test fails the day the
    routed topic alone rebuilds what the judge kept (then the changelog can go)."""

    async def scenario() -> None:
        first, _ = await _first_owner()
        moved = _rebuilt()
        stage = _stage(moved, RecordingSender(), [TODAY])
        stage.opened({0})
        await _judge_everything(stage)
        assert SignalState(moved.stores[0]).kept(CLEARED_FIRM) == {}
        assert SignalState(first.stores[0]).kept(CLEARED_FIRM) != {}

    asyncio.run(scenario())


def test_an_episode_that_ended_during_the_move_is_cleared_after_the_restore() -> None:
    """The new owner judges against the restored open episode: it clears it, once."""

    async def scenario() -> None:
        _, first_sender = await _first_owner()
        moved = _rebuilt()
        event = ("2026-03-21T10:00:00+08:00", {"amount_fen": 700_000, "balance_after_fen": 600_000})
        moved.book(0, OPEN_FIRM, event[0], **event[1])  # arrived while the partition moved
        sender, today = RecordingSender(), [date(2026, 3, 21)]
        stage = _stage(moved, sender, today, first_sender.read_changelog)
        stage.opened({0})
        await stage.restore({0})
        await _judge_everything(stage)
        assert [(s["enterprise_id"], s["state"]) for s in sender.sent] == [(OPEN_FIRM, "cleared")]
        assert SignalState(moved.stores[0]).kept(OPEN_FIRM) == {
            (OVERDRAWN, date(2026, 3, 17)): date(2026, 3, 21)
        }

    asyncio.run(scenario())


def test_a_restore_resumes_where_the_last_one_ended_and_reapplies_safely() -> None:
    """Given back to the worker that wrote them, a partition reads its own records again:
    they change nothing. A restore starts where the last one ended; a partition a
    rebalance left in place is not restored."""

    async def scenario() -> None:
        first, first_sender = await _first_owner()
        before = _episodes(first.stores[0])
        starts: list[int] = []

        async def reader(partition: int, start: int) -> tuple[dict[str, bytes | None], int]:
            starts.append(start)
            return await first_sender.read_changelog(partition, start)

        stage = _stage(first, RecordingSender(), [TODAY], reader)
        stage.opened({0})
        await stage.restore({0})
        stage.opened({0})  # a rebalance that left it here: nothing to restore
        await stage.restore({0})
        assert await stage.evaluate_pending() > 0  # judged meanwhile: not restoring
        stage.revoked({0})  # taken away and given back
        stage.opened({0})
        await stage.restore({0})
        assert starts == [0, len(first_sender.changelog[0])]
        assert _episodes(first.stores[0]) == before

    asyncio.run(scenario())


def test_episodes_kept_before_the_changelog_are_written_to_it_on_the_first_restore() -> None:
    """Workers older than the changelog kept episodes they never wrote to it: the first
    restore of such a state writes them, so that a later rebuild keeps them too."""

    async def scenario() -> None:
        first, sender = await _first_owner()
        before = _episodes(first.stores[0])
        sender.changelog.clear()  # judged by workers that did not write it
        stage = _stage(first, sender, [TODAY], sender.read_changelog)
        stage.opened({0})
        await stage.restore({0})
        assert sorted(key.decode() for key, _ in sender.changelog[0]) == sorted(
            [CLEARED_FIRM, OPEN_FIRM]
        )
        assert _episodes(first.stores[0]) == before  # restoring them changed nothing

        moved = _rebuilt()
        stage = _stage(moved, RecordingSender(), [TODAY], sender.read_changelog)
        stage.opened({0})
        await stage.restore({0})
        await _judge_everything(stage)
        assert _episodes(moved.stores[0]) == before

    asyncio.run(scenario())


def test_a_seed_the_broker_refuses_is_tried_again() -> None:
    """Writing the seed fails (the broker away): the partition stays unjudged and the
    restore goes on until it is written, rather than leaving the partition restoring."""

    async def scenario() -> None:
        first, sender = await _first_owner()
        sender.changelog.clear()
        refusals = [1]
        send = sender.send

        async def flaky(topic: str, key: Any, value: Any, partition: Any) -> Any:
            if refusals and topic == SIGNAL_STATE_TOPIC:
                refusals.pop()
                raise ConnectionError("broker away")
            return await send(topic, key, value, partition)

        sender.send = flaky  # type: ignore[method-assign]
        stage = _stage(first, sender, [TODAY], sender.read_changelog)
        stage.opened({0})
        await stage.restore({0})
        assert not refusals and len(sender.changelog[0]) == 2
        assert await stage.evaluate_pending() > 0  # restored: judged again

    asyncio.run(scenario())


def test_a_record_that_is_not_a_snapshot_is_skipped_and_the_rest_restored() -> None:
    """A changelog record that cannot be read leaves its enterprise's episodes as the state
    has them and is logged; it does not stop the partition's restore (which would leave the
    partition unjudged, retrying for ever)."""

    async def scenario() -> None:
        first, sender = await _first_owner()
        (cleared_record,) = [v for k, v in sender.changelog[0] if k == CLEARED_FIRM.encode()][-1:]
        moved = _rebuilt()
        broken = {CLEARED_FIRM: cleared_record, OPEN_FIRM: b'{"kept": [["x"]]}'}

        async def reader(partition: int, start: int) -> tuple[dict[str, bytes | None], int]:
            return broken, 2

        stage = _stage(moved, RecordingSender(), [TODAY], reader)
        stage.opened({0})
        await stage.restore({0})
        assert await stage.evaluate_pending() > 0  # restored, judged
        state, kept = SignalState(moved.stores[0]), SignalState(first.stores[0])
        assert state.kept(CLEARED_FIRM) == kept.kept(CLEARED_FIRM)
        assert state.changelog_offset() == 2

    asyncio.run(scenario())
