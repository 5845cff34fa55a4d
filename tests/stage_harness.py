"""Feeding a LedgerStage without a broker: routed messages as the ledger stage receives them,
and its views on a throwaway prefix of a real Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from engine import codec
from engine.events.contract import Txn, validate
from engine.events.topics import ROUTED_TOPIC
from state.redis_client import RedisClient, connect
from state.views import ViewStore


@dataclass
class RoutedMessage:
    """What the ledger stage reads of a routed message."""

    offset: int
    value: bytes
    partition: int = 0
    topic: str = ROUTED_TOPIC


def routed(events: list[dict[str, Any]], first: int = 0) -> list[RoutedMessage]:
    """One routed message of one row per event, from offset ``first`` (as intake routes a
    bank's event: its source is partition 0 of its bank's topic, at the same offset)."""
    messages = []
    for k, element in enumerate(events):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        row = [*txn, f"bank.{element['bank']}.txns", 0, first + k, None]
        messages.append(RoutedMessage(first + k, codec.dumps([row])))
    return messages


def with_views(
    url: str,
    body: Callable[[RedisClient, ViewStore], Awaitable[None]],
    cluster: bool = False,
) -> None:
    """Run ``body`` with a client of the Redis at ``url`` and views under a prefix of their
    own, deleted afterwards."""

    async def run() -> None:
        client = connect(url, cluster)
        views = ViewStore(client, f"cftest-{secrets.token_hex(3)}")
        try:
            await body(client, views)
        finally:
            await views.delete_all()
            await client.aclose()

    asyncio.run(run())
