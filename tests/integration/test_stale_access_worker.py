"""A stalled access worker never undoes newer access state (agents/access.py), against real
Redis and a real Redis Cluster.

An access worker that stalls in a step (cut off from the broker while its deliveries wait, a
SIGSTOP, a long pause) while another worker takes the access log over and applies further
commands must not, when it goes on, write its older step over the newer state: a revoked
authorization that came back would let a lender read an enterprise's data without consent.
Two stages share one Redis as two workers would; the stalled one's step is held at its
delivery to the broker, the moment a worker cut off from the broker waits in.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from agents.access import AccessLogStage
from engine.access import commands, tokens
from engine.access.commands import Entity
from engine.access.model import Authorization, Dispute
from engine.events.topics import ACCESS_LOG_TOPIC
from engine.metrics import WorkerMetrics
from state.access import AccessStore, decode_entity
from state.redis_client import RedisClient, connect
from tests.factories import ENTERPRISE

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_000_000
DAY = 86_400_000_000
LENDER, BANK = "LEND0001", "BANK0001"
AUTH, DISPUTE = "a" * 32, "d" * 32


@pytest.fixture(params=["redis", "cluster"])
def target(request: pytest.FixtureRequest, redis_url: str) -> tuple[str, bool]:
    """(URL, whether it names a Redis Cluster): one Redis, or a cluster of three primaries."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster").url, True
    return redis_url, False


@dataclass
class _Logged:
    offset: int
    value: bytes
    partition: int = 0
    topic: str = ACCESS_LOG_TOPIC


def _institution(code: str, *roles: str, at: int) -> commands.Command:
    credential = tokens.issue(b"test-key", "institution", code, T0)[1]
    return commands.AddInstitution(
        id=f"c-add-{code}", at_us=at, by="admin", code=code, name=code, roles=roles,
        credential=credential,
    )  # fmt: skip


def _log() -> list[_Logged]:
    """A lender is authorized and the enterprise disputes an item (offsets 0 to 3); then the
    authorization is revoked and the provider answers the dispute (4, 5); then another
    lender is registered (6)."""
    e = ENTERPRISE
    log: list[commands.Command] = [
        _institution(BANK, "provider", at=T0),
        _institution(LENDER, "user", at=T0 + 1),
        commands.GrantAuthorization(
            id="c-grant", at_us=T0 + 2, by="enterprise", authorization_id=AUTH,
            enterprise_id=e, institution=LENDER, products=("monthly",),
            purpose="credit_application", valid_until_us=T0 + 30 * DAY,
        ),
        commands.FileDispute(
            id="c-dispute", at_us=T0 + 3, by="enterprise", dispute_id=DISPUTE, enterprise_id=e,
            product="monthly", period="2026-03", items=("inflow_amount_fen",),
            statement="a loan, not sales", providers=(BANK,),
        ),
        commands.RevokeAuthorization(
            id="c-revoke", at_us=T0 + 4, by="enterprise", enterprise_id=e,
            authorization_id=AUTH,
        ),
        commands.ResolveDispute(
            id="c-resolve", at_us=T0 + 5, by=f"institution:{BANK}", enterprise_id=e,
            dispute_id=DISPUTE, outcome="corrected", note="",
        ),
        _institution("LEND0002", "user", at=T0 + 6),
    ]  # fmt: skip
    return [_Logged(i, commands.encode_command(c)) for i, c in enumerate(log)]


class _Broker:
    """The access state topic as a list; while ``cut`` is set, deliveries wait (a worker
    cut off from the broker), and the step that sent them with them."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes | None]] = []
        self.cut: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Awaitable[Any]:
        cut = self.cut

        async def delivered() -> None:
            if cut is not None:
                self.waiting.set()
                await cut.wait()
            self.sent.append((key, value))

        return asyncio.ensure_future(delivered())


class _Worker:
    def __init__(self, store: AccessStore) -> None:
        self.broker = _Broker()
        self.registry = CollectorRegistry()
        self.seeks: list[int] = []

        async def seek(offset: int) -> None:
            self.seeks.append(offset)

        self.stage = AccessLogStage(store, self.broker, seek, WorkerMetrics(self.registry))

    def superseded(self) -> float:
        value = self.registry.get_sample_value("creditflow_access_steps_superseded_total")
        return value or 0.0


class _StallingStore(AccessStore):
    """The real store, whose snapshot, once armed, waits after reading until released: a
    worker that stalls (stopped, paused) between reading its step's state and sending it."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        super().__init__(client, prefix)
        self.release: asyncio.Event | None = None
        self.stalled = asyncio.Event()

    async def snapshot(
        self, wanted: Iterable[tuple[str, str]]
    ) -> tuple[int, dict[tuple[str, str], Entity]]:
        read = await super().snapshot(wanted)
        if self.release is not None:
            release, self.release = self.release, None
            self.stalled.set()
            await release.wait()
        return read


def _with_store(
    url: str, cluster: bool, body: Callable[[RedisClient, AccessStore, str], Any]
) -> None:
    async def run() -> None:
        client = connect(url, cluster)
        prefix = f"cfstaleaccess-{secrets.token_hex(3)}"
        store = AccessStore(client, prefix)
        try:
            await body(client, store, prefix)
        finally:
            for pattern in (f"{prefix}:access:v1:*", f"{prefix}:v1:*"):
                async for key in client.scan_iter(match=pattern, count=1000):
                    await client.delete(key)
            await client.aclose()

    asyncio.run(run())


async def _authorization(store: AccessStore) -> Authorization:
    found = (await store.load([("authorization", AUTH)]))[("authorization", AUTH)]
    assert isinstance(found, Authorization)
    return found


async def _copied_dispute(client: RedisClient, store: AccessStore) -> str:
    """The status of the dispute as the enterprise's views hash has it (what products mark)."""
    raw = await client.hget(store.keys.views(ENTERPRISE), f"d:{DISPUTE}")
    assert raw is not None
    dispute = decode_entity("dispute", raw)
    assert isinstance(dispute, Dispute)
    return dispute.status


async def _answer(client: RedisClient, store: AccessStore, command_id: str) -> dict[str, Any]:
    raw = await client.get(store.keys.result(command_id))
    assert raw is not None
    return msgspec.json.decode(raw)  # type: ignore[no-any-return]


def test_a_worker_stalled_in_a_step_writes_nothing_over_the_newer_owner(
    target: tuple[str, bool],
) -> None:
    log = _log()

    async def body(client: RedisClient, store: AccessStore, _: str) -> None:
        a, b = _Worker(store), _Worker(store)
        await a.stage.assigned()
        await a.stage.process(log[:2])
        # A reads the grant and the dispute, and is cut off from the broker while it
        # delivers them to the access state topic.
        a.broker.cut = asyncio.Event()
        stalled = asyncio.ensure_future(a.stage.process(log[2:4]))
        await asyncio.wait_for(a.broker.waiting.wait(), 10)
        # B takes the access log over and applies it further: the revocation, the answer.
        await b.stage.assigned()
        await b.stage.process(log[2:6])
        assert (await _authorization(store)).status == "revoked"
        assert await _copied_dispute(client, store) == "corrected"
        # A is back and ends its step.
        a.broker.cut.set()
        await asyncio.wait_for(stalled, 10)
        assert (await _authorization(store)).status == "revoked"
        assert await _copied_dispute(client, store) == "corrected"
        assert await store.applied() == 6
        assert a.superseded() == 1
        # A goes on from where Redis is, without applying anything twice.
        assert a.stage.next_offset == 6
        await a.stage.process(log[4:7])
        assert await store.applied() == 7
        assert (await _authorization(store)).status == "revoked"
        assert (await _answer(client, store, "c-revoke"))["ok"]
        assert (await _answer(client, store, "c-resolve"))["ok"]
        # B, in turn behind, skips what A applied.
        await b.stage.process(log[6:7])
        assert b.superseded() == 1 and b.stage.next_offset == 7
        assert await store.applied() == 7

    _with_store(*target, body)


def test_a_worker_that_reads_after_the_new_owner_applied_skips_what_it_applied(
    redis_url: str,
) -> None:
    """A stale worker that has not yet read its step's entities when the other applies past
    it: it applies nothing twice (a second grant would answer 409 to the enterprise whose
    grant succeeded, a second revocation 409 to the enterprise who revoked)."""
    log = _log()

    async def body(client: RedisClient, store: AccessStore, _: str) -> None:
        a, b = _Worker(store), _Worker(store)
        await a.stage.assigned()
        await a.stage.process(log[:2])
        await b.stage.assigned()
        await b.stage.process(log[2:6])
        await a.stage.process(log[2:7])  # A still believes Redis is at offset 2
        assert await store.applied() == 7
        for command_id in ("c-grant", "c-dispute", "c-revoke", "c-resolve", "c-add-LEND0002"):
            assert (await _answer(client, store, command_id))["ok"], command_id
        assert (await _authorization(store)).status == "revoked"
        assert await _copied_dispute(client, store) == "corrected"
        assert a.superseded() == 1

    _with_store(redis_url, False, body)


def test_a_worker_stalled_after_reading_its_step_sends_nothing_of_it(redis_url: str) -> None:
    """A worker stopped between reading its step's state and sending its entities to the
    compacted access state topic, which other systems read to know who is authorized: once
    resumed it finds Redis past its step and sends nothing of it (Kafka has no conditional
    write: only a stall during the delivery itself can still put an older state there)."""
    log = _log()

    async def body(client: RedisClient, store: AccessStore, prefix: str) -> None:
        stalling = _StallingStore(client, prefix)
        a, b = _Worker(stalling), _Worker(store)
        await a.stage.assigned()
        await a.stage.process(log[:2])
        release = stalling.release = asyncio.Event()
        stalled = asyncio.ensure_future(a.stage.process(log[2:4]))
        await asyncio.wait_for(stalling.stalled.wait(), 10)
        await b.stage.assigned()
        await b.stage.process(log[2:6])
        release.set()
        await asyncio.wait_for(stalled, 10)
        assert [key for key, _ in b.broker.sent if key and key.startswith(b"authorization/")]
        assert [key for key, _ in a.broker.sent if key and key.startswith(b"authorization/")] == []
        assert (await _authorization(store)).status == "revoked"
        assert a.superseded() == 1 and a.stage.next_offset == 6

    _with_store(redis_url, False, body)
