"""Redis tells us which published views changed: server-assisted client-side caching.

A reader that keeps views (or products rendered from them) in its own memory must drop
them the moment Redis holds something newer. Redis does the bookkeeping: with
``CLIENT TRACKING ON BCAST PREFIX <p>`` it announces every key under ``<p>`` that any
client writes, deletes or expires, and ``None`` for a flush. We receive those
announcements on one dedicated connection (RESP2, redirected to itself and subscribed to
``__redis__:invalidate``), so a cache hit needs no round trip at all.

Ordering is what makes this exact. Redis queues the announcement of a write before it
runs any later command, so a PING sent on this connection after some read has returned
is answered after the announcements of every write that read could have seen:
:meth:`InvalidationListener.barrier` waits for that answer. While the connection is
down nothing is announced, so the listener reports itself not live (the caller must then
read Redis on every request) until it has subscribed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis

__all__ = ["InvalidationListener"]

log = logging.getLogger(__name__)

_HEARTBEAT_SECONDS = 1.0
_DEAD_AFTER_SECONDS = 3.0  # no answer to a heartbeat for this long: the connection is gone
_RETRY_SECONDS = 1.0

OnKeys = Callable[[list[bytes] | None], None]  # changed keys; None: everything may have


class InvalidationListener:
    """Announcements of changed keys under any of ``prefixes``, delivered to ``on_keys``.

    ``on_live(False)`` is called when announcements may have been missed (the connection
    broke); ``on_live(True)`` once they flow again. A cache must be empty before it trusts
    a listener that has just come back.
    """

    def __init__(
        self,
        redis_url: str,
        prefixes: Sequence[str],
        on_keys: OnKeys,
        on_live: Callable[[bool], None],
    ) -> None:
        self._client = Redis.from_url(redis_url, protocol=2)
        self._prefixes = list(prefixes)  # Redis refuses prefixes that overlap
        self._on_keys = on_keys
        self._on_live = on_live
        self._connection: Any = None
        self._send_lock = asyncio.Lock()
        self._pings_sent = 0
        self._pongs_seen = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.live = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-invalidations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def wait_live(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.live and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return self.live

    async def barrier(self, timeout: float = _DEAD_AFTER_SECONDS) -> bool:
        """True once every announcement Redis queued before now has been delivered;
        False when the listener is not live (nothing can be promised)."""
        if not self.live:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            sequence = await self._ping()
        except Exception:
            return False
        self._waiters.append((sequence, future))
        try:
            await asyncio.wait_for(future, timeout)
        except (TimeoutError, asyncio.CancelledError, ConnectionError):
            return False
        return self.live

    # -- the connection ------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._subscribe()
                self.live = True
                self._on_live(True)
                async with asyncio.TaskGroup() as group:  # one fails: both stop
                    group.create_task(self._read())
                    group.create_task(self._heartbeat())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.live:
                    log.warning("lost Redis invalidations (%s); reading Redis until back", exc)
            finally:
                await self._lost()
            await asyncio.sleep(_RETRY_SECONDS)

    async def _subscribe(self) -> None:
        pool: Any = self._client.connection_pool  # redis-py leaves it unannotated
        connection = await pool.get_connection()
        self._connection = connection
        await connection.send_command("CLIENT", "ID")
        client_id = await connection.read_response()
        prefixes = [arg for prefix in self._prefixes for arg in ("PREFIX", prefix)]
        await connection.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefixes
        )
        await connection.read_response()
        await connection.send_command("SUBSCRIBE", "__redis__:invalidate")
        await connection.read_response()

    async def _read(self) -> None:
        while True:
            message = await self._connection.read_response(timeout=None)
            kind = message[0]
            if kind == b"message":
                self._on_keys(message[2])  # a list of keys, or None after a flush
            elif kind == b"pong":
                self._pongs_seen += 1
                self._wake()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(_HEARTBEAT_SECONDS)
            sequence = await self._ping()
            await asyncio.sleep(_DEAD_AFTER_SECONDS)
            if self._pongs_seen < sequence:
                raise ConnectionError("Redis did not answer a heartbeat")

    async def _ping(self) -> int:
        async with self._send_lock:  # PINGs are counted in the order they were sent
            self._pings_sent += 1
            sequence = self._pings_sent
            await self._connection.send_command("PING")
        return sequence

    def _wake(self) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for sequence, future in self._waiters:
            if sequence <= self._pongs_seen:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((sequence, future))
        self._waiters = still

    async def _lost(self) -> None:
        was_live, self.live = self.live, False
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(ConnectionError("Redis invalidations were lost"))
        self._waiters = []
        self._pings_sent = self._pongs_seen = 0
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                await connection.disconnect()  # tracking ends with the connection
            await self._client.connection_pool.release(connection)
        if was_live:
            self._on_live(False)
