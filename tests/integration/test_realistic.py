"""Hundreds of enterprises of realistic generated flows through the real pipeline: every item
of every period equals the reference."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from engine.runtime.observe import wait_applied, wait_views_published
from engine.runtime.runner import EmbeddedStack
from loadtest.generator import GeneratorConfig, generate
from tests import reference
from tests.compare import differences
from tests.integration.conftest import BANKS, PARTITIONS, engine_products, publish_by_bank

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_two_hundred_enterprises_match_the_reference(stack: EmbeddedStack) -> None:
    config = GeneratorConfig(
        seed=31,
        enterprises=200,
        months=6,
        end_month=2026 * 12 + 8,
        banks=BANKS,
        now=datetime(2026, 10, 1, tzinfo=UTC),
    )
    log = list(generate(config))
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    started = time.monotonic()
    publish_by_bank(stack, log)
    wait_applied(stack.worker_url, len(log), timeout=300)
    wait_views_published(stack.worker_url, bootstrap, PARTITIONS)
    applied_in = time.monotonic() - started
    expected = reference.products(log)
    assert len(expected) == 200 and sum(len(p) for p in expected.values()) > 1000
    problems = differences(expected, engine_products(stack, expected))
    assert not problems, f"{len(problems)} values differ, e.g.\n" + "\n".join(problems[:10])
    print(f"{len(log)} events applied in {applied_in:.1f} s")
