"""An access worker stopped (SIGSTOP) in the middle of a step while another takes the access
log over and a revocation lands, then resumed: the revoked lender stays denied.

Two access workers share the access log's consumer group. The one that holds the log (H)
is caught in a step: it has read a grant and asked Redis for the state to apply it to, and
Redis's answer is held back (tests/faults/stall.py) until H is stopped. The group drops H
after its session timeout and the other (O) takes the log over: it applies the grant, and
then the enterprise's revocation. H, resumed, holds a step read before both. Before the
guard of agents/access.py it wrote that step, and the revoked authorization was active
again in Redis (and the applied offset went back) until a later check applied the log
again; a lender pulling meanwhile got the enterprise's products.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import msgspec
import pytest
import redis
from confluent_kafka import TopicPartition
from pydantic import SecretStr

from engine.events.publisher import BankPublisher
from engine.events.topics import ACCESS_STATE_TOPIC
from engine.runtime.embedded import Child, free_port
from engine.runtime.observe import total, wait_applied, wait_views_published
from engine.runtime.provision import Lender, authorize, provision_lender, revoke
from engine.runtime.runner import EmbeddedStack, embedded_stack
from state.access import AccessKeys
from tests.factories import enterprise_ids, event
from tests.faults.conftest import FAULT_MARKS, read_until_quiet
from tests.faults.stall import RedisStall
from tests.integration.conftest import BANKS, PARTITIONS, get, module_settings, wait_until

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(300)]

ENTERPRISE = enterprise_ids(1, seed=2417)[0]
MONTH = "2026-03"
_WATCH_AFTER_RESUME_SECONDS = 10.0


@dataclass
class _AccessWorker:
    name: str
    child: Child
    url: str
    stall: RedisStall


@dataclass
class _Watch:
    """What Redis and the API said about the revoked authorization, every few milliseconds."""

    seen: list[str] = field(default_factory=list)  # each problem, when first seen
    problems: set[str] = field(default_factory=set)
    pulls: int = 0
    reads: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    monitor: redis.client.Monitor | None = None
    threads: list[threading.Thread] = field(default_factory=list)

    def end(self) -> None:
        self.stop.set()
        if self.monitor is not None:
            self.monitor.connection.disconnect()
        for thread in self.threads:
            thread.join(10)


@pytest.fixture(scope="module")
def stack(own_redis: tuple[str, Child, Path]) -> Iterator[EmbeddedStack]:
    """The stages apart, with a Redis of this module's own: the scenario watches every
    command it executes (MONITOR)."""
    settings = module_settings("accstop", redis_url=own_redis[0], api_metrics_port=free_port())
    with embedded_stack(settings, banks=BANKS, split_stages=True) as running:
        yield running


@contextlib.contextmanager
def _access_workers(stack: EmbeddedStack) -> Iterator[list[_AccessWorker]]:
    """Two access workers in place of the stack's one, each reaching Redis through a relay
    of its own."""
    assert stack.access is not None
    stack.access.stop()
    target = urlparse(stack.settings.redis_url.get_secret_value())
    workers = []
    for name in ("access-a", "access-b"):
        stall = RedisStall(target.hostname or "127.0.0.1", target.port or 6379)
        db = int((target.path or "/0").lstrip("/") or 0)
        child, url = stack.add_worker(
            name, worker_stages="access", redis_url=SecretStr(stall.url(db))
        )
        workers.append(_AccessWorker(name, child, url, stall))
    try:
        for worker in workers:
            stack.wait_ready(worker.child, worker.url)
        yield workers
    finally:
        for worker in workers:
            os.killpg(worker.child.process.pid, signal.SIGCONT)
            worker.child.stop()
            worker.stall.close()


def _published(stack: EmbeddedStack, authorization: str) -> list[str]:
    """The statuses of the authorization on the compacted access state topic, in order, read
    until nothing new comes for a second."""
    assert stack.settings.kafka_bootstrap is not None
    statuses = []
    partitions = [TopicPartition(ACCESS_STATE_TOPIC, 0, 0)]
    group = "faults-access-state-reader"
    for message in read_until_quiet(stack.settings.kafka_bootstrap, group, partitions):
        if message.key() == f"authorization/{authorization}".encode():
            statuses.append(msgspec.json.decode(message.value() or b"{}")["status"])
    return statuses


def _pull(stack: EmbeddedStack, lender: Lender, authorization: str) -> int:
    path = f"/v1/enterprises/{ENTERPRISE}/monthly/{MONTH}?authorization={authorization}"
    return get(stack.api_url + path, lender.headers)[0]


def _watch(stack: EmbeddedStack, lender: Lender, authorization: str) -> _Watch:
    watch = _Watch()
    keys = AccessKeys(stack.settings.redis_prefix)
    entity_key = keys.entity("authorization", authorization)
    client = redis.Redis.from_url(stack.settings.redis_url.get_secret_value())
    started = time.monotonic()

    def note(at: float, problem: str) -> None:
        if problem not in watch.problems:  # each once, with when it was first seen
            watch.problems.add(problem)
            watch.seen.append(f"{at:.2f} s after the resume: {problem}")

    def poll() -> None:
        highest = 0
        while not watch.stop.is_set():
            at = time.monotonic() - started
            raw, applied = client.mget(entity_key, keys.applied)
            status = msgspec.json.decode(raw)["status"] if raw else None
            if status != "revoked":
                note(at, f"the authorization is {status} in Redis")
            if applied is not None and int(applied) < highest:
                note(at, f"the applied offset went back from {highest} to {int(applied)}")
            highest = max(highest, int(applied or 0))
            watch.reads += 1
            if watch.reads % 5 == 0:
                code = _pull(stack, lender, authorization)
                watch.pulls += 1
                if code != 403:
                    note(at, f"the revoked lender's pull got {code}")
            time.sleep(0.01)
        client.close()

    def monitor() -> None:
        # Every write, however soon overwritten, that a poll would miss: a SET (on its own,
        # in a MULTI/EXEC or in a script) of the authorization or of the applied offset.
        highest = 0
        assert watch.monitor is not None
        with contextlib.suppress(redis.RedisError, OSError, ValueError, AttributeError):
            for command in watch.monitor.listen():
                at = time.monotonic() - started
                name, key, value = [*command["command"].split(" ", 2), "", ""][:3]
                if name.upper() != "SET":
                    continue
                status = re.search(r'"status":"(\w+)"', value)
                if key == entity_key and (status is None or status[1] != "revoked"):
                    note(at, f"the authorization was written as {status and status[1]}")
                elif key == keys.applied:
                    offset = int(value.split(" ", 1)[0])
                    if offset < highest:
                        note(at, f"the applied offset was set back from {highest} to {offset}")
                    highest = max(highest, offset)

    watch.monitor = redis.Redis.from_url(stack.settings.redis_url.get_secret_value()).monitor()
    watch.monitor.__enter__()
    watch.threads = [threading.Thread(target=f, daemon=True) for f in (poll, monitor)]
    for thread in watch.threads:
        thread.start()
    return watch


def test_a_stopped_access_worker_resumed_leaves_the_revoked_lender_denied(
    stack: EmbeddedStack,
) -> None:
    settings = stack.settings
    publisher = BankPublisher(settings.kafka_bootstrap or "", BANKS[0], PARTITIONS)
    publisher.publish(
        event(
            txn_id="S-1",
            bank=BANKS[0],
            enterprise_id=ENTERPRISE,
            booked_at=f"{MONTH}-05T10:00:00+08:00",
            amount_fen=5_000,
        )
    )
    publisher.flush(30)
    wait_applied(stack.worker_url, 1)
    wait_views_published(stack.worker_url, settings.kafka_bootstrap or "", PARTITIONS)

    with _access_workers(stack) as workers:
        lender = provision_lender(settings, "LEND0001")  # applied by the log's holder
        holder = next(w for w in workers if total(w.url, "creditflow_access_commands_total"))
        other = next(w for w in workers if w is not holder)

        # The holder reads the grant and asks Redis for the state to apply it to; Redis's
        # answer waits in the relay, and the holder is stopped there, in the middle of it.
        holder.stall.arm("MGET")
        granting = threading.Thread(target=authorize, args=(settings, lender, [ENTERPRISE]))
        granting.start()
        assert holder.stall.holding.wait(30), "the holder did not begin the grant's step"
        os.killpg(holder.child.process.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        holder.stall.release()  # into its socket: it reads it once resumed

        # The group drops the stopped holder; the other takes the log over, applies the
        # grant (which answers the enterprise) and then the revocation.
        granting.join(90)
        assert not granting.is_alive(), "the other worker did not take the access log over"
        took_over = time.monotonic() - stopped_at
        authorization = lender.authorizations[ENTERPRISE]
        deadline, codes = time.monotonic() + 30, set()
        while (code := _pull(stack, lender, authorization)) != 200:
            codes.add(code)
            assert time.monotonic() < deadline, f"the grant not served: pulls got {codes}"
            time.sleep(0.1)
        revoke(settings, lender, ENTERPRISE)
        assert _pull(stack, lender, authorization) == 403

        watch = _watch(stack, lender, authorization)
        os.killpg(holder.child.process.pid, signal.SIGCONT)
        time.sleep(_WATCH_AFTER_RESUME_SECONDS)
        watch.end()
        assert watch.reads > 100 and watch.pulls > 20, watch
        assert not watch.seen, "\n".join(watch.seen)
        # The holder did end its step (the case above), found Redis past it and skipped it.
        wait_until(
            lambda: total(holder.url, "creditflow_access_steps_superseded_total") >= 1,
            30,
            "the resumed worker's stale step superseded",
        )
        # Other systems read who is authorized from the access state topic: the resumed
        # worker sent nothing of its step there either.
        assert _published(stack, authorization) == ["active", "revoked"]
        assert holder.child.log_path is not None
        logged = holder.child.log_path.read_text()
        assert "another worker had applied the log up to offset" in logged
        assert ENTERPRISE not in logged
        print(
            f"the other worker applied the grant {took_over:.1f} s after the stop; "
            f"{watch.reads} reads of Redis and {watch.pulls} pulls watched for "
            f"{_WATCH_AFTER_RESUME_SECONDS:.0f} s after the resume"
        )
        assert other.child.process.poll() is None and holder.child.process.poll() is None
