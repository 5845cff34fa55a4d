"""A stage goes on while at most `limit` steps wait for the broker."""

from __future__ import annotations

import asyncio

from agents.inflight import InFlight


def test_no_more_than_limit_steps_are_pending_and_drain_waits_for_all() -> None:
    most = 0
    done: list[int] = []

    async def confirm(k: int, pending: InFlight) -> None:
        nonlocal most
        most = max(most, len(pending))
        await asyncio.sleep(0.01 * (k % 3))
        done.append(k)

    async def scenario() -> None:
        pending = InFlight(limit=2)
        for k in range(7):
            await pending.start(confirm(k, pending))
            assert len(pending) <= 2
        await pending.drain()
        assert len(pending) == 0

    asyncio.run(scenario())
    assert sorted(done) == list(range(7)) and most <= 2
