"""The signal episodes a worker keeps for the products, in the enterprise's views hash
(field "e", state/views.py), against real Redis: written when an episode opens or closes,
guarded like every views write, republished with the rest when Redis loses the views, and
pruned with the history. The products read them from there (engine/api/products.py)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.ledger import LedgerStage
from agents.signals import SignalStage
from engine.api.products import history_from_fields
from engine.metrics import WorkerMetrics
from engine.periods import CST
from engine.products.classify import load_registry
from engine.products.history import SignalEpisode
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from engine.signals.evaluate import RuleSet
from engine.signals.spec import load_signals
from engine.signals.timeline import month_of
from state.memory import MemoryStore
from state.redis_client import RedisClient
from state.views import ViewStore
from tests.factories import ENTERPRISE, event
from tests.signal_stand_ins import RecordingSender
from tests.stage_harness import routed, with_views

pytestmark = pytest.mark.integration

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")
RULES = RuleSet.of(load_signals())
DAY = date(2026, 3, 10)


def _overdraft() -> list[dict[str, Any]]:
    at = datetime(DAY.year, DAY.month, DAY.day, 10, tzinfo=CST)
    return [
        event(txn_id="A1", booked_at=(at - timedelta(days=3)).isoformat()),
        event(
            txn_id="A2",
            direction="out",
            amount_fen=1_100_000,
            balance_after_fen=-100_000,
            booked_at=at.isoformat(),
        ),
    ]


def _receipt(day: date) -> dict[str, Any]:
    return event(
        txn_id="A3",
        amount_fen=500_000,
        balance_after_fen=400_000,
        booked_at=f"{day}T09:00:00+08:00",
    )


def test_kept_episodes_are_published_republished_after_a_redis_loss_and_pruned(
    redis_url: str,
) -> None:
    today = [DAY + timedelta(days=2)]

    async def episodes(client: RedisClient, views: ViewStore) -> tuple[SignalEpisode, ...]:
        fields = await client.hgetall(views.enterprise_key(ENTERPRISE))
        return history_from_fields(fields).episodes

    async def body(client: RedisClient, views: ViewStore) -> None:
        metrics = WorkerMetrics(CollectorRegistry())
        ledger = LedgerStage(
            open_store=lambda _: MemoryStore(),
            pseudonym=Pseudonymizer(b"test-key"),
            registry=lambda: _REGISTRY,
            views=views,
            sender=None,  # type: ignore[arg-type]  # no rejection to send
            metrics=metrics,
            on_commit=lambda partition, changed: signals.committed(partition, changed),
        )
        sender = RecordingSender()
        signals = SignalStage(ledger, sender, RULES, metrics, today=lambda: today[0])
        await ledger.open({0})
        await ledger.refresh_views({0})
        log = routed([*_overdraft(), _receipt(DAY + timedelta(days=3))], 0)
        await ledger.process(log[:2])
        await ledger.unstall([2])  # live: near the end of its log
        signals.opened({0})
        await signals.evaluate_pending()
        raised = DAY + timedelta(days=2)
        assert [(r["rule"], r["state"]) for r in sender.sent] == [("account_overdrawn", "raised")]
        assert await episodes(client, views) == (SignalEpisode("account_overdrawn", raised, None),)

        # The receipt the next day: the episode closes, and stays in the views closed.
        await ledger.process(log[2:])
        await ledger.unstall([3])
        today[0] = DAY + timedelta(days=3)
        signals.opened({0})
        await signals.evaluate_pending()
        assert [r["state"] for r in sender.sent] == ["raised", "cleared"]
        closed = (SignalEpisode("account_overdrawn", raised, DAY + timedelta(days=3)),)
        assert await episodes(client, views) == closed
        hash_before = await client.hgetall(views.enterprise_key(ENTERPRISE))

        # Redis loses every view: the worker rebuilds them from its state, episodes included.
        await views.delete_all()
        await ledger.check_views()
        for _ in range(100):
            if await views.progress(0) is not None:
                break
            await asyncio.sleep(0.05)
        assert await episodes(client, views) == closed
        assert await client.hgetall(views.enterprise_key(ENTERPRISE)) == hash_before

        # The kept history moves past the day the episode closed: it goes from the views.
        await ledger.prune_history(month_of(DAY) + 1)
        assert await episodes(client, views) == ()

    with_views(redis_url, body)
