"""The one place a creditflow process makes a Redis client: one Redis, or a Redis Cluster.

``CREDITFLOW_REDIS_URL`` names a Redis; with ``CREDITFLOW_REDIS_CLUSTER`` it names any node
of a Redis Cluster, and the client (redis-py's ``RedisCluster``) learns the others from it,
sends each command to the primary of its key's slot and follows the cluster through a
failover (MOVED answers, a refreshed slot table). Every component takes a
:data:`RedisClient` from :func:`connect` and runs unchanged on both: whatever must be read
or written together shares a hash tag (state/views.py, state/access.py,
state/signal_feeds.py, state/queries.py).

What a cluster changes, and where it is handled:

- a pipeline is split by node and its parts run at the same time, so an order between keys
  of different slots costs a round trip per step (state/views.py);
- scripts are cached per node, and a replica promoted by a failover has none of them
  (state/signal_feeds.py);
- client tracking is per node: the listener of announcements keeps one connection per
  primary and follows failovers (state/tracking.py), with clients from :func:`connect_node`;
- a primary replicates asynchronously, so one that dies takes along the writes its replica
  had not received yet: a write that another one vouches for (a partition's progress for
  its views, a partition's offset for its query records) waits until a replica has what it
  vouches for (:func:`wait_for_replicas`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, TypeAlias

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from engine.settings import Settings

__all__ = [
    "RedisClient",
    "connect",
    "connect_node",
    "connect_settings",
    "is_cluster",
    "replicas_had",
    "wait_for_replicas",
]

log = logging.getLogger(__name__)

RedisClient: TypeAlias = Redis | RedisCluster

# A command whose slot's primary is gone is tried again a few times over about a second
# (redis-py refreshes the slot table in between), then fails: a pull gets 503
# store_unavailable, a worker retries its step. redis-py's default (10 tries, up to 1 s
# apart) held a pull for several seconds while a failover was under way.
_CLUSTER_RETRIES = 3
_CLUSTER_BACKOFF = ExponentialWithJitterBackoff(base=0.05, cap=0.5)
# How long a write waits for a replica to have what came before it (WAIT): a replica on the
# same network answers in well under a millisecond; one that is gone costs this per write.
_REPLICA_WAIT_MS = 100
_CLUSTER_MAX_CONNECTIONS = 10_000  # per node
_WARN_EVERY_SECONDS = 60.0
_warned_at = float("-inf")


def connect(url: str, cluster: bool = False, **options: Any) -> RedisClient:
    """A client of the Redis at ``url``, or of the Redis Cluster one of whose nodes it
    names (``cluster``); ``options`` go to redis-py (timeouts, protocol)."""
    if not cluster:
        return Redis.from_url(url, **options)
    # RedisCluster has no retry_on_timeout: its retry object decides (none, to fail fast).
    retries = _CLUSTER_RETRIES if options.pop("retry_on_timeout", True) else 0
    options.setdefault("retry", Retry(_CLUSTER_BACKOFF, retries))
    # redis-py allows a cluster client 100 connections per node and then fails commands;
    # a single Redis's pool has no such bound. An API process holds one per open signal
    # stream (XREAD BLOCK) and one per request in flight: up to uvicorn's 10,000.
    options.setdefault("max_connections", _CLUSTER_MAX_CONNECTIONS)
    return RedisCluster.from_url(url, **options)


def connect_settings(settings: Settings, **options: Any) -> RedisClient:
    """:func:`connect` to the Redis (or Redis Cluster) the settings name."""
    return connect(settings.redis_url.get_secret_value(), settings.redis_cluster, **options)


def connect_node(url: str, host: str, port: int, **options: Any) -> Redis:
    """A client of one node of a cluster, ``host:port``, with the credentials and TLS
    settings of ``url`` (which names another node, or the same)."""
    kwargs = {**parse_url(url), **options, "host": host, "port": port}
    kwargs.pop("db", None)  # a cluster node has database 0 only
    return Redis.from_pool(ConnectionPool(**kwargs))  # closed with the client


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


async def wait_for_replicas(pipe: Any, client: RedisClient, keys: Iterable[str]) -> list[str]:
    """Queue, in ``pipe`` (a pipeline of ``client``, after its writes), a ``WAIT 1`` (100 ms
    at most) on every primary of a Redis Cluster that holds one of ``keys``: it answers once
    a replica has every write that primary answered before it (WAIT counts the writes of its
    own connection, and a pipeline sends a node's commands on one), so a failover keeps
    them. Returns the primaries, in the order of their answers at the end of the pipeline's
    (none on a single Redis); :func:`replicas_had` reads them.
    """
    if not isinstance(client, RedisCluster):
        return []
    await client.initialize()  # the slot table (a no-op once known)
    nodes = {
        node.name: node
        for node in (client.get_node_from_key(key) for key in keys)
        if node is not None  # no primary for the slot: the write itself fails
    }
    for node in nodes.values():
        pipe.execute_command("WAIT", 1, _REPLICA_WAIT_MS, target_nodes=node)
    return list(nodes)


def replicas_had(primaries: list[str], results: list[Any]) -> list[Any]:
    """The results of a pipeline without the answers of :func:`wait_for_replicas`' WAITs,
    which end it. A primary that had no replica in time is logged (once a minute): a
    failover of it could lose those writes. The writer goes on (the alternative would be to
    stop writing while a replica is down)."""
    global _warned_at
    if not primaries:
        return results
    answers = results[len(results) - len(primaries) :]
    alone = [name for name, count in zip(primaries, answers, strict=True) if int(count) < 1]
    if alone and time.monotonic() - _warned_at >= _WARN_EVERY_SECONDS:
        _warned_at = time.monotonic()
        log.warning(
            "Redis Cluster primary %s has no replica in sync (WAIT timed out after %d ms): a "
            "failover of it now could lose the latest writes (docs/operations.md, Redis "
            "Cluster)",
            ", ".join(alone),
            _REPLICA_WAIT_MS,
        )
    return results[: len(results) - len(primaries)]
