"""The broker stops answering for 30 s in the middle of ingest (SIGSTOP), then comes back
(SIGCONT): no worker crashes or needs a restart, the API keeps answering at once, and the
products end exactly as the reference computes them from the whole log (issue 17, fault 1)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.events.publisher import BankPublisher
from engine.runtime.embedded import Child, free_port, wait_http
from engine.runtime.observe import total
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests import reference
from tests.faults.conftest import FAULT_MARKS
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    assert_products,
    generated_log,
    get,
    module_settings,
    publish_by_bank,
    reader,
    wait_until,
)

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(240)]

PAUSE_SECONDS = 30.0
# A request the API cannot answer from Redis in this time counts as a hang.
_ANSWER_WITHIN_SECONDS = 3.0


@pytest.fixture(scope="module")
def stack(own_redis: tuple[str, Child, Path]) -> Iterator[EmbeddedStack]:
    """The stages apart, as in production, with a Redis of this module's own."""
    settings = module_settings(
        "pause", redis_url=own_redis[0], batch_max_messages=20, api_metrics_port=free_port()
    )
    with embedded_stack(settings, banks=BANKS, split_stages=True) as running:
        yield running


def _log() -> list[dict[str, Any]]:
    return generated_log(41, 60, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))


def _broker(stack: EmbeddedStack) -> Child:
    return next(child for child in stack.stack.children if child.name == "broker")


def _workers(stack: EmbeddedStack) -> dict[str, Child]:
    found = {"ledger": stack.worker, "intake": stack.intake, "access": stack.access}
    return {name: child for name, child in found.items() if child is not None}


def _exited(name: str, child: Child) -> str:
    text = child.log_path.read_text() if child.log_path else ""
    crash = text.find("[ERROR]")
    shown = text[max(0, crash - 1000) : crash + 4000] if crash >= 0 else text[-4000:]
    return f"the {name} worker exited; its log around the first error:\n{shown}"


def _applied(stack: EmbeddedStack) -> float:
    return total(stack.worker_url, "creditflow_ledger_events_total")


@dataclass
class _Seen:
    """What the API and the workers answered while the broker was stopped."""

    pulls: list[tuple[int, str]] = field(default_factory=list)  # (status, error code or "")
    api_ready: set[int] = field(default_factory=set)
    worker_ready: set[int] = field(default_factory=set)
    slowest: float = 0.0

    def timed(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        started = time.monotonic()
        answer = get(url, headers)
        self.slowest = max(self.slowest, time.monotonic() - started)
        return answer


def _publish_in_background(stack: EmbeddedStack, events: list[dict[str, Any]]) -> threading.Thread:
    """A bank that keeps publishing while the broker is stopped: its client holds the
    messages and delivers them once the broker answers again."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    failures: list[BaseException] = []

    def run() -> None:
        try:
            for bank in BANKS:
                publisher = BankPublisher(bootstrap, bank, PARTITIONS, max_batch=100)
                publisher.publish_batch(e for e in events if e["bank"] == bank)
                publisher.flush(timeout=PAUSE_SECONDS + 90)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=run, name="bank-during-pause", daemon=True)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_a_broker_paused_for_30_s_during_ingest_loses_nothing(stack: EmbeddedStack) -> None:
    log = _log()
    before, during = log[: len(log) * 2 // 3], log[len(log) * 2 // 3 :]
    expected = reference.products(log)
    lender = reader(stack, expected)  # authorized while the broker answers
    workers = _workers(stack)
    pids = {name: child.process.pid for name, child in workers.items()}
    watched = sorted(expected)[0]
    label = max(period for period in expected[watched] if "Q" not in period)
    pull_url = stack.api_url + lender.path(watched, "monthly", label)

    publish_by_bank(stack, before, max_batch=100)
    # The watched product is in Redis before the broker stops.
    wait_until(lambda: get(pull_url, lender.headers)[0] == 200, 60, "a first product")
    broker = _broker(stack)
    seen = _Seen()
    os.kill(broker.process.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        applied_at_stop = _applied(stack)
        bank = _publish_in_background(stack, during)
        while time.monotonic() - stopped_at < PAUSE_SECONDS:  # the scenario, not a sleep
            status, body = seen.timed(pull_url, lender.headers)
            seen.pulls.append((status, "" if status == 200 else body["error"]["code"]))
            seen.api_ready.add(seen.timed(f"{stack.api_url}/readyz")[0])
            seen.worker_ready.add(seen.timed(f"{stack.worker_url}/readyz")[0])
            for name, child in workers.items():
                assert child.process.poll() is None, _exited(name, child)
            time.sleep(0.5)  # the pace of the probes
        applied_by_resume = _applied(stack)
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)

    bank.join(PAUSE_SECONDS + 120)
    assert not bank.is_alive() and not bank.failures, bank.failures  # type: ignore[attr-defined]
    assert_products(stack, expected, timeout=120)

    # No worker crashed, none was restarted: the same processes carried on.
    for name, child in workers.items():
        assert child.process.poll() is None, _exited(name, child)
        assert child.process.pid == pids[name], f"the {name} worker was restarted"
    # Meanwhile the API answered at once from Redis: a product for the first seconds, then
    # (its query records waiting for the broker longer than api_record_timeout_seconds) a
    # JSON 503 saying so, never a hang or a 500. Readiness reads Redis only and held.
    assert seen.slowest < _ANSWER_WITHIN_SECONDS, seen.slowest
    assert {status for status, _ in seen.pulls} <= {200, 503}, seen.pulls
    assert {code for status, code in seen.pulls if status == 503} <= {"query_record_unavailable"}
    assert seen.pulls[0][0] == 200 and seen.pulls[-1][0] == 503, seen.pulls
    assert seen.api_ready == {200} and seen.worker_ready == {200}, seen
    # The pause landed during ingest, and the broker was really stopped: nothing the bank
    # published meanwhile got through before it resumed.
    assert applied_at_stop < len(log) and applied_by_resume <= len(before), applied_by_resume
    # Once the broker is back, pulls are served again and every stage is ready.
    urls = {"ledger": stack.worker_url, "intake": stack.intake_url, "access": stack.access_url}
    for name, child in workers.items():
        wait_http(f"{urls[name]}/readyz", 30, child.process)
    wait_until(lambda: get(pull_url, lender.headers)[0] == 200, 30, "pulls served again")
