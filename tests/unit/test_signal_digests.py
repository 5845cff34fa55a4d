"""The signal judge's kept month digests: the same as the state's, and bounded in months."""

from __future__ import annotations

from typing import Any

from agents.signal_digests import DigestCache
from engine.events.contract import Txn, validate
from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from loadtest.generator import GeneratorConfig, generate
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from state.signals import SignalState

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")


def _apply(
    ledger: PartitionLedger, events: list[dict[str, Any]], offset: int
) -> dict[str, set[int]]:
    for k, element in enumerate(events):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        ledger.apply(txn, Source("bank.BANK0001.txns", 0, offset + k, None))
    return ledger.commit(offset + len(events))


def _events(seed: int, enterprises: int, months: int) -> list[dict[str, Any]]:
    config = GeneratorConfig(seed=seed, enterprises=enterprises, months=months, banks=("BANK0001",))
    return list(generate(config))


def test_digests_are_bounded_by_months_and_equal_the_state() -> None:
    store = MemoryStore()
    ledger = PartitionLedger(store, Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    events = _events(3, 8, 6)
    _apply(ledger, events, 0)
    state = SignalState(store)
    enterprises = sorted({e["enterprise_id"] for e in events})
    assert sum(len(state.months(e)) for e in enterprises) > 40
    cache = DigestCache(max_months=20)  # room for about three of these enterprises
    for enterprise_id in enterprises + enterprises[:2]:
        assert cache.months_of(state, enterprise_id) == state.months(enterprise_id)
        assert cache.months <= 20
    assert cache.months > 20 - 6  # it keeps what fits

    # A commit changes kept months: judging reads them again.
    later = [e for e in _events(4, 8, 7) if e["booked_at"] > events[-1]["booked_at"]]
    for event in later:
        event["enterprise_id"] = enterprises[1]
    changed = _apply(ledger, later, len(events))
    for enterprise_id, months in changed.items():
        cache.changed(enterprise_id, months)
    assert cache.months_of(state, enterprises[1]) == state.months(enterprises[1])
    assert cache.months <= 20


def test_an_enterprise_larger_than_the_bound_is_still_judged_whole() -> None:
    store = MemoryStore()
    ledger = PartitionLedger(store, Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    events = _events(5, 2, 6)
    _apply(ledger, events, 0)
    state = SignalState(store)
    cache = DigestCache(max_months=4)
    for enterprise_id in sorted({e["enterprise_id"] for e in events}):
        assert cache.months_of(state, enterprise_id) == state.months(enterprise_id)
        assert cache.months == len(state.months(enterprise_id))  # only the one just judged
