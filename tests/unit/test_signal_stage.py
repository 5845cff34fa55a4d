"""The signal judge's order: after a backlog, firms are judged oldest evidence first (the
time their first change not yet judged was committed), so that a new signal waits for the
firms ahead of it and not for a random share of the backlog."""

from __future__ import annotations

import asyncio
import random
from datetime import date
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

import agents.signals
from agents.ledger import LedgerStage
from agents.signals import SignalStage
from engine.metrics import WorkerMetrics
from engine.signals.evaluate import RuleSet
from engine.signals.spec import load_signals
from tests.factories import enterprise_ids
from tests.signal_stand_ins import RecordingSender, StandInLedger

DAY = date(2026, 3, 20)
RULES = RuleSet.of(load_signals())


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The firms judged, in order."""
    order: list[str] = []
    evaluate = agents.signals.evaluate

    def spy(enterprise_id: str, *args: Any, **kwargs: Any) -> Any:
        order.append(enterprise_id)
        return evaluate(enterprise_id, *args, **kwargs)

    monkeypatch.setattr(agents.signals, "evaluate", spy)
    return order


def _stage(
    ledger: StandInLedger, clock: list[float], sender: RecordingSender | None = None
) -> SignalStage:
    return SignalStage(
        cast(LedgerStage, ledger),
        sender or RecordingSender(),
        RULES,
        WorkerMetrics(CollectorRegistry()),
        today=lambda: DAY,
        monotonic=lambda: clock[0],
    )


async def _judge_everything(stage: SignalStage) -> None:
    while await stage.evaluate_pending():
        pass


def test_a_backlog_is_judged_in_the_order_its_changes_were_committed(judged: list[str]) -> None:
    async def scenario() -> None:
        ledger, clock = StandInLedger(1), [0.0]
        stage = _stage(ledger, clock)
        firms = enterprise_ids(12, seed=5)
        for firm in firms:
            ledger.book(0, firm)
        await _judge_everything(stage)  # the first day's sweep: every firm judged once
        judged.clear()
        # A backlog: the judge gets no turn while the firms' changes are committed, in an
        # order that is neither their ids' nor their hashes'.
        order = random.Random(9).sample(firms, len(firms))
        for k, firm in enumerate(order):
            clock[0] = 1.0 + k
            stage.committed(0, ledger.book(0, firm))
        clock[0] = 100.0
        stage.committed(0, ledger.book(0, order[0]))  # changed again: it keeps its place
        clock[0] = 200.0
        await _judge_everything(stage)
        assert judged == order

    asyncio.run(scenario())


def test_the_partition_with_the_oldest_change_waiting_goes_first(judged: list[str]) -> None:
    async def scenario() -> None:
        ledger, clock = StandInLedger(2), [0.0]
        stage = _stage(ledger, clock)
        first, second = enterprise_ids(2, seed=6)
        await _judge_everything(stage)  # the new day's sweep of both (empty) partitions
        clock[0] = 1.0
        stage.committed(1, ledger.book(1, first))
        clock[0] = 2.0
        stage.committed(0, ledger.book(0, second))
        clock[0] = 200.0
        await _judge_everything(stage)
        assert judged == [first, second]

    asyncio.run(scenario())


def test_history_committed_earlier_goes_before_recent_changes_settled_earlier(
    judged: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change to an old month is judged once the firm has been quiet for QUIET_SECONDS, a
    recent one DEBOUNCE_SECONDS after it: they come due in another order than they were
    committed, and the older evidence still goes first."""
    monkeypatch.setattr(agents.signals, "_CHUNK_ENTERPRISES", 1)  # a firm a turn
    monkeypatch.setattr(agents.signals, "_TICK_SECONDS", 0.0)  # a turn a tick

    async def scenario() -> None:
        ledger, clock = StandInLedger(1), [0.0]
        stage = _stage(ledger, clock)
        old, *recent = enterprise_ids(4, seed=8)
        await _judge_everything(stage)  # the new day's sweep of the empty partition
        stage.committed(0, ledger.book(0, old, "2025-11-03T10:00:00+08:00"))
        for k, firm in enumerate(recent):
            clock[0] = 1.0 + k
            stage.committed(0, ledger.book(0, firm))
        clock[0] = 5.0  # the recent ones are due, the old month not yet
        assert await stage.evaluate_pending() == 1
        clock[0] = 11.0  # now it is too
        await _judge_everything(stage)
        assert judged == [recent[0], old, *recent[1:]]

    asyncio.run(scenario())


def test_a_firm_judged_again_is_judged_against_the_episodes_it_stored(judged: list[str]) -> None:
    """The judge keeps a firm's open episodes between its judgements: an episode raised is
    not raised again while its run goes on, and ends when the data end it."""

    async def scenario() -> None:
        ledger, clock, sender = StandInLedger(1), [0.0], RecordingSender()
        stage = _stage(ledger, clock, sender)
        (firm,) = enterprise_ids(1, seed=10)
        await _judge_everything(stage)  # the new day's sweep of the empty partition
        states = []
        for at, fields in [
            ("2026-03-15T10:00:00+08:00", {"balance_after_fen": 1_000_000}),
            ("2026-03-18T10:00:00+08:00", {"direction": "out", "balance_after_fen": -100_000}),
            ("2026-03-19T10:00:00+08:00", {"direction": "out", "balance_after_fen": -150_000}),
            ("2026-03-20T09:00:00+08:00", {"balance_after_fen": 400_000}),
        ]:
            clock[0] += 10.0
            stage.committed(0, ledger.book(0, firm, at, **fields))
            clock[0] += 10.0
            sender.sent.clear()
            await _judge_everything(stage)
            states.append([(s["rule"], s["state"]) for s in sender.sent])
        overdrawn = "account_overdrawn"
        assert states == [[], [(overdrawn, "raised")], [], [(overdrawn, "retracted")]]
        assert judged.count(firm) == 4

    asyncio.run(scenario())


def test_a_lone_live_change_is_judged_at_once_and_a_stream_once_it_pauses(
    judged: list[str],
) -> None:
    """A firm's change to the current month, nothing of it changed for DEBOUNCE_SECONDS
    before, is judged at the next tick: the pause has already happened. A firm changed
    again within DEBOUNCE_SECONDS (a stream) waits for its changes to pause."""

    async def scenario() -> None:
        ledger, clock = StandInLedger(1), [0.0]
        stage = _stage(ledger, clock)
        lone, streamed = enterprise_ids(2, seed=11)
        await _judge_everything(stage)  # the new day's sweep of the empty partition
        clock[0] = 10.0
        stage.committed(0, ledger.book(0, lone))
        stage.committed(0, ledger.book(0, streamed))
        await _judge_everything(stage)
        assert sorted(judged) == sorted([lone, streamed])  # both lone: judged at once
        judged.clear()
        for k in range(3):  # the stream goes on: a commit every 0.1 s
            clock[0] = 10.1 + k / 10
            stage.committed(0, ledger.book(0, streamed))
            await _judge_everything(stage)
        assert judged == []
        clock[0] = 10.3 + agents.signals.DEBOUNCE_SECONDS
        await _judge_everything(stage)
        assert judged == [streamed]  # once, after the pause

    asyncio.run(scenario())


def test_history_and_a_backfill_reaching_this_month_still_wait(judged: list[str]) -> None:
    """A change only to older months waits QUIET_SECONDS; a firm already waiting (its
    backfill reached the current month) is not lone either."""

    async def scenario() -> None:
        ledger, clock = StandInLedger(1), [0.0]
        stage = _stage(ledger, clock)
        (firm,) = enterprise_ids(1, seed=12)
        await _judge_everything(stage)
        clock[0] = 10.0
        stage.committed(0, ledger.book(0, firm, "2025-11-03T10:00:00+08:00"))
        await _judge_everything(stage)
        clock[0] = 11.0  # past the debounce, still waiting for its history to stop
        stage.committed(0, ledger.book(0, firm))
        await _judge_everything(stage)
        assert judged == []
        clock[0] = 11.0 + agents.signals.DEBOUNCE_SECONDS
        await _judge_everything(stage)
        assert judged == [firm]

    asyncio.run(scenario())
