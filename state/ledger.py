"""The state of one partition: a ledger of every transaction seen, and month aggregates.

The ledger makes processing idempotent and reversals exact:
- a redelivered duplicate (same bank, txn_id and content) changes nothing;
- the same (bank, txn_id) with other content is rejected, the first one stays;
- a reversal removes its original from every aggregate, whichever of the two comes first.

Aggregates change incrementally. Nothing is written until :meth:`PartitionLedger.commit`,
which writes the ledger, the touched month aggregates and the consumed offset in one atomic
batch: a crash loses a whole step or nothing, and the stored offset says where to resume.

Keys (renaming one is a migration):
    L|<enterprise>|<bank>|<txn_id>     ledger record
    P|<enterprise>|<bank>|<txn_id>     a reversal waiting for this original
    M|<enterprise>|<YYYY-MM>           month aggregate
    _meta                              progress: next routed offset, sources, watermark
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Any

from engine import codec
from engine.classify import Classification, Registry, classify
from engine.contract import RejectReason, Txn
from engine.periods import (
    DAY_US,
    day_start_us,
    format_month,
    month_day_of_us,
    month_start_us,
    parse_month,
)
from state.kv import KVStore
from state.month import MonthAgg

__all__ = ["META_KEY", "Outcome", "PartitionLedger", "Progress", "Rejection", "Source"]

META_KEY = b"_meta"
# Ledger record statuses.
_COUNTED = "C"  # counted in its month
_REVERSED = "X"  # an original removed by its reversal
_REVERSAL = "R"  # a reversal that removed its original
_PENDING = "P"  # a reversal whose original has not arrived yet
# Ledger record fields.
(
    _STATUS,
    _HASH,
    _BOOKED,
    _INFLOW,
    _AMOUNT,
    _BALANCE,
    _ACCOUNT,
    _CP,
    _LINK,
    _EVENT,
    _CLASS,
    _SUBTYPE,
    _CHANNEL,
    _CURRENCY,
    _REGISTRY,
) = range(15)


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REVERSAL_APPLIED = "reversal_applied"
    REVERSAL_PENDING = "reversal_pending"
    REVERSED_ON_ARRIVAL = "reversed_on_arrival"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Source:
    """Where an event was published: bank topic, partition, offset, index in a batch."""

    topic: str
    partition: int
    offset: int
    index: int | None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
    event: dict[str, Any]
    source: Source


@dataclass(slots=True)
class Progress:
    next_offset: int = 0  # next offset of the routed partition to apply
    watermark_us: int | None = None  # latest booked_at applied
    sources: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> last offset

    def encode(self) -> bytes:
        return codec.dumps([self.next_offset, self.watermark_us, self.sources])

    @classmethod
    def decode(cls, data: bytes | None) -> Progress:
        if data is None:
            return cls()
        next_offset, watermark_us, sources = codec.loads(data)
        return cls(next_offset, watermark_us, sources)


def _ledger_key(enterprise_id: str, bank: str, txn_id: str) -> bytes:
    return f"L|{enterprise_id}|{bank}|{txn_id}".encode()


def _pending_key(enterprise_id: str, bank: str, txn_id: str) -> bytes:
    return f"P|{enterprise_id}|{bank}|{txn_id}".encode()


def _month_key(enterprise_id: str, month: int) -> bytes:
    return f"M|{enterprise_id}|{format_month(month)}".encode()


class PartitionLedger:
    def __init__(
        self,
        store: KVStore,
        pseudonym: Callable[[str], str],
        registry: Callable[[], Registry],
        cache_limit: int = 2_500,
    ) -> None:
        self._store = store
        self._pseudonym = pseudonym
        self._registry = registry
        self._cache_limit = cache_limit
        self.progress = Progress.decode(store.get(META_KEY))
        self._writes: dict[bytes, bytes | None] = {}
        # Uncommitted ledger writes per (enterprise, bank): the re-derivation reads them
        # without walking every pending write of the step.
        self._ledger_writes: dict[tuple[str, str], dict[bytes, bytes | None]] = {}
        self._months: dict[tuple[str, int], MonthAgg] = {}
        self._dirty: set[tuple[str, int]] = set()
        self.rejections: list[Rejection] = []

    # -- reading through the uncommitted writes -------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._store.get(key)

    def _record(self, key: bytes) -> list[Any] | None:
        raw = self._get(key)
        return None if raw is None else codec.loads(raw)

    def _put(self, key: bytes, value: bytes | None) -> None:
        self._writes[key] = value

    def _put_ledger(self, txn: Txn, key: bytes, value: bytes | None) -> None:
        """Write a ledger record of ``txn``'s enterprise and bank (every one a step touches)."""
        self._writes[key] = value
        self._ledger_writes.setdefault((txn.enterprise_id, txn.bank), {})[key] = value

    def _month(self, enterprise_id: str, month: int) -> MonthAgg:
        slot = (enterprise_id, month)
        agg = self._months.get(slot)
        if agg is None:
            raw = self._store.get(_month_key(enterprise_id, month))
            agg = MonthAgg() if raw is None else MonthAgg.decode(raw)
            self._months[slot] = agg
        return agg

    # -- applying events --------------------------------------------------------------------

    def apply(self, txn: Txn, source: Source) -> Outcome:
        """Apply one valid transaction; rejections are collected in :attr:`rejections`."""
        key = _ledger_key(txn.enterprise_id, txn.bank, txn.txn_id)
        known = self._record(key)
        if known is not None:
            if known[_HASH] == txn.content_hash:
                return Outcome.DUPLICATE
            return self._reject(
                txn,
                source,
                RejectReason.CONFLICTING_DUPLICATE,
                "(bank, txn_id) was already booked with other content; the first stays",
            )
        self._note_progress(txn, source)
        if txn.reversal_of is not None:
            return self._apply_reversal(txn, source, key)
        pending_key = _pending_key(txn.enterprise_id, txn.bank, txn.txn_id)
        reversal_id = self._get(pending_key)
        if reversal_id is not None:
            # Its reversal came first: neither is counted.
            self._put_ledger(txn, key, self._encode(txn, _REVERSED, reversal_id.decode()))
            reversal_key = _ledger_key(txn.enterprise_id, txn.bank, reversal_id.decode())
            reversal = self._record(reversal_key)
            assert reversal is not None and reversal[_STATUS] == _PENDING
            reversal[_STATUS], reversal[_EVENT] = _REVERSAL, None
            self._put_ledger(txn, reversal_key, codec.dumps(reversal))
            self._put(pending_key, None)
            return Outcome.REVERSED_ON_ARRIVAL
        record = self._record_of(txn, _COUNTED, None)
        self._put_ledger(txn, key, codec.dumps(record))
        self._add(txn, record)
        return Outcome.APPLIED

    def _apply_reversal(self, txn: Txn, source: Source, key: bytes) -> Outcome:
        assert txn.reversal_of is not None
        self._reject_reversal_waiting_for(txn)
        original_key = _ledger_key(txn.enterprise_id, txn.bank, txn.reversal_of)
        original = self._record(original_key)
        if original is None:
            pending_key = _pending_key(txn.enterprise_id, txn.bank, txn.reversal_of)
            if self._get(pending_key) is not None:
                return self._reject(
                    txn,
                    source,
                    RejectReason.BAD_REVERSAL,
                    "another reversal of the same original is already waiting for it",
                )
            kept = [txn.to_event(), [source.topic, source.partition, source.offset, source.index]]
            self._put_ledger(txn, key, self._encode(txn, _PENDING, txn.reversal_of, kept))
            self._put(pending_key, txn.txn_id.encode())
            return Outcome.REVERSAL_PENDING
        if original[_STATUS] in (_REVERSAL, _PENDING):
            return self._reject(txn, source, RejectReason.BAD_REVERSAL, "it reverses a reversal")
        if original[_STATUS] == _REVERSED:
            return self._reject(
                txn, source, RejectReason.BAD_REVERSAL, "its original is already reversed"
            )
        original[_STATUS], original[_LINK] = _REVERSED, txn.txn_id
        self._put_ledger(txn, original_key, codec.dumps(original))
        self._remove(txn.enterprise_id, txn.bank, txn.reversal_of, original)
        self._put_ledger(txn, key, self._encode(txn, _REVERSAL, txn.reversal_of))
        return Outcome.REVERSAL_APPLIED

    def _reject_reversal_waiting_for(self, txn: Txn) -> None:
        """A reversal that waited for ``txn``, itself a reversal, reverses a reversal: reject it."""
        pending_key = _pending_key(txn.enterprise_id, txn.bank, txn.txn_id)
        waiting_id = self._get(pending_key)
        if waiting_id is None:
            return
        waiting_key = _ledger_key(txn.enterprise_id, txn.bank, waiting_id.decode())
        waiting = self._record(waiting_key)
        assert waiting is not None and waiting[_STATUS] == _PENDING
        event, (topic, partition, offset, index) = waiting[_EVENT]
        self.rejections.append(
            Rejection(
                RejectReason.BAD_REVERSAL,
                "it reverses a reversal",
                event,
                Source(topic, partition, offset, index),
            )
        )
        self._put_ledger(txn, waiting_key, None)
        self._put(pending_key, None)

    def _reject(self, txn: Txn, source: Source, reason: RejectReason, detail: str) -> Outcome:
        self.rejections.append(Rejection(reason, detail, txn.to_event(), source))
        return Outcome.REJECTED

    def _note_progress(self, txn: Txn, source: Source) -> None:
        progress = self.progress
        if progress.watermark_us is None or txn.booked_us > progress.watermark_us:
            progress.watermark_us = txn.booked_us
        name = f"{source.topic}/{source.partition}"
        if source.offset > progress.sources.get(name, -1):
            progress.sources[name] = source.offset

    def _encode(
        self, txn: Txn, status: str, link: str | None, kept: list[Any] | None = None
    ) -> bytes:
        return codec.dumps(self._record_of(txn, status, link, kept))

    def _record_of(
        self, txn: Txn, status: str, link: str | None, kept: list[Any] | None = None
    ) -> list[Any]:
        # The classification is kept so that a reversal removes exactly what was added,
        # whatever registry version is current by then.
        kind = self._classify(txn)
        return [
            status,
            txn.content_hash,
            txn.booked_us,
            txn.inflow,
            txn.amount_fen,
            txn.balance_after_fen,
            txn.account,
            txn.cp_id,
            link,
            kept,
            kind.cls,
            kind.subtype,
            txn.channel,
            txn.currency,
            self._registry().version,
        ]

    def _classify(self, txn: Txn) -> Classification:
        return classify(
            self._registry(),
            txn.enterprise_id,
            txn.bank,
            txn.channel,
            txn.cp_id,
            txn.cp_bank,
            txn.currency,
        )

    def _counterparty(self, enterprise_id: str, cp_id: str) -> str | None:
        return None if cp_id == enterprise_id else self._pseudonym(cp_id)

    def _account(self, bank: str, account: str) -> str:
        return self._pseudonym(f"{bank}/{account}")

    def _add(self, txn: Txn, record: list[Any]) -> None:
        month, day = month_day_of_us(txn.booked_us)
        agg = self._month(txn.enterprise_id, month)
        self._change(agg, 1, txn.enterprise_id, day, record)
        agg.book_balance(
            self._account(txn.bank, txn.account),
            txn.bank,
            day,
            txn.booked_us,
            txn.txn_id,
            txn.balance_after_fen,
        )
        self._dirty.add((txn.enterprise_id, month))

    def _change(
        self, agg: MonthAgg, sign: int, enterprise_id: str, day: int, record: list[Any]
    ) -> None:
        cross_border = record[_CURRENCY] != "CNY" or record[_CHANNEL] == "fx"
        agg.change(
            sign,
            inflow=record[_INFLOW],
            amount=record[_AMOUNT],
            cls=record[_CLASS],
            subtype=record[_SUBTYPE],
            channel=record[_CHANNEL],
            currency=record[_CURRENCY],
            cross_border=cross_border,
            day=day,
            party=self._counterparty(enterprise_id, record[_CP]),
            registry=record[_REGISTRY],
        )

    def _remove(self, enterprise_id: str, bank: str, txn_id: str, record: list[Any]) -> None:
        month, day = month_day_of_us(record[_BOOKED])
        agg = self._month(enterprise_id, month)
        self._change(agg, -1, enterprise_id, day, record)
        account = self._account(bank, record[_ACCOUNT])
        if agg.unbook_balance(account, day, record[_BOOKED], txn_id):
            self._rederive_last_of_day(enterprise_id, bank, month, day, account)
        self._dirty.add((enterprise_id, month))

    def _rederive_last_of_day(
        self, enterprise_id: str, bank: str, month: int, day: int, account: str
    ) -> None:
        """The account's last two counted bookings of the day, from the ledger (rare path:
        the month aggregate keeps the second, so this runs after two removals of a last)."""
        best: list[Any] | None = None
        second: list[Any] | None = None
        start = day_start_us(month, day)
        end = start + DAY_US
        for key, raw in self._ledger_of(enterprise_id, bank):  # the account is at this bank
            record = codec.loads(raw)
            if record[_STATUS] != _COUNTED or not start <= record[_BOOKED] < end:
                continue
            if self._account(bank, record[_ACCOUNT]) != account:
                continue
            candidate = [record[_BOOKED], key.decode().split("|", 3)[3], record[_BALANCE]]
            if best is None or (candidate[0], candidate[1]) > (best[0], best[1]):
                best, second = candidate, best
            elif second is None or (candidate[0], candidate[1]) > (second[0], second[1]):
                second = candidate
        self._month(enterprise_id, month).set_last_of_day(account, day, best, second)

    def _ledger_of(self, enterprise_id: str, bank: str) -> Iterator[tuple[bytes, bytes]]:
        """Every ledger record of one enterprise at one bank, committed or not."""
        prefix = f"L|{enterprise_id}|{bank}|".encode()
        merged = dict(self._store.scan_prefix(prefix))
        for key, value in self._ledger_writes.get((enterprise_id, bank), {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return iter(merged.items())

    # -- committing and reading back --------------------------------------------------------

    def rollback(self) -> None:
        """Forget everything applied since the last commit (a step failed; it will be retried)."""
        self._writes = {}
        self._ledger_writes = {}
        self._dirty.clear()
        self._months.clear()  # cached aggregates may hold uncommitted changes
        self.rejections = []
        self.progress = Progress.decode(self._store.get(META_KEY))

    def commit(self, next_offset: int) -> dict[str, set[int]]:
        """Write everything since the last commit, with the offset to resume from.

        Returns the months changed per enterprise, for publishing.
        """
        self.progress.next_offset = next_offset
        changes = self._writes
        changed: dict[str, set[int]] = {}
        for enterprise_id, month in self._dirty:
            agg = self._months[(enterprise_id, month)]
            changes[_month_key(enterprise_id, month)] = None if agg.is_empty else agg.encode()
            changed.setdefault(enterprise_id, set()).add(month)
        changes[META_KEY] = self.progress.encode()
        self._store.write(changes)
        self._writes = {}
        self._ledger_writes = {}
        self._dirty.clear()
        self.rejections = []
        if len(self._months) > self._cache_limit:  # forget the older half: all are committed
            for slot in list(islice(self._months, len(self._months) - self._cache_limit // 2)):
                del self._months[slot]
        return changed

    def prune(self, before_month: int) -> dict[str, list[int]]:
        """Forget everything booked before ``before_month`` (beyond the kept history).

        Runs between processing steps; returns the months removed per enterprise so their
        views can go too. Idempotent, one write batch.
        """
        assert not self._writes and not self._dirty, "prune only between steps"
        changes: dict[bytes, bytes | None] = {}
        removed: dict[str, list[int]] = {}
        for key, _ in self._store.scan_prefix(b"M|"):
            _, enterprise_id, label = key.decode().split("|")
            month = parse_month(label)
            if month is not None and month < before_month:
                changes[key] = None
                removed.setdefault(enterprise_id, []).append(month)
                self._months.pop((enterprise_id, month), None)
        horizon_us = month_start_us(before_month)
        for key, raw in self._store.scan_prefix(b"L|"):
            record = codec.loads(raw)
            if record[_BOOKED] >= horizon_us:
                continue
            changes[key] = None
            if record[_STATUS] == _PENDING:  # its original would be too old to count anyway
                _, enterprise_id, bank, _ = key.decode().split("|", 3)
                changes[_pending_key(enterprise_id, bank, record[_LINK])] = None
        if changes:
            self._store.write(changes)
        return removed

    def month(self, enterprise_id: str, month: int) -> MonthAgg | None:
        """A committed month aggregate, or None when the month has no counted transaction."""
        agg = self._months.get((enterprise_id, month))
        if agg is None:
            raw = self._store.get(_month_key(enterprise_id, month))
            agg = None if raw is None else MonthAgg.decode(raw)
        return None if agg is None or agg.is_empty else agg

    def enterprises(self) -> Iterator[tuple[str, dict[int, MonthAgg]]]:
        """Every enterprise of the partition with all its months (for a full republish)."""
        current: str | None = None
        months: dict[int, MonthAgg] = {}
        for key, raw in self._store.scan_prefix(b"M|"):
            _, enterprise_id, label = key.decode().split("|")
            if enterprise_id != current:
                if current is not None:
                    yield current, months
                current, months = enterprise_id, {}
            month = parse_month(label)
            assert month is not None
            months[month] = MonthAgg.decode(raw)
        if current is not None:
            yield current, months
