"""The query records index in Redis: who queried an enterprise, and what an institution
queried, newest first.

Layout (renaming a key is a migration):
    <prefix>:queries:v1:ent:{<enterprise>}   ZSET  record JSON, scored by its time (us)
    <prefix>:queries:v1:answered:{<enterprise>}  ZSET  the records of queries by institutions
                                                  that were answered (served or no data), of
                                                  the products the report counts
    <prefix>:queries:v1:inst:<code>          ZSET  the same, per institution
    <prefix>:queries:v1:offsets              HASH  partition -> next offset indexed

Outside the views' prefix on purpose: a record indexed per pull must not announce a change
to every API's product cache. Records are the bytes the API wrote, so indexing a
redelivered record again changes nothing. Records older than the retention are trimmed
as new ones arrive, and by a daily sweep of every key (``sweep``).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import cast

from engine.access.records import (
    ANSWERED_OUTCOMES,
    REPORTED_PRODUCTS,
    QueryRecord,
    decode_record,
)
from state.redis_client import RedisClient, is_cluster, replicas_had, wait_for_replicas

__all__ = ["QueryIndex"]

# Who may appear in an enterprise's own list of queries ("unknown": no valid token).
_SEEN_BY_THE_ENTERPRISE = ("institution", "enterprise", "operator")
_TIE_MARGIN = 64  # records of one microsecond fetched beyond a page, to resume after a cursor


class QueryIndex:
    def __init__(self, redis: RedisClient, prefix: str, retention_us: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:queries:v1:"
        self._retention_us = retention_us
        self.offsets_key = f"{self._prefix}offsets"

    def enterprise_key(self, enterprise_id: str) -> str:
        return f"{self._prefix}ent:{{{enterprise_id}}}"

    def answered_key(self, enterprise_id: str) -> str:
        return f"{self._prefix}answered:{{{enterprise_id}}}"

    def institution_key(self, code: str) -> str:
        return f"{self._prefix}inst:{code}"

    async def offsets(self) -> dict[int, int]:
        raw = await self._redis.hgetall(self.offsets_key)
        return {int(p): int(o) for p, o in cast(dict[bytes, bytes], raw).items()}

    async def add(
        self,
        records: Sequence[tuple[bytes, QueryRecord]],
        next_offsets: dict[int, int],
        now_us: int,
    ) -> None:
        """Index ``records`` (raw bytes and decoded), then advance the partitions' offsets."""
        # One ZADD per key with all its members: a message holds up to 500 records, most of
        # them of a few institutions (and of the enterprises lenders pull most).
        members: dict[str, dict[bytes, int]] = collections.defaultdict(dict)
        for raw, record in records:
            if record.enterprise_id is not None and record.by in _SEEN_BY_THE_ENTERPRISE:
                members[self.enterprise_key(record.enterprise_id)][raw] = record.at_us
                if (
                    record.by == "institution"
                    and record.outcome in ANSWERED_OUTCOMES
                    and record.product in REPORTED_PRODUCTS
                ):
                    members[self.answered_key(record.enterprise_id)][raw] = record.at_us
            if record.institution is not None:
                members[self.institution_key(record.institution)][raw] = record.at_us
        pipe = self._redis.pipeline(transaction=False)
        horizon = now_us - self._retention_us
        for key, scored in members.items():
            pipe.zadd(key, scored)
            pipe.zremrangebyscore(key, "-inf", f"({horizon}")
        if next_offsets and is_cluster(self._redis):
            # A cluster runs a pipeline's parts for each node at the same time: the offsets
            # must not land before the records they cover (a crash would skip those), nor
            # before a replica has them (a failover would lose them).
            if len(pipe):
                replicas_had(
                    await wait_for_replicas(pipe, self._redis, members), await pipe.execute()
                )
            pipe = self._redis.pipeline(transaction=False)
        if next_offsets:
            pipe.hset(self.offsets_key, mapping={str(p): o for p, o in next_offsets.items()})
        await pipe.execute()

    async def sweep(self, now_us: int) -> int:
        """Remove, from every key of the index, the records older than the retention; how
        many were removed. Records are also trimmed when their key is written, but a key that
        is never written again (an enterprise nobody queries any more) would keep them."""
        horizon = f"({now_us - self._retention_us}"
        removed = 0
        keys: list[bytes] = []
        async for key in self._redis.scan_iter(match=f"{self._prefix}*", count=1000, _type="ZSET"):
            keys.append(key)
            if len(keys) == 500:
                removed += await self._trim(keys, horizon)
                keys = []
        if keys:
            removed += await self._trim(keys, horizon)
        return removed

    async def _trim(self, keys: list[bytes], horizon: str) -> int:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.zremrangebyscore(key, "-inf", horizon)
        return sum(cast(list[int], await pipe.execute()))

    async def page(
        self, key: str, limit: int, before: tuple[int, str] | None
    ) -> tuple[list[QueryRecord], tuple[int, str] | None]:
        """Up to ``limit`` records of ``key``, newest first, older than the cursor ``before``
        (time, request id); returns them and the cursor of the next page (None at the end)."""
        top = "+inf" if before is None else str(before[0])
        raws = await self._redis.zrange(
            key, top, "-inf", desc=True, byscore=True, offset=0, num=limit + _TIE_MARGIN
        )
        records: list[QueryRecord] = []
        for raw in cast(list[bytes], raws):
            record = decode_record(raw)
            if before is not None and (record.at_us, record.request_id) >= before:
                continue
            records.append(record)
            if len(records) > limit:
                break
        more = len(records) > limit
        records = records[:limit]
        cursor = (records[-1].at_us, records[-1].request_id) if more and records else None
        return records, cursor

    async def answered(
        self, enterprise_id: str, since_us: int, before_us: int
    ) -> tuple[list[QueryRecord], QueryRecord | None]:
        """The answered queries by institutions in [since_us, before_us), and the latest one
        before ``before_us`` whenever it was (for the report's query-record items)."""
        key = self.answered_key(enterprise_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrange(key, since_us, f"({before_us}", byscore=True)
        pipe.zrange(key, f"({before_us}", "-inf", desc=True, byscore=True, offset=0, num=1)
        window, latest = await pipe.execute()
        records = [decode_record(raw) for raw in cast(list[bytes], window)]
        last = decode_record(latest[0]) if latest else None
        return records, last
