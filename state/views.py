"""Published views in Redis: what the API serves, derived from worker state.

Layout (renaming a key is a migration):
    <prefix>:v1:ent:{<enterprise>}   HASH  field "m:YYYY-MM" -> month view JSON
                                           (an empty value: the month has no data any more)
                                           field "v" -> a random token, new with every write
    <prefix>:v1:part:<n>             STRING progress of partition n (as_of of its views)

Every update of one enterprise is one HSET of one key, so a reader never sees half of an
update, in Redis Cluster as well (the hash tag keeps an enterprise in one slot). Progress is
written after the views it covers, and read before them, so the offsets a reader is told are
always already reflected in what it reads.

The token changes in the same HSET as the months, so a reader that has rendered the views
of one token may serve that rendering for as long as the token stands (the API's render
cache). Where months are removed, the token changes after the removal: a reader that sees
the new token finds the new months.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

from redis.asyncio import Redis

from engine import codec

__all__ = ["VERSION_FIELD", "ViewStore", "month_field"]


VERSION_FIELD = "v"


def month_field(label: str) -> str:
    return f"m:{label}"


def _token() -> bytes:
    return os.urandom(8).hex().encode()


class ViewStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def enterprise_key(self, enterprise_id: str) -> str:
        return f"{self._prefix}:v1:ent:{{{enterprise_id}}}"

    def partition_key(self, partition: int) -> str:
        return f"{self._prefix}:v1:part:{partition}"

    async def publish(
        self,
        partition: int,
        months: Mapping[str, Mapping[str, bytes]],
        progress: Mapping[str, Any] | None,
    ) -> bool:
        """Write the changed month views of each enterprise, then the partition's progress.

        Returns whether the partition had progress in Redis before this write: False after a
        Redis restart or flush, when the caller must republish everything.
        """
        pipe = self._redis.pipeline(transaction=False)
        for enterprise_id, fields in months.items():
            if fields:
                mapping = {**fields, VERSION_FIELD: _token()}
                pipe.hset(self.enterprise_key(enterprise_id), mapping=cast(Any, mapping))
        if progress is None:
            await pipe.execute()
            return True
        pipe.set(self.partition_key(partition), codec.dumps(progress), get=True)
        results = await pipe.execute()
        return results[-1] is not None

    async def drop_months(self, months: Mapping[str, list[str]]) -> None:
        """Remove month fields that fell out of the kept history (outside every product)."""
        pipe = self._redis.pipeline(transaction=False)
        for enterprise_id, labels in months.items():
            key = self.enterprise_key(enterprise_id)
            pipe.hdel(key, *[month_field(x) for x in labels])
            pipe.hset(key, VERSION_FIELD, _token())
        await pipe.execute()

    async def read(
        self, enterprise_id: str, partition: int
    ) -> tuple[dict[str, Any] | None, dict[bytes, bytes]]:
        """(progress of the enterprise's partition, its whole hash) in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self.partition_key(partition))
        pipe.hgetall(self.enterprise_key(enterprise_id))
        progress_raw, fields = await pipe.execute()
        progress = None if progress_raw is None else codec.loads(progress_raw)
        return progress, fields

    async def read_version(
        self, enterprise_id: str, partition: int
    ) -> tuple[dict[str, Any] | None, bytes | None]:
        """(progress of the enterprise's partition, its views' token) in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self.partition_key(partition))
        pipe.hget(self.enterprise_key(enterprise_id), VERSION_FIELD)
        progress_raw, version = await pipe.execute()
        progress = None if progress_raw is None else codec.loads(progress_raw)
        return progress, version

    async def progress(self, partition: int) -> dict[str, Any] | None:
        raw = await self._redis.get(self.partition_key(partition))
        return None if raw is None else codec.loads(raw)

    async def delete_all(self) -> int:
        """Remove every key under this prefix (the demo and tests clean up what they wrote)."""
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{self._prefix}:v1:*", count=1000):
            deleted += await self._redis.delete(key)
        return deleted
