"""SIGTERM to the ledger worker during ingest: it finishes its step, commits what it applied
and exits within 10 s; the worker started after it reprocesses nothing it committed, and the
products end exactly as the reference computes them from the whole log (issue 17, fault 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from engine import codec
from engine.events.topics import ROUTED_TOPIC
from engine.runtime.embedded import Child, free_port
from engine.runtime.observe import total, wait_applied
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.runtime.worker import state_dir
from state.ledger_types import META_KEY, Progress
from state.rocksdb import read_key
from tests import reference
from tests.faults.conftest import FAULT_MARKS, read_until_quiet
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    assert_products,
    generated_log,
    module_settings,
    publish_by_bank,
    wait_until,
)

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(240)]

EXIT_WITHIN_SECONDS = 10.0


@pytest.fixture(scope="module")
def stack(own_redis: tuple[str, Child, Path]) -> Iterator[EmbeddedStack]:
    """The stages apart (the ledger worker alone gets the signal), with a commit interval
    long enough that a worker always holds applied events it has not committed yet."""
    settings = module_settings(
        "term",
        redis_url=own_redis[0],
        batch_max_messages=20,
        commit_interval_seconds=2.0,
        api_metrics_port=free_port(),
    )
    with embedded_stack(settings, banks=BANKS, split_stages=True) as running:
        yield running


def _log() -> list[dict[str, Any]]:
    return generated_log(51, 60, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))


def _applied(stack: EmbeddedStack) -> float:
    return total(stack.worker_url, "creditflow_ledger_events_total")


def _committed_offsets(stack: EmbeddedStack) -> list[int]:
    """The routed offset each partition's state resumes from, as written on disk."""
    return [
        Progress.decode(read_key(state_dir(stack.settings, p), META_KEY)).next_offset
        for p in range(PARTITIONS)
    ]


def _routed_events(stack: EmbeddedStack) -> list[dict[int, int]]:
    """Per routed partition, offset -> events in that message (a JSON array of rows), read
    until nothing new comes for a second (Tansu's high watermarks can be too low)."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    found: list[dict[int, int]] = [{} for _ in range(PARTITIONS)]
    partitions = [TopicPartition(ROUTED_TOPIC, p, 0) for p in range(PARTITIONS)]
    for message in read_until_quiet(bootstrap, "faults-routed-reader", partitions):
        partition, offset, value = message.partition(), message.offset(), message.value()
        assert partition is not None and offset is not None and value is not None
        found[partition][offset] = len(codec.loads(value))
    return found


def test_sigterm_commits_what_the_worker_applied_and_a_restart_redoes_none_of_it(
    stack: EmbeddedStack,
) -> None:
    log = _log()
    expected = reference.products(log)
    publish_by_bank(stack, log, max_batch=100)
    wait_until(lambda: _applied(stack) >= len(log) * 0.25, 60, "the ledger to be mid-stream")

    worker = stack.worker.process
    applied_when_told = _applied(stack)
    told_at = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)  # the worker alone, as an orchestrator stops it
    try:
        code = worker.wait(EXIT_WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the ledger worker did not exit within {EXIT_WITHIN_SECONDS} s of SIGTERM")
    exit_seconds = time.monotonic() - told_at
    assert applied_when_told < len(log), "SIGTERM must land mid-stream"
    log_text = stack.worker.log_path.read_text() if stack.worker.log_path else ""
    assert code == 0, f"exit code {code}; the log ends:\n{log_text[-3000:]}"
    committed = _committed_offsets(stack)

    stack.restart_worker()  # the same settings and state directory
    assert_products(stack, expected, timeout=120)

    # What the stopped worker committed holds at least every event it had applied when it
    # was told to stop: it finished its step and committed, rather than dropping it.
    routed = _routed_events(stack)
    committed_events = sum(
        count
        for partition, messages in enumerate(routed)
        for offset, count in messages.items()
        if offset < committed[partition]
    )
    routed_events = sum(sum(messages.values()) for messages in routed)
    assert committed_events >= applied_when_told, (committed_events, applied_when_told, committed)
    # The new worker applied exactly what lies past the committed offsets: not one event it
    # had committed came again, and none was skipped.
    wait_applied(stack.worker_url, routed_events - committed_events, timeout=60)
    assert _applied(stack) == routed_events - committed_events, (committed, exit_seconds)
    print(f"exit {exit_seconds:.2f} s after SIGTERM; committed offsets {committed}")
