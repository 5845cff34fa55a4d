"""Hundreds of enterprises of realistic generated flows through the real pipeline: every item
of every period of the data equals the SQL reference (tests/reference_sql/), pulled now; the
signal items from the episodes the worker kept."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from engine.periods import format_month
from engine.runtime.observe import wait_applied, wait_views_published
from engine.runtime.runner import EmbeddedStack
from loadtest.generator import GeneratorConfig, generate
from tests import reference_sql
from tests.compare import differences
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    engine_products,
    kept_episodes,
    publish_by_bank,
    wait_signals_judged,
)

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
    # the signal items count the episodes the worker kept (with_signal_days says why)
    wait_signals_judged(stack)
    episodes = kept_episodes(stack, {e["enterprise_id"] for e in log})
    assert episodes  # the data end in August: firms stopped paid since, their streams lapsed
    pulled_at = datetime.now(UTC)
    last = format_month(config.end_month)
    expected = {  # the periods of the data: its months and quarters, to its last month
        enterprise_id: {
            label: items
            for label, items in periods.items()
            if (_quarter_end(label) if "Q" in label else label) <= last
        }
        for enterprise_id, periods in reference_sql.products(
            log, pulled_at, episodes=episodes
        ).items()
    }
    assert len(expected) == 200 and sum(len(p) for p in expected.values()) > 1000
    assert any("Q" in label for periods in expected.values() for label in periods)
    problems = differences(expected, engine_products(stack, expected))
    assert not problems, f"{len(problems)} values differ, e.g.\n" + "\n".join(problems[:10])
    print(f"{len(log)} events applied in {applied_in:.1f} s")


def _quarter_end(label: str) -> str:
    """'2026Q3' -> '2026-09', the quarter's last month."""
    year, quarter = label.split("Q")
    return f"{year}-{int(quarter) * 3:02d}"
