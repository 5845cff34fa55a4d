"""Published views in Redis: what the API serves, derived from worker state.

Layout (renaming a key is a migration):
    <prefix>:v1:ent:{<enterprise>}   HASH  field "m:YYYY-MM" -> month view JSON
                                           (an empty value: the month has no data any more)
    <prefix>:v1:part:<n>             STRING progress of partition n (as_of of its views)

(Views written before this version also hold a field "v", a token the API once compared;
readers ignore every field but "m:*".)

Every update of one enterprise is one HSET of one key, so a reader never sees half of an
update, in Redis Cluster as well (the hash tag keeps an enterprise in one slot). Progress is
written after the views it covers, and read before them, so the offsets a reader is told are
always already reflected in what it reads. In a Redis Cluster, progress and views live on
different nodes, and a pipeline's parts for different nodes run at the same time: there the
progress is written only once the views' writes have been answered, and read before the
views are asked for (one round trip more each).

Readers that keep views in memory learn of every write from Redis itself
(state/tracking.py): every key here is under one prefix, ``<prefix>:v1:``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from engine import codec
from state.redis_client import RedisClient, is_cluster

__all__ = ["ViewStore", "month_field"]


def month_field(label: str) -> str:
    return f"m:{label}"


class ViewStore:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._cluster = is_cluster(redis)

    @property
    def key_prefix(self) -> str:
        """The prefix of every key of these views (what a cache watches)."""
        return f"{self._prefix}:v1:"

    def enterprise_key(self, enterprise_id: str) -> str:
        return f"{self._prefix}:v1:ent:{{{enterprise_id}}}"

    def partition_key(self, partition: int) -> str:
        return f"{self._prefix}:v1:part:{partition}"

    async def publish(
        self,
        partition: int,
        months: Mapping[str, Mapping[str, bytes]],
        progress: Mapping[str, Any] | None,
        create: bool = False,
    ) -> bool:
        """Write the changed month views of each enterprise, then the partition's progress.

        Returns whether the partition had progress in Redis before this write: False after a
        Redis restart or flush, when the caller must republish everything. Progress is then
        not written, unless ``create`` (the last write of a whole republication): a partial
        set of views under a progress would let readers take a missing enterprise for one
        without data.
        """
        pipe = self._redis.pipeline(transaction=False)
        for enterprise_id, fields in months.items():
            if fields:
                pipe.hset(self.enterprise_key(enterprise_id), mapping=cast(Any, fields))
        if progress is None:
            await pipe.execute()
            return True
        if self._cluster:  # the views' nodes first, then the progress's node
            if len(pipe):
                await pipe.execute()
            pipe = self._redis.pipeline(transaction=False)
        pipe.set(self.partition_key(partition), codec.dumps(progress), get=True, xx=not create)
        results = await pipe.execute()
        return results[-1] is not None

    async def drop_months(self, months: Mapping[str, list[str]]) -> None:
        """Remove month fields that fell out of the kept history (outside every product)."""
        pipe = self._redis.pipeline(transaction=False)
        for enterprise_id, labels in months.items():
            pipe.hdel(self.enterprise_key(enterprise_id), *[month_field(x) for x in labels])
        await pipe.execute()

    async def read(
        self, enterprise_id: str, partition: int
    ) -> tuple[bytes | None, dict[bytes, bytes]]:
        """(progress JSON of the enterprise's partition, its whole hash) in one round trip
        (two in a cluster: the progress is read before the views)."""
        if self._cluster:
            return await self.progress_raw(partition), await self.fields(enterprise_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self.partition_key(partition))
        pipe.hgetall(self.enterprise_key(enterprise_id))
        progress_raw, fields = await pipe.execute()
        return progress_raw, fields

    async def fields(self, enterprise_id: str) -> dict[bytes, bytes]:
        """An enterprise's whole hash (empty when it has none)."""
        fields = await self._redis.hgetall(self.enterprise_key(enterprise_id))
        return cast(dict[bytes, bytes], fields)

    async def progress_raw(self, partition: int) -> bytes | None:
        raw = await self._redis.get(self.partition_key(partition))
        return cast(bytes | None, raw)

    async def progress(self, partition: int) -> dict[str, Any] | None:
        raw = await self.progress_raw(partition)
        return None if raw is None else codec.loads(raw)

    async def delete_all(self) -> int:
        """Remove every key under this prefix (the demo and tests clean up what they wrote)."""
        deleted = 0
        async for key in self._redis.scan_iter(match=f"{self._prefix}:v1:*", count=1000):
            deleted += await self._redis.delete(key)
        return deleted
