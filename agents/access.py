"""The access stage: apply the access log to access state, and index query records.

**The access log** (one partition, so it orders every change of access state) is applied in
order: each command is decided by ``engine.access.commands.apply`` against the state the
commands before it left, its entities go to the compacted access state topic (delivery
confirmed), then a step's entities, the answers the API waits for, and the next offset are
written to Redis at once, if Redis is still at the offset the step was read at. Messages
below that offset are skipped, so a redelivered step changes nothing; a worker seeks to it
whenever it is given the partition. A worker that stalled in a step (cut off from the
broker, stopped, paused) while another took the log over and went further finds Redis past
its step: it writes nothing of it, counts it (``creditflow_access_steps_superseded_total``)
and goes on from where Redis is. It sends the step's entities to the topic only if Redis is
still at the step's offset just before; a stall during that delivery can still put older
entities there after newer ones (Kafka has no conditional write).
When Redis has lost the offset (a restart, a flush) the log is replayed from the start:
``apply`` is deterministic, so the replay rebuilds exactly the same state.

**Query records** are indexed per enterprise and per institution (state/queries.py), each
partition's next offset written with them; a partition whose offset Redis lost is read
again from the start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from agents.intake import Message
from agents.sending import Outbox, Sender
from engine.access import commands
from engine.access.commands import AccessState, Entity, entity_key
from engine.access.model import (
    Authorization,
    AuthorizationStatus,
    Credential,
    Dispute,
    EnterpriseAccount,
    Institution,
    Purpose,
    Statement,
)
from engine.access.records import QueryRecord, decode_batch
from engine.events.topics import ACCESS_STATE_TOPIC
from engine.metrics import WorkerMetrics
from state.access import AccessStore, StepWrites, encode_entity
from state.queries import QueryIndex

__all__ = ["AccessLogStage", "QueryIndexStage"]

log = logging.getLogger(__name__)

SeekLog = Callable[[int], Awaitable[None]]
SeekPartition = Callable[[int, int], Awaitable[None]]
#: Called once a step is in Redis with the authorizations it made active for monitoring.
Granted = Callable[[list[Authorization]], Awaitable[None]]


async def _nobody(_: list[Authorization]) -> None:
    return None


class _Overlay(AccessState):
    """The state ``apply`` reads within a step: what the step wrote, else what Redis held."""

    def __init__(self, known: dict[tuple[str, str], Entity | None]) -> None:
        self.known = known

    def _get(self, kind: str, entity_id: str) -> Entity | None:
        return self.known.get((kind, entity_id))

    def institution(self, code: str) -> Institution | None:
        found = self._get("institution", code)
        return found if isinstance(found, Institution) else None

    def credential(self, credential_id: str) -> Credential | None:
        found = self._get("credential", credential_id)
        return found if isinstance(found, Credential) else None

    def enterprise_account(self, enterprise_id: str) -> EnterpriseAccount | None:
        found = self._get("enterprise", enterprise_id)
        return found if isinstance(found, EnterpriseAccount) else None

    def authorization(self, authorization_id: str) -> Authorization | None:
        found = self._get("authorization", authorization_id)
        return found if isinstance(found, Authorization) else None

    def dispute(self, dispute_id: str) -> Dispute | None:
        found = self._get("dispute", dispute_id)
        return found if isinstance(found, Dispute) else None

    def statement(self, statement_id: str) -> Statement | None:
        found = self._get("statement", statement_id)
        return found if isinstance(found, Statement) else None


def answer(applied: commands.Applied) -> bytes:
    """The answer the API waits for: the entity, or the refusal."""
    if applied.refusal is not None:
        status, code, message = applied.refusal
        return msgspec.json.encode(
            {"ok": False, "status": status, "code": code, "message": message}
        )
    assert applied.entity is not None
    kind, _ = entity_key(applied.entity)
    return msgspec.json.encode({"ok": True, "kind": kind, "entity": applied.entity})


class AccessLogStage:
    """Applies the access log, the only writer of access state."""

    def __init__(
        self,
        store: AccessStore,
        sender: Sender,
        seek: SeekLog,
        metrics: WorkerMetrics,
        monitoring_granted: Granted = _nobody,
    ) -> None:
        self._store = store
        self._sender = sender
        self._seek = seek
        self._metrics = metrics
        self._granted = monitoring_granted  # the signal feeds catch the new monitor up
        self.next_offset: int | None = None  # None until the partition is assigned
        self._restore_until: int | None = None  # replaying a lost access state up to here

    async def assigned(self) -> None:
        """Resume where Redis says (the start of the log when it says nothing)."""
        self.next_offset = await self._store.applied() or 0
        self._restore_until = await self._store.restoring()  # a replay its owner left
        await self._seek(self.next_offset)

    def revoked(self) -> None:
        self.next_offset = None

    async def check(self) -> bool:
        """Replay the log from the start when Redis has lost access state (a restart, a
        flush), or from where Redis is when it went back (a failover of a Redis Cluster
        lost the primary's latest writes before its replica had them: access state is one
        slot, so it is as a whole where its offset says); called before each step and on a
        timer, so it happens without a new command. Returns whether it did."""
        if not self.next_offset:
            return False
        applied = await self._store.applied()
        if applied is not None and applied < self.next_offset:
            log.warning(
                "access state in Redis went back to offset %d from %d (a failover lost its "
                "latest writes): applying the access log again from there",
                applied,
                self.next_offset,
            )
            self.next_offset = applied
            await self._seek(applied)
            return True
        if applied is not None:
            return False
        log.warning("access state is gone from Redis: replaying the access log from the start")
        # Until the replay is back where it was, a missing entity may exist: the API must
        # not refuse a lender's token or authorization as unknown meanwhile.
        self._restore_until = max(self.next_offset, self._restore_until or 0)
        await self._store.mark_restoring(self._restore_until)
        self.next_offset = 0
        await self._seek(0)
        return True

    async def process(self, messages: Sequence[Message]) -> None:
        if self.next_offset is None:
            return  # not ours (yet): the assignment seeks first
        if await self.check():
            return
        while (start := self.next_offset) is not None:
            todo = [m for m in messages if m.offset >= start]
            if not todo:
                return
            found = await self._step(todo, start)
            if found is None:
                return
            # Another worker wrote what this step would have (its writes need Redis at
            # ``start``), or Redis went back: nothing older than Redis's state was written.
            self._metrics.access_steps_superseded.inc()
            if self.next_offset != start:
                return  # revoked, or sent back by check(), meanwhile
            if found > start:
                log.warning(
                    "access log offsets %d to %d: another worker had applied the log up to "
                    "offset %d (this one stalled or was cut off); this step was not "
                    "written, and the log goes on from there",
                    todo[0].offset,
                    todo[-1].offset,
                    found,
                )
                self.next_offset = found
            elif await self.check():  # went back, or lost: check() seeks
                return

    async def _step(self, todo: list[Message], start: int) -> int | None:
        """Apply ``todo``, read at offset ``start``. Returns None once written, else the
        offset Redis was at (not ``start``): nothing of the step was written."""
        decoded = [(message, self._decode(message)) for message in todo]
        wanted = [key for _, c in decoded if c is not None for key in commands.reads(c)]
        at, known = await self._store.snapshot(wanted)
        if at != start:
            return at
        overlay = _Overlay(dict.fromkeys(wanted))
        overlay.known.update(known)
        step = StepWrites()
        was_monitoring = {key for key, e in overlay.known.items() if _monitoring(e)}
        outcomes = ["unreadable" for _, c in decoded if c is None]
        for _, command in decoded:
            if command is not None:
                outcomes.append(self._apply(command, overlay, step))
        step.next_offset = todo[-1].offset + 1
        # A worker that stalled since its snapshot (stopped, paused) may find Redis past its
        # step now; its entities must not follow the newer ones onto the compacted topic,
        # which has no conditional write (a stall during the delivery itself still can).
        now = await self._store.applied() or 0
        if now != start:
            return now
        outbox = Outbox(self._sender)
        for (kind, entity_id), entity in step.entities.items():
            value = None if entity is None else encode_entity(entity)
            await outbox.send(ACCESS_STATE_TOPIC, f"{kind}/{entity_id}".encode(), value, 0)
        await outbox.flush()
        restored = self._restore_until is not None and step.next_offset >= self._restore_until
        found = await self._store.commit(step, at, restored)
        if found is not None:
            return found
        for outcome in outcomes:
            self._metrics.access_commands.labels(outcome).inc()
        if restored:
            self._restore_until = None
        if self.next_offset == start:  # still ours, and not sent back by check() meanwhile
            self.next_offset = step.next_offset
        granted = [
            entity
            for key, entity in step.entities.items()
            if isinstance(entity, Authorization)
            and _monitoring(entity)
            and key not in was_monitoring
        ]
        if granted:
            await self._granted(granted)
        return None

    def _decode(self, message: Message) -> commands.Command | None:
        try:
            return commands.decode_command(message.value or b"")
        except msgspec.DecodeError:
            # Only creditflow writes this log; a record it cannot read is skipped, loudly.
            log.error("access log offset %d is not a command; skipped", message.offset)
            return None

    def _apply(self, command: commands.Command, overlay: _Overlay, step: StepWrites) -> str:
        applied = commands.apply(overlay, command)
        for entity in applied.writes:
            key = entity_key(entity)
            overlay.known[key] = step.entities[key] = entity
        for key in applied.deletes:
            overlay.known[key] = step.entities[key] = None
        step.results[command.id] = answer(applied)
        return "refused" if applied.refusal is not None else "applied"


def _monitoring(entity: Entity | None) -> bool:
    """An authorization that lets its institution receive the enterprise's signals now."""
    return (
        isinstance(entity, Authorization)
        and entity.purpose == Purpose.POST_LOAN_MONITORING
        and entity.status_at(time.time_ns() // 1000) == AuthorizationStatus.ACTIVE
    )


class QueryIndexStage:
    """Indexes query records in Redis, per enterprise and per institution."""

    def __init__(self, index: QueryIndex, seek: SeekPartition, metrics: WorkerMetrics) -> None:
        self._index = index
        self._seek = seek
        self._metrics = metrics
        self._next: dict[int, int] = {}  # partition -> next offset, for the assigned ones

    async def assigned(self, partitions: set[int]) -> None:
        stored = await self._index.offsets()
        self._next = {p: stored.get(p, 0) for p in partitions}
        for partition, offset in self._next.items():
            await self._seek(partition, offset)

    async def check(self) -> list[int]:
        """Index again, from the start, the partitions whose offsets Redis has lost."""
        stored = await self._index.offsets()
        lost = [p for p, o in self._next.items() if o > 0 and p not in stored]
        for partition in lost:
            log.warning("query index of partition %d is gone from Redis: re-indexing", partition)
            self._next[partition] = 0
            await self._seek(partition, 0)
        return lost

    async def process(self, messages: Sequence[Message]) -> None:
        lost = await self.check()
        records: list[tuple[bytes, QueryRecord]] = []
        advanced: dict[int, int] = {}
        for message in messages:
            start = self._next.get(message.partition)
            if start is None or message.partition in lost or message.offset < start:
                continue
            advanced[message.partition] = message.offset + 1
            try:
                records += decode_batch(message.value or b"")
            except msgspec.DecodeError:
                log.error(
                    "query record at partition %d offset %d is unreadable; skipped",
                    message.partition,
                    message.offset,
                )
        if not advanced:
            return
        await self._index.add(records, advanced, int(time.time() * 1_000_000))
        self._next.update(advanced)
        self._metrics.query_records_indexed.inc(len(records))
