"""Steps whose output is on its way to the broker while the next step is prepared.

Waiting for the broker to confirm a step's records before taking the next batch left a
stage idle for the round trip of every step, and Faust refills its take buffer only between
steps. A stage may instead start confirming a step in the background and go on, with at
most ``limit`` steps unconfirmed: their input is acknowledged to Kafka only once confirmed,
so a crash still replays every step not confirmed (at least once; the ledger drops what
comes twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["InFlight"]


class InFlight:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def start(self, confirm: Coroutine[Any, Any, None]) -> None:
        """Run ``confirm`` in the background, once fewer than ``limit`` steps are pending."""
        while len(self._tasks) >= self._limit:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.ensure_future(confirm)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Until every started step is confirmed."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
