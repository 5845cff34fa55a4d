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

In a Redis Cluster each node announces only the writes it runs, so there is one such
connection per primary, and the barrier waits for a PING on every one of them (a writer
waits for one node's answer before it writes to another: state/views.py). The listener
reads the cluster's slot table (``CLUSTER SLOTS``) to find the primaries, and every half
second asks each of them its ``ROLE`` and the table again. A failover (a replica made
primary, by ``CLUSTER FAILOVER`` or because its primary died) or any other change of the
primaries ends every connection: the listener reports itself not live, so the cache is
emptied (announcements may have been missed meanwhile), and subscribes again on the new
primaries. Until the change is seen, the demoted primary, now a replica, still announces
the writes it receives from the new one (Redis announces replicated writes too), only not
in the barrier's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from state.redis_client import connect, connect_node

__all__ = ["InvalidationListener"]

log = logging.getLogger(__name__)

_HEARTBEAT_SECONDS = 1.0
_DEAD_AFTER_SECONDS = 3.0  # no answer to a heartbeat for this long: the connection is gone
_RETRY_SECONDS = 1.0
_MOVE_SECONDS = 0.1  # after a change of primaries: a slot table seen half-way may change again
_TOPOLOGY_SECONDS = 0.5  # how often a cluster's primaries are checked
_TOPOLOGY_TIMEOUT_SECONDS = 2.0
_SLOTS = 16384

OnKeys = Callable[[list[bytes] | None], None]  # changed keys; None: everything may have
Address = tuple[str, int]


class TopologyChangedError(Exception):
    """The cluster's primaries are not those the listener is subscribed to."""


class InvalidationListener:
    """Announcements of changed keys under any of ``prefixes``, delivered to ``on_keys``.

    ``on_live(False)`` is called when announcements may have been missed (a connection
    broke, or the cluster's primaries changed); ``on_live(True)`` once they flow again. A
    cache must be empty before it trusts a listener that has just come back.
    ``cluster``: ``redis_url`` names one node of a Redis Cluster; every primary is listened
    to.
    """

    def __init__(
        self,
        redis_url: str,
        prefixes: Sequence[str],
        on_keys: OnKeys,
        on_live: Callable[[bool], None],
        cluster: bool = False,
    ) -> None:
        self._url = redis_url
        self._cluster = cluster
        self._prefixes = list(prefixes)  # Redis refuses prefixes that overlap
        self._on_keys = on_keys
        self._on_live = on_live
        self._clients: dict[Address, Redis] = {}  # cluster: one per node ever seen
        self._single = None if cluster else _as_redis(connect(redis_url, protocol=2))
        self._nodes: list[_NodeConnection] = []
        self._task: asyncio.Task[None] | None = None
        self.live = False

    @property
    def primaries(self) -> list[Address]:
        """The nodes listened to now (empty while not live)."""
        return [node.address for node in self._nodes] if self.live else []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-invalidations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        clients = [*self._clients.values(), *([self._single] if self._single else [])]
        for client in clients:
            await client.aclose()

    async def wait_live(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.live and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return self.live

    async def barrier(self, timeout: float = _DEAD_AFTER_SECONDS) -> bool:
        """True once every announcement Redis (every primary) queued before now has been
        delivered; False when the listener is not live (nothing can be promised)."""
        if not self.live:
            return False
        nodes = list(self._nodes)
        try:
            waits = [await node.ping_and_wait() for node in nodes]
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except (asyncio.CancelledError, Exception):  # a timeout, a connection lost
            return False
        return self.live and self._nodes == nodes

    # -- the connections -----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            moved = False
            try:
                addresses = await self._primaries() if self._cluster else []
                nodes = [
                    _NodeConnection(self._client(address), address, self._on_keys)
                    for address in addresses
                ] or [_NodeConnection(self._single_client(), None, self._on_keys)]
                self._nodes = nodes
                for node in nodes:
                    await node.subscribe(self._prefixes)
                self.live = True
                self._on_live(True)
                async with asyncio.TaskGroup() as group:  # one fails: all stop
                    for node in nodes:
                        group.create_task(node.read())
                        group.create_task(node.heartbeat())
                    if self._cluster:
                        group.create_task(self._watch(addresses))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.live:
                    log.warning(
                        "lost Redis invalidations (%s); reading Redis until back", _reason(exc)
                    )
                moved = _topology_changed(exc)  # the new primaries answer already
            finally:
                await self._lost()
            await asyncio.sleep(_MOVE_SECONDS if moved else _RETRY_SECONDS)

    def _single_client(self) -> Redis:
        assert self._single is not None
        return self._single

    def _client(self, address: Address) -> Redis:
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = connect_node(
                self._url,
                *address,
                protocol=2,
                socket_connect_timeout=_TOPOLOGY_TIMEOUT_SECONDS,
            )
        return client

    async def _primaries(self, ask_first: Sequence[Address] = ()) -> list[Address]:
        """The primaries of the cluster's slot table, as the first node that answers tells
        (``ask_first``, then the other nodes the listener knows, then the one the URL
        names)."""
        problems: list[str] = []
        for address in [*dict.fromkeys([*ask_first, *self._clients]), None]:
            seed = None
            if address is None:
                seed = connect(
                    self._url, protocol=2, socket_connect_timeout=_TOPOLOGY_TIMEOUT_SECONDS
                )
            client = self._client(address) if address is not None else _as_redis(seed)
            try:
                slots = await asyncio.wait_for(client.cluster("SLOTS"), _TOPOLOGY_TIMEOUT_SECONDS)
            except Exception as exc:
                problems.append(_reason(exc))
                continue
            finally:
                if seed is not None:
                    await seed.aclose()
            primaries, nodes = _slot_table(slots, address)
            for node in nodes:
                self._client(node)  # remembered: asked next time, if the seed is gone
            return primaries
        raise ConnectionError(f"no node of the Redis Cluster answered ({'; '.join(problems)})")

    async def _watch(self, listened: list[Address]) -> None:
        """Returns never; raises when a listened node is no longer a primary or the slot
        table names other primaries (a failover)."""
        while True:
            await asyncio.sleep(_TOPOLOGY_SECONDS)
            for address in listened:
                role = await asyncio.wait_for(
                    self._client(address).role(), _TOPOLOGY_TIMEOUT_SECONDS
                )
                if role[0] != b"master":
                    raise TopologyChangedError(f"{address[0]}:{address[1]} is no longer a primary")
            primaries = await self._primaries(listened)
            if sorted(primaries) != sorted(listened):
                raise TopologyChangedError(
                    "the cluster's primaries are now "
                    + ", ".join(f"{host}:{port}" for host, port in sorted(primaries))
                )

    async def _lost(self) -> None:
        was_live, self.live = self.live, False
        nodes, self._nodes = self._nodes, []
        for node in nodes:
            await node.close()
        if was_live:
            self._on_live(False)


class _NodeConnection:
    """The subscribed connection to one node (``address`` None: the URL's single Redis)."""

    def __init__(self, client: Redis, address: Address | None, on_keys: OnKeys) -> None:
        self._client = client
        self.address = address or ("", 0)
        self._on_keys = on_keys
        self._connection: Any = None
        self._send_lock = asyncio.Lock()
        self._pings_sent = 0
        self._pongs_seen = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def subscribe(self, prefixes: list[str]) -> None:
        pool: Any = self._client.connection_pool  # redis-py leaves it unannotated
        connection = await pool.get_connection()
        self._connection = connection
        await connection.send_command("CLIENT", "ID")
        client_id = await connection.read_response()
        arguments = [arg for prefix in prefixes for arg in ("PREFIX", prefix)]
        await connection.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *arguments
        )
        await connection.read_response()
        await connection.send_command("SUBSCRIBE", "__redis__:invalidate")
        await connection.read_response()

    async def read(self) -> None:
        while True:
            message = await self._connection.read_response(timeout=None)
            kind = message[0]
            if kind == b"message":
                self._on_keys(message[2])  # a list of keys, or None after a flush
            elif kind == b"pong":
                self._pongs_seen += 1
                self._wake()

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(_HEARTBEAT_SECONDS)
            sequence = await self._ping()
            await asyncio.sleep(_DEAD_AFTER_SECONDS)
            if self._pongs_seen < sequence:
                raise ConnectionError("Redis did not answer a heartbeat")

    async def ping_and_wait(self) -> asyncio.Future[None]:
        """Send a PING; the future is done once its answer (and so every announcement
        queued before it) has arrived."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sequence = await self._ping()
        if sequence <= self._pongs_seen:
            future.set_result(None)
        else:
            self._waiters.append((sequence, future))
        return future

    async def _ping(self) -> int:
        if self._connection is None:
            raise ConnectionError("not subscribed")
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

    async def close(self) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(ConnectionError("Redis invalidations were lost"))
                future.exception()  # retrieved: a barrier that gave up must not warn
        self._waiters = []
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                await connection.disconnect()  # tracking ends with the connection
            await self._client.connection_pool.release(connection)


def _slot_table(slots: Any, asked: Address | None) -> tuple[list[Address], list[Address]]:
    """(primaries, every node) of a ``CLUSTER SLOTS`` answer; ConnectionError unless its
    ranges cover every slot (a cluster in the middle of a failover)."""
    primaries: set[Address] = set()
    nodes: set[Address] = set()
    covered = 0
    for entry in slots:
        start, end, *servers = entry
        covered += int(end) - int(start) + 1
        for index, server in enumerate(servers):
            host = server[0].decode() if isinstance(server[0], bytes) else str(server[0])
            if not host or host == "?":  # the node does not know its own address
                host = asked[0] if asked else "127.0.0.1"
            address = (host, int(server[1]))
            nodes.add(address)
            if index == 0:
                primaries.add(address)
    if covered != _SLOTS:
        raise ConnectionError(f"the cluster's slot table covers {covered} of {_SLOTS} slots")
    return sorted(primaries), sorted(nodes)


def _topology_changed(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_topology_changed(inner) for inner in exc.exceptions)
    return isinstance(exc, TopologyChangedError)


def _as_redis(client: Any) -> Redis:
    assert isinstance(client, Redis)
    return client


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
