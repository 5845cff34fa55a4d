"""The Redis client factory and the cluster listener's reading of the slot table, without a
Redis (tests/integration/test_redis_cluster.py runs them against a real cluster)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster

from state.redis_client import connect, connect_node
from state.tracking import _slot_table

SLOTS = [
    [0, 5460, [b"10.0.0.1", 7000, b"id1", []], [b"10.0.0.4", 7000, b"id4", []]],
    [5461, 10922, [b"10.0.0.2", 7000, b"id2", []], [b"10.0.0.5", 7000, b"id5", []]],
    [10923, 16383, [b"", 7002, b"id3", []]],  # a node that does not know its own address
]


def test_one_setting_chooses_the_kind_of_client() -> None:
    assert type(connect("redis://127.0.0.1:6379/0")) is Redis
    cluster = connect("redis://127.0.0.1:6379/0", cluster=True)
    assert type(cluster) is RedisCluster
    # Not redis-py's 100 per node: an API process holds one per open signal stream.
    assert cluster.connection_kwargs["max_connections"] >= 10_000


def test_a_node_client_keeps_the_urls_credentials_and_tls() -> None:
    client = connect_node("rediss://user:secret@seed.example:6379/0", "10.0.0.2", 7001)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"]) == ("10.0.0.2", 7001)
    assert (kwargs["username"], kwargs["password"]) == ("user", "secret")
    assert "SSL" in client.connection_pool.connection_class.__name__


def test_the_slot_table_names_the_primaries_and_every_node() -> None:
    primaries, nodes = _slot_table(SLOTS, ("10.0.0.9", 7000))
    assert primaries == [("10.0.0.1", 7000), ("10.0.0.2", 7000), ("10.0.0.9", 7002)]
    assert len(nodes) == 5


def test_a_slot_table_that_leaves_slots_out_is_not_trusted() -> None:
    """In the middle of a failover: the listener waits rather than listen to too few."""
    with pytest.raises(ConnectionError, match="10923 of 16384"):
        _slot_table(SLOTS[:2], None)
