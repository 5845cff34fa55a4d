"""The partition ledger and kernels against the reference, over generated logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import codec
from engine.events.contract import RejectReason, Txn, validate
from engine.periods import Period, format_month
from engine.products.classify import Registry, load_registry
from engine.products.history import History, MonthView
from engine.products.kernels import KERNELS, Context
from engine.products.specs import SPECS_DIR, load_products
from engine.pseudonym import Pseudonymizer
from state.kv import KVStore
from state.ledger import PartitionLedger
from state.ledger_types import Outcome, Source
from state.memory import MemoryStore
from state.rocksdb import RocksDBStore, shared_block_cache
from tests import reference
from tests.compare import differences
from tests.factories import event
from tests.reference.events import transactions
from tests.strategies import transaction_log

StoreFactory = Callable[[], KVStore]
PSEUDONYM = Pseudonymizer(b"test-key")
_REGISTRY = load_registry(SPECS_DIR / "registries.toml")


def current_registry() -> Registry:
    return _REGISTRY


@pytest.fixture(params=["memory", "rocksdb"])
def new_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreFactory]:
    opened: list[KVStore] = []
    cache = shared_block_cache(1 << 20)

    def make() -> KVStore:
        store: KVStore = (
            MemoryStore()
            if request.param == "memory"
            else RocksDBStore(tmp_path_factory.mktemp("db"), cache)
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _apply(ledger: PartitionLedger, events: list[dict[str, Any]], offset: int = 0) -> int:
    for index, element in enumerate(events):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        ledger.apply(txn, Source(f"bank.{element['bank']}.txns", 0, offset + index, None))
    return offset + len(events)


def _engine_products(
    ledger: PartitionLedger, expected: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """What the engine computes, from the month views a worker would publish."""
    specs = load_products()
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for enterprise_id, months in ledger.enterprises():
        history = History(
            {
                m: MonthView.from_json(codec.loads(codec.dumps(agg.view())))
                for m, agg in months.items()
            }
        )
        periods = {}
        for label in expected.get(enterprise_id, {}):
            quarterly = "Q" in label
            period = Period.quarterly(label) if quarterly else Period.monthly(label)
            assert period is not None
            spec = specs["quarterly" if quarterly else "monthly"]
            ctx = Context(history, period, spec.parameters)
            periods[label] = {item: KERNELS[item](ctx) for item in expected[enterprise_id][label]}
        result[enterprise_id] = periods
    return result


def _assert_same(log: list[dict[str, Any]], ledger: PartitionLedger) -> None:
    expected = reference.products(log)
    problems = differences(expected, _engine_products(ledger, expected))
    assert not problems, "\n".join(problems[:10])


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(log=transaction_log())
def test_every_item_matches_the_reference(
    new_store: StoreFactory, log: list[dict[str, Any]]
) -> None:
    ledger = PartitionLedger(new_store(), PSEUDONYM, current_registry)
    ledger.commit(_apply(ledger, log))
    _assert_same(log, ledger)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(log=transaction_log())
def test_committing_in_steps_and_reopening_changes_nothing(
    new_store: StoreFactory, log: list[dict[str, Any]]
) -> None:
    store = new_store()
    cut = len(log) // 2
    first = PartitionLedger(store, PSEUDONYM, current_registry)
    first.commit(_apply(first, log[:cut]))
    reopened = PartitionLedger(store, PSEUDONYM, current_registry)  # as after a restart
    assert reopened.progress.next_offset == cut
    reopened.commit(_apply(reopened, log[cut:], offset=cut))
    _assert_same(log, reopened)


def test_uncommitted_work_is_not_in_the_store(new_store: StoreFactory) -> None:
    store = new_store()
    ledger = PartitionLedger(store, PSEUDONYM, current_registry)
    _apply(ledger, [event()])
    assert list(PartitionLedger(store, PSEUDONYM, current_registry).enterprises()) == []
    ledger.commit(1)
    assert [e for e, _ in PartitionLedger(store, PSEUDONYM, current_registry).enterprises()] == [
        event()["enterprise_id"]
    ]


def test_outcomes_and_rejections(new_store: StoreFactory) -> None:
    ledger = PartitionLedger(new_store(), PSEUDONYM, current_registry)
    src = Source("bank.BANK0001.txns", 0, 0, None)

    def apply(**fields: Any) -> Outcome:
        txn = validate(event(**fields), "BANK0001")
        assert isinstance(txn, Txn)
        return ledger.apply(txn, src)

    assert apply(txn_id="A") == Outcome.APPLIED
    assert apply(txn_id="A") == Outcome.DUPLICATE
    assert apply(txn_id="A", amount_fen=1) == Outcome.REJECTED
    assert apply(txn_id="RB", reversal_of="B") == Outcome.REVERSAL_PENDING
    assert apply(txn_id="RB2", reversal_of="B") == Outcome.REJECTED
    assert apply(txn_id="B") == Outcome.REVERSED_ON_ARRIVAL
    assert apply(txn_id="RA", reversal_of="A") == Outcome.REVERSAL_APPLIED
    assert apply(txn_id="RRA", reversal_of="RA") == Outcome.REJECTED
    assert apply(txn_id="RA2", reversal_of="A") == Outcome.REJECTED
    reasons = [r.reason for r in ledger.rejections]
    assert reasons == [
        RejectReason.CONFLICTING_DUPLICATE,
        RejectReason.BAD_REVERSAL,
        RejectReason.BAD_REVERSAL,
        RejectReason.BAD_REVERSAL,
    ]
    assert all(r.event["txn_id"] for r in ledger.rejections)
    ledger.commit(1)
    assert ledger.month(event()["enterprise_id"], 2026 * 12 + 2) is None  # all reversed


def test_a_pending_reversal_of_a_reversal_is_rejected_when_its_target_arrives(
    new_store: StoreFactory,
) -> None:
    ledger = PartitionLedger(new_store(), PSEUDONYM, current_registry)
    src = Source("bank.BANK0001.txns", 0, 7, 2)
    for fields in (
        {"txn_id": "RR", "reversal_of": "R"},
        {"txn_id": "A"},
        {"txn_id": "R", "reversal_of": "A"},
    ):
        txn = validate(event(**fields), "BANK0001")
        assert isinstance(txn, Txn)
        ledger.apply(txn, src)
    [rejection] = ledger.rejections
    assert rejection.reason == RejectReason.BAD_REVERSAL and rejection.event["txn_id"] == "RR"
    assert rejection.source == src
    ledger.commit(1)
    assert ledger.month(event()["enterprise_id"], 2026 * 12 + 2) is None


def test_month_labels_are_sortable() -> None:
    assert format_month(2026 * 12) == "2026-01" and format_month(2025 * 12 + 11) == "2025-12"


def test_rocksdb_store_survives_reopen(tmp_path: Path) -> None:
    cache = shared_block_cache(1 << 20)
    store = RocksDBStore(tmp_path, cache)
    store.write({b"a|1": b"x", b"a|2": b"y", b"b|1": b"z"})
    store.write({b"a|1": None})
    store.close()
    store = RocksDBStore(tmp_path, cache)
    assert list(store.scan_prefix(b"a|")) == [(b"a|2", b"y")]
    assert store.get_many([b"a|2", b"q"]) == [b"y", None]
    assert store.size_bytes() > 0
    store.close()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(log=transaction_log())
def test_a_rolled_back_step_can_be_applied_again(
    new_store: StoreFactory, log: list[dict[str, Any]]
) -> None:
    ledger = PartitionLedger(new_store(), PSEUDONYM, current_registry)
    cut = len(log) // 2
    ledger.commit(_apply(ledger, log[:cut]))
    _apply(ledger, log[cut:], offset=cut)  # a step that fails before its commit ...
    ledger.rollback()
    assert ledger.progress.next_offset == cut
    ledger.commit(_apply(ledger, log[cut:], offset=cut))  # ... and is retried
    _assert_same(log, ledger)


def test_pruning_forgets_what_falls_out_of_the_kept_history(new_store: StoreFactory) -> None:
    log = [
        event(
            txn_id=f"T{month}",
            booked_at=f"2025-{month:02d}-15T10:00:00+08:00",
            balance_after_fen=month,
        )
        for month in range(1, 13)
    ] + [
        event(txn_id="R-old", booked_at="2025-02-20T10:00:00+08:00", reversal_of="never-seen"),
        event(txn_id="R-new", booked_at="2025-08-20T10:00:00+08:00", reversal_of="not-yet"),
    ]
    ledger = PartitionLedger(new_store(), PSEUDONYM, current_registry)
    ledger.commit(_apply(ledger, log))
    before = _engine_products(ledger, reference.products(log))
    horizon = 2025 * 12 + 5  # June 2025
    # A reversal whose own booking leaves the kept history can no longer meet its original:
    # it goes to the rejects topic with its reason (the worker sends it before pruning) ...
    assert ledger.reversals_waiting == 2
    (expiring,) = ledger.expiring_reversals(horizon)
    assert expiring.reason == RejectReason.BAD_REVERSAL
    assert "never arrived" in expiring.detail
    assert (expiring.event["txn_id"], expiring.source.offset) == ("R-old", 12)
    # ... and one booked within it goes on waiting.
    pruned = ledger.prune(horizon)
    months, carry = pruned[event()["enterprise_id"]]
    assert list(pruned) == [event()["enterprise_id"]]
    assert sorted(months) == [2025 * 12 + m for m in range(5)]
    # what the pruned months leave: the account's balance after its last pruned booking
    # (May's), the first and last days booked, where the kept history starts
    assert carry == ledger.carry(event()["enterprise_id"])
    assert (carry.kept_from, carry.first_day, carry.last_day) == (
        horizon,
        "2025-01-15",
        "2025-05-15",
    )
    assert [balance for _, balance in carry.accounts.values()] == [5]
    kept = {
        label: items
        for label, items in before[event()["enterprise_id"]].items()
        if label >= "2025-06" and "Q" not in label
    }
    after = _engine_products(ledger, {event()["enterprise_id"]: kept})
    # Monthly flows of kept months are unchanged; nothing before the horizon is left.
    for label, items in kept.items():
        assert (
            after[event()["enterprise_id"]][label]["inflow_amount_fen"]
            == items["inflow_amount_fen"]
        )
    assert all(month >= horizon for _, months in ledger.enterprises() for month in months)
    assert ledger.prune(horizon) == {}  # idempotent
    assert ledger.reversals_waiting == 1 and ledger.expiring_reversals(horizon) == []
    # The old transaction is forgotten entirely: it could now be booked again.
    again = validate(event(txn_id="T1", booked_at="2025-01-15T10:00:00+08:00"), "BANK0001")
    assert isinstance(again, Txn)
    assert ledger.apply(again, Source("t", 0, 99, None)) == Outcome.APPLIED


# -- month views against a plain computation, rows applied in batches ------------------------

MONTH_VIEW_PARTS = (
    "flows",
    "cross",
    "currency",
    "days",
    "accounts",
    "parties",
    "registry",
    "marks",
)


def _plain_marks(t: Any) -> list[str]:
    """What is followed of a transaction by day (state/month.py's marks), from its class,
    channel and counterparty kind."""
    lends = (t.cls, t.channel) == ("BANK_OWN", "loan") or (
        t.cls == "FIN_PARTNER" and t.subtype in ("bank", "lender", "lessor", "factor")
    )
    if t.inflow:
        holding = [
            ("loan_in", lends),
            ("cash_in", t.cls == "CASH"),
            ("psp_in", t.cls == "PSP"),
            ("from_person", t.individual and t.cls != "SELF"),
        ]
        return [mark for mark, holds in holding if holds]
    public = {("UTILITY", s): f"{s}_paid" for s in ("power", "water", "gas")}
    public.update({("PAYROLL", t.subtype): "payroll_paid", ("TAX", t.subtype): "tax_paid"})
    paid = [public[t.cls, t.subtype]] if (t.cls, t.subtype) in public else []
    for mark, holds in (
        ("judicial", t.cls == "JUDICIAL"),
        ("to_lender", lends),
        ("to_self", t.cls == "SELF"),
        ("to_person", t.individual and t.cls != "PAYROLL"),
    ):
        if holds:
            return [*paid, mark]
    return paid


# Restated from the README's taxonomy, not imported: operating inflow and outflow classes.
_OPERATING = {
    True: {"TRADE", "PSP", "CASH"},
    False: {"TRADE", "PAYROLL", "UTILITY", "TAX", "SOCIAL", "GOV_OTHER", "PSP", "CASH"},
}


def _plain_views(log: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Every month view (MonthAgg.view(), as JSON) from the reference's counted transactions."""
    views: dict[str, dict[int, dict[str, Any]]] = {}
    last: dict[tuple[str, int, str, str], tuple[Any, str, int]] = {}  # -> (when, txn_id, balance)
    banks: dict[str, str] = {}
    version = str(_REGISTRY.version)
    for enterprise_id, txns in transactions(log).items():
        for t in txns:
            view = views.setdefault(enterprise_id, {}).setdefault(
                t.month, {part: {} for part in MONTH_VIEW_PARTS}
            )
            direction = "i" if t.inflow else "o"
            column = 0 if t.inflow else 1
            bank_channel = ""
            if t.cls == "BANK_OWN":
                bank_channel = (
                    t.channel
                    if t.channel in ("loan", "interest", "fee", "margin", "bill")
                    else "other"
                )
            for part, key in (
                ("flows", f"{direction}|{t.cls}|{t.subtype}|{bank_channel}"),
                *((("cross", direction),) if t.cross_border else ()),
            ):
                entry = view[part].setdefault(key, [0, 0])
                entry[0] += t.amount
                entry[1] += 1
            if t.currency != "CNY":
                view["currency"][t.currency] = view["currency"].get(t.currency, 0) + 1
            daily = view["days"].setdefault(str(t.day.day), [0, 0, 0, 0, 0])
            daily[column] += t.amount
            if t.cls in _OPERATING[t.inflow]:
                daily[column + 2] += t.amount
            daily[4] += 1
            if t.cp != enterprise_id:
                party = view["parties"].setdefault(f"{t.cls}|{PSEUDONYM(t.cp)}", [0, 0, 0])
                party[column] += t.amount
                party[2] += 1
            view["registry"][version] = view["registry"].get(version, 0) + 1
            for mark in _plain_marks(t):
                if mark in ("loan_in", "to_lender"):  # kept by lender
                    mark = f"{mark}|{t.cls}|{PSEUDONYM(t.cp)}"
                marked = view["marks"].setdefault(str(t.day.day), {}).setdefault(mark, [0, 0])
                marked[0] += t.amount
                marked[1] += 1
            account = PSEUDONYM(f"{t.bank}/{t.account[1]}")
            banks[account] = t.bank
            slot = (enterprise_id, t.month, account, str(t.day.day))
            if slot not in last or (t.when, t.txn_id) > last[slot][:2]:
                last[slot] = (t.when, t.txn_id, t.balance)
    for (enterprise_id, month, account, day), (_, _, balance) in last.items():
        accounts = views[enterprise_id][month]["accounts"]
        accounts.setdefault(account, {"bank": banks[account], "days": {}})["days"][day] = balance
    return views


def _rows(log: list[dict[str, Any]]) -> list[list[Any]]:
    """The routed rows of a log: a Txn's fields, then its source (one bank message each)."""
    rows = []
    for offset, element in enumerate(log):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        rows.append([*txn, f"bank.{element['bank']}.txns", 0, offset, None])
    return rows


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    log=transaction_log(),
    step=st.integers(1, 30),
    message=st.integers(1, 8),
    reopen=st.booleans(),
)
def test_month_views_match_a_plain_computation_when_applied_in_batches(
    new_store: StoreFactory, log: list[dict[str, Any]], step: int, message: int, reopen: bool
) -> None:
    """Batches put duplicates, a reversal and its original, and reversals of reversals in
    one step (read through its own uncommitted writes), and across steps and reopens."""
    store = new_store()
    ledger = PartitionLedger(store, PSEUDONYM, current_registry)
    rows = _rows(log)
    outcomes: list[Outcome] = []
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        outcomes += ledger.apply_messages(
            [codec.dumps(chunk[i : i + message]) for i in range(0, len(chunk), message)]
        )
        ledger.commit(start + len(chunk))
        if reopen:  # as after a restart: nothing but the store is kept
            ledger = PartitionLedger(store, PSEUDONYM, current_registry)
    engine = {
        enterprise_id: {
            month: codec.loads(codec.dumps(agg.view())) for month, agg in months.items()
        }
        for enterprise_id, months in ledger.enterprises()
    }
    assert engine == _plain_views(log)
    # The same outcomes as one event at a time.
    one_by_one = PartitionLedger(new_store(), PSEUDONYM, current_registry)
    assert outcomes == [one_by_one.apply(Txn(*row[:-4]), Source(*row[-4:])) for row in rows]
    # Progress: every event that was not a duplicate or conflict counts (bad reversals too).
    counted = {Outcome.APPLIED, Outcome.REVERSAL_APPLIED, Outcome.REVERSAL_PENDING}
    counted.add(Outcome.REVERSED_ON_ARRIVAL)
    for bank in {row[1] for row in rows}:
        offsets = [i for i, row in enumerate(rows) if row[1] == bank]
        at_least = max((i for i in offsets if outcomes[i] in counted), default=None)
        at_most = max((i for i in offsets if outcomes[i] != Outcome.DUPLICATE), default=None)
        noted = ledger.progress.sources.get(f"bank.{bank}.txns/0")
        if at_most is None:
            assert noted is None
        else:
            assert noted is not None and (at_least or 0) <= noted <= at_most
