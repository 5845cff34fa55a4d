"""A partition's signal state: markers written with the commit that changed an enterprise,
episodes stored and read back, and a second evaluation of the same data changing nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from engine import codec
from engine.events.contract import Txn, validate
from engine.products.classify import load_registry
from engine.products.history import MonthView
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from engine.signals.episodes import State
from engine.signals.evaluate import RuleSet, evaluate
from engine.signals.spec import load_signals
from engine.signals.timeline import MonthDays, month_of
from loadtest.generator import GeneratorConfig, generate
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from state.signals import SignalState, month_days
from tests.factories import ENTERPRISE, enterprise_ids, event

CST = timezone(timedelta(hours=8))
DAY = date(2026, 3, 10)
RULES = RuleSet.of(load_signals())
_REGISTRY = load_registry(SPECS_DIR / "registries.toml")


def _ledger(store: MemoryStore) -> PartitionLedger:
    return PartitionLedger(store, Pseudonymizer(b"test-key"), lambda: _REGISTRY)


def _apply(ledger: PartitionLedger, events: list[dict[str, Any]], offset: int) -> None:
    for k, element in enumerate(events):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        ledger.apply(txn, Source("bank.BANK0001.txns", 0, offset + k, None))
    ledger.commit(offset + len(events))


def _overdraft(enterprise: str = ENTERPRISE) -> list[dict[str, Any]]:
    at = datetime(DAY.year, DAY.month, DAY.day, 10, tzinfo=CST)
    return [
        event(
            enterprise_id=enterprise, txn_id="A1", booked_at=(at - timedelta(days=3)).isoformat()
        ),
        event(
            enterprise_id=enterprise,
            txn_id="A2",
            direction="out",
            amount_fen=1_100_000,
            balance_after_fen=-100_000,
            booked_at=at.isoformat(),
        ),
    ]


def test_a_commit_marks_what_it_changed_and_an_evaluation_clears_it() -> None:
    store = MemoryStore()
    ledger, state = _ledger(store), SignalState(store)
    _apply(ledger, _overdraft(), 0)
    assert list(state.marked()) == [ENTERPRISE]
    before = state.episodes(ENTERPRISE)
    assert evaluate(ENTERPRISE, state.months(ENTERPRISE), DAY, before, RULES).transitions == []
    # Overdrawn at the end of three days running (the rule's persist_days): raised.
    judged = evaluate(ENTERPRISE, state.months(ENTERPRISE), DAY + timedelta(days=2), before, RULES)
    assert [(c.state, c.episode.rule, c.episode.start) for c in judged.transitions] == [
        (State.RAISED, "account_overdrawn", DAY + timedelta(days=2))
    ]
    state.evaluated({ENTERPRISE: (before, judged.open)}, [ENTERPRISE])
    assert list(state.marked()) == []
    stored = state.episodes(ENTERPRISE)
    assert stored["account_overdrawn"].id == judged.open["account_overdrawn"].id
    # The same data judged again (a replay, a restart): nothing changes.
    again = evaluate(ENTERPRISE, state.months(ENTERPRISE), DAY + timedelta(days=2), stored, RULES)
    assert again.transitions == [] and again.open.keys() == stored.keys()
    # A receipt the day after: the episode ends, cleared, and is no longer stored as open.
    receipt = event(
        txn_id="A3",
        amount_fen=500_000,
        balance_after_fen=400_000,
        booked_at=f"{DAY + timedelta(days=3)}T09:00:00+08:00",
    )
    _apply(ledger, [receipt], 2)
    after = evaluate(ENTERPRISE, state.months(ENTERPRISE), DAY + timedelta(days=3), stored, RULES)
    assert [(c.state, c.episode.id) for c in after.transitions] == [
        (State.CLEARED, stored["account_overdrawn"].id)
    ]
    state.evaluated({ENTERPRISE: (stored, after.open)}, [ENTERPRISE])
    assert "account_overdrawn" not in state.episodes(ENTERPRISE)


def test_a_new_day_marks_every_enterprise_once_a_chunk_at_a_time() -> None:
    store = MemoryStore()
    ledger, state = _ledger(store), SignalState(store)
    everyone = sorted((ENTERPRISE, *enterprise_ids(4, seed=77)))
    _apply(ledger, [e for who in everyone for e in _overdraft(who)], 0)
    state.evaluated({}, everyone)
    assert state.day() is None and state.sweep(2) is None  # no sweep under way
    state.start_sweep(DAY)
    swept = [state.sweep(2), state.sweep(2)]
    assert swept == [everyone[:2], everyone[2:4]]
    assert sorted(state.marked()) == everyone[:4]  # marked as swept: a crash loses none
    # A restart resumes the sweep where its cursor is (a state read anew, as after a crash).
    assert SignalState(store).sweep(2) == everyone[4:]
    assert state.sweep(2) is None and state.day() == DAY
    assert sorted(state.marked()) == everyone


def test_the_digest_of_state_is_the_digest_of_the_published_view() -> None:
    store = MemoryStore()
    ledger = _ledger(store)
    # Generated flows of every class, channel and subtype (customers, financing partners,
    # streams), with reversals: what the rules read must not depend on where it is read.
    config = GeneratorConfig(
        seed=5, enterprises=12, months=3, banks=("BANK0001",), end_month=month_of(DAY)
    )
    events = [e for e in generate(config) if validate(e, e["bank"]).__class__ is Txn]
    _apply(ledger, [*_overdraft(), *events], 0)
    digests = [
        (
            month_days(agg),
            MonthDays.of_view(MonthView.from_json(codec.loads(codec.dumps(agg.view())))),
        )
        for _, months in ledger.enterprises()
        for agg in months.values()
    ]
    assert all(state == view for state, view in digests)
    assert any(state.partners for state, _ in digests) and any(s.customers for s, _ in digests)
    assert any(0 in state.partners.values() for state, _ in digests)  # repaid, not lent


def test_the_state_gives_the_balances_pruning_carried() -> None:
    # a savings account's only booking, 20 months before DAY, pruned at a 15-month history
    store = MemoryStore()
    ledger = _ledger(store)
    old = datetime(DAY.year - 2, DAY.month, 5, 10, tzinfo=CST)
    savings = event(
        txn_id="S1", account="SAVINGS-1", balance_after_fen=7_000_000, booked_at=old.isoformat()
    )
    _apply(ledger, [savings, *_overdraft()], 0)
    state = SignalState(store)
    assert state.carried(ENTERPRISE) == {}
    ledger.prune(month_of(DAY) - 14)
    (balance,) = state.carried(ENTERPRISE).values()
    assert balance == 7_000_000
