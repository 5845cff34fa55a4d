"""The query records index (state/queries.py) against real Redis: kept for the retention,
not longer, also for keys nobody writes any more."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from engine.access.records import QueryRecord, encode_record
from state.queries import QueryIndex

pytestmark = pytest.mark.integration

DAY_US = 86_400_000_000
NOW = 1_790_000_000_000_000
E1, E2 = "91350100M000100Y43", "91110000600037341L"


def _record(n: int, enterprise: str, at_us: int) -> tuple[bytes, QueryRecord]:
    record = QueryRecord(
        f"req-{n}", at_us, "institution", "LEND0001", enterprise, "monthly", "2026-03",
        "0" * 32, "credit_application", "served", 200,
    )  # fmt: skip
    return encode_record(record), record


def test_the_sweep_removes_what_is_past_the_retention_from_keys_nobody_writes(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(redis_url)
        prefix = f"test-{secrets.token_hex(4)}"
        index = QueryIndex(redis, prefix, retention_us=365 * DAY_US)
        try:
            old, fresh = NOW - 400 * DAY_US, NOW - 10 * DAY_US
            # Indexed when they were new (a year ago, the old ones were within the retention).
            await index.add([_record(1, E1, old), _record(2, E2, old)], {0: 2}, old)
            await index.add([_record(3, E2, fresh)], {0: 3}, NOW)
            # E1's key is never written again: only the sweep can trim it.
            assert await redis.zcard(index.enterprise_key(E1)) == 1
            removed = await index.sweep(NOW)
            # Record 1 from E1's two keys. The old records in E2's keys and the institution's
            # went when record 3 was written to those keys (trimmed on write).
            assert removed == 2
            assert await redis.zcard(index.enterprise_key(E1)) == 0
            assert await redis.zcard(index.answered_key(E1)) == 0
            left, _ = await index.page(index.enterprise_key(E2), 10, None)
            assert [r.request_id for r in left] == ["req-3"]
            assert await index.offsets() == {0: 3}  # the offsets hash is no ZSET: untouched
            assert await index.sweep(NOW) == 0
        finally:
            async for key in redis.scan_iter(match=f"{prefix}:*"):
                await redis.delete(key)
            await redis.aclose()

    asyncio.run(scenario())
