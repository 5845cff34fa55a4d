"""Stage 2b: judge the signal rules of the enterprises a commit changed, and on each new day.

The ledger marks every enterprise whose committed state changed (``E|`` keys, in the same
batch as the change: state/signals.py) and tells this stage after the commit. A timer calls
:meth:`SignalStage.evaluate_pending` every few tens of milliseconds: it judges the marked
enterprises of each live partition, a chunk at a time under the ledger's lock (so that the
state it reads is committed and stays put), publishes the transitions to ``credit.signals``
(acks=all), writes the episodes it keeps for the products (open and closed, as long as the
history) to the enterprise's views hash when they changed, and then stores the open and kept
episodes and clears the markers in one batch. A crash in between publishes the same
transitions again, with the same ids: deliveries drop repeats (state/signal_feeds.py).

Marked enterprises are judged oldest evidence first: in the order their first change not
yet judged was committed, and in a tick the partition with the oldest waiting first, so
that after a backlog a new signal waits for the firms ahead of it, not for a random share.

Rules about absence change with the calendar alone: when the as-of day (China time) moves,
every enterprise of a partition is marked and judged again, a chunk at a time (a sweep,
state/signals.py).

The episodes go to the signal-state changelog with the transitions, before the views and
the state, and a partition given to this worker is restored from it before it is judged
(agents/signal_restore.py): a move keeps the episodes a rebuild from the routed topic cannot.

Each enterprise's months are kept as digests for the most recently judged enterprises, up
to a number of months (agents/signal_digests.py); a commit notes which of their months
changed, and judging the enterprise again reads only those.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime

from agents.ledger import LedgerStage
from agents.sending import Outbox, Sender
from agents.signal_digests import DigestCache
from agents.signal_restore import ChangelogReader
from engine.events.topics import SIGNAL_STATE_TOPIC, SIGNALS_TOPIC
from engine.metrics import WorkerMetrics
from engine.periods import CST
from engine.signals.episodes import Episode
from engine.signals.evaluate import RuleSet, evaluate, signal_record
from engine.signals.timeline import month_of
from state.signals import KeptEpisodes, SignalState, encode_kept, encode_snapshot, kept_after

__all__ = ["DEBOUNCE_SECONDS", "MAX_WAIT_SECONDS", "QUIET_SECONDS", "SignalStage", "today_in_china"]

log = logging.getLogger(__name__)

# Judging holds the ledger's lock and shares its core: a chunk takes at most this long, one
# chunk a tick of the 50 ms timer, so that signals take at most about a third of the worker
# and ingest keeps the rest. Under more load than that, marked enterprises wait (the
# pending gauge) and signals come later; the views never do. (At 0.25 s a tick, `make bench`
# measured freshness p50 18 s instead of 5 s at 20,000 events/s.)
_CHUNK_SECONDS = 0.02
_CHUNK_ENTERPRISES = 500
DEBOUNCE_SECONDS = 0.3  # an enterprise's recent changes are judged once they pause this long
MAX_WAIT_SECONDS = 5.0  # ... or this long after the first, for a firm that never pauses
QUIET_SECONDS = 10.0  # history arriving for an enterprise is judged once it stops this long
_TICK_SECONDS = 0.02
_RESTORE_RETRY_MAX_SECONDS = 10.0


def today_in_china() -> date:
    return datetime.now(CST).date()


class _Queue:
    """A partition's enterprises waiting to be judged, oldest evidence first: each with the
    time its first change not yet judged was committed. After a backlog (a burst, a
    backfill) a new signal then waits for the firms ahead of it, not for a random share of
    the backlog (a set's order: some firms waited for the whole of it)."""

    __slots__ = ("_heap", "_since")

    def __init__(self) -> None:
        self._since: dict[str, float] = {}  # enterprise -> when its evidence was committed
        self._heap: list[tuple[float, str]] = []  # may hold entries no longer in _since

    def __len__(self) -> int:
        return len(self._since)

    def add(self, enterprises: Iterable[str], since: float) -> None:
        """Queue ``enterprises`` as of ``since``; one already queued keeps the older time."""
        for enterprise_id in enterprises:
            queued = self._since.get(enterprise_id)
            if queued is None or since < queued:
                self._since[enterprise_id] = since
                heapq.heappush(self._heap, (since, enterprise_id))

    def oldest(self) -> float | None:
        """When the evidence of the first in line was committed (None when empty)."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[str, float]:
        """The first in line, and its time."""
        self._drop_stale()
        since, enterprise_id = heapq.heappop(self._heap)
        del self._since[enterprise_id]
        return enterprise_id, since

    def _drop_stale(self) -> None:
        heap, queued = self._heap, self._since
        while heap and queued.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)


class SignalStage:
    def __init__(
        self,
        ledger: LedgerStage,
        sender: Sender,
        rules: RuleSet,
        metrics: WorkerMetrics,
        today: Callable[[], date] = today_in_china,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        digest_months: int = 12_000,
        changelog: ChangelogReader | None = None,
    ) -> None:
        self._ledger = ledger
        self._changelog = changelog  # None: no restore (a partition's state is all there is)
        self._restoring: set[int] = set()  # opened, not restored yet: not judged
        self._owned: set[int] = set()  # opened and not revoked since
        self._sender = sender
        self._rules = rules
        self._metrics = metrics
        self._today = today
        self._now = now
        self._monotonic = monotonic
        self._pending: dict[int, _Queue] = {}  # partition -> marked enterprises, in line
        self._days: dict[int, date] = {}  # partition -> the as-of day it was last swept for
        self._sweeping: set[int] = set()  # partitions whose sweep may not be done
        # partition -> enterprise -> (first change, last change, one of them recent), the
        # times monotonic: changed enterprises waiting for their changes to pause
        self._waiting: dict[int, dict[str, tuple[float, float, bool]]] = {}
        # partition -> enterprise -> when it last changed, for those that changed within
        # DEBOUNCE_SECONDS (older entries are dropped: a change after them is a lone one)
        self._changed_at: dict[int, dict[str, float]] = {}
        self._forgotten_at = 0.0  # when _changed_at was last cleared of old entries
        self._digests = DigestCache(digest_months)
        metrics.signal_digest_months.set_function(lambda: self._digests.months)
        metrics.signals_pending.set_function(
            lambda: sum(map(len, self._pending.values())) + sum(map(len, self._waiting.values()))
        )

    # -- what the ledger tells ------------------------------------------------------------

    def committed(self, partition: int, changed: dict[str, set[int]]) -> None:
        """The ledger committed ``changed`` (months per enterprise): mark and refresh.

        An enterprise is judged once its changes pause, not after every step: events of one
        firm arriving in a stream (a bank's backfill of its history, in booking order) would
        otherwise be judged as of today on the part that has come, and raise episodes only
        to retract them. A change to this month or the last is judged DEBOUNCE_SECONDS after
        the enterprise's last change, and at the latest MAX_WAIT_SECONDS after its first; a
        change only to older months (history arriving, a late event) QUIET_SECONDS after.

        A lone change is judged at once: one to this month or the last, of an enterprise
        that had not changed for DEBOUNCE_SECONDS and is not waiting (live traffic: a firm's
        event every few seconds or hours). Waiting for a pause that has already happened
        was 0.3 s of every signal's latency; a stream's first commit is judged then, and the
        rest of it once it pauses, as before. A backfill starts with older months, so the
        firm is already waiting when its stream reaches the current one.
        """
        waiting = self._waiting.setdefault(partition, {})
        changed_at = self._changed_at.setdefault(partition, {})
        recent = month_of(self._today()) - 1
        now = self._monotonic()
        lone: list[str] = []
        for enterprise_id, months in changed.items():
            live = max(months) >= recent
            if (
                live
                and enterprise_id not in waiting
                and now - changed_at.get(enterprise_id, -DEBOUNCE_SECONDS) >= DEBOUNCE_SECONDS
            ):
                lone.append(enterprise_id)
            else:
                first, _, was_recent = waiting.get(enterprise_id, (now, now, False))
                waiting[enterprise_id] = (first, now, was_recent or live)
            changed_at[enterprise_id] = now
            self._digests.changed(enterprise_id, months)  # read again when it is judged
        if lone:
            self._pending.setdefault(partition, _Queue()).add(lone, now)

    def opened(self, partitions: set[int]) -> None:
        """Partitions given to this worker: what their state still marks is judged (first:
        it was committed before anything this worker commits)."""
        for partition in partitions:
            store = self._ledger.store(partition)
            if store is not None:
                marked = SignalState(store).marked()
                self._pending.setdefault(partition, _Queue()).add(marked, float("-inf"))
                if self._changelog is not None and partition not in self._owned:
                    self._restoring.add(partition)  # kept through a rebalance: nothing to do
                self._owned.add(partition)

    async def restore(self, partitions: set[int]) -> None:
        """Restore opened partitions' episodes from the signal-state changelog; until then
        they are not judged. A broker that cannot be read is tried again, not skipped: a
        partition judged without its episodes would raise again what is open and never
        clear what ended."""
        # in parallel: each read waits a second past its end (agents/signal_restore.py)
        await asyncio.gather(*(self._restore(p) for p in sorted(partitions & self._restoring)))

    async def _restore(self, partition: int) -> None:
        """One partition's restore, tried until it is read or the partition goes."""
        delay = 0.5
        while partition in self._restoring and self._changelog is not None:
            store = self._ledger.store(partition)
            if store is None:
                break
            start = SignalState(store).changelog_offset()
            try:
                snapshots, end = await self._changelog(partition, start)
                async with self._ledger.lock:
                    if (
                        partition not in self._restoring
                        or self._ledger.store(partition) is not store
                    ):
                        return  # revoked meanwhile
                    if start == 0:
                        await self._seed(partition, SignalState(store), snapshots)
                    malformed = SignalState(store).restore(snapshots, end)
                    self._pending.setdefault(partition, _Queue()).add(snapshots, float("-inf"))
                    self._restoring.discard(partition)
            except Exception as exc:  # the broker: reading, or writing the seed
                log.warning(
                    "partition %d: restoring its signal episodes from the changelog failed "
                    "(%s); trying again in %.1f s",
                    partition,
                    type(exc).__name__,
                    delay,
                    extra={"partition": partition, "offset": start},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RESTORE_RETRY_MAX_SECONDS)
                continue
            if malformed:
                log.error(
                    "partition %d: %d records of the signal-state changelog (offsets %d to "
                    "%d) are not snapshots; their enterprises keep the episodes the state has",
                    partition,
                    len(malformed),
                    start,
                    end,
                    extra={"partition": partition, "offset": start, "end_offset": end},
                )
            log.info(
                "partition %d: signal episodes of %d enterprises restored from the "
                "changelog (offsets %d to %d)",
                partition,
                len(snapshots),
                start,
                end,
                extra={"partition": partition, "offset": start, "end_offset": end},
            )

    async def _seed(
        self, partition: int, state: SignalState, snapshots: dict[str, bytes | None]
    ) -> None:
        """Write to the changelog the episodes the state keeps and the whole changelog
        lacks: those judged by workers older than the changelog, which a later rebuild of
        the partition would otherwise lose."""
        outbox = Outbox(self._sender)
        seeded = 0
        for enterprise_id in state.with_episodes():
            if enterprise_id not in snapshots:
                snapshot = encode_snapshot(state.kept(enterprise_id), state.episodes(enterprise_id))
                await outbox.send(SIGNAL_STATE_TOPIC, enterprise_id.encode(), snapshot, partition)
                snapshots[enterprise_id] = snapshot
                seeded += 1
        await outbox.flush()
        if seeded:
            log.info(
                "partition %d: the signal episodes of %d enterprises written to the changelog "
                "(kept before it existed)",
                partition,
                seeded,
                extra={"partition": partition},
            )

    def revoked(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._pending.pop(partition, None)
            self._waiting.pop(partition, None)
            self._changed_at.pop(partition, None)
            self._days.pop(partition, None)
            self._sweeping.discard(partition)
            self._restoring.discard(partition)
            self._owned.discard(partition)
        self.forget()  # another worker may change them before they come back

    def forget(self) -> None:
        """Drop the kept digests (state changed other than by a commit: pruning, a move)."""
        self._digests.clear()

    # -- judging --------------------------------------------------------------------------

    async def evaluate_pending(self) -> int:
        """Judge a chunk of every live partition's marked enterprises; returns how many."""
        judged = 0
        today = self._today()
        started = time.perf_counter()
        self._settle(self._monotonic())
        for partition in sorted(self._ledger.partitions, key=self._first_in_line):
            while (
                self._days.get(partition) != today
                or self._pending.get(partition)
                or partition in self._sweeping
            ):
                done = await self._partition(partition, today)
                judged += done
                if not done or time.perf_counter() - started > _TICK_SECONDS:
                    break
                await asyncio.sleep(0)  # let the ledger's steps in between chunks
        return judged

    def _first_in_line(self, partition: int) -> float:
        """A partition with older evidence waiting is judged first in a tick (one that has
        not started its new day's sweep, first of all; the firms a sweep marks count from
        when it marks them)."""
        if self._days.get(partition) != self._today():
            return float("-inf")
        pending = self._pending.get(partition)
        oldest = None if pending is None else pending.oldest()
        return float("inf") if oldest is None else oldest

    def _settle(self, now: float) -> None:
        """Enterprises whose changes have paused long enough are judged, in the order their
        first change was committed."""
        if now - self._forgotten_at >= DEBOUNCE_SECONDS:  # a lone change needs no older ones
            self._forgotten_at = now
            for partition, changed_at in self._changed_at.items():
                self._changed_at[partition] = {
                    e: at for e, at in changed_at.items() if now - at < DEBOUNCE_SECONDS
                }
        for partition, waiting in self._waiting.items():
            due = []
            for enterprise_id, (first, last, recent) in waiting.items():
                if recent:
                    ready = now - last >= DEBOUNCE_SECONDS or now - first >= MAX_WAIT_SECONDS
                else:
                    ready = now - last >= QUIET_SECONDS
                if ready:
                    due.append((first, enterprise_id))
            if due:
                pending = self._pending.setdefault(partition, _Queue())
                for first, enterprise_id in due:
                    pending.add((enterprise_id,), first)
                    del waiting[enterprise_id]

    async def _partition(self, partition: int, today: date) -> int:
        async with self._ledger.lock:
            store = self._ledger.store(partition)
            if store is None or partition in self._restoring or not self._ledger.live(partition):
                return 0
            state = SignalState(store)
            pending = self._pending.setdefault(partition, _Queue())
            if self._days.get(partition) != today:
                if state.day() != today:
                    log.info("partition %d: new day %s, judging every enterprise", partition, today)
                    state.start_sweep(today)
                self._days[partition] = today
                self._sweeping.add(partition)
            if partition in self._sweeping and len(pending) < _CHUNK_ENTERPRISES:
                swept = state.sweep(_CHUNK_ENTERPRISES)
                if swept is None:
                    self._sweeping.discard(partition)
                else:
                    pending.add(swept, self._monotonic())
            if not pending:
                return 0
            started = time.perf_counter()
            chunk: list[tuple[str, float]] = []
            results: dict[str, tuple[dict[str, Episode], dict[str, Episode]]] = {}
            outbox = Outbox(self._sender)
            emitted_at = self._now()
            counts: list[tuple[str, str, str]] = []
            kept: dict[str, KeptEpisodes] = {}  # the enterprises whose kept episodes changed
            while pending and len(results) < _CHUNK_ENTERPRISES:
                enterprise_id, since = pending.pop()
                before = state.episodes(enterprise_id)
                try:
                    judged = evaluate(
                        enterprise_id,
                        self._digests.months_of(state, enterprise_id),
                        today,
                        before,
                        self._rules,
                        state.carried(enterprise_id),
                    )
                except Exception:
                    # A rule that fails on some data must not stop the others: this one stays
                    # marked in the store (judged again after a restart) and the error is seen.
                    log.exception("partition %d: judging an enterprise's rules failed", partition)
                    self._metrics.step_failures.labels("signals").inc()
                    continue
                chunk.append((enterprise_id, since))
                results[enterprise_id] = (before, judged.open)
                if judged.transitions or before:  # else nothing kept can change: no read
                    kept_before = state.kept(enterprise_id)
                    kept_now = kept_after(kept_before, before, judged.transitions, today)
                    if kept_now != kept_before:
                        kept[enterprise_id] = kept_now
                    if judged.transitions or kept_now != kept_before:
                        # the changelog a move restores from: before the views and the state
                        await outbox.send(
                            SIGNAL_STATE_TOPIC,
                            enterprise_id.encode(),
                            encode_snapshot(kept_now, judged.open),
                            partition,
                        )
                for change in judged.transitions:
                    severity = self._rules.severity(change.episode.rule)
                    record = signal_record(enterprise_id, change, severity, today, emitted_at)
                    await outbox.send(SIGNALS_TOPIC, enterprise_id.encode(), record, partition)
                    counts.append((change.episode.rule, severity, change.state.value))
                if time.perf_counter() - started > _CHUNK_SECONDS:
                    break
            try:
                await outbox.flush()
                # The views first, then the state: a crash in between leaves the enterprise
                # marked, judged again and published again (the same episodes).
                await self._ledger.publish_episodes(
                    partition,
                    {e: encode_kept(episodes) if episodes else b"" for e, episodes in kept.items()},
                )
            except BaseException:
                for enterprise_id, since in chunk:  # still marked in the store: judged again
                    pending.add((enterprise_id,), since)
                raise
            state.evaluated(results, [enterprise_id for enterprise_id, _ in chunk], kept)
            for labels in counts:
                self._metrics.signals.labels(*labels).inc()
            self._metrics.signal_evaluations.inc(len(chunk))
            self._metrics.signal_evaluation_seconds.observe(time.perf_counter() - started)
            return len(chunk)
