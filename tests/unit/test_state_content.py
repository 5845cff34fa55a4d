"""A state folded by an engine that kept less of each event rebuilds by itself
(state/content.py): what the routed topic gives back is dropped and folded again, the signal
episodes stay. On both stores (RocksDB is what workers run on)."""

from __future__ import annotations

from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from state.content import CONTENT_KEY, STATE_CONTENT, rebuild_if_older
from state.kv import KVStore
from state.ledger import PartitionLedger
from state.ledger_types import META_KEY
from tests.factories import enterprise_ids
from tests.signal_stand_ins import StandInLedger

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")
FIRMS = enterprise_ids(3, seed=31)
KEPT = {b"S|" + FIRMS[0].encode() + b"|account_overdrawn", b"G|" + FIRMS[0].encode()}
SIGNAL_META = {b"_signals_changelog", b"_signals_day"}


def _fold(store: KVStore) -> None:
    """The events a worker folds from the routed topic, into ``store``."""
    ledger = StandInLedger(1)
    ledger.ledgers[0] = PartitionLedger(store, Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    for k, firm in enumerate(FIRMS * 3):
        ledger.book(0, firm, f"2026-03-{10 + k:02d}T10:00:00+08:00")


def _old_state(store: KVStore) -> None:
    """A partition as an engine before the content number left it: folded, with episodes."""
    _fold(store)
    store.write({CONTENT_KEY: None} | dict.fromkeys(KEPT | SIGNAL_META, b"[]"))


def _keys(store: KVStore) -> set[bytes]:
    return {key for key, _ in store.scan_prefix(b"")}


def test_a_fresh_state_is_only_stamped(store: KVStore) -> None:
    assert not rebuild_if_older(store)
    assert _keys(store) == {CONTENT_KEY}


def test_a_state_without_the_number_drops_what_the_routed_topic_gives_back(
    store: KVStore,
) -> None:
    _old_state(store)
    months = dict(store.scan_prefix(b"M|"))
    assert months and store.get(META_KEY) is not None
    assert rebuild_if_older(store)
    assert _keys(store) == KEPT | SIGNAL_META | {CONTENT_KEY}
    assert store.get(CONTENT_KEY) == str(STATE_CONTENT).encode()
    assert not rebuild_if_older(store)  # once
    # folded again from the start, as the worker then does: the same months (a ledger
    # record left behind would have made the events duplicates)
    _fold(store)
    assert dict(store.scan_prefix(b"M|")) == months


def test_an_interrupted_drop_goes_on_instead_of_taking_the_leftovers_for_a_state(
    store: KVStore,
) -> None:
    _old_state(store)
    store.write({CONTENT_KEY: b"rebuilding", META_KEY: None})  # crashed after the first batch
    assert rebuild_if_older(store)
    assert _keys(store) == KEPT | SIGNAL_META | {CONTENT_KEY}


def test_a_state_of_this_content_is_left_alone(store: KVStore) -> None:
    _old_state(store)
    store.write({CONTENT_KEY: str(STATE_CONTENT).encode()})
    before = dict(store.scan_prefix(b""))
    assert not rebuild_if_older(store)
    assert dict(store.scan_prefix(b"")) == before
