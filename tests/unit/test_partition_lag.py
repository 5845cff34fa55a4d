"""The ledger's consumer lag per partition: what the lag alerts of deploy/prometheus read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from agents.ledger import LedgerStage
from engine.events.topics import ROUTED_TOPIC
from engine.metrics import WorkerMetrics
from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from state.memory import MemoryStore

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")


@dataclass
class _Routed:
    offset: int
    partition: int = 0
    topic: str = ROUTED_TOPIC
    value: bytes | None = b"[]"  # a step of no rows: only the offset moves


def _lag(registry: CollectorRegistry, partition: int) -> float | None:
    return registry.get_sample_value(
        "creditflow_partition_lag_messages", {"partition": str(partition)}
    )


def test_lag_is_the_log_end_minus_what_is_applied_and_leaves_with_the_partition() -> None:
    registry = CollectorRegistry()
    stage = LedgerStage(
        open_store=lambda _: MemoryStore(),
        pseudonym=Pseudonymizer(b"test-key"),
        registry=lambda: _REGISTRY,
        views=None,  # type: ignore[arg-type]  # nothing is published: no commit is due
        sender=None,  # type: ignore[arg-type]
        metrics=WorkerMetrics(registry),
        commit_interval=3600.0,
    )

    async def scenario() -> None:
        await stage.open({0, 1})
        await stage.unstall([5, 0])
        assert (_lag(registry, 0), _lag(registry, 1)) == (5, 0)
        await stage.process([_Routed(offset) for offset in range(3)])
        await stage.unstall([6, 0])  # applied, not committed yet: it counts as applied
        assert _lag(registry, 0) == 3
        await stage.unstall([2, 0])  # an end looked up before the last step: never negative
        assert _lag(registry, 0) == 0
        metrics = stage._metrics  # as a commit sets them (that needs Redis: not here)
        metrics.next_offset.labels("0").set(3)
        metrics.watermark.labels("0").set(1.7e9)
        await stage.revoke({0})
        assert _lag(registry, 0) is None  # its next owner reports it
        for name in ("creditflow_partition_next_offset", "creditflow_partition_watermark_seconds"):
            assert registry.get_sample_value(name, {"partition": "0"}) is None
        assert _lag(registry, 1) == 0
        await stage.close()

    asyncio.run(scenario())
