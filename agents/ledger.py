"""Stage 2: apply routed events to partition state, then publish the changed views.

Each processing step applies its events to the partition's ledger in memory. A partition's
applied events are committed together once the oldest of them has waited
``commit_interval`` seconds (or a step's worth of bytes has piled up): send rejections
(delivery confirmed), commit state and the next offset in one RocksDB batch, then publish
the changed month views to Redis. A month that several events changed in that time is
encoded and published once: at paced ingest, committing and publishing each changed month
every step took about 40 % of the ledger's time (py-spy). The committed state carries the
offset it resumes from, and a worker seeks there whenever it is given a partition, so events
acknowledged to Kafka but not committed yet are replayed after a crash; messages below the
committed offset are skipped, so a redelivered step counts nothing twice. Redis is derived
and is rebuilt from state whenever it is behind.

A step that fails is rolled back and retried (agents/retry.py). When applying the same
routed messages has raised ``set_aside_after`` times in a row, and not for an outage, the
next try applies them one by one and the failing ones row by row: each row whose apply raises
is set aside to the rejects topic (apply_failed), and the partition goes on without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from agents.intake import STEP_BYTES, Message, in_steps
from agents.retry import coordinates
from agents.sending import Outbox, Sender, rejected_record
from engine import codec
from engine.events.topics import REJECTED_TOPIC
from engine.metrics import WorkerMetrics
from engine.periods import format_month, us_to_cst_iso
from engine.products.classify import Registry
from state.content import rebuild_if_older
from state.kv import KVStore
from state.ledger import PartitionLedger
from state.ledger_types import Outcome, Progress, Rejection, SetAside, Source
from state.signals import SignalState, encode_kept
from state.views import CARRY_FIELD, EPISODES_FIELD, NewerViewsError, ViewStore, month_field

__all__ = ["LedgerStage", "as_of", "is_outage"]

log = logging.getLogger(__name__)

StoreFactory = Callable[[int], KVStore]
Seek = Callable[[int, int], Awaitable[None]]

_REPUBLISH_CHUNK = 500
_REWIND_RETRY_SECONDS = 10.0
_STALL_SECONDS = 10.0  # behind the log and not moving for this long: seek again
_RETRY_MAX_SECONDS = 5.0
# Routed messages a partition may be behind the log end (as last looked up) and still count
# as live: further behind, it is replaying, and its signals wait (agents/signals.py).
_LIVE_LAG_MESSAGES = 500

#: Called after each commit with the partition and the months it changed per enterprise.
CommitHook = Callable[[int, dict[str, set[int]]], None]

# Exceptions of the services a step talks to, by the module that raises them: failing to
# reach them is an outage, whatever the exception's class (cimpl: confluent_kafka's).
_SERVICE_MODULES = ("redis", "aiokafka", "kafka", "confluent_kafka", "cimpl", "rocksdict")


def is_outage(exc: BaseException) -> bool:
    """Whether a failure is an outage to wait out (the disk, memory, the broker, Redis), as
    opposed to a fault of the events being applied. An outage's events are never set aside:
    every one of them would fail the same way. Any exception in the chain counts."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | MemoryError):  # ConnectionError, TimeoutError too
            return True
        if type(current).__module__.split(".")[0] in _SERVICE_MODULES:
            return True
        current = current.__cause__ or current.__context__
    return False


def _first_day(month: int) -> date:
    year, m0 = divmod(month, 12)
    return date(year, m0 + 1, 1)


def as_of(progress: Progress, partition: int) -> dict[str, Any]:
    """What a caller is told about the freshness of a partition's views."""
    offsets: dict[str, dict[str, int]] = {}
    for name, offset in sorted(progress.sources.items()):
        topic, source_partition = name.rsplit("/", 1)
        offsets.setdefault(topic, {})[source_partition] = offset
    return {
        "partition": partition,
        "watermark": None
        if progress.watermark_us is None
        else us_to_cst_iso(progress.watermark_us),
        "source_offsets": offsets,
        "routed_offset": progress.next_offset,
        "published_at": datetime.now(UTC).isoformat(),
    }


class _Uncommitted:
    """What a partition has applied since its last commit."""

    __slots__ = ("bytes", "next_offset", "since")

    def __init__(self, since: float, next_offset: int) -> None:
        self.since = since  # when the first of these steps was applied (monotonic)
        self.next_offset = next_offset  # the offset to resume from once committed
        self.bytes = 0  # routed message bytes applied


class _Failing:
    """Failures in a row of a partition's steps, all while its state was committed at
    ``offset``, and the end of the messages they failed on (the offset past the last)."""

    __slots__ = ("end", "failures", "offset")

    def __init__(self, offset: int, end: int) -> None:
        self.offset = offset
        self.end = end
        self.failures = 0


class LedgerStage:
    def __init__(
        self,
        open_store: StoreFactory,
        pseudonym: Callable[[str], str],
        registry: Callable[[], Registry],
        views: ViewStore,
        sender: Sender,
        metrics: WorkerMetrics,
        seek: Seek | None = None,
        cache_months: int = 2_500,
        log_start: Callable[[int], Awaitable[int]] | None = None,
        commit_interval: float = 0.0,
        on_commit: CommitHook | None = None,
        set_aside_after: int = 0,
    ) -> None:
        self._open_store = open_store
        self._pseudonym = pseudonym
        self._registry = registry
        self._views = views
        self._sender = sender
        self._metrics = metrics
        self._seek = seek
        self._log_start = log_start
        self._cache_months = cache_months
        self._commit_interval = commit_interval
        self._on_commit = on_commit
        self._set_aside_after = set_aside_after  # failures in a row; 0: never set aside
        self._failing: dict[int, _Failing] = {}
        self._ends: dict[int, int] = {}  # partition -> end of the routed log, as last looked
        self._uncommitted: dict[int, _Uncommitted] = {}
        self._ledgers: dict[int, PartitionLedger] = {}
        self._stores: dict[int, KVStore] = {}
        self._rewinds: dict[int, tuple[int, float]] = {}  # partition -> (target, when)
        self._republishing: set[int] = set()
        self._published: set[int] = set()  # partitions this process has published progress of
        # Partitions whose state is behind the views Redis already serves (a partition moved
        # here without its state, or with an older copy): nothing is published until the
        # state reaches that offset, so pulls never see a product go back in time.
        self._catching_up: dict[int, int] = {}  # partition -> routed offset of the views
        self._moved: dict[int, float] = {}  # partition -> when its state last advanced
        self._background: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()  # one step, commit or signal evaluation at a time
        self.views_ok = True
        self.assigned = False

    @property
    def ready(self) -> bool:
        return self.assigned and not self._republishing and self.views_ok

    @property
    def partitions(self) -> list[int]:
        return sorted(self._ledgers)

    def ledger(self, partition: int) -> PartitionLedger:
        return self._ledger(partition)

    def store(self, partition: int) -> KVStore | None:
        """The store of a partition this worker holds (committed state), else None."""
        return self._stores.get(partition)

    def live(self, partition: int) -> bool:
        """Whether the partition's state is live: not rebuilding, not behind the views Redis
        serves, and near the end of the routed log as last looked up. A replaying partition
        judges no signal: its state is in the past, and judging it as of today would raise
        and retract episodes that never held."""
        ledger = self._ledgers.get(partition)
        end = self._ends.get(partition)
        if ledger is None or end is None:
            return False
        if partition in self._republishing or partition in self._catching_up:
            return False
        return self._next_offset(partition, ledger) >= end - _LIVE_LAG_MESSAGES

    def _ledger(self, partition: int) -> PartitionLedger:
        ledger = self._ledgers.get(partition)
        if ledger is None:
            store = self._open_store(partition)
            if rebuild_if_older(store):
                log.warning(
                    "partition %d: its state was folded by an engine that kept less of each "
                    "event; rebuilding it from the routed topic (signal episodes kept)",
                    partition,
                    extra={"partition": partition},
                )
            ledger = PartitionLedger(store, self._pseudonym, self._registry, self._cache_months)
            self._stores[partition] = store
            self._ledgers[partition] = ledger
            self._rewinds.pop(partition, None)
            self._moved[partition] = time.monotonic()
        return ledger

    # -- rebalancing ------------------------------------------------------------------------

    async def open(self, partitions: set[int]) -> None:
        """Open the state of newly assigned partitions."""
        async with self.lock:
            for partition in sorted(partitions - self._ledgers.keys()):
                self._ledger(partition)
                self._republishing.add(partition)  # until its views are checked
            self.assigned = True

    async def refresh_views(self, partitions: set[int]) -> None:
        """Rebuild the views of newly opened partitions where Redis is behind their state."""
        for partition in sorted(partitions):
            if partition in self._republishing:
                await self._republish_if_behind(partition)

    async def revoke(self, partitions: set[int]) -> None:
        async with self.lock:
            for partition in partitions & self._ledgers.keys():
                try:
                    await self._commit(partition)  # the next owner resumes from here
                except Exception:
                    # Not fatal (rolled back): the next owner replays from the committed offset.
                    log.exception(
                        "partition %d: commit on revocation failed",
                        partition,
                        extra={"partition": partition},
                    )
                del self._ledgers[partition]
                self._stores.pop(partition).close()
                self._republishing.discard(partition)
                self._published.discard(partition)
                self._catching_up.pop(partition, None)
                self._moved.pop(partition, None)
                self._failing.pop(partition, None)
                # Its new owner reports its lag, offset and watermark; values left here would
                # read as a stall, or a freshness that grows for ever.
                for gauge in (
                    self._metrics.lag,
                    self._metrics.next_offset,
                    self._metrics.watermark,
                    self._metrics.reversals_waiting,
                ):
                    gauge.remove(str(partition))

    async def close(self) -> None:
        await self.revoke(set(self._ledgers))

    # -- processing -------------------------------------------------------------------------

    async def process(self, messages: Sequence[Message]) -> None:
        """Apply ``messages``; commit the partitions whose applied events are due.

        A partition whose step fails is rolled back and the others go on; then the failure
        is raised (all of them, as an ExceptionGroup, when several partitions failed) and
        the caller retries the same messages, which the partitions that went on skip. So
        the failures of two partitions in one take count in a row side by side, each
        partition's own, rather than one after the other while the retries back off."""
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        failures: list[Exception] = []
        async with self.lock:
            for partition, batch in by_partition.items():
                try:
                    for step in in_steps(batch):  # bounded memory
                        await self._apply(partition, step)
                        if self._due(partition, time.monotonic()):
                            await self._commit(partition)
                except Exception as exc:
                    self._rollback(partition)  # retried: nothing half-applied
                    failures.append(exc)
                except BaseException:
                    self._rollback(partition)
                    raise
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise ExceptionGroup(f"ledger step failed in {len(failures)} partitions", failures)

    async def commit_due(self) -> None:
        """Commit every partition whose oldest applied event has waited long enough (a
        timer calls this, so that an event is committed even when nothing follows it)."""
        async with self.lock:
            now = time.monotonic()
            for partition in [p for p in self._uncommitted if self._due(p, now)]:
                await self._commit(partition)

    def _due(self, partition: int, now: float) -> bool:
        pending = self._uncommitted.get(partition)
        return pending is not None and (
            now - pending.since >= self._commit_interval or pending.bytes >= STEP_BYTES
        )

    def _rollback(self, partition: int) -> None:
        """Forget what ``partition`` applied since its last commit. Those messages come
        again: the retried step now starts past the committed offset, which seeks back."""
        self._uncommitted.pop(partition, None)
        ledger = self._ledgers.get(partition)
        if ledger is not None:
            ledger.rollback()

    def _next_offset(self, partition: int, ledger: PartitionLedger) -> int:
        """The next routed offset to apply: past what is applied, committed or not."""
        pending = self._uncommitted.get(partition)
        return ledger.progress.next_offset if pending is None else pending.next_offset

    async def _apply(self, partition: int, messages: list[Message]) -> None:
        started = time.perf_counter()
        ledger = self._ledger(partition)
        values: list[bytes] = []
        first = next_offset = self._next_offset(partition, ledger)
        for message in messages:
            if message.offset < next_offset:
                continue  # applied before a restart or a rebalance: never count twice
            if message.offset > next_offset and await self._rewind(partition, next_offset):
                break  # the missing messages come again after the seek
            self._rewinds.pop(partition, None)
            values.append(message.value or b"[]")
            next_offset = message.offset + 1
        if next_offset == first:
            return
        if self._setting_aside(partition, first):
            outcomes = await self._apply_setting_aside(partition, ledger, messages, next_offset)
        else:
            if partition in self._failing:
                # A failing partition commits before each step: when the step fails again,
                # the rollback undoes it alone and the retry needs no seek back.
                await self._commit(partition)
            try:
                # One synchronous call for the step (see PartitionLedger.apply_messages).
                outcomes = Counter(ledger.apply_messages(values))
            except Exception as exc:
                self._note_failure(partition, ledger, next_offset, exc)
                raise
        now = time.monotonic()
        pending = self._uncommitted.setdefault(partition, _Uncommitted(now, next_offset))
        pending.next_offset = next_offset
        pending.bytes += sum(map(len, values))
        self._moved[partition] = now
        for outcome, count in outcomes.items():
            self._metrics.ledger_events.labels(outcome.value).inc(count)
        self._metrics.step_seconds.labels("ledger").observe(time.perf_counter() - started)

    # -- a step that fails for good ---------------------------------------------------------

    def _note_failure(
        self, partition: int, ledger: PartitionLedger, end: int, exc: Exception
    ) -> None:
        """Count a failure to apply a step of ``partition`` (up to offset ``end``) while its
        state is committed where it is (outages do not count: they are waited out).

        In a row means at the same committed offset, not at the same first offset of the
        failing step: the steps applied since the commit are rolled back with it, and their
        messages come again in takes that may begin anywhere (the worker seeks back), so the
        failing step's first offset can change from one failure to the next."""
        if is_outage(exc):
            return
        committed = ledger.progress.next_offset  # commits alone move it
        failing = self._failing.get(partition)
        if failing is None or failing.offset != committed:
            failing = self._failing[partition] = _Failing(committed, end)
        failing.failures += 1
        failing.end = max(failing.end, end)

    def _setting_aside(self, partition: int, first: int) -> bool:
        """Whether the step that starts at ``first`` is to be applied message by message,
        setting aside what raises: its partition has failed often enough in a row, and the
        step starts before the end of the messages those failures were on. Set-aside mode
        ends once a commit passes that end."""
        failing = self._failing.get(partition)
        return (
            failing is not None
            and 0 < self._set_aside_after <= failing.failures
            and first < failing.end
        )

    async def _apply_setting_aside(
        self, partition: int, ledger: PartitionLedger, messages: list[Message], end: int
    ) -> Counter[Outcome]:
        """Apply the step's messages (those from the partition's next offset up to ``end``)
        one by one; a message whose apply raises is applied row by row against committed
        state, its failing rows set aside (PartitionLedger.apply_setting_aside).

        Commits are the savepoints: what the partition applied before the message, then the
        message without its set-aside rows, each committed as any step's events are (the
        rejections sent and confirmed first, then state and the offset past them in one
        batch), so a crash loses all of it or none.
        """
        await self._commit(partition)  # earlier steps: a rollback must not undo them
        outcomes: Counter[Outcome] = Counter()
        since: list[Message] = []  # applied since the last savepoint
        since_outcomes: Counter[Outcome] = Counter()
        position = ledger.progress.next_offset
        for message in messages:
            if not position <= message.offset < end:
                continue  # applied before, or past a gap (as in _apply)
            position = message.offset + 1
            value = message.value or b"[]"
            try:
                applied = Counter(ledger.apply_messages([value]))
            except Exception as exc:
                if is_outage(exc):
                    raise
            else:
                since.append(message)
                since_outcomes += applied
                continue
            ledger.rollback()
            if since:  # redo what applied before the failing message, and commit it
                since_outcomes = Counter(ledger.apply_messages([m.value or b"[]" for m in since]))
                await self._commit_at(partition, message.offset)
            outcomes += since_outcomes
            routed = Source(message.topic, partition, message.offset, None)
            rows, set_aside = ledger.apply_setting_aside(value, routed, is_outage)
            await self._commit_at(partition, message.offset + 1)
            outcomes += Counter(rows)
            self._report_set_aside(partition, message, set_aside)
            since, since_outcomes = [], Counter()
        return outcomes + since_outcomes

    async def _commit_at(self, partition: int, next_offset: int) -> None:
        """Commit what the partition applied, resuming at ``next_offset``."""
        self._uncommitted[partition] = _Uncommitted(time.monotonic(), next_offset)
        await self._commit(partition)

    def _report_set_aside(
        self, partition: int, message: Message, set_aside: list[SetAside]
    ) -> None:
        """Count and log what a committed step set aside: where it was (the routed and the
        bank topic's coordinates) and the exception's class, never the exception's message
        or the row (they can name an enterprise; the rejects topic holds them)."""
        for item in set_aside:
            self._metrics.set_aside.inc()
            source = item.rejection.source
            log.error(
                "partition %d: routed offset %d%s set aside to %s as apply_failed: applying "
                "it raises %s, and its step failed %d times in a row; the partition goes on "
                "without it (replay it once fixed: docs/operations.md)",
                partition,
                message.offset,
                "" if item.index is None else f" row {item.index}",
                REJECTED_TOPIC,
                type(item.error).__name__,
                self._set_aside_after,
                extra={
                    "stage": "ledger",
                    **coordinates([message]),
                    "offset": message.offset,
                    "index": item.index,
                    "error": type(item.error).__name__,
                    "source": {
                        "topic": source.topic,
                        "partition": source.partition,
                        "offset": source.offset,
                        "index": source.index,
                    },
                },
            )

    async def _commit(self, partition: int) -> None:
        """Commit what ``partition`` has applied, then publish the months it changed. A
        commit that fails is rolled back: its messages come again (see _rollback)."""
        pending = self._uncommitted.get(partition)
        ledger = self._ledgers.get(partition)
        if pending is None or ledger is None:
            return
        started = time.perf_counter()
        try:
            await self._send_rejections(ledger.rejections)
            changed = ledger.commit(pending.next_offset)
        except BaseException:
            self._rollback(partition)
            raise
        del self._uncommitted[partition]
        failing = self._failing.get(partition)
        if failing is not None and pending.next_offset >= failing.end:
            del self._failing[partition]  # past every message its failures were on
        if self._on_commit is not None:
            self._on_commit(partition, changed)
        await self._publish_step(partition, ledger, changed)
        self._metrics.commit_seconds.observe(time.perf_counter() - started)

    async def _publish_step(
        self, partition: int, ledger: PartitionLedger, changed: dict[str, set[int]]
    ) -> None:
        if partition in self._republishing:
            return  # not checked against Redis yet: the check publishes what is needed
        views_at = self._catching_up.get(partition)
        if views_at is None:
            await self._publish(partition, ledger, changed)
        elif ledger.progress.next_offset >= views_at:
            del self._catching_up[partition]
            log.info(
                "partition %d: state has caught up with the views (offset %d); republishing",
                partition,
                views_at,
                extra={"partition": partition, "offset": ledger.progress.next_offset},
            )
            await self._republish_all(partition, ledger)  # every step since was held back

    async def unstall(self, ends: Sequence[int]) -> None:
        """Seek again where a partition's state is behind the log and has not moved for a while.

        A seek can come to nothing: Faust drops refetched messages when the seek lands while
        an older fetch is still being delivered, and a partition whose group offset is at the
        end of the log gets no message that would make it rewind.
        """
        self._ends = {p: ends[p] for p in self.partitions if p < len(ends)}
        for partition, end in self._ends.items():
            behind = end - self._next_offset(partition, self._ledgers[partition])
            # The end was looked up before this call: events applied since can pass it.
            self._metrics.lag.labels(str(partition)).set(max(0, behind))
        if self._seek is None:
            return
        now = time.monotonic()
        for partition in self.partitions:
            next_offset = self._next_offset(partition, self._ledgers[partition])
            if partition >= len(ends) or next_offset >= ends[partition]:
                continue
            if now - self._moved.get(partition, now) < _STALL_SECONDS:
                continue
            log.warning(
                "partition %d: state at offset %d, log at %d, nothing applied for %.0f s; "
                "seeking again",
                partition,
                next_offset,
                ends[partition],
                now - self._moved[partition],
                extra={
                    "partition": partition,
                    "offset": next_offset,
                    "end_offset": ends[partition],
                },
            )
            self._moved[partition] = now
            self._rewinds[partition] = (next_offset, now)
            await self._seek(partition, next_offset)

    async def seek_to_state(self, partitions: set[int]) -> None:
        """Point the consumer at each partition's stored offset (after a rebalance).

        The group's committed offset can be ahead of the state (state lost or restored from
        an older copy) or behind it (commits lag the state by design).
        """
        if self._seek is None:
            return
        async with self.lock:
            for partition in sorted(partitions & self._ledgers.keys()):
                await self._commit(partition)
                await self._seek(partition, self._ledgers[partition].progress.next_offset)

    async def _rewind(self, partition: int, expected: int) -> bool:
        """A message beyond the state's offset arrived: seek back, unless the log lacks the
        missing offsets. Returns True when the caller must drop the message."""
        if self._seek is None:
            return False
        target, when = self._rewinds.get(partition, (-1, 0.0))
        if target == expected and time.monotonic() - when < _REWIND_RETRY_SECONDS:
            return True  # already seeking there; messages fetched before the seek still drain
        if self._log_start is not None and expected < await self._log_start(partition):
            log.error(
                "partition %d: offsets from %d are no longer in the routed topic (retention); "
                "state cannot be rebuilt for them",
                partition,
                expected,
                extra={"partition": partition, "offset": expected},
            )
            return False
        log.warning(
            "partition %d: state resumes at offset %d; seeking back to rebuild it",
            partition,
            expected,
            extra={"partition": partition, "offset": expected},
        )
        self._rewinds[partition] = (expected, time.monotonic())
        await self._seek(partition, expected)
        return True

    async def _send_rejections(self, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        outbox = Outbox(self._sender)
        for rejection in rejections:
            source = rejection.source
            record = rejected_record(
                rejection.reason,
                rejection.detail,
                "ledger",
                source.topic,
                source.partition,
                source.offset,
                source.index,
                codec.dumps(rejection.event) if rejection.original is None else rejection.original,
            )
            key = f"{source.topic}/{source.partition}/{source.offset}".encode()
            await outbox.reject(key, record)
            self._metrics.rejected.labels(rejection.reason.value, "ledger").inc()
        await outbox.flush()

    async def prune_history(self, before_month: int) -> int:
        """Drop state and views booked before ``before_month``; returns enterprise-months."""
        dropped = 0
        for partition in self.partitions:
            async with self.lock:
                ledger = self._ledgers.get(partition)
                if ledger is None:
                    continue
                await self._commit(partition)  # prune works on committed state only
                # confirmed on the rejects topic before prune forgets them: a crash between
                # the two sends them again (same key), never loses them
                await self._send_rejections(ledger.expiring_reversals(before_month))
                pruned = ledger.prune(before_month)
                # episodes closed before the kept history go with it (the same horizon)
                kept = SignalState(self._stores[partition]).prune_kept(_first_day(before_month))
                offset = ledger.progress.next_offset
            if pruned or kept:
                # the months go and the carry comes in one write per enterprise, so a
                # product never reads the months without what they left in the carry
                fields: dict[str, dict[str, bytes]] = {
                    e: {CARRY_FIELD: carry.encode()}
                    | {month_field(format_month(m)): b"" for m in months}
                    for e, (months, carry) in pruned.items()
                }
                for e, episodes in kept.items():
                    fields.setdefault(e, {})[EPISODES_FIELD] = (
                        encode_kept(episodes) if episodes else b""
                    )
                await self._publish_with_retry(partition, fields, offset, None)
            if pruned:
                await self._views.drop_months(
                    {e: [format_month(m) for m in months] for e, (months, _) in pruned.items()}
                )
                dropped += sum(len(months) for months, _ in pruned.values())
        if dropped:
            log.info(
                "dropped %d enterprise-months booked before %s", dropped, format_month(before_month)
            )
        return dropped

    # -- publishing views -------------------------------------------------------------------

    async def publish_episodes(self, partition: int, episodes: dict[str, bytes]) -> None:
        """Publish enterprises' kept signal episodes (encoded; b"": none), guarded like every
        views write: from the committed state's offset. Called under :attr:`lock` by the
        signal stage, which has judged that committed state."""
        ledger = self._ledgers.get(partition)
        if ledger is None or not episodes:
            return
        fields = {e: {EPISODES_FIELD: value} for e, value in episodes.items()}
        await self._publish_with_retry(partition, fields, ledger.progress.next_offset, None)

    async def _publish(
        self, partition: int, ledger: PartitionLedger, changed: dict[str, set[int]]
    ) -> None:
        fields: dict[str, dict[str, bytes]] = {}
        for enterprise_id, months in changed.items():
            entry = fields[enterprise_id] = {}
            for month in months:
                agg = ledger.month(enterprise_id, month)
                entry[month_field(format_month(month))] = (
                    b"" if agg is None else codec.dumps(agg.view())
                )
        progress = ledger.progress
        await self._publish_with_retry(partition, fields, progress.next_offset, progress)

    async def _publish_with_retry(
        self,
        partition: int,
        fields: dict[str, dict[str, bytes]],
        offset: int,
        progress: Progress | None,
        create: bool = False,
    ) -> None:
        """Publish views of the state at routed ``offset``, and the progress they reach
        unless ``progress`` is None. Progress missing from Redis is written only when
        ``create``; nothing goes over views from a later offset (see ViewStore.publish)."""
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                had_progress = await self._views.publish(
                    partition,
                    fields,
                    None if progress is None else as_of(progress, partition),
                    create,
                    offset,
                )
            except NewerViewsError as exc:
                self._behind_views(partition, exc.newer)
                return
            except Exception as exc:  # Redis down or failing over: state is safe, keep trying
                self.views_ok = False
                self._metrics.publish_errors.inc()
                log.warning(
                    "partition %d: publishing views failed (%s); retrying in %.1fs",
                    partition,
                    type(exc).__name__,
                    delay,
                    extra={
                        "partition": partition,
                        "offset": None if progress is None else progress.next_offset,
                    },
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)
                continue
            self.views_ok = True
            self._metrics.publish_seconds.observe(time.perf_counter() - started)
            if progress is None:
                return
            if not had_progress and not create:
                self._views_vanished(partition)
                return
            self._published.add(partition)
            self._metrics.next_offset.labels(str(partition)).set(progress.next_offset)
            if progress.watermark_us is not None:
                self._metrics.watermark.labels(str(partition)).set(progress.watermark_us / 1e6)
            return

    async def check_views(self) -> None:
        """Rebuild the views of partitions whose progress is gone from Redis (restarted
        empty, flushed) even when no event comes to publish: until rebuilt, the API answers
        their products 503, and nothing else would rebuild them."""
        for partition in sorted(self._published - self._republishing):
            try:
                progress = await self._views.progress_raw(partition)
            except Exception:
                return  # Redis away: publishing says so (views_ok, the log); checked again
            if progress is None and partition in self._published - self._republishing:
                self._views_vanished(partition)

    def _behind_views(self, partition: int, newer: int) -> None:
        """Redis holds views of ``partition`` from a later routed offset than this state:
        another worker has published it further. Either that worker took the partition while
        this one was cut off from the group (which it learns when it reaches the broker
        again), or this state is behind. Publish nothing more of it until the state reaches
        those views, as for a partition moved here without its state: older views never
        replace newer ones (ViewStore.publish left them in place)."""
        log.warning(
            "partition %d: Redis holds its views from routed offset %d, past this worker's "
            "state; publishing nothing of it until the state gets there (has another worker "
            "taken the partition?)",
            partition,
            newer,
            extra={"partition": partition, "views_offset": newer},
        )
        self._catching_up[partition] = max(newer, self._catching_up.get(partition, newer))

    def _views_vanished(self, partition: int) -> None:
        """Redis lost this partition's views (restarted empty, flushed): rebuild them all."""
        log.warning(
            "partition %d: views vanished from Redis; republishing from state",
            partition,
            extra={"partition": partition},
        )
        self._republishing.add(partition)
        task = asyncio.get_running_loop().create_task(self._republish(partition))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _republish(self, partition: int) -> None:
        try:
            async with self.lock:
                ledger = self._ledgers.get(partition)
                if ledger is not None:
                    await self._commit(partition)
                    await self._republish_all(partition, ledger)
        finally:
            self._republishing.discard(partition)

    async def _republish_if_behind(self, partition: int) -> None:
        """Rebuild a partition's views from state when Redis lacks them or is behind."""
        try:
            async with self.lock:
                ledger = self._ledgers.get(partition)
                if ledger is None:
                    return
                await self._commit(partition)
                published = await self._published_offset(partition)
                if published == ledger.progress.next_offset:
                    self._published.add(partition)
                    self._metrics.next_offset.labels(str(partition)).set(published)
                    return
                if published is not None and published > ledger.progress.next_offset:
                    log.info(
                        "partition %d: views at offset %d, state at %d: keeping the views "
                        "until the state catches up",
                        partition,
                        published,
                        ledger.progress.next_offset,
                        extra={
                            "partition": partition,
                            "offset": ledger.progress.next_offset,
                            "views_offset": published,
                        },
                    )
                    self._catching_up[partition] = published
                    return
                log.info(
                    "partition %d: views at offset %s, state at %d: republishing",
                    partition,
                    published,
                    ledger.progress.next_offset,
                    extra={
                        "partition": partition,
                        "offset": ledger.progress.next_offset,
                        "views_offset": published,
                    },
                )
                await self._republish_all(partition, ledger)
        finally:
            self._republishing.discard(partition)

    async def _republish_all(self, partition: int, ledger: PartitionLedger) -> None:
        batch: dict[str, dict[str, bytes]] = {}
        for enterprise_id, months in ledger.enterprises():
            batch[enterprise_id] = {
                month_field(format_month(m)): codec.dumps(agg.view()) for m, agg in months.items()
            }
            if len(batch) >= _REPUBLISH_CHUNK:  # progress only with the last chunk
                await self._publish_with_retry(partition, batch, ledger.progress.next_offset, None)
                self._metrics.republished_enterprises.inc(len(batch))
                batch = {}
        for enterprise_id, carry in ledger.carries():  # enterprises with pruned months
            batch.setdefault(enterprise_id, {})[CARRY_FIELD] = carry.encode()
            if len(batch) >= _REPUBLISH_CHUNK:
                await self._publish_with_retry(partition, batch, ledger.progress.next_offset, None)
                self._metrics.republished_enterprises.inc(len(batch))
                batch = {}
        for enterprise_id, episodes in SignalState(self._stores[partition]).all_kept():
            batch.setdefault(enterprise_id, {})[EPISODES_FIELD] = episodes
            if len(batch) >= _REPUBLISH_CHUNK:
                await self._publish_with_retry(partition, batch, ledger.progress.next_offset, None)
                self._metrics.republished_enterprises.inc(len(batch))
                batch = {}
        self._published.discard(partition)  # its progress is written anew below
        progress = ledger.progress
        await self._publish_with_retry(
            partition, batch, progress.next_offset, progress, create=True
        )
        self._metrics.republished_enterprises.inc(len(batch))

    async def _published_offset(self, partition: int) -> int | None:
        delay = 0.1
        while True:
            try:
                progress = await self._views.progress(partition)
                return None if progress is None else int(progress["routed_offset"])
            except Exception as exc:
                self.views_ok = False
                log.warning(
                    "partition %d: reading view progress failed (%s)",
                    partition,
                    type(exc).__name__,
                    extra={"partition": partition},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)
