"""The README is what a user reads first: keep it true."""

from __future__ import annotations

from pathlib import Path

from engine.events.contract import RejectReason
from engine.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# The README links the full tables of settings and metrics, which live here.
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def test_the_two_commands_are_there() -> None:
    assert "make demo" in README and "make test" in README


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`{ENV_PREFIX}{name.upper()}`" in OPERATIONS, name


def test_every_reject_reason_is_documented() -> None:
    for reason in RejectReason:
        assert f"`{reason.value}`" in README, reason


def test_every_metric_is_documented() -> None:
    """Every metric the worker and the API export is named in docs/operations.md."""
    from prometheus_client import CollectorRegistry

    from engine.metrics import ApiMetrics, WorkerMetrics, observe_gc_pauses

    registry = CollectorRegistry()
    WorkerMetrics(registry)
    ApiMetrics(registry)
    observe_gc_pauses(registry)
    names = {metric.name for metric in registry.collect()}
    assert names, "no metric collected: the check would pass vacuously"
    for name in names:
        # prometheus_client drops the _total suffix of counters in the family name
        assert f"`{name}" in OPERATIONS, name
