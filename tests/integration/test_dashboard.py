"""Every query of the Grafana dashboard has data, on a real Prometheus scraping the stack.

Prometheus comes from Debian's prometheus package (`make prometheus`, which `make test` runs),
with the recording rules of deploy/prometheus/rules.yml and the job names of its
prometheus.yml. It scrapes the stack's three worker stages and the API (the API's /metrics
with an operator's bearer token) every second, while generated bank events, a rejected event,
an overdrawn account that raises a signal for a monitoring lender, product pulls and a refused
request go through. Each query of deploy/grafana/dashboards/creditflow.json must then answer
at least one number through Prometheus's HTTP API, as Grafana would ask it.
"""

from __future__ import annotations

import math
import shutil
import sys
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.access.model import Purpose
from engine.periods import CST, current_month
from engine.runtime.embedded import free_port, spawn, wait_http
from engine.runtime.provision import authorize, provision_lender
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests import reference
from tests.factories import enterprise_ids
from tests.integration.conftest import (
    BANKS,
    generated_log,
    get,
    module_settings,
    operator,
    publish_by_bank,
    pull,
    wait_until,
)
from tests.promql import RULES_FILE, dashboard_queries

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# Grafana replaces $__rate_interval by at least four scrape intervals of the datasource (5 s
# in docker-compose). Here a window longer than the test holds every sample since Prometheus
# started: a query that has data at some moment of the test keeps it until the end.
GRAFANA_VARIABLES = {"$__rate_interval": "5m"}
SCRAPE_INTERVAL = "1s"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    # The stages apart, as docker-compose runs them: one Prometheus job each.
    with embedded_stack(module_settings("dashboard"), banks=BANKS, split_stages=True) as running:
        yield running


def _prometheus_binary() -> str:
    beside_python = Path(sys.executable).parent / "prometheus"  # .venv/bin, where make puts it
    found = str(beside_python) if beside_python.exists() else shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: run `make prometheus` (or `make test`)")
    return found


def _host_port(url: str) -> str:
    return url.removeprefix("http://")


def _configuration(stack: EmbeddedStack, token_file: Path, rules_file: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml's jobs, aimed at the embedded stack's processes."""
    assert stack.intake_url is not None and stack.access_url is not None
    targets = {
        "creditflow-worker": stack.worker_url,
        "creditflow-intake": stack.intake_url,
        "creditflow-access": stack.access_url,
        "creditflow-api": stack.api_url,
    }
    jobs: list[dict[str, Any]] = [
        {"job_name": job, "static_configs": [{"targets": [_host_port(url)]}]}
        for job, url in targets.items()
    ]
    # The API port's /metrics wants an operator (compose scrapes its internal metrics port).
    jobs[-1]["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules_file)],
        "scrape_configs": jobs,
    }


@pytest.fixture(scope="module")
def prometheus(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus scraping ``stack`` every second; yields its URL."""
    workdir = tmp_path_factory.mktemp("prometheus")
    token_file = workdir / "operator-token"
    token_file.write_text(operator(stack)["Authorization"].removeprefix("Bearer "))
    # The rules as they are, evaluated every second instead of every 15 s.
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        group["interval"] = SCRAPE_INTERVAL
    rules_file = workdir / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(_configuration(stack, token_file, rules_file)))
    url = f"http://127.0.0.1:{free_port()}"
    argv = [
        _prometheus_binary(),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={_host_port(url)}",
    ]
    child = spawn("prometheus", argv, {}, workdir / "prometheus.log")
    try:
        wait_http(f"{url}/-/ready", 30, child.process)
        yield url
    finally:
        child.stop()


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    status, body = get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert status == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _has_data(expr: str, result: list[dict[str, Any]]) -> bool:
    """At least one series, and a number in one of them. A quantile of a histogram that saw
    nothing in the window is NaN: the series are there, and Grafana draws a gap (in a test
    this short no garbage collection may run at all, with the workers' tuned thresholds)."""
    if expr.startswith("histogram_quantile(") and result:
        return True
    return any(math.isfinite(float(series["value"][1])) for series in result)


def _overdrawn_account(enterprise: str, today: date) -> list[dict[str, Any]]:
    """Ten daily receipts, then a payment four days ago that leaves the account overdrawn:
    three days overdrawn raise account_overdrawn (specs/signals.toml)."""

    def booking(n: int, day: date, direction: str, amount: int, balance: int) -> dict[str, Any]:
        return {
            "schema": 1,
            "txn_id": f"D{enterprise[-8:]}{n:03d}",
            "bank": BANKS[0],
            "enterprise_id": enterprise,
            "account": "6222000011118888",
            "booked_at": datetime(day.year, day.month, day.day, 10, tzinfo=CST).isoformat(),
            "direction": direction,
            "amount_fen": amount,
            "currency": "CNY",
            "balance_after_fen": balance,
            "channel": "transfer",
            "counterparty": {"id": "91110000600037341L", "bank": None},
        }

    events = [
        booking(k, today - timedelta(days=14 - k), "in", 100_000, 100_000 * (k + 1))
        for k in range(10)
    ]
    return [*events, booking(10, today - timedelta(days=4), "out", 1_025_000, -25_000)]


def test_every_dashboard_query_has_data(stack: EmbeddedStack, prometheus: str) -> None:
    queries = dashboard_queries()
    now = datetime.now(UTC)
    log = generated_log(17, 20, current_month(), now)
    overdrawn = enterprise_ids(1, seed=1717)[0]
    monitor = provision_lender(stack.settings, "DASHMON1")
    authorize(stack.settings, monitor, [overdrawn], Purpose.POST_LOAN_MONITORING)
    rejected = {**log[0], "txn_id": "DASH-ZERO", "amount_fen": 0}  # bad_amount
    # Two rounds, as a stream goes on: a counter with labels appears at its first event, so
    # a rate needs a second round of events after Prometheus has seen the first.
    half = len(log) // 2
    publish_by_bank(stack, log[:half])
    first_round = ("creditflow_intake_events_total", "creditflow_ledger_events_total")
    wait_until(
        lambda: all(_query(prometheus, series) for series in first_round),
        what="Prometheus to see the first round read and applied",
    )
    today = now.astimezone(CST).date()
    publish_by_bank(stack, [*log[half:], rejected, *_overdrawn_account(overdrawn, today)])

    # Pulls: each product twice (a render, then the render cache), and one without a token.
    expected = reference.products(log, pinned_only=True)
    pulled = [(enterprise, label) for enterprise in expected for label in expected[enterprise]]
    pulled = pulled[:: max(1, len(pulled) // 10)]
    for enterprise, label in pulled:
        served = lambda e=enterprise, p=label: pull(stack, e, p)[0] == 200  # noqa: E731
        wait_until(served, what=f"{label} of {enterprise}")
        assert served()  # again: from the render cache
    assert get(f"{stack.api_url}/v1/signals")[0] == 401

    missing: list[str] = []

    def every_query_has_data() -> bool:
        missing[:] = []
        for title, expr in queries:
            result = _query(prometheus, expr)
            if not _has_data(expr, result):
                missing.append(f"{title}: {expr} -> {result}")
        return not missing

    try:
        wait_until(every_query_has_data, timeout=60, what="data for every dashboard query")
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(missing))
    # Every process was scraped, the API with the operator's token.
    up = _query(prometheus, 'up{job=~"creditflow-.*"}')
    assert {s["metric"]["job"]: s["value"][1] for s in up} == {
        job: "1"
        for job in ("creditflow-worker", "creditflow-intake", "creditflow-access", "creditflow-api")
    }
