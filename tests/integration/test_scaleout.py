"""Scale-out: two workers share the partitions; one joins and another leaves mid-stream.

One scenario runs once per module, with events published at a steady pace throughout:

    worker A alone -> B joins -> A leaves (SIGTERM) -> C joins on A's old state directory
    -> B is killed (SIGKILL) near the end of the stream -> C alone

Each worker has its own CREDITFLOW_DATA_DIR, as on separate machines: a partition that moves
is rebuilt from the routed topic by its new owner (C finds A's state, stale by then, and
catches up from it) while the views in Redis keep serving what the old owner published.
The last test adds a worker on the data dir of a running one, as on one machine. Meanwhile a
thread pulls monthly products of a few enterprises of every partition from the API: none
fails and none goes back in time. Afterwards every item of every product equals the
independent reference: nothing lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from engine.events import kafka_admin
from engine.events.partitioner import partition_for
from engine.events.publisher import BankPublisher
from engine.events.topics import ROUTED_TOPIC
from engine.runtime.embedded import Child
from engine.runtime.provision import Lender
from engine.runtime.runner import EmbeddedStack, embedded_stack
from state.views import ViewStore
from tests import reference
from tests.compare import differences
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    generated_log,
    get,
    module_settings,
    reader,
    wait_for_products,
    wait_signals_judged,
    with_signal_days,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]

ENTERPRISES = 120  # about 40,000 events
WATCHED_MONTH = "2026-06"
WATCHED_PER_PARTITION = 2
SLICE_EVENTS = 200  # published every PAUSE_SECONDS: about 1,500 events/s
PAUSE_SECONDS = 0.1
ALL_PARTITIONS = list(range(PARTITIONS))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    settings = module_settings("scale", batch_max_messages=20)
    with embedded_stack(settings, banks=BANKS) as running:
        try:
            yield running
        finally:  # the run directory goes with the stack: keep the logs of every worker
            kept = tmp_path_factory.mktemp("scaleout-logs")
            shutil.copytree(running.stack.run_dir / "logs", kept, dirs_exist_ok=True)
            print(f"scale-out logs kept in {kept}")


class Timeline:
    """Named moments of the scenario, to say in which phase something was seen."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.marks: list[tuple[float, str]] = [(0.0, "A alone")]

    def mark(self, what: str) -> None:
        self.marks.append((self.now(), what))

    def now(self) -> float:
        return time.monotonic() - self.started

    def phase(self) -> str:
        return self.marks[-1][1]

    def __str__(self) -> str:
        return ", ".join(f"{at:.1f}s {what}" for at, what in self.marks)


@dataclass(frozen=True)
class Backwards:
    """A pull that served a partition's views older than a pull before it had."""

    at: float
    phase: str
    enterprise_id: str
    partition: int
    highest: int  # the highest routed offset served for the partition before
    offset: int  # the routed offset served now
    inflow_then: Any  # inflow_count of the enterprise's month at its highest offset
    inflow_now: Any

    def __str__(self) -> str:
        return (
            f"{self.at:.1f}s [{self.phase}] partition {self.partition}: routed_offset "
            f"{self.highest} -> {self.offset}; {self.enterprise_id} {WATCHED_MONTH} "
            f"inflow_count {self.inflow_then} -> {self.inflow_now}"
        )


class PullWatcher(threading.Thread):
    """Pulls the monthly product of ``watched`` enterprises in a loop and records every failure:
    a status other than 200/404, a connection error, or a 404 after a 200. It also records
    every pull that served a partition's views older than an earlier pull (``backwards``)."""

    def __init__(
        self, api_url: str, lender: Lender, watched: dict[str, int], timeline: Timeline
    ) -> None:
        super().__init__(name="pull-watcher", daemon=True)
        self._api_url = api_url
        self._lender = lender
        self._watched = watched
        self._timeline = timeline
        self._stop_event = threading.Event()
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []
        self.backwards: list[Backwards] = []
        self.seen: set[str] = set()  # enterprises served once with 200
        self._highest: dict[int, int] = {}  # partition -> highest routed offset served
        self._inflow: dict[str, tuple[int, Any]] = {}  # enterprise -> (offset, inflow_count)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(15)

    def run(self) -> None:
        while not self._stop_event.is_set():
            for enterprise_id in self._watched:
                self._pull(enterprise_id)
                self._stop_event.wait(0.03)

    def _pull(self, enterprise_id: str) -> None:
        url = self._api_url + self._lender.path(enterprise_id, "monthly", WATCHED_MONTH)
        at, phase = self._timeline.now(), self._timeline.phase()
        where = f"{at:.1f}s [{phase}] {enterprise_id}"
        try:
            status, body = get(url, self._lender.headers)
        except (urllib.error.URLError, OSError) as exc:
            self.statuses["error"] += 1
            self.errors.append(f"{where}: {type(exc).__name__}: {exc}")
            return
        self.statuses[str(status)] += 1
        if status == 404 and enterprise_id in self.seen:
            self.errors.append(f"{where}: 404 after it was served: {body}")
        elif status not in (200, 404):
            self.errors.append(f"{where}: status {status}: {body}")
        if status != 200:
            return
        self.seen.add(enterprise_id)
        items = {k: v for segment in body["segments"] for k, v in segment["items"].items()}
        inflow = items.get("inflow_count")
        partition = self._watched[enterprise_id]
        offset = body["as_of"].get("routed_offset", -1)  # -1: served without progress
        highest = self._highest.get(partition, offset)
        then = self._inflow.get(enterprise_id, (offset, inflow))
        if offset < highest:
            self.backwards.append(
                Backwards(at, phase, enterprise_id, partition, highest, offset, then[1], inflow)
            )
        self._highest[partition] = max(highest, offset)
        if offset >= then[0]:
            self._inflow[enterprise_id] = (offset, inflow)

    def backwards_summary(self) -> list[str]:
        """Per phase and partition: how many pulls went backwards, and how far."""
        groups: dict[tuple[str, int], list[Backwards]] = {}
        for seen in self.backwards:
            groups.setdefault((seen.phase, seen.partition), []).append(seen)
        lines = []
        for (phase, partition), group in groups.items():
            lowest = min(group, key=lambda b: b.offset)
            fewer = [b for b in group if _lower(b.inflow_now, b.inflow_then)]
            lines.append(
                f"[{phase}] partition {partition}: {len(group)} pulls behind, offset "
                f"{lowest.highest} -> {lowest.offset} at worst; {len(fewer)} served a lower "
                f"inflow_count, e.g. {fewer[0] if fewer else '-'}"
            )
        return lines


def _lower(now: Any, then: Any) -> bool:
    return isinstance(now, int) and isinstance(then, int) and now < then


def _publishers(bootstrap: str) -> dict[str, BankPublisher]:
    return {bank: BankPublisher(bootstrap, bank, PARTITIONS, max_batch=100) for bank in BANKS}


def _publish(publishers: dict[str, BankPublisher], events: list[dict[str, Any]]) -> None:
    for bank, publisher in publishers.items():
        publisher.publish_batch(e for e in events if e["bank"] == bank)
    for publisher in publishers.values():
        publisher.flush()


class PacedPublisher(threading.Thread):
    """Publishes ``events`` in slices at a steady pace with the project's publisher. Before a
    gate's fraction of the events it waits for the gate, so that the stream is still running
    when the step the gate stands for comes."""

    def __init__(
        self, bootstrap: str, events: list[dict[str, Any]], gates: dict[float, threading.Event]
    ) -> None:
        super().__init__(name="paced-publisher", daemon=True)
        self._broker = bootstrap
        self._events = events
        self._gates = gates
        self.published = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            publishers = _publishers(self._broker)
            total = len(self._events)
            for start in range(0, total, SLICE_EVENTS):
                for fraction, gate in self._gates.items():
                    if start >= fraction * total and not gate.wait(180):
                        raise TimeoutError(f"gate at {fraction:.0%} of the stream never opened")
                piece = self._events[start : start + SLICE_EVENTS]
                _publish(publishers, piece)
                self.published = start + len(piece)
                time.sleep(PAUSE_SECONDS)
        except BaseException as exc:
            self.failure = exc

    def wait_for(self, fraction: float, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while self.published < fraction * len(self._events):
            if self.failure is not None:
                raise self.failure
            if not self.is_alive() or time.monotonic() > deadline:
                raise TimeoutError(f"{self.published} events published, not {fraction:.0%}")
            time.sleep(0.02)


@dataclass
class Outcome:
    log: list[dict[str, Any]]
    expected: dict[str, dict[str, dict[str, Any]]]
    served: dict[str, dict[str, dict[str, Any] | None]]
    watcher: PullWatcher
    timeline: Timeline
    survivor: tuple[Child, str]
    stalled: str | None  # what was seen when a partition stopped short of the routed end


def _log() -> list[dict[str, Any]]:
    return generated_log(51, ENTERPRISES, 2026 * 12 + 8, datetime(2026, 10, 1, tzinfo=UTC))


def _watched(log: list[dict[str, Any]]) -> dict[str, int]:
    """The first enterprises of the stream, WATCHED_PER_PARTITION of each partition."""
    watched: dict[str, int] = {}
    per_partition: Counter[int] = Counter()
    for event in log:
        enterprise_id = event["enterprise_id"]
        partition = partition_for(enterprise_id, PARTITIONS)
        if enterprise_id not in watched and per_partition[partition] < WATCHED_PER_PARTITION:
            watched[enterprise_id] = partition
            per_partition[partition] += 1
    assert len(watched) == PARTITIONS * WATCHED_PER_PARTITION
    return watched


def _in_background(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def _owned(worker_url: str) -> list[int]:
    """The routed partitions a worker holds (its /readyz says)."""
    _, body = get(f"{worker_url}/readyz")
    return list(body["partitions"])


def _wait_owning(worker_url: str, partitions: list[int], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(f"{worker_url}/readyz")
        if status == 200 and body["partitions"] == partitions:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{worker_url} did not own {partitions}: {body}")
        time.sleep(0.2)


def _published(stack: EmbeddedStack) -> list[int | None]:
    """The routed offset each partition's views in Redis have reached (what pulls are told)."""

    async def read() -> list[dict[str, Any] | None]:
        client = Redis.from_url(stack.settings.redis_url.get_secret_value())
        try:
            views = ViewStore(client, stack.settings.redis_prefix)
            return [await views.progress(p) for p in ALL_PARTITIONS]
        finally:
            await client.aclose()

    return [None if p is None else int(p["routed_offset"]) for p in asyncio.run(read())]


def _wait_applied(stack: EmbeddedStack, quiet: float = 25.0, timeout: float = 120.0) -> str | None:
    """Until the views of every partition reach the end of the routed topic: None then. If
    neither moves for ``quiet`` seconds before, a line per partition: routed end, views."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    deadline = time.monotonic() + timeout
    last: tuple[list[int], list[int | None]] | None = None
    moved = time.monotonic()
    while True:
        ends = kafka_admin.high_watermarks(bootstrap, ROUTED_TOPIC, PARTITIONS)
        published = _published(stack)
        if all(done is not None and done >= end for done, end in zip(published, ends, strict=True)):
            return None
        if (ends, published) != last:
            last, moved = (ends, published), time.monotonic()
        elif time.monotonic() - moved > quiet:
            return "; ".join(
                f"partition {p}: routed end {ends[p]}, views at {published[p]}"
                for p in ALL_PARTITIONS
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"views still behind the routed topic: {ends} > {published}")
        time.sleep(0.5)


def _log_tails(stack: EmbeddedStack, lines: int = 25) -> str:
    tails = []
    for path in sorted((stack.stack.run_dir / "logs").glob("worker*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(tails)


@pytest.fixture(scope="module")
def scaleout(stack: EmbeddedStack) -> Outcome:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    log = _log()
    reference_thread, reference_result = _in_background(lambda: reference.products(log))
    timeline = Timeline()
    watched = _watched(log)
    watcher = PullWatcher(stack.api_url, reader(stack, watched), watched, timeline)
    b_ready, c_ready = threading.Event(), threading.Event()
    publisher = PacedPublisher(bootstrap, log, {0.45: b_ready, 0.75: c_ready})
    try:
        watcher.start()
        publisher.start()
        publisher.wait_for(0.25)
        timeline.mark("B joining")
        b, b_url = stack.add_worker("worker-b", data_dir=stack.stack.run_dir / "state-b")
        stack.wait_ready(b, b_url)
        timeline.mark(f"B ready: A owns {_owned(stack.worker_url)}, B {_owned(b_url)}")
        b_ready.set()
        publisher.wait_for(0.55)
        timeline.mark("A leaving (SIGTERM)")
        a_stopping, _ = _in_background(stack.worker.stop)
        publisher.wait_for(0.65)
        a_stopping.join(30)
        assert stack.worker.process.poll() is not None, "worker A did not stop"
        _wait_owning(b_url, ALL_PARTITIONS)
        timeline.mark("A gone, B owns every partition")
        # C takes over A's state directory, behind the log by now for every partition.
        c, c_url = stack.add_worker("worker-c", data_dir=stack.settings.data_dir)
        stack.wait_ready(c, c_url)
        timeline.mark(f"C ready: B owns {_owned(b_url)}, C {_owned(c_url)}")
        c_ready.set()
        publisher.wait_for(0.85)
        b.kill()
        timeline.mark("B killed (SIGKILL)")
        publisher.join(120)
        if publisher.failure is not None:
            raise publisher.failure
        timeline.mark("everything published")
        _wait_owning(c_url, ALL_PARTITIONS)
        timeline.mark("C owns every partition")
        reference_thread.join(120)
        expected = reference_result[0]
        stalled = _wait_applied(stack)
        if stalled is not None:
            timeline.mark("views stalled")
            # A stalled partition moves on at its next message (see the test on stalls): send
            # the last events again. Duplicates change no product.
            _publish(_publishers(bootstrap), log[-SLICE_EVENTS:])
            still = _wait_applied(stack)
            assert still is None, f"views stalled: {stalled}; after duplicates still: {still}"
            timeline.mark("caught up after duplicates")
        # C judges what it rebuilt once it has caught up, and may keep other episodes than
        # B did: the signal items are expected from C's, once settled, before the pulls
        wait_signals_judged(stack, timeout=90, worker_url=c_url)
        served = wait_for_products(stack, expected, timeout=60)
        expected = with_signal_days(stack, expected)  # the episodes the workers kept
        timeline.mark("products served")
    finally:
        b_ready.set()
        c_ready.set()
        watcher.stop()
        print(f"timeline: {timeline}")
        print(f"pulls: {dict(watcher.statuses)}; {len(watcher.backwards)} went backwards")
        for line in watcher.backwards_summary():
            print(f"  {line}")
    return Outcome(log, expected, served, watcher, timeline, (c, c_url), stalled)


def test_products_equal_the_reference_after_a_join_and_two_leaves(
    stack: EmbeddedStack, scaleout: Outcome
) -> None:
    """Every item of every product of every enterprise: nothing lost, nothing doubled."""
    assert sum(len(periods) for periods in scaleout.expected.values()) > 500
    problems = differences(scaleout.expected, scaleout.served)
    assert not problems, (
        f"{len(problems)} values differ, e.g.\n"
        + "\n".join(problems[:10])
        + f"\ntimeline: {scaleout.timeline}\n{_log_tails(stack)}"
    )


def test_product_pulls_keep_working_during_the_rebalances(scaleout: Outcome) -> None:
    """Every pull answered 200, or 404 before the enterprise's first event, and never 404 again
    once it had been served."""
    watcher = scaleout.watcher
    assert not watcher.errors, (
        f"{len(watcher.errors)} failed pulls ({dict(watcher.statuses)}), e.g.\n"
        + "\n".join(watcher.errors[:10])
        + f"\ntimeline: {scaleout.timeline}"
    )
    assert watcher.statuses["200"] > 100 and watcher.seen == set(_watched(scaleout.log))


def test_no_partition_stalls_after_the_last_takeover(scaleout: Outcome) -> None:
    """Once C owns every partition, each one's views reach the end of the routed topic
    without any further event.

    A partition whose state is behind seeks back (LedgerStage._rewind via faust_compat.seek),
    and that seek can come to nothing when it lands while Faust still delivers an older
    fetch; LedgerStage.unstall seeks again. Without it, about one takeover in five or six
    stalled here until a new message reached the partition.
    """
    assert scaleout.stalled is None, f"a partition stalled after the takeover: {scaleout.stalled}"


def test_pulled_products_never_go_backwards(scaleout: Outcome) -> None:
    """A partition's views, once served up to a routed offset, are never served older."""
    watcher = scaleout.watcher
    assert not watcher.backwards, (
        f"{len(watcher.backwards)} pulls went backwards:\n"
        + "\n".join(watcher.backwards_summary())
        + f"\ntimeline: {scaleout.timeline}"
    )


def test_a_second_worker_on_the_same_data_dir_joins(
    stack: EmbeddedStack, scaleout: Outcome
) -> None:
    """Two workers of one machine sharing CREDITFLOW_DATA_DIR (as `docker compose --scale`
    does with its one state volume), the second started while the first holds partitions."""
    survivor, _ = scaleout.survivor
    assert survivor.process.poll() is None
    d, d_url = stack.add_worker("worker-d", data_dir=stack.settings.data_dir)
    try:
        stack.wait_ready(d, d_url, timeout=60)
        served = wait_for_products(stack, scaleout.expected, timeout=90)
        problems = differences(with_signal_days(stack, scaleout.expected), served)
        assert not problems, f"{len(problems)} values differ, e.g.\n" + "\n".join(problems[:10])
    finally:
        d.stop()
