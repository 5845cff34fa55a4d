"""Access state materialized in Redis: what the access stage writes and the API reads.

Layout (renaming a key is a migration; every key shares the hash tag ``{a}``, so one step's
writes are one script, EVAL, in Redis Cluster too):

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

A step's writes land only if ``applied`` is still the offset the step was read at
(:meth:`AccessStore.commit`, one script in the slot of ``{a}``): a worker that stalled in a
step (cut off from the broker, stopped, paused) while another took the access log over and
went further writes nothing, so no older state (an authorization revoked since, active
again) comes back. The step's entities are read together with ``applied`` in one MGET
(:meth:`AccessStore.snapshot`), so what a step was computed from is the state at that
offset, never a mix of two.

Disputes and statements are also copied into the enterprise's views hash
(``<prefix>:v1:ent:{<id>}``, fields ``d:<id>`` and ``s:<id>``, state/views.py), so a product
and the marks on its disputed items are read, cached and invalidated together. The copies
are written before the transaction that advances ``applied``: a crash in between replays
the step, which writes the same copies again. The hash's field ``a`` holds the access log
offset its copies were last written up to, and a script leaves out copies from an older
step (a stalled worker's, or a replay's still behind what the hash holds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec

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

# The scripts are sent whole (EVAL), as in state/views.py: a replica promoted by a failover
# has no script cache.

# KEYS[1]: applied, KEYS[2]: restoring, KEYS[3...]: the keys the step writes (all under
# {a}). ARGV[1]: the offset the step was read at (an absent applied counts as 0), ARGV[2]:
# its next offset, ARGV[3]: "1" when it ends a replay; then each write: the command, the
# index of its key in KEYS, its number of arguments, the arguments. Returns -1 when it
# wrote, else the offset applied was at (nothing written).
_COMMIT_STEP = """
local at = tonumber(redis.call('GET', KEYS[1])) or 0
if at ~= tonumber(ARGV[1]) then return at end
local allowed = {SET = true, DEL = true, SADD = true, ZADD = true, ZREM = true}
local writes, i = {}, 4
while i <= #ARGV do
  local n = tonumber(ARGV[i + 2])
  if not allowed[ARGV[i]] then return redis.error_reply('not a step write: ' .. ARGV[i]) end
  writes[#writes + 1] = {ARGV[i], KEYS[tonumber(ARGV[i + 1])], i + 3, i + 2 + n}
  i = i + 3 + n
end
for _, w in ipairs(writes) do redis.call(w[1], w[2], unpack(ARGV, w[3], w[4])) end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
return -1
"""

# KEYS[1]: an enterprise's views hash. ARGV[1]: the next offset of the step the copies come
# from; then field, value pairs. Returns -1 when it wrote, else the later offset it found.
_WRITE_COPIES = """
local at = tonumber(redis.call('HGET', KEYS[1], 'a')) or -1
if at > tonumber(ARGV[1]) then return at end
redis.call('HSET', KEYS[1], 'a', ARGV[1], unpack(ARGV, 2))
return -1
"""


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


class _Writes:
    """A step's writes as :data:`_COMMIT_STEP` takes them: its keys, and per write the
    command, the index of its key, its number of arguments and the arguments."""

    def __init__(self, keys: AccessKeys) -> None:
        self.keys = [keys.applied, keys.restoring]
        self.args: list[bytes | str | int] = []
        self._index: dict[str, int] = {}

    def add(self, command: str, key: str, *args: bytes | str | int) -> None:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)  # Lua counts from 1
        self.args += [command, index, len(args), *args]


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
        return (await self.snapshot(wanted))[1]

    async def snapshot(
        self, wanted: Iterable[tuple[str, str]]
    ) -> tuple[int, dict[tuple[str, str], Entity]]:
        """(the offset ``applied`` is at, 0 when absent; the entities that exist among
        ``wanted``), read at once: the entities are as the log left them at that offset."""
        wanted = list(dict.fromkeys(wanted))
        keys = [self.keys.applied, *(self.keys.entity(kind, i) for kind, i in wanted)]
        applied, *raws = cast(list[bytes | None], await self._redis.mget(keys))
        found = {
            key: decode_entity(key[0], raw)
            for key, raw in zip(wanted, raws, strict=True)
            if raw is not None
        }
        return (0 if applied is None else int(applied)), found

    async def commit(self, step: StepWrites, at: int, restored: bool = False) -> int | None:
        """Write the step read at offset ``at``: its copies into views hashes, then everything
        else at once, if ``applied`` is still at ``at`` (absent counts as 0). Returns None
        when it wrote, else the offset ``applied`` was at: another worker went on from
        there, or Redis went back, and nothing of the step but copies no older than what
        their hashes held was written. ``restored``: this step ends a replay after a loss
        (see :meth:`mark_restoring`)."""
        copies: dict[str, list[bytes | str]] = {}
        for (kind, entity_id), entity in step.entities.items():
            if isinstance(entity, Dispute | Statement):
                field_name = f"{'d' if kind == 'dispute' else 's'}:{entity_id}"
                fields = copies.setdefault(self.keys.views(entity.enterprise_id), [])
                fields += [field_name, encode_entity(entity)]
        if copies:
            pipe = self._redis.pipeline(transaction=False)
            for key, fields in copies.items():
                pipe.eval(_WRITE_COPIES, 1, key, step.next_offset, *fields)
            await pipe.execute()
        writes = _Writes(self.keys)
        for (kind, entity_id), entity in step.entities.items():
            key = self.keys.entity(kind, entity_id)
            if entity is None:
                writes.add("DEL", key)
                continue
            writes.add("SET", key, encode_entity(entity))
            self._index(writes, entity)
        for command_id, answer in step.results.items():
            writes.add("SET", self.keys.result(command_id), answer, "EX", _RESULT_TTL_SECONDS)
        found = await self._redis.eval(
            _COMMIT_STEP,
            len(writes.keys),
            *writes.keys,
            at,
            step.next_offset,
            "1" if restored else "0",
            *writes.args,
        )
        return None if int(found) == -1 else int(found)

    def _index(self, tx: _Writes, entity: Entity) -> None:
        keys = self.keys
        match entity:
            case Institution():
                tx.add("SADD", keys.institutions, entity.code)
            case Authorization():
                tx.add("SADD", keys.index("ent-auth", entity.enterprise_id), entity.id)
                tx.add("SADD", keys.index("inst-auth", entity.institution), entity.id)
            case Dispute():
                tx.add("SADD", keys.index("ent-dispute", entity.enterprise_id), entity.id)
                for provider in entity.providers:
                    tx.add("SADD", keys.index("prov-dispute", provider), entity.id)
                if entity.status == DisputeStatus.RECEIVED:
                    tx.add("ZADD", keys.disputes_due, entity.due_at_us, entity.id)
                else:
                    tx.add("ZREM", keys.disputes_due, entity.id)
            case Statement():
                tx.add("SADD", keys.index("ent-statement", entity.enterprise_id), entity.id)

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
