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
  primary and follows failovers (state/tracking.py), with clients from :func:`connect_node`.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from engine.settings import Settings

__all__ = ["RedisClient", "connect", "connect_node", "connect_settings", "is_cluster"]

RedisClient: TypeAlias = Redis | RedisCluster

# A command whose slot's primary is gone is tried again a few times over about a second
# (redis-py refreshes the slot table in between), then fails: a pull gets 503
# store_unavailable, a worker retries its step. redis-py's default (10 tries, up to 1 s
# apart) held a pull for several seconds while a failover was under way.
_CLUSTER_RETRIES = 3
_CLUSTER_BACKOFF = ExponentialWithJitterBackoff(base=0.05, cap=0.5)


def connect(url: str, cluster: bool = False, **options: Any) -> RedisClient:
    """A client of the Redis at ``url``, or of the Redis Cluster one of whose nodes it
    names (``cluster``); ``options`` go to redis-py (timeouts, protocol)."""
    if not cluster:
        return Redis.from_url(url, **options)
    # RedisCluster has no retry_on_timeout: its retry object decides (none, to fail fast).
    retries = _CLUSTER_RETRIES if options.pop("retry_on_timeout", True) else 0
    options.setdefault("retry", Retry(_CLUSTER_BACKOFF, retries))
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
