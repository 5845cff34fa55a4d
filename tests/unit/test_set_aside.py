"""A ledger step that fails for good: after its failures in a row, the rows whose apply raises
are set aside to the rejects topic (apply_failed) and the partition goes on; an outage (the
disk, the broker, Redis) is never set aside (issue 17, fault 6)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import pytest
import redis.exceptions
from confluent_kafka import KafkaException
from prometheus_client import CollectorRegistry

from agents.intake import Message
from agents.ledger import LedgerStage, is_outage
from engine import codec
from engine.errors import StateReadError
from engine.events.contract import RejectReason, Txn, validate
from engine.events.topics import REJECTED_TOPIC, ROUTED_TOPIC
from engine.metrics import WorkerMetrics
from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from tests.factories import event

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")
_KEYED = Pseudonymizer(b"test-key")
_BANK_TOPIC = "bank.BANK0001.txns"
_AFTER = 3  # failures in a row before rows are set aside


def _row(txn_id: str, offset: int, day: int = 5, amount: int = 12_345) -> list[Any]:
    element = event(txn_id=txn_id, amount_fen=amount, booked_at=f"2026-03-{day:02d}T10:22:13+08:00")
    txn = validate(element, "BANK0001")
    assert isinstance(txn, Txn), txn
    return [*txn, _BANK_TOPIC, 0, offset, None]


def _pseudonym(value: str) -> str:
    """The pseudonym function, with a bug: it raises for one account, which the ledger asks
    for once it has already written the row's record and added it to its month."""
    if value.endswith("/POISONED"):
        raise ValueError(f"no pseudonym for {value}")
    return _KEYED(value)


def _poisoned(txn_id: str, offset: int) -> list[Any]:
    """A valid transaction whose apply raises half-way (see _pseudonym)."""
    row = _row(txn_id, offset)
    row[Txn._fields.index("account")] = "POISONED"
    return row


def _ledger(store: MemoryStore | None = None) -> PartitionLedger:
    return PartitionLedger(store or MemoryStore(), _pseudonym, lambda: _REGISTRY)


def _views(ledger: PartitionLedger) -> dict[str, dict[int, Any]]:
    return {e: {m: agg.view() for m, agg in months.items()} for e, months in ledger.enterprises()}


def _only(rows: Sequence[list[Any]]) -> dict[str, dict[int, Any]]:
    """The committed views of a ledger that was given only ``rows``."""
    ledger = _ledger()
    ledger.apply_messages([codec.dumps(list(rows))])
    ledger.commit(1)
    return _views(ledger)


def _never_outage(exc: Exception) -> bool:
    return False


_ROUTED = Source(ROUTED_TOPIC, 0, 7, None)


def test_a_poisoned_row_is_set_aside_and_its_neighbours_are_applied() -> None:
    good = [_row("A", 1), _row("B", 2, day=6), _row("C", 3, day=7)]
    rows = [good[0], _poisoned("P", 2), good[1], good[2]]
    ledger = _ledger()
    with pytest.raises(Exception) as raised:  # as the step that kept failing met it
        ledger.apply_messages([codec.dumps(rows)])
    assert not is_outage(raised.value)
    ledger.rollback()

    outcomes, set_aside = ledger.apply_setting_aside(codec.dumps(rows), _ROUTED, is_outage)
    assert len(outcomes) == 3
    [item] = set_aside
    assert (item.offset, item.index) == (7, 1)
    [rejection] = ledger.rejections
    assert rejection.reason is RejectReason.APPLY_FAILED
    assert rejection.event["txn_id"] == "P" and rejection.original is None
    assert rejection.source == Source(_BANK_TOPIC, 0, 2, None)  # the bank's coordinates
    assert type(item.error).__name__ in rejection.detail
    assert "routed partition 0, offset 7, row 1" in rejection.detail
    ledger.commit(8)
    assert _views(ledger) == _only(good)  # the half-applied poison left nothing behind


def test_several_poisoned_rows_and_a_message_that_is_not_rows() -> None:
    good = [_row("A", 1), _row("B", 2, day=6)]
    rows = [_poisoned("P1", 1), good[0], _poisoned("P2", 2), good[1], 17]
    ledger = _ledger()
    outcomes, set_aside = ledger.apply_setting_aside(codec.dumps(rows), _ROUTED, is_outage)
    assert [item.index for item in set_aside] == [0, 2, 4]
    assert len(outcomes) == 2 and len(ledger.rejections) == 3
    not_a_row = ledger.rejections[2]  # no bank coordinates: its place in the routed topic
    assert not_a_row.source == Source(ROUTED_TOPIC, 0, 7, 4) and not_a_row.original == b"17"
    ledger.commit(8)
    assert _views(ledger) == _only(good)

    whole = _ledger()
    outcomes, [item] = whole.apply_setting_aside(b'[["cut sho', _ROUTED, is_outage)
    assert outcomes == [] and item.index is None
    assert whole.rejections[0].original == b'[["cut sho'
    assert whole.rejections[0].source == _ROUTED


class _FailingDisk(MemoryStore):
    """A store whose reads fail (as RocksDB's, wrapped) while ``failing``, and whose
    ``lost_write``-th write from now fails (the worker dies before that commit is on disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.lost_write = 0

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if self.failing:
            raise StateReadError("reading state database failed: IO error")
        return super().get_many(keys)

    def write(self, changes: Mapping[bytes, bytes | None]) -> None:
        if self.lost_write:
            self.lost_write -= 1
            if not self.lost_write:
                raise OSError(5, "Input/output error")
        super().write(changes)


def test_an_outage_while_setting_aside_is_raised_not_set_aside() -> None:
    store = _FailingDisk()
    ledger = _ledger(store)
    store.failing = True
    with pytest.raises(StateReadError):
        ledger.apply_setting_aside(codec.dumps([_row("A", 1)]), _ROUTED, is_outage)
    assert ledger.rejections == []


@pytest.mark.parametrize(
    "exc",
    [
        OSError(5, "Input/output error"),
        ConnectionResetError(),
        TimeoutError(),
        MemoryError(),
        StateReadError("IO error"),
        redis.exceptions.ConnectionError("Redis is loading"),
        KafkaException("broker down"),
    ],
)
def test_outages_are_told_from_poison(exc: Exception) -> None:
    assert is_outage(exc)
    wrapped = RuntimeError("while applying")
    wrapped.__cause__ = exc  # a bug's exception raised from an outage is still an outage
    assert is_outage(wrapped)


@pytest.mark.parametrize("exc", [ValueError("x"), KeyError("k"), TypeError(), AssertionError()])
def test_a_bugs_exceptions_are_not_outages(exc: Exception) -> None:
    assert not is_outage(exc)


# -- the ledger stage: failures in a row, then set aside ------------------------------------


class _Routed:
    def __init__(self, offset: int, rows: Any, partition: int = 0) -> None:
        self.topic, self.partition, self.offset = ROUTED_TOPIC, partition, offset
        self.value = rows if isinstance(rows, bytes) else codec.dumps(rows)


class _Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Awaitable[Any]:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Views:
    async def publish(
        self,
        partition: int,
        months: Mapping[str, Mapping[str, bytes]],
        as_of: Any,
        create: bool = False,
    ) -> bool:
        return True


def _set_aside(metrics: WorkerMetrics) -> float | None:
    return metrics.registry.get_sample_value("creditflow_ledger_set_aside_total")


def _stage(
    store: MemoryStore, sender: _Sender, after: int, **more: Any
) -> tuple[LedgerStage, WorkerMetrics]:
    metrics = WorkerMetrics(CollectorRegistry())
    stage = LedgerStage(
        open_store=lambda _: store,
        pseudonym=_pseudonym,
        registry=lambda: _REGISTRY,
        views=_Views(),  # type: ignore[arg-type]
        sender=sender,
        metrics=metrics,
        set_aside_after=after,
        **more,
    )
    return stage, metrics


async def _tries(stage: LedgerStage, take: Sequence[Message], most: int) -> int:
    """Process ``take`` as agents.retry.until_done does (without its waits): the number of
    tries it took, or ``most`` + 1 when it never went through."""
    for attempt in range(1, most + 1):
        try:
            await stage.process(take)
            return attempt
        except Exception:
            continue
    return most + 1


def _take() -> tuple[list[_Routed], list[list[Any]]]:
    good = [_row(f"G{i}", i, day=1 + i) for i in range(6)]
    take = [
        _Routed(0, good[0:2]),
        _Routed(1, [good[2], _poisoned("P", 9), good[3]]),
        _Routed(2, good[4:6]),
    ]
    return take, good


def test_the_stage_sets_a_poisoned_row_aside_after_its_failures_in_a_row() -> None:
    take, good = _take()
    store, sender = MemoryStore(), _Sender()
    stage, metrics = _stage(store, sender, _AFTER)
    assert _set_aside(metrics) == 0  # from start-up: rate() sees the first one

    async def scenario() -> int:
        await stage.open({0})
        tries = await _tries(stage, take, 2 * _AFTER)
        await stage.close()
        return tries

    assert asyncio.run(scenario()) == _AFTER + 1
    assert _set_aside(metrics) == 1
    [(topic, key, value)] = sender.sent
    record = codec.loads(value or b"")
    assert topic == REJECTED_TOPIC and key == f"{_BANK_TOPIC}/0/9".encode()
    assert record["reason"] == "apply_failed" and record["stage"] == "ledger"
    assert codec.loads(record["original"])["txn_id"] == "P"
    committed = PartitionLedger(store, _pseudonym, lambda: _REGISTRY)
    assert committed.progress.next_offset == 3  # past the whole take
    assert _views(committed) == _only(good)


def test_without_the_setting_a_failing_step_is_retried_for_ever() -> None:
    take, _ = _take()
    sender = _Sender()
    stage, metrics = _stage(MemoryStore(), sender, 0)

    async def scenario() -> int:
        await stage.open({0})
        return await _tries(stage, take, 4 * _AFTER)

    assert asyncio.run(scenario()) == 4 * _AFTER + 1
    assert sender.sent == [] and _set_aside(metrics) == 0


def test_an_outage_is_retried_for_ever_and_never_set_aside() -> None:
    """A disk whose reads fail while one message is applied: however many failures, nothing
    is set aside; once the disk is back, every row is applied."""
    take, good = _take()
    take[1] = _Routed(1, [good[2], good[3]])  # no poison: the disk is the fault
    store, sender = _FailingDisk(), _Sender()
    stage, metrics = _stage(store, sender, _AFTER)

    async def scenario() -> tuple[int, int]:
        await stage.open({0})
        store.failing = True
        during = await _tries(stage, take, 4 * _AFTER)
        store.failing = False
        after = await _tries(stage, take, 1)
        await stage.close()
        return during, after

    assert asyncio.run(scenario()) == (4 * _AFTER + 1, 1)
    assert sender.sent == [] and _set_aside(metrics) == 0
    assert _views(PartitionLedger(store, _pseudonym, lambda: _REGISTRY)) == _only(good)


def test_a_crash_between_the_rejection_and_the_commit_sets_the_row_aside_again() -> None:
    """The set-aside row's rejection is confirmed before the commit that moves past it: a
    worker that dies in between loses nothing. The next one sets the row aside again (the
    same record, under the same key: readers count each place once) and applies every other
    row exactly once."""
    take, good = _take()
    store, sender = _FailingDisk(), _Sender()
    crashed, _ = _stage(store, sender, _AFTER)

    async def first_life() -> int:
        await crashed.open({0})
        store.lost_write = 2  # the savepoint before the poisoned message is written, the
        return await _tries(crashed, take, _AFTER + 1)  # commit past it is lost

    assert asyncio.run(first_life()) == _AFTER + 2  # never went through
    assert len(sender.sent) == 1  # the rejection was confirmed; the commit past it is lost
    assert PartitionLedger(store, _pseudonym, lambda: _REGISTRY).progress.next_offset == 1

    restarted, metrics = _stage(store, sender, _AFTER)  # a new worker, the same state

    async def second_life() -> int:
        await restarted.open({0})
        tries = await _tries(restarted, take, 2 * _AFTER)
        await restarted.close()
        return tries

    assert asyncio.run(second_life()) == _AFTER + 1
    assert [key for _, key, _ in sender.sent] == [f"{_BANK_TOPIC}/0/9".encode()] * 2
    assert sender.sent[0][2] is not None and sender.sent[1][2] is not None
    first, again = (codec.loads(value or b"") for _, _, value in sender.sent)
    assert first["original"] == again["original"] and first["source"] == again["source"]
    assert _set_aside(metrics) == 1
    committed = PartitionLedger(store, _pseudonym, lambda: _REGISTRY)
    assert committed.progress.next_offset == 3
    assert _views(committed) == _only(good)  # every other row once, the poisoned one never


def test_failures_count_in_a_row_when_each_would_need_a_seek_back() -> None:
    """Steps applied and not committed yet, then one that fails: the rollback takes the
    partition back to its commit, and the worker seeks there. A failing partition then
    commits before each step, so its next failures are retried where they are, in a row,
    with no further seek: the row is set aside after its failures, not after as many round
    trips to the broker."""
    log = [
        _Routed(0, [_row("G0", 0, day=1)]),
        _Routed(1, [_row("G1", 1, day=2)]),
        _Routed(2, [_row("G2", 2, day=3), _poisoned("P", 9)]),
        _Routed(3, [_row("G3", 3, day=4)]),
    ]
    seeks: list[int] = []

    async def seek(partition: int, offset: int) -> None:
        seeks.append(offset)

    store, sender = MemoryStore(), _Sender()
    stage, metrics = _stage(store, sender, _AFTER, seek=seek, commit_interval=3600.0)

    async def consume() -> int:
        """A consumer of takes of two messages, retrying each as until_done does; a seek
        moves it. Returns the tries of every take together."""
        await stage.open({0})
        position, tries = 0, 0
        while position < len(log) and tries < 10 * _AFTER:
            take = log[position : position + 2]
            sought = len(seeks)
            tries += await _tries(stage, take, 2 * _AFTER)
            position = seeks[-1] if len(seeks) > sought else position + len(take)
        await stage.close()
        return tries

    tries = asyncio.run(consume())
    assert seeks == [0], seeks  # the first failure's rollback alone needs one
    # [G0 G1]; [G2+P G3] fails and seeks back; [G0 G1]; [G2+P G3] fails in a row, set aside
    assert tries == 1 + 2 + 1 + (_AFTER + 1)
    assert _set_aside(metrics) == 1 and len(sender.sent) == 1
    good = [_row(f"G{i}", i, day=1 + i) for i in range(4)]
    assert _views(PartitionLedger(store, _pseudonym, lambda: _REGISTRY)) == _only(good)


def test_poisoned_rows_of_two_partitions_in_one_take_are_set_aside_together() -> None:
    """Each partition of a take fails or goes on by its own: the healthy one is applied at
    the first try, and two poisoned ones count their failures side by side."""
    take = [
        _Routed(0, [_row("A0", 0, day=1), _poisoned("PA", 1)], partition=0),
        _Routed(0, [_row("B0", 0, day=2)], partition=1),
        _Routed(0, [_poisoned("PC", 2), _row("C0", 3, day=3)], partition=2),
    ]
    stores = {p: MemoryStore() for p in range(3)}
    sender = _Sender()
    metrics = WorkerMetrics(CollectorRegistry())
    stage = LedgerStage(
        open_store=lambda p: stores[p],
        pseudonym=_pseudonym,
        registry=lambda: _REGISTRY,
        views=_Views(),  # type: ignore[arg-type]
        sender=sender,
        metrics=metrics,
        set_aside_after=_AFTER,
    )

    async def scenario() -> tuple[int, int]:
        await stage.open({0, 1, 2})
        with pytest.raises(ExceptionGroup):  # both poisoned partitions, in one record
            await stage.process(take)
        healthy = PartitionLedger(stores[1], _pseudonym, lambda: _REGISTRY).progress
        tries = 1 + await _tries(stage, take, 2 * _AFTER)
        await stage.close()
        return healthy.next_offset, tries

    assert asyncio.run(scenario()) == (1, _AFTER + 1)
    assert _set_aside(metrics) == 2 and len(sender.sent) == 2
    kept = {0: _row("A0", 0, day=1), 1: _row("B0", 0, day=2), 2: _row("C0", 3, day=3)}
    for partition, row in kept.items():
        committed = PartitionLedger(stores[partition], _pseudonym, lambda: _REGISTRY)
        assert committed.progress.next_offset == 1, partition
        assert _views(committed) == _only([row]), partition
