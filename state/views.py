"""Published views in Redis: what the API serves, derived from worker state.

Layout (renaming a key is a migration):
    <prefix>:v1:ent:{<enterprise>}   HASH  field "m:YYYY-MM" -> month view JSON
                                           (an empty value: the month has no data any more);
                                           "c" -> what it keeps of its pruned months
                                           (state/horizon.py), once any were pruned;
                                           "e" -> its signal episodes, open and closed, as
                                           long as the history (state/signals.py; an empty
                                           value: none kept any more);
                                           "o" -> the routed offset of the state they were
                                           last written from; "d:<id>", "s:<id>" -> copies
                                           of the enterprise's disputes and statements,
                                           "a" -> the access log offset they were last
                                           written up to (state/access.py)
    <prefix>:v1:part:<n>             STRING progress of partition n (as_of of its views)

(Views written before this version also hold a field "v", a token the API once compared;
readers ignore it, and "o" and "a".)

Every update of one enterprise is one HSET of one key, so a reader never sees half of an
update, in Redis Cluster as well (the hash tag keeps an enterprise in one slot). Progress is
written after the views it covers, and read before them, so the offsets a reader is told are
always already reflected in what it reads. In a Redis Cluster, progress and views live on
different nodes, and a pipeline's parts for different nodes run at the same time: there the
progress is written only once the views' writes have been answered and a replica of each of
their primaries has them (so that a failover keeps them), and read before the views are
asked for (one round trip more each, two for a write).

Views never go back to an older state. A worker cut off from the group keeps the state
and the work of partitions that another worker has taken meanwhile, and may publish it
when it reaches Redis again (on revocation, the commit of what it had applied): every write
says the routed offset of the state it comes from, and a script per key leaves out what is
older than what Redis holds (an enterprise's hash, a partition's progress), one key at a
time, so that it runs on a Redis Cluster as well.

Readers that keep views in memory learn of every write from Redis itself
(state/tracking.py): every key here is under one prefix, ``<prefix>:v1:``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from engine import codec
from engine.errors import StateError
from state.redis_client import RedisClient, is_cluster, replicas_had, wait_for_replicas

__all__ = ["CARRY_FIELD", "EPISODES_FIELD", "NewerViewsError", "ViewStore", "month_field"]

CARRY_FIELD = "c"
EPISODES_FIELD = "e"

# The scripts are sent whole (EVAL), as in state/signal_feeds.py. They return -1 when they
# wrote, else the later routed offset they found and left in place.

# KEYS: an enterprise's views. ARGV: the routed offset of the state they come from, then
# field, value pairs.
_WRITE_VIEWS = """
local at = tonumber(redis.call('HGET', KEYS[1], 'o')) or -1
if at > tonumber(ARGV[1]) then return at end
redis.call('HSET', KEYS[1], 'o', ARGV[1], unpack(ARGV, 2))
return -1
"""

# KEYS: a partition's progress. ARGV: the progress JSON, its routed offset, "1" to create it
# where Redis has none. Returns -2 when Redis had none (written only with "1").
_WRITE_PROGRESS = """
local old = redis.call('GET', KEYS[1])
if not old then
  if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[1]) end
  return -2
end
local at = tonumber(cjson.decode(old)['routed_offset']) or -1
if at > tonumber(ARGV[2]) then return at end
redis.call('SET', KEYS[1], ARGV[1])
return -1
"""


class NewerViewsError(StateError):
    """Redis holds views of the partition written from a later routed offset than a write
    brought: another worker has published past this one's state. What was older was left
    out, the rest written."""

    def __init__(self, partition: int, offset: int, newer: int) -> None:
        super().__init__(
            f"partition {partition}: Redis holds views from routed offset {newer}, later than "
            f"this state's {offset}; they were left in place"
        )
        self.partition = partition
        self.offset = offset
        self.newer = newer


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
        offset: int | None = None,
    ) -> bool:
        """Write the changed month views of each enterprise, then the partition's progress.

        Returns whether the partition had progress in Redis before this write: False after a
        Redis restart or flush, when the caller must republish everything. Progress is then
        not written, unless ``create`` (the last write of a whole republication): a partial
        set of views under a progress would let readers take a missing enterprise for one
        without data.

        ``offset``: the routed offset of the state the views come from (a worker's writes
        always say it). Nothing is then written over what Redis holds from a later offset,
        key by key, and NewerViewsError says so once the rest is written. Without it (tests,
        tools), every write lands.
        """
        pipe = self._redis.pipeline(transaction=False)
        for enterprise_id, fields in months.items():
            if not fields:
                continue
            key = self.enterprise_key(enterprise_id)
            if offset is None:
                pipe.hset(key, mapping=cast(Any, fields))
            else:
                pairs = [part for pair in fields.items() for part in pair]
                pipe.eval(_WRITE_VIEWS, 1, key, offset, *pairs)
        if progress is None:
            _check_newer(partition, offset, await pipe.execute())
            return True
        results: list[Any] = []
        if self._cluster:  # the views' nodes first (and their replicas), then the progress's
            if len(pipe):
                primaries = await wait_for_replicas(
                    pipe, self._redis, map(self.enterprise_key, months)
                )
                results = replicas_had(primaries, await pipe.execute())
            pipe = self._redis.pipeline(transaction=False)
        key, value = self.partition_key(partition), codec.dumps(progress)
        if offset is None:
            pipe.set(key, value, get=True, xx=not create)
            return (await pipe.execute())[-1] is not None
        pipe.eval(_WRITE_PROGRESS, 1, key, value, offset, "1" if create else "0")
        results += await pipe.execute()
        _check_newer(partition, offset, results)
        return bool(results[-1] != -2)

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


def _check_newer(partition: int, offset: int | None, results: list[Any]) -> None:
    """Raise NewerViewsError when a script of a write from ``offset`` left a key alone."""
    if offset is None:
        return
    newer = max((int(r) for r in results), default=-1)
    if newer >= 0:
        raise NewerViewsError(partition, offset, newer)
