"""The alerting rules of deploy/prometheus: valid, unit-tested, documented, and about metrics
that exist.

promtool comes from Debian's prometheus package; `make test` puts it in .venv/bin
(`make promtool`) unless one is on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promql import (
    PROMETHEUS_SERIES,
    TARGET_LABELS,
    declared_metrics,
    matchers,
    unknown_names,
)

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS / "rules.yml"
RULE_TESTS_FILE = PROMETHEUS / "tests" / "rules_test.yml"
RULES: list[dict[str, Any]] = [
    rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]
]
ALERTS = {rule["alert"]: rule for rule in RULES if "alert" in rule}
RECORDED = {rule["record"] for rule in RULES if "record" in rule}
RULE_TESTS: list[dict[str, Any]] = yaml.safe_load(RULE_TESTS_FILE.read_text())["tests"]
SEVERITIES = {"critical", "warning"}


def _promtool() -> str:
    beside_python = Path(sys.executable).parent / "promtool"  # .venv/bin, where make puts it
    found = str(beside_python) if beside_python.exists() else shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `make promtool` (or `make test`)")
    return found


def _promtool_ok(*args: str) -> None:
    done = subprocess.run(
        [_promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_and_the_configuration_that_loads_them_are_valid() -> None:
    _promtool_ok("check", "rules", RULES_FILE.name)
    _promtool_ok("check", "config", "prometheus.yml")  # also checks the rule files it names
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == [RULES_FILE.name]


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_expect() -> None:
    _promtool_ok("test", "rules", str(RULE_TESTS_FILE.relative_to(PROMETHEUS)))


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in RULE_TESTS:
        for check in case.get("alert_rule_test", []):
            # promtool passes an empty expectation for an alert name no rule has
            assert check["alertname"] in ALERTS, check["alertname"]
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert ALERTS, "no alert found: the checks below would pass vacuously"
    assert set(ALERTS) - fires == set(), "alerts never seen firing"
    assert set(ALERTS) - quiet == set(), "alerts never seen staying quiet"


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    anchors = set()
    for line in markdown.splitlines():
        heading = re.match(r"#+\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_alert_has_a_severity_a_summary_and_a_runbook_paragraph() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    alerts_section = operations[operations.index("\n## Alerts\n") :]
    for name, rule in ALERTS.items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"], name
        runbook = rule["annotations"]["runbook_url"]
        assert runbook == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in _anchors(alerts_section), f"no '### {name}' under '## Alerts'"


def test_the_rules_read_only_metrics_and_labels_that_exist() -> None:
    assert "creditflow_partition_lag_messages" in declared_metrics()  # the parse found the gauges
    for rule in RULES:
        assert unknown_names(rule["expr"], RECORDED) == [], rule["expr"]
    jobs = {
        job["job_name"]
        for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    named_jobs = set(re.findall(r'job="([^"]+)"', RULES_FILE.read_text()))
    assert named_jobs and named_jobs <= jobs


def test_the_unit_tests_feed_series_the_engine_exports() -> None:
    """A series the engine does not export, or with a label it does not have, would test a
    rule against data that never comes."""
    declared = {**declared_metrics(), **PROMETHEUS_SERIES}
    for case in RULE_TESTS:
        for item in case["input_series"]:
            [(name, labels)] = matchers(item["series"])
            assert name in declared, name
            assert labels <= declared[name] | TARGET_LABELS, item["series"]
            assert labels >= TARGET_LABELS, item["series"]  # as Prometheus stores them
