"""What the signal stage sends, kept in memory: the tests that are about judging, not about
the broker (tests/integration/test_signals.py runs the whole stack)."""

from __future__ import annotations

import asyncio
from typing import Any

from engine import codec
from engine.events.contract import Txn, validate
from engine.events.topics import SIGNAL_STATE_TOPIC, SIGNALS_TOPIC
from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from tests.factories import event

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")


class RecordingSender:
    """Keeps the signals (decoded) and the signal-state changelog (per partition, in the
    order sent: a record's index is its offset), as the broker would have them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.changelog: dict[int, list[tuple[bytes, bytes | None]]] = {}

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Any:
        if topic == SIGNALS_TOPIC:
            assert value is not None
            self.sent.append(codec.loads(value))
        else:
            assert topic == SIGNAL_STATE_TOPIC and key is not None and partition is not None
            self.changelog.setdefault(partition, []).append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def read_changelog(
        self, partition: int, start: int
    ) -> tuple[dict[str, bytes | None], int]:
        """A ChangelogReader (agents/signal_restore.py) over what was sent."""
        records = self.changelog.get(partition, [])
        return {key.decode(): value for key, value in records[start:]}, max(start, len(records))


class StandInLedger:
    """What the judge asks of the ledger stage: its lock, live partitions and their stores."""

    def __init__(self, partitions: int) -> None:
        self.lock = asyncio.Lock()
        self.stores = {p: MemoryStore() for p in range(partitions)}
        self.ledgers = {
            p: PartitionLedger(store, Pseudonymizer(b"test-key"), lambda: _REGISTRY)
            for p, store in self.stores.items()
        }
        self.offsets = dict.fromkeys(self.stores, 0)
        self.episodes: dict[int, dict[str, bytes]] = {}  # partition -> enterprise -> views

    @property
    def partitions(self) -> list[int]:
        return sorted(self.stores)

    def store(self, partition: int) -> MemoryStore:
        return self.stores[partition]

    def live(self, partition: int) -> bool:
        return True

    async def publish_episodes(self, partition: int, episodes: dict[str, bytes]) -> None:
        """The views write of the kept episodes (agents/ledger.py): recorded, not sent."""
        self.episodes.setdefault(partition, {}).update(episodes)

    def book(
        self, partition: int, firm: str, at: str = "2026-03-18T10:00:00+08:00", **fields: Any
    ) -> dict[str, set[int]]:
        """Commit a booking of ``firm``'s (a receipt unless ``fields`` say otherwise) booked
        ``at``; returns what the commit changed."""
        offset = self.offsets[partition]
        booking = event(enterprise_id=firm, txn_id=f"T{offset}", booked_at=at, **fields)
        txn = validate(booking, "BANK0001")
        assert isinstance(txn, Txn), txn
        ledger = self.ledgers[partition]
        ledger.apply(txn, Source("bank.BANK0001.txns", 0, offset, None))
        self.offsets[partition] = offset + 1
        return ledger.commit(offset + 1)
