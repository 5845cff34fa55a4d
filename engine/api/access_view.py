"""Access entities as the API reads them: from its own memory until Redis says they changed.

Credentials, institutions and authorizations are read on every pull; each is kept in the
API process after its first read and dropped the moment Redis announces that its key
changed (the same server-assisted tracking the product cache uses, state/tracking.py). So
a pull under an authorization already checked needs no Redis round trip, and a revocation
reaches every API process as fast as its announcement: well under a second. While the
announcements do not flow, nothing is kept and every read goes to Redis.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar, cast

from engine.access.commands import Entity
from engine.api.errors import ApiError
from engine.api.product_cache import Fill, shared_read
from state.access import AccessKeys, decode_entity
from state.redis_client import RedisClient

__all__ = ["AccessView"]

E = TypeVar("E")
_Key = tuple[str, str]
_CAPACITY = 200_000  # entities kept; beyond it the oldest half is dropped (a miss reads Redis)


class AccessView:
    def __init__(self, redis: RedisClient, keys: AccessKeys) -> None:
        self._redis = redis
        self.keys = keys
        self._kept: dict[_Key, Entity | None] = {}
        self._fills: dict[_Key, Fill[Entity | None]] = {}
        self.live = False

    # -- announcements ----------------------------------------------------------------

    def changed(self, keys: list[bytes] | None) -> None:
        if keys is None:
            self.clear()
            return
        for raw in keys:
            key = self.keys.entity_of_key(raw.decode(errors="replace"))
            if key is not None:
                self.forget(key)

    def forget(self, key: _Key) -> None:
        """Drop what this process keeps of one entity: a change it made itself is read back
        from Redis at once, without waiting for the announcement (which another connection
        carries, and may deliver after the change's answer)."""
        self._kept.pop(key, None)
        fill = self._fills.get(key)
        if fill is not None:
            fill.dirty = True

    def set_live(self, live: bool) -> None:
        self.clear()
        self.live = live

    def clear(self) -> None:
        self._kept.clear()
        for fill in self._fills.values():
            fill.dirty = True

    # -- reads --------------------------------------------------------------------------

    async def get(self, kind: str, entity_id: str, cls: type[E]) -> E | None:
        """The entity, or None when there is none (or it is of another type)."""
        key = (kind, entity_id)
        if key in self._kept:
            found = self._kept[key]
        else:
            found, fill = await shared_read(self._fills, key, lambda: self._read(key))
            if fill is not None and self.live and not fill.dirty:
                if len(self._kept) >= _CAPACITY:
                    for old in list(self._kept)[: _CAPACITY // 2]:
                        del self._kept[old]
                self._kept[key] = found
        return found if isinstance(found, cls) else None

    async def _read(self, key: _Key) -> Entity | None:
        raw = await self._redis.get(self.keys.entity(*key))
        return None if raw is None else decode_entity(key[0], cast(bytes, raw))

    async def many(self, kind: str, ids: list[str], cls: type[E]) -> list[E]:
        """The entities of ``ids`` that exist, read from Redis (listings are not kept)."""
        if not ids:
            return []
        raws = await self._redis.mget([self.keys.entity(kind, i) for i in ids])
        found = [decode_entity(kind, raw) for raw in cast(list[bytes | None], raws) if raw]
        return [entity for entity in found if isinstance(entity, cls)]

    async def indexed(self, index: str, owner: str, kind: str, cls: type[E]) -> list[E]:
        """The entities an index lists for ``owner`` (e.g. an enterprise's authorizations)."""
        return await self.many(kind, await self.members(index, owner), cls)

    async def members(self, index: str, owner: str) -> list[str]:
        raw = await self._redis.smembers(self.keys.index(index, owner))
        return sorted(member.decode() for member in cast(set[bytes], raw))

    async def institution_codes(self) -> list[str]:
        raw = await self._redis.smembers(self.keys.institutions)
        return sorted(member.decode() for member in cast(set[bytes], raw))

    async def confirm_missing(self, kind: str, entity_id: str, cls: type[E]) -> E | None:
        """Read a missing entity again, with the marks of a restore, in one MGET (one moment
        of Redis): the entity if it exists now; ApiError 503 while Redis holds no access
        state or only part of it (it restarted empty and the access stage replays the log
        into it), when a missing token or authorization is no reason to refuse; else None.
        Reading the marks after the entity, apart, would answer 401 when the replay ends
        between the two reads."""
        raw, applied, restoring = await self._redis.mget(
            [self.keys.entity(kind, entity_id), self.keys.applied, self.keys.restoring]
        )
        if raw is not None:
            self.forget((kind, entity_id))  # what this process kept is older
            found = decode_entity(kind, cast(bytes, raw))
            return found if isinstance(found, cls) else None
        if applied is not None and restoring is None:
            return None
        raise ApiError(
            503,
            "access_unavailable",
            "access state is being restored; retry shortly",
            {"Retry-After": "1"},
        )

    async def applied(self) -> int | None:
        raw = await self._redis.get(self.keys.applied)
        return None if raw is None else int(raw)

    async def wait_result(self, command_id: str, timeout: float) -> bytes | None:
        """The access stage's answer to a command, or None when none came in time."""
        return (await self.wait_results([command_id], timeout))[0]

    async def wait_results(self, command_ids: list[str], timeout: float) -> list[bytes | None]:
        """The access stage's answers to commands (None for those not answered in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        keys = [self.keys.result(command_id) for command_id in command_ids]
        while True:
            answers = cast(list[bytes | None], await self._redis.mget(keys))
            if all(a is not None for a in answers) or loop.time() >= deadline:
                return answers
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, 0.1)
