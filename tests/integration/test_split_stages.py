"""Intake and ledger as two worker processes (CREDITFLOW_WORKER_STAGES): the same products.

Each stage has its own consumer group; events still cross the routed topic, so this is the
same pipeline with the stages on separate cores. Batch and single-event messages, a
reversal and a duplicate among them, against the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from engine.events.publisher import BankPublisher
from engine.runtime.observe import wait_applied, wait_views_published, worker_samples
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests import reference
from tests.compare import differences
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    engine_products,
    generated_log,
    get,
    module_settings,
    wait_signals_judged,
    with_signal_days,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    # A commit after every step (CREDITFLOW_COMMIT_INTERVAL_SECONDS=0): the other modules run
    # the default 0.25 s, so both ends of the setting are held to the reference.
    settings = module_settings("split", commit_interval_seconds=0.0)
    with embedded_stack(settings, banks=BANKS, split_stages=True) as running:
        yield running


def test_two_stage_processes_give_the_reference_products(stack: EmbeddedStack) -> None:
    assert stack.intake is not None and stack.intake.process.poll() is None
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    log = generated_log(61, 40, 2026 * 12 + 8, datetime(2026, 10, 1, tzinfo=UTC))
    half = len(log) // 2
    for bank in BANKS:
        publisher = BankPublisher(bootstrap, bank, PARTITIONS)
        publisher.publish_batch(e for e in log[:half] if e["bank"] == bank)
        for event in log[half:]:
            if event["bank"] == bank:
                publisher.publish(event)
        publisher.flush()
    wait_applied(stack.worker_url, len(log), timeout=240)
    wait_views_published(stack.worker_url, bootstrap, PARTITIONS)
    wait_signals_judged(stack)  # the signal items count the episodes it kept
    expected = with_signal_days(stack, reference.products(log))
    problems = differences(expected, engine_products(stack, expected))
    assert not problems, f"{len(problems)} values differ, e.g.\n" + "\n".join(problems[:10])
    # Interval 0: every ledger step committed what it applied (a step may touch several
    # partitions, each committed on its own).
    samples = worker_samples(stack.worker_url)
    steps = samples["creditflow_step_seconds_count"][(("stage", "ledger"),)]
    commits = samples["creditflow_commit_seconds_count"][()]
    assert steps > 10 and commits >= steps, (steps, commits)
    # The ledger worker reports only its own stage; readiness holds for both.
    status, body = get(f"{stack.worker_url}/readyz")
    assert status == 200 and body["partitions"] == list(range(PARTITIONS))
