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
from state.signals import KeptEpisodes, SignalState, encode_kept, kept_after, month_days
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


# -- the episodes kept for the products (open and closed, as long as the history) ----------


def _judge(state: SignalState, day: date) -> None:
    """One evaluation of ENTERPRISE on ``day`` as the signal stage makes it: the transitions,
    then the open and the kept episodes stored."""
    before = state.episodes(ENTERPRISE)
    judged = evaluate(ENTERPRISE, state.months(ENTERPRISE), day, before, RULES)
    kept = kept_after(state.kept(ENTERPRISE), before, judged.transitions, day)
    state.evaluated({ENTERPRISE: (before, judged.open)}, [ENTERPRISE], {ENTERPRISE: kept})


def _receipt(day: date, txn_id: str = "A3") -> dict[str, Any]:
    return event(
        txn_id=txn_id,
        amount_fen=500_000,
        balance_after_fen=400_000,
        booked_at=f"{day}T09:00:00+08:00",
    )


def test_a_cleared_episode_is_kept_closed_on_the_day_it_was_cleared() -> None:
    store = MemoryStore()
    ledger, state = _ledger(store), SignalState(store)
    _apply(ledger, _overdraft(), 0)
    raised_on = DAY + timedelta(days=2)
    _judge(state, raised_on)
    assert state.kept(ENTERPRISE) == {("account_overdrawn", raised_on): None}
    _apply(ledger, [_receipt(DAY + timedelta(days=3))], 2)
    _judge(state, DAY + timedelta(days=3))
    # no longer open, still kept: it covered DAY+2 (the day it closed is not covered)
    assert "account_overdrawn" not in state.episodes(ENTERPRISE)
    assert state.kept(ENTERPRISE) == {("account_overdrawn", raised_on): DAY + timedelta(days=3)}
    assert encode_kept(state.kept(ENTERPRISE)) == codec.dumps(
        [["account_overdrawn", "2026-03-12", "2026-03-13"]]
    )


def test_judging_the_same_data_again_keeps_each_episode_once() -> None:
    # a replay, a restart, a new day's sweep: the same episodes, nothing added or moved
    store = MemoryStore()
    ledger, state = _ledger(store), SignalState(store)
    _apply(ledger, _overdraft(), 0)
    for _ in range(2):
        _judge(state, DAY + timedelta(days=2))
    _judge(state, DAY + timedelta(days=4))  # still overdrawn two days later: the same run
    assert state.kept(ENTERPRISE) == {("account_overdrawn", DAY + timedelta(days=2)): None}
    _apply(ledger, [_receipt(DAY + timedelta(days=5))], 2)
    for _ in range(2):
        _judge(state, DAY + timedelta(days=5))
    _judge(state, DAY + timedelta(days=6))  # judged again a day later: still closed on DAY+5
    assert state.kept(ENTERPRISE) == {
        ("account_overdrawn", DAY + timedelta(days=2)): DAY + timedelta(days=5)
    }


def test_a_retracted_episode_is_not_kept() -> None:
    # the overdraft's outflow reversed: the episode never held, and no product counts it
    store = MemoryStore()
    ledger, state = _ledger(store), SignalState(store)
    overdraft = _overdraft()
    _apply(ledger, overdraft, 0)
    _judge(state, DAY + timedelta(days=2))
    assert state.kept(ENTERPRISE)
    reversal = dict(
        overdraft[1],
        txn_id="A2-R",
        direction="in",
        balance_after_fen=1_000_000,
        booked_at=f"{DAY}T11:00:00+08:00",
        reversal_of="A2",
    )
    _apply(ledger, [reversal], 2)
    _judge(state, DAY + timedelta(days=2))
    assert state.episodes(ENTERPRISE) == {} and state.kept(ENTERPRISE) == {}
    assert store.get(b"G|" + ENTERPRISE.encode()) is None


def test_an_episode_open_before_episodes_were_kept_is_kept_from_its_start() -> None:
    # a state written before this version: the open episode (S|) is kept at the next judgment
    store = MemoryStore()
    ledger, state = _ledger(store), SignalState(store)
    _apply(ledger, _overdraft(), 0)
    before = state.episodes(ENTERPRISE)
    judged = evaluate(ENTERPRISE, state.months(ENTERPRISE), DAY + timedelta(days=2), before, RULES)
    state.evaluated({ENTERPRISE: (before, judged.open)}, [ENTERPRISE])  # no kept episodes
    assert state.kept(ENTERPRISE) == {}
    _judge(state, DAY + timedelta(days=3))
    assert state.kept(ENTERPRISE) == {("account_overdrawn", DAY + timedelta(days=2)): None}


def test_kept_episodes_are_pruned_with_the_history() -> None:
    start, closed = date(2025, 1, 10), date(2025, 2, 3)
    kept: KeptEpisodes = {
        ("judicial_deduction", start): closed,  # covers 2025-01-10 .. 2025-02-02
        ("account_overdrawn", date(2025, 1, 20)): date(2025, 2, 1),  # .. 2025-01-31
        ("operating_inflow_stopped", date(2024, 11, 2)): None,  # still open: kept
    }
    store = MemoryStore()
    state = SignalState(store)
    state.evaluated({}, [], {ENTERPRISE: kept, "OTHER": {("account_overdrawn", start): closed}})
    # the kept history begins on 2025-02-01: the episode that closed on it covered none of it
    assert state.prune_kept(date(2025, 2, 1)) == {
        ENTERPRISE: {
            ("judicial_deduction", start): closed,
            ("operating_inflow_stopped", date(2024, 11, 2)): None,
        }
    }
    assert state.prune_kept(date(2025, 2, 1)) == {}  # idempotent
    assert dict(state.all_kept()) == {
        "OTHER": encode_kept({("account_overdrawn", start): closed}),
        ENTERPRISE: encode_kept(state.kept(ENTERPRISE)),
    }
    # one day later the deduction's episode goes too; an enterprise left with none has no key
    assert state.prune_kept(date(2025, 2, 3)) == {
        ENTERPRISE: {("operating_inflow_stopped", date(2024, 11, 2)): None},
        "OTHER": {},
    }
    assert [e for e, _ in state.all_kept()] == [ENTERPRISE]


def test_an_episode_whose_end_is_seen_late_closes_where_its_run_ended() -> None:
    # raised on DAY+2; the receipt of DAY+4 is judged only on DAY+7 (it came late, or the
    # worker was away): the episode covered DAY+2 and DAY+3, not the days until it was seen
    store = MemoryStore()
    ledger, state = _ledger(store), SignalState(store)
    _apply(ledger, _overdraft(), 0)
    _judge(state, DAY + timedelta(days=2))
    _apply(ledger, [_receipt(DAY + timedelta(days=4))], 2)
    _judge(state, DAY + timedelta(days=7))
    assert state.kept(ENTERPRISE) == {
        ("account_overdrawn", DAY + timedelta(days=2)): DAY + timedelta(days=4)
    }
