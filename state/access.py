"""Access state materialized in Redis: what the access stage writes and the API reads.

Layout (renaming a key is a migration; every key shares the hash tag ``{a}``, so one step's
writes are one MULTI/EXEC transaction in Redis Cluster too):

    <prefix>:access:v1:{a}:e:<kind>:<id>          entity JSON (engine/access/model.py)
    <prefix>:access:v1:{a}:ix:institutions        SET of institution codes
    <prefix>:access:v1:{a}:ix:ent-auth:<id>       SET of an enterprise's authorization ids
    <prefix>:access:v1:{a}:ix:inst-auth:<code>    SET of an institution's authorization ids
    <prefix>:access:v1:{a}:ix:ent-dispute:<id>    SET of an enterprise's dispute ids
    <prefix>:access:v1:{a}:ix:prov-dispute:<code> SET of the dispute ids a provider answers
    <prefix>:access:v1:{a}:ix:ent-statement:<id>  SET of an enterprise's statement ids
    <prefix>:access:v1:{a}:ix:disputes-due        ZSET of unanswered dispute ids by due time
    <prefix>:access:v1:{a}:result:<command id>    a command's answer, for an hour
    <prefix>:access:v1:{a}:applied                next offset of the access log to apply
    <prefix>:access:v1:{a}:restoring              while the log is replayed into a Redis that
                                                  lost access state: the offset it had reached

Disputes and statements are also copied into the enterprise's views hash
(``<prefix>:v1:ent:{<id>}``, fields ``d:<id>`` and ``s:<id>``, state/views.py), so a product
and the marks on its disputed items are read, cached and invalidated together. The copies
are written before the transaction that advances ``applied``: a crash in between replays
the step, which writes the same copies again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from redis.asyncio import RedisCluster

from engine.access.commands import Entity
from engine.access.model import (
    Authorization,
    Credential,
    Dispute,
    DisputeStatus,
    EnterpriseAccount,
    Institution,
    Statement,
)
from state.redis_client import RedisClient

__all__ = ["KINDS", "AccessKeys", "AccessStore", "StepWrites", "decode_entity", "encode_entity"]

KINDS: dict[str, type[Any]] = {
    "institution": Institution,
    "credential": Credential,
    "enterprise": EnterpriseAccount,
    "authorization": Authorization,
    "dispute": Dispute,
    "statement": Statement,
}
_DECODERS = {kind: msgspec.json.Decoder(cls) for kind, cls in KINDS.items()}
_ENCODER = msgspec.json.Encoder()
_RESULT_TTL_SECONDS = 3600


def encode_entity(entity: Entity) -> bytes:
    return _ENCODER.encode(entity)


def decode_entity(kind: str, raw: bytes) -> Entity:
    return cast(Entity, _DECODERS[kind].decode(raw))


class AccessKeys:
    """The Redis keys of access state under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}:access:v1:"  # what a cache tracks
        self._base = f"{self.prefix}{{a}}:"
        self._views = f"{prefix}:v1:ent:"
        self.applied = f"{self._base}applied"
        self.restoring = f"{self._base}restoring"
        self.institutions = f"{self._base}ix:institutions"
        self.disputes_due = f"{self._base}ix:disputes-due"

    def entity(self, kind: str, entity_id: str) -> str:
        return f"{self._base}e:{kind}:{entity_id}"

    def entity_of_key(self, key: str) -> tuple[str, str] | None:
        """(kind, id) of an entity key, else None."""
        head = f"{self._base}e:"
        if not key.startswith(head):
            return None
        kind, _, entity_id = key[len(head) :].partition(":")
        return (kind, entity_id) if kind in KINDS and entity_id else None

    def index(self, name: str, owner: str) -> str:
        return f"{self._base}ix:{name}:{owner}"

    def result(self, command_id: str) -> str:
        return f"{self._base}result:{command_id}"

    def views(self, enterprise_id: str) -> str:
        return f"{self._views}{{{enterprise_id}}}"


@dataclass(slots=True)
class StepWrites:
    """What one processing step of the access log writes."""

    entities: dict[tuple[str, str], Entity | None] = field(default_factory=dict)
    results: dict[str, bytes] = field(default_factory=dict)  # command id -> answer JSON
    next_offset: int = 0


class AccessStore:
    """Reads and writes of the access stage (the only writer of these keys)."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self.keys = AccessKeys(prefix)

    async def applied(self) -> int | None:
        raw = await self._redis.get(self.keys.applied)
        return None if raw is None else int(raw)

    async def restoring(self) -> int | None:
        """The offset a replay after a loss of access state must reach, while it runs."""
        raw = await self._redis.get(self.keys.restoring)
        return None if raw is None else int(raw)

    async def mark_restoring(self, until: int) -> None:
        """Tell readers that access state is incomplete until the replay reaches ``until``:
        a credential or authorization missing meanwhile may exist (the API answers 503)."""
        await self._redis.set(self.keys.restoring, until)

    async def load(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Entity]:
        """The entities that exist among ``wanted`` (kind, id)."""
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return {}
        raws = await self._redis.mget([self.keys.entity(kind, i) for kind, i in wanted])
        return {
            key: decode_entity(key[0], raw)
            for key, raw in zip(wanted, cast(list[bytes | None], raws), strict=True)
            if raw is not None
        }

    async def commit(self, step: StepWrites, restored: bool = False) -> None:
        """The step's copies into views hashes, then everything else in one transaction
        (``restored``: this step ends a replay after a loss; see :meth:`mark_restoring`)."""
        copies = self._redis.pipeline(transaction=False)
        for (kind, entity_id), entity in step.entities.items():
            if isinstance(entity, Dispute | Statement):
                field_name = f"{'d' if kind == 'dispute' else 's'}:{entity_id}"
                copies.hset(
                    self.keys.views(entity.enterprise_id), field_name, encode_entity(entity)
                )
        if copies:
            await copies.execute()
        if isinstance(self._redis, RedisCluster):
            # redis-py (8.1) queues each command of a cluster transaction through an event
            # loop of its own, on a thread: a client first initialized there would hold
            # connections of that loop. Initialized here (once; then a no-op), it does not.
            await self._redis.initialize()
        tx = self._redis.pipeline(transaction=True)
        for (kind, entity_id), entity in step.entities.items():
            key = self.keys.entity(kind, entity_id)
            if entity is None:
                tx.delete(key)
                continue
            tx.set(key, encode_entity(entity))
            self._index(tx, entity)
        for command_id, answer in step.results.items():
            tx.set(self.keys.result(command_id), answer, ex=_RESULT_TTL_SECONDS)
        tx.set(self.keys.applied, step.next_offset)
        if restored:
            tx.delete(self.keys.restoring)
        await tx.execute()

    def _index(self, tx: Any, entity: Entity) -> None:
        keys = self.keys
        match entity:
            case Institution():
                tx.sadd(keys.institutions, entity.code)
            case Authorization():
                tx.sadd(keys.index("ent-auth", entity.enterprise_id), entity.id)
                tx.sadd(keys.index("inst-auth", entity.institution), entity.id)
            case Dispute():
                tx.sadd(keys.index("ent-dispute", entity.enterprise_id), entity.id)
                for provider in entity.providers:
                    tx.sadd(keys.index("prov-dispute", provider), entity.id)
                if entity.status == DisputeStatus.RECEIVED:
                    tx.zadd(keys.disputes_due, {entity.id: entity.due_at_us})
                else:
                    tx.zrem(keys.disputes_due, entity.id)
            case Statement():
                tx.sadd(keys.index("ent-statement", entity.enterprise_id), entity.id)

    async def authorizations_of(
        self, enterprise_ids: Iterable[str]
    ) -> dict[str, list[Authorization]]:
        """Every authorization of each enterprise, whatever its status."""
        enterprise_ids = list(dict.fromkeys(enterprise_ids))
        pipe = self._redis.pipeline(transaction=False)
        for enterprise_id in enterprise_ids:
            pipe.smembers(self.keys.index("ent-auth", enterprise_id))
        ids = await pipe.execute() if enterprise_ids else []
        wanted = [("authorization", i.decode()) for members in ids for i in sorted(members)]
        found = await self.load(wanted)
        result: dict[str, list[Authorization]] = {e: [] for e in enterprise_ids}
        for entity in found.values():
            if isinstance(entity, Authorization) and entity.enterprise_id in result:
                result[entity.enterprise_id].append(entity)
        return result

    async def overdue_disputes(self, now_us: int) -> int:
        return int(await self._redis.zcount(self.keys.disputes_due, "-inf", f"({now_us}"))
