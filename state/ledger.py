"""The state of one partition: a ledger of every transaction seen, and month aggregates.

The ledger makes processing idempotent and reversals exact:
- a redelivered duplicate (same bank, txn_id and content) changes nothing;
- the same (bank, txn_id) with other content is rejected, the first one stays;
- a reversal removes its original from every aggregate, whichever of the two comes first.

Aggregates change incrementally. Nothing is written until :meth:`PartitionLedger.commit`,
which writes the ledger, the touched month aggregates and the consumed offset in one atomic
batch: a crash loses a whole step or nothing, and the stored offset says where to resume.

Keys and values (renaming a key or changing a value's format is a migration):
    L|<enterprise>|<bank>|<txn_id>     ledger record, binary (state/records.py, format 2)
    P|<enterprise>|<bank>|<txn_id>     a reversal waiting for this original: its txn_id
    M|<enterprise>|<YYYY-MM>           month aggregate (MonthAgg.encode, JSON)
    C|<enterprise>                     what it keeps of pruned months (state/horizon.py)
    E|<enterprise>                     its state changed since its signals were evaluated
    S|<enterprise>|<rule>              an open signal episode (state/signals.py)
    G|<enterprise>                     its episodes kept for the products (state/signals.py)
    _meta                              progress: next routed offset, sources, watermark
    _content                           what the state keeps, numbered (state/content.py)
Ledger records were JSON lists until format 1 (binary, with a leading format byte that
:func:`records.decode` checks). No state of the JSON form was ever deployed (the embedded
broker keeps nothing), so nothing converts it: a worker finding such a record stops with a
StateError that says to delete the partition's directory, rebuilt from the routed topic.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from engine import codec
from engine.events.contract import RejectReason, Txn
from engine.events.counterparty_kind import INDIVIDUAL, effective_kind
from engine.periods import (
    DAY_US,
    day_start_us,
    month_day_of_us,
    month_start_us,
    parse_month,
)
from engine.products.classify import Classification, Registry, classify
from state import records
from state.horizon import Carry
from state.kv import KVStore
from state.ledger_types import (
    META_KEY,
    Outcome,
    Progress,
    Rejection,
    SetAside,
    Source,
    carry_key,
    evaluate_key,
    ledger_key,
    month_key,
    pending_key,
)
from state.month import Contribution, MonthAgg, contribution

__all__ = ["PartitionLedger", "Pruned"]

# enterprise -> (the months pruned, its carry with them folded in)
Pruned = dict[str, tuple[list[int], Carry]]

# Ledger record statuses and field positions (the record format is state/records.py).
_COUNTED, _REVERSED, _REVERSAL, _PENDING = (
    records.COUNTED,
    records.REVERSED,
    records.REVERSAL,
    records.PENDING,
)
_STATUS, _HASH, _BOOKED, _INFLOW, _AMOUNT, _BALANCE, _ACCOUNT, _CP = (
    records.STATUS,
    records.HASH,
    records.BOOKED,
    records.INFLOW,
    records.AMOUNT,
    records.BALANCE,
    records.ACCOUNT,
    records.CP,
)
_LINK, _EVENT, _CLASS, _SUBTYPE, _CHANNEL, _CURRENCY, _REGISTRY, _INDIVIDUAL = (
    records.LINK,
    records.EVENT,
    records.CLASS,
    records.SUBTYPE,
    records.CHANNEL,
    records.CURRENCY,
    records.REGISTRY,
    records.INDIVIDUAL,
)


# Routed row positions: a Txn's fields (the routed wire format, v1), then a Source's.
_TXN_FIELDS = len(Txn._fields)
_E, _B, _ID, _ACCT, _US, _IN, _AMT, _CUR, _BAL, _CHAN, _CPID, _CPBANK, _CPKIND, _REV, _HASHF = (
    Txn._fields.index(name)
    for name in (
        "enterprise_id",
        "bank",
        "txn_id",
        "account",
        "booked_us",
        "inflow",
        "amount_fen",
        "currency",
        "balance_after_fen",
        "channel",
        "cp_id",
        "cp_bank",
        "cp_kind",
        "reversal_of",
        "content_hash",
    )
)
_TOPIC, _PARTITION, _OFFSET = _TXN_FIELDS, _TXN_FIELDS + 1, _TXN_FIELDS + 2
# Rows routed before Txn had cp_kind (one field fewer) may wait in the routed topic across an
# upgrade: they are read as rows whose counterparty kind follows from its id's shape.
_ROW_BEFORE_KIND = _TXN_FIELDS + 3


def _with_kind(row: list[Any]) -> list[Any]:
    return [*row[:_CPKIND], None, *row[_CPKIND:]]


_ABSENT: Any = object()
# Memoized classifications and pseudonyms are dropped past these sizes (like Pseudonymizer's
# own cache): bounded memory, and a miss only costs the computation. They are per partition:
# a worker holding 8 partitions keeps at most 200,000 of each (about 700 bytes a
# classification: 140 MB; docs/capacity.md, "Memory per worker").
_KINDS_LIMIT = 25_000
_ACCOUNTS_LIMIT = 25_000

# What a transaction's class, subtype and month keys depend on, apart from the registry:
# (cp_id, channel, bank, cp_bank, cp_kind, currency, inflow, cp_id == enterprise_id).
_KindKey = tuple[str, str, str, str | None, str | None, str, bool, bool]
# Month keys, and the record's first bytes (records.kind: class, subtype, registry version).
_Kind = tuple[Contribution, bytes]


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while applying rows.

    Applying allocates a few small containers per event, none of them in a reference cycle,
    all freed by reference counting; the collector's passes over the worker's live objects
    (cached months, Faust) during a step would free nothing, and they cost about as much as
    the rest of the step (loadtest.stages). The rows are applied synchronously, and the
    collector runs as usual once the step has been applied.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
        # Committed values read in this step, fetched in one multi-get per batch of rows.
        self._fetched: dict[bytes, bytes | None] = {}
        # Every pending-reversal marker, committed or not: ledger key of the awaited original
        # -> the reversal's txn_id. Exact (every P| write goes through _set_pending, and it
        # is reloaded on open and rollback), so an arriving original needs no store read;
        # it holds only reversals still waiting, a small part of the state.
        self._pending: dict[bytes, bytes] = self._load_pending()
        self._months: dict[tuple[str, int], MonthAgg] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._kinds: dict[_KindKey, _Kind] = {}
        self._kinds_registry: Registry | None = None  # the registry _kinds were computed with
        self._accounts: dict[str, dict[str, str]] = {}  # bank -> account -> pseudonym
        self.rejections: list[Rejection] = []

    # -- reading through the uncommitted writes -------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        value = self._writes.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._fetched.get(key, _ABSENT)
            if value is _ABSENT:
                value = self._store.get(key)
        return value  # type: ignore[no-any-return]

    def _record(self, key: bytes) -> list[Any] | None:
        raw = self._get(key)
        return None if raw is None else records.decode(raw)

    def _put(self, key: bytes, value: bytes | None) -> None:
        self._writes[key] = value

    def _load_pending(self) -> dict[bytes, bytes]:
        return {b"L" + key[1:]: value for key, value in self._store.scan_prefix(b"P|")}

    def _set_pending(self, original_key: bytes, reversal_id: bytes | None) -> None:
        """Mark (or, with None, unmark) a reversal waiting for the original at ``original_key``."""
        self._writes[b"P" + original_key[1:]] = reversal_id
        if reversal_id is None:
            del self._pending[original_key]
        else:
            self._pending[original_key] = reversal_id

    def _prefetch(self, keys: Iterable[bytes]) -> None:
        writes, fetched = self._writes, self._fetched
        wanted = list(dict.fromkeys(k for k in keys if k not in writes and k not in fetched))
        fetched.update(zip(wanted, self._store.get_many(wanted), strict=True))

    def _month(self, enterprise_id: str, month: int) -> MonthAgg:
        slot = (enterprise_id, month)
        agg = self._months.get(slot)
        if agg is None:
            raw = self._store.get(month_key(enterprise_id, month))
            agg = MonthAgg() if raw is None else MonthAgg.decode(raw)
            self._months[slot] = agg
        return agg

    # -- applying events --------------------------------------------------------------------

    def apply(self, txn: Txn, source: Source) -> Outcome:
        """Apply one valid transaction; rejections are collected in :attr:`rejections`."""
        [outcome] = self.apply_rows(
            [[*txn, source.topic, source.partition, source.offset, source.index]]
        )
        return outcome

    def apply_rows(self, rows: Sequence[Sequence[Any]]) -> list[Outcome]:
        """Apply routed rows (a :class:`Txn`'s fields, then a :class:`Source`'s) in order, as
        :meth:`apply` would one by one; returns their outcomes. Rejections are collected in
        :attr:`rejections`.
        """
        with _cyclic_gc_paused():
            return self._apply_rows(rows)

    def apply_messages(self, values: Iterable[bytes]) -> list[Outcome]:
        """Decode routed messages (each a JSON array of rows) and apply them in order."""
        outcomes: list[Outcome] = []
        with _cyclic_gc_paused():  # decoding allocates a list per row: paused for it too
            for value in values:
                rows = codec.loads(value)
                if rows and len(rows[0]) == _ROW_BEFORE_KIND:
                    rows = [_with_kind(row) for row in rows]
                outcomes += self._apply_rows(rows)
        return outcomes

    def _apply_rows(self, rows: Sequence[Sequence[Any]]) -> list[Outcome]:
        # The common case (a new, counted transaction) is inlined here and every ledger key
        # of the rows is read in one multi-get: per event the cost is many small Python
        # steps, so each one counts. Everything else goes through _apply_known/_apply_other.
        keys = [f"L|{row[_E]}|{row[_B]}|{row[_ID]}".encode() for row in rows]
        targets = [ledger_key(row[_E], row[_B], row[_REV]) for row in rows if row[_REV] is not None]
        self._prefetch(keys + targets if targets else keys)
        registry = self._registry()
        if registry is not self._kinds_registry or len(self._kinds) > _KINDS_LIMIT:
            self._kinds = {}
            self._kinds_registry = registry
        if sum(map(len, self._accounts.values())) > _ACCOUNTS_LIMIT:
            self._accounts = {}
        writes, fetched, pending = self._writes, self._fetched, self._pending
        kinds, accounts, months, dirty = self._kinds, self._accounts, self._months, self._dirty
        progress = self.progress
        watermark = progress.watermark_us
        sources = progress.sources
        last_offset, last_topic, last_partition = -1, "", -1
        outcomes: list[Outcome] = []
        append = outcomes.append
        applied = Outcome.APPLIED
        counted = records.counted
        for row, key in zip(rows, keys, strict=True):
            raw = writes.get(key, _ABSENT)
            if raw is _ABSENT:
                raw = fetched[key]
            if raw is not None:
                append(self._apply_known(row, raw))
                continue
            booked = row[_US]
            if watermark is None or booked > watermark:
                watermark = booked
            # Rows of one source message are consecutive and share its offset.
            offset = row[_OFFSET]
            if (
                offset != last_offset
                or row[_TOPIC] != last_topic
                or row[_PARTITION] != last_partition
            ):
                last_offset, last_topic, last_partition = offset, row[_TOPIC], row[_PARTITION]
                name = f"{last_topic}/{last_partition}"
                if offset > sources.get(name, -1):
                    sources[name] = offset
            if row[_REV] is not None or key in pending:
                append(self._apply_other(row, key))
                continue
            enterprise_id, bank, cp_id = row[_E], row[_B], row[_CPID]
            channel, currency, inflow = row[_CHAN], row[_CUR], row[_IN]
            kind_key = (
                cp_id,
                channel,
                bank,
                row[_CPBANK],
                row[_CPKIND],
                currency,
                inflow,
                cp_id == enterprise_id,
            )
            kind = kinds.get(kind_key)
            if kind is None:
                kind = kinds[kind_key] = self._kind(registry, enterprise_id, row)
            month_keys, record_kind = kind
            amount, balance, account = row[_AMT], row[_BAL], row[_ACCT]
            # The same bytes as records.encode(self._record_of(...)) writes.
            writes[key] = counted(record_kind, row[_HASHF], booked, amount, balance, account, cp_id)
            month, day = month_day_of_us(booked)
            slot = (enterprise_id, month)
            agg = months.get(slot)
            if agg is None:
                agg = self._month(enterprise_id, month)
            agg.add(1, amount, day, month_keys)
            of_bank = accounts.get(bank)
            if of_bank is None:
                of_bank = accounts[bank] = {}
            pseudonym = of_bank.get(account)
            if pseudonym is None:
                pseudonym = of_bank[account] = self._account(bank, account)
            agg.book_balance(pseudonym, bank, day, booked, row[_ID], balance)
            dirty.add(slot)
            append(applied)
        progress.watermark_us = watermark
        return outcomes

    def _kind(self, registry: Registry, enterprise_id: str, row: Sequence[Any]) -> _Kind:
        """Month keys and record kind of a row's transaction (memoized by the caller)."""
        cp_id, channel, currency, inflow = row[_CPID], row[_CHAN], row[_CUR], row[_IN]
        kind = classify(registry, enterprise_id, row[_B], channel, cp_id, row[_CPBANK], currency)
        individual = effective_kind(cp_id, row[_CPKIND]) == INDIVIDUAL
        keys = contribution(
            inflow=inflow,
            cls=kind.cls,
            subtype=kind.subtype,
            channel=channel,
            currency=currency,
            cross_border=kind.cross_border,
            party=self._counterparty(enterprise_id, cp_id),
            registry=registry.version,
            individual=individual,
        )
        record_kind = records.kind(
            inflow, kind.cls, kind.subtype, channel, currency, registry.version, individual
        )
        return keys, record_kind

    def _apply_known(self, row: Sequence[Any], raw: bytes) -> Outcome:
        """A row whose (bank, txn_id) is in the ledger: a duplicate, or a rejected conflict."""
        if records.hash_of(raw) == records.kept_hash(row[_HASHF]):
            return Outcome.DUPLICATE
        return self._reject(
            Txn(*row[:_TXN_FIELDS]),
            Source(*row[_TXN_FIELDS:]),
            RejectReason.CONFLICTING_DUPLICATE,
            "(bank, txn_id) was already booked with other content; the first stays",
        )

    def _apply_other(self, row: Sequence[Any], key: bytes) -> Outcome:
        """A new reversal, or an original whose reversal came first (progress is noted)."""
        txn = Txn(*row[:_TXN_FIELDS])
        source = Source(*row[_TXN_FIELDS:])
        if txn.reversal_of is not None:
            return self._apply_reversal(txn, source, key)
        # Its reversal came first: neither is counted.
        reversal_id = self._pending[key]
        self._put(key, self._encode(txn, _REVERSED, reversal_id.decode()))
        reversal_key = ledger_key(txn.enterprise_id, txn.bank, reversal_id.decode())
        reversal = self._record(reversal_key)
        assert reversal is not None and reversal[_STATUS] == _PENDING
        reversal[_STATUS], reversal[_EVENT] = _REVERSAL, None
        self._put(reversal_key, records.encode(reversal))
        self._set_pending(key, None)
        return Outcome.REVERSED_ON_ARRIVAL

    def _apply_reversal(self, txn: Txn, source: Source, key: bytes) -> Outcome:
        assert txn.reversal_of is not None
        self._reject_reversal_waiting_for(txn, key)
        original_key = ledger_key(txn.enterprise_id, txn.bank, txn.reversal_of)
        original = self._record(original_key)
        if original is None:
            if original_key in self._pending:
                return self._reject(
                    txn,
                    source,
                    RejectReason.BAD_REVERSAL,
                    "another reversal of the same original is already waiting for it",
                )
            kept = [txn.to_event(), [source.topic, source.partition, source.offset, source.index]]
            self._put(key, self._encode(txn, _PENDING, txn.reversal_of, kept))
            self._set_pending(original_key, txn.txn_id.encode())
            return Outcome.REVERSAL_PENDING
        if original[_STATUS] in (_REVERSAL, _PENDING):
            return self._reject(txn, source, RejectReason.BAD_REVERSAL, "it reverses a reversal")
        if original[_STATUS] == _REVERSED:
            return self._reject(
                txn, source, RejectReason.BAD_REVERSAL, "its original is already reversed"
            )
        original[_STATUS], original[_LINK] = _REVERSED, txn.txn_id
        self._put(original_key, records.encode(original))
        self._remove(txn.enterprise_id, txn.bank, txn.reversal_of, original)
        self._put(key, self._encode(txn, _REVERSAL, txn.reversal_of))
        return Outcome.REVERSAL_APPLIED

    def _reject_reversal_waiting_for(self, txn: Txn, key: bytes) -> None:
        """A reversal that waited for ``txn``, itself a reversal, reverses a reversal: reject it."""
        waiting_id = self._pending.get(key)
        if waiting_id is None:
            return
        waiting_key = ledger_key(txn.enterprise_id, txn.bank, waiting_id.decode())
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
        self._put(waiting_key, None)
        self._set_pending(key, None)

    def _reject(self, txn: Txn, source: Source, reason: RejectReason, detail: str) -> Outcome:
        self.rejections.append(Rejection(reason, detail, txn.to_event(), source))
        return Outcome.REJECTED

    def _encode(
        self, txn: Txn, status: str, link: str | None, kept: list[Any] | None = None
    ) -> bytes:
        return records.encode(self._record_of(txn, status, link, kept))

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
            effective_kind(txn.cp_id, txn.cp_kind) == INDIVIDUAL,
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

    def _change(
        self, agg: MonthAgg, sign: int, enterprise_id: str, day: int, record: list[Any]
    ) -> None:
        cross_border = record[_CURRENCY] != "CNY" or record[_CHANNEL] == "fx"
        keys = contribution(
            inflow=record[_INFLOW],
            cls=record[_CLASS],
            subtype=record[_SUBTYPE],
            channel=record[_CHANNEL],
            currency=record[_CURRENCY],
            cross_border=cross_border,
            party=self._counterparty(enterprise_id, record[_CP]),
            registry=record[_REGISTRY],
            individual=record[_INDIVIDUAL],
        )
        agg.add(sign, record[_AMOUNT], day, keys)

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
            record = records.decode(raw)
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
        # Walks every write of the step: this path is rare (it ran for none of the 45,000
        # events of loadtest.stages), unlike indexing each write by enterprise and bank.
        for key, value in self._writes.items():
            if not key.startswith(prefix):
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return iter(merged.items())

    # -- setting aside what cannot be applied ----------------------------------------------

    def apply_setting_aside(
        self, value: bytes, routed: Source, outage: Callable[[Exception], bool]
    ) -> tuple[list[Outcome], list[SetAside]]:
        """Apply one routed message (at ``routed``: the routed topic, partition and offset)
        row by row, setting aside every row whose apply raises, or the whole message when it
        does not read as rows. The set-aside rows go to :attr:`rejections` (reason
        ``apply_failed``), sent before the commit that moves past them like every rejection.

        For a message whose apply raised again and again (agents/ledger.py). Call it with
        nothing applied since the last commit: a row that raises may have half-applied, so
        the ledger rolls back to that commit and applies the rows before it again. An
        exception ``outage`` says is an outage (disk, memory) is raised, never set aside:
        every row would fail the same way.
        """
        set_aside: list[SetAside] = []
        try:
            rows = codec.loads(value)
            if not isinstance(rows, list):
                raise TypeError(f"a routed message is a JSON array of rows, not {type(rows)}")
        except Exception as exc:
            if outage(exc):
                raise
            set_aside.append(self._set_aside(value, None, routed, exc))
            self.rejections.extend(item.rejection for item in set_aside)
            return [], set_aside
        outcomes: list[Outcome] = []
        applied: list[bytes] = []  # the rows applied, each as a message of its own
        for index, row in enumerate(rows):
            try:
                single = codec.dumps([row])
                outcomes += self.apply_messages([single])
            except Exception as exc:
                if outage(exc):
                    raise
                self.rollback()  # it may have half-applied: undo it, redo the rows before it
                self.apply_messages(applied)
                set_aside.append(self._set_aside(row, index, routed, exc))
            else:
                applied.append(single)
        self.rejections.extend(item.rejection for item in set_aside)
        return outcomes, set_aside

    def _set_aside(self, row: Any, index: int | None, routed: Source, exc: Exception) -> SetAside:
        """The rejection of a row that could not be applied: as an event of its bank topic,
        ready to publish again once the cause is fixed, when the row reads as one; else the
        row's (or message's) bytes, at its place in the routed topic."""
        where = f"routed partition {routed.partition}, offset {routed.offset}"
        if index is not None:
            where += f", row {index}"
        detail = f"applying it raised {type(exc).__name__}: {str(exc)[:300]} ({where})"
        try:
            if len(row) != _TXN_FIELDS + 4:
                raise ValueError("not a routed row")
            event = Txn(*row[:_TXN_FIELDS]).to_event()
            source = Source(*row[_TXN_FIELDS:])
            if not isinstance(source.topic, str) or not isinstance(source.offset, int):
                raise ValueError("not a routed row")
            rejection = Rejection(RejectReason.APPLY_FAILED, detail, event, source)
        except Exception:
            original = row if isinstance(row, bytes) else codec.dumps(row)
            source = Source(routed.topic, routed.partition, routed.offset, index)
            rejection = Rejection(RejectReason.APPLY_FAILED, detail, {}, source, original)
        return SetAside(routed.offset, index, exc, rejection)

    # -- committing and reading back --------------------------------------------------------

    def rollback(self) -> None:
        """Forget everything applied since the last commit (a step failed; it will be retried)."""
        self._writes = {}
        self._fetched = {}
        self._pending = self._load_pending()  # it held uncommitted markers
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
            changes[month_key(enterprise_id, month)] = None if agg.is_empty else agg.encode()
            changed.setdefault(enterprise_id, set()).add(month)
        for enterprise_id in changed:  # cleared once its signals are evaluated (agents/signals.py)
            changes[evaluate_key(enterprise_id)] = b""
        changes[META_KEY] = self.progress.encode()
        self._store.write(changes)
        self._writes = {}
        self._fetched = {}
        self._dirty.clear()
        self.rejections = []
        if len(self._months) > self._cache_limit:  # forget the older half: all are committed
            for slot in list(islice(self._months, len(self._months) - self._cache_limit // 2)):
                del self._months[slot]
        return changed

    def prune(self, before_month: int) -> Pruned:
        """Forget everything booked before ``before_month`` (beyond the kept history), and
        fold the months removed into each enterprise's carry (state/horizon.py says what it
        keeps and why).

        Runs between processing steps; returns, per enterprise, the months removed and its
        new carry, so its views can follow. Idempotent, one write batch.
        """
        assert not self._writes and not self._dirty, "prune only between steps"
        changes: dict[bytes, bytes | None] = {}
        removed: dict[str, list[tuple[int, MonthAgg]]] = {}
        for key, raw in self._store.scan_prefix(b"M|"):
            _, enterprise_id, label = key.decode().split("|")
            month = parse_month(label)
            if month is not None and month < before_month:
                changes[key] = None
                removed.setdefault(enterprise_id, []).append((month, MonthAgg.decode(raw)))
                self._months.pop((enterprise_id, month), None)
        pruned: Pruned = {}
        for enterprise_id, months in removed.items():
            carry = self.carry(enterprise_id) or Carry.empty()
            carry.fold(sorted(months, key=lambda pair: pair[0]), before_month)
            changes[carry_key(enterprise_id)] = carry.encode()
            pruned[enterprise_id] = ([month for month, _ in months], carry)
        horizon_us = month_start_us(before_month)
        for key, raw in self._store.scan_prefix(b"L|"):
            record = records.decode(raw)
            if record[_BOOKED] >= horizon_us:
                continue
            changes[key] = None
            if record[_STATUS] == _PENDING:  # its original would be too old to count anyway
                _, enterprise_id, bank, _ = key.decode().split("|", 3)
                changes[pending_key(enterprise_id, bank, record[_LINK])] = None
                self._pending.pop(ledger_key(enterprise_id, bank, record[_LINK]), None)
        if changes:
            self._store.write(changes)
        self._fetched = {}  # committed values may have changed
        return pruned

    @property
    def reversals_waiting(self) -> int:
        """Reversals waiting for their original (uncommitted ones included)."""
        return len(self._pending)

    def expiring_reversals(self, before_month: int) -> list[Rejection]:
        """The reversals still waiting for their original that ``prune(before_month)`` will
        drop, as rejections for the rejects topic: send them before pruning.

        A reversal is booked after its original, so once its own booking leaves the kept
        history its original could only arrive too old for the intake: it never will. (Also
        the fate of a reversal whose original was pruned before it came: the ledger cannot
        tell that original from one not yet arrived, so it waits with the others.) Dropping
        it silently would lose a bank's correction that was never applied; an operator sees
        it with its reason instead.
        """
        horizon_us = month_start_us(before_month)
        expiring = []
        for original_key, reversal_id in self._pending.items():
            _, enterprise_id, bank, _ = original_key.decode().split("|", 3)
            record = self._record(ledger_key(enterprise_id, bank, reversal_id.decode()))
            if record is None or record[_BOOKED] >= horizon_us:
                continue
            event, (topic, partition, offset, index) = record[_EVENT]
            expiring.append(
                Rejection(
                    RejectReason.BAD_REVERSAL,
                    "its original never arrived within the kept history",
                    event,
                    Source(topic, partition, offset, index),
                )
            )
        return expiring

    def carry(self, enterprise_id: str) -> Carry | None:
        """What the enterprise keeps of its pruned months, if any were pruned."""
        raw = self._store.get(carry_key(enterprise_id))
        return None if raw is None else Carry.decode(raw)

    def carries(self) -> Iterator[tuple[str, Carry]]:
        """Every enterprise of the partition that has a carry (for a full republish)."""
        for key, raw in self._store.scan_prefix(b"C|"):
            yield key.decode().split("|", 1)[1], Carry.decode(raw)

    def month(self, enterprise_id: str, month: int) -> MonthAgg | None:
        """A committed month aggregate, or None when the month has no counted transaction."""
        agg = self._months.get((enterprise_id, month))
        if agg is None:
            raw = self._store.get(month_key(enterprise_id, month))
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
