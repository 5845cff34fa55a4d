"""A real embedded stack per test module: Tansu broker, Redis, a worker and the API.

Each module gets its own broker (ephemeral port, in-memory), its own consumer group, state
directory and Redis key prefix, and removes what it created.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from engine import codec
from engine.access.model import Role
from engine.events.publisher import BankPublisher
from engine.periods import current_month
from engine.products.specs import SPECS_DIR
from engine.runtime.embedded import Child, start_redis
from engine.runtime.observe import total
from engine.runtime.provision import Lender, authorize, provision_lender
from engine.runtime.runner import EmbeddedStack, embedded_stack, redis_reachable
from engine.settings import Settings
from loadtest.generator import GeneratorConfig, generate
from tests import reference
from tests.compare import differences
from tests.redis_cluster import LocalCluster, start_cluster

BANKS = ("BANKA001", "BANKB002")
PARTITIONS = 4
# The integration data carry fixed dates from late 2025 on, and the kept history follows the
# clock: a history reaching back to January 2025 keeps them from turning `too_old` as the
# years pass (the default 36 months would from December 2028). The setting's maximum, 120
# months, holds until 2034; then the data must move.
_FIXED_DATES_FROM = 2025 * 12


def module_settings(name: str, **overrides: Any) -> Settings:
    """Settings of one test module's stack: its own consumer group and Redis key prefix."""
    token = secrets.token_hex(3)
    fields: dict[str, Any] = {
        "partitions": PARTITIONS,
        "group_id": f"cf-{name}-{token}",
        "redis_prefix": f"cf{name}-{token}",
        "batch_within_seconds": 0.02,
        "history_months": max(36, current_month() - _FIXED_DATES_FROM + 1),
        "bank_refresh_seconds": 1.0,
        # The tests' lender pulls hundreds of products a second; test_access checks the limit.
        "api_institution_rate_limit": "100000/second",
        **overrides,
    }
    return Settings(**fields)


def generated_log(
    seed: int, enterprises: int, end_month: int, now: datetime
) -> list[dict[str, Any]]:
    """Six months of generated flows with more reversals, late and duplicated events than the
    generator's defaults: the hard cases, often."""
    config = GeneratorConfig(
        seed=seed,
        enterprises=enterprises,
        months=6,
        banks=BANKS,
        end_month=end_month,
        reversal_rate=0.03,
        late_rate=0.03,
        duplicate_rate=0.02,
        now=now,
    )
    return list(generate(config))


def publish_by_bank(
    stack: EmbeddedStack, events: list[dict[str, Any]], max_batch: int = 500
) -> None:
    """Every event as partition-aligned batch messages of its bank, delivered."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    for bank in BANKS:
        publisher = BankPublisher(bootstrap, bank, PARTITIONS, max_batch=max_batch)
        publisher.publish_batch(e for e in events if e["bank"] == bank)
        publisher.flush()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the settings name (CREDITFLOW_REDIS_URL, by default 127.0.0.1:6379) when it
    answers, else one started for the session: as `make test` promises, no Redis needed."""
    url = Settings().redis_url.get_secret_value()
    if redis_reachable(url):
        yield url
        return
    url, child = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        child.stop()


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of specs/registries.toml the module's stack reads and its tests may change."""
    path = tmp_path_factory.mktemp("registry") / "registries.toml"
    shutil.copy(SPECS_DIR / "registries.toml", path)
    return path


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Child, Path]]:
    """A Redis of the module's own, which it may kill and start again on the same port:
    (URL, process, working directory)."""
    workdir = tmp_path_factory.mktemp("redis")
    url, child = start_redis(workdir)
    yield url, child, workdir
    child.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Redis Cluster of the module's own: three primaries and a replica each, which the
    module may fail over or kill (tests/redis_cluster.py)."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with embedded_stack(module_settings("test", log_level="info"), banks=BANKS) as running:
        yield running


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "it") -> None:
    """Poll ``check`` until it holds; fail the test, saying ``what``, when it has not in time."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, codec.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, codec.loads(exc.read())


_READERS: dict[int, Lender] = {}
_OPERATORS: dict[int, Lender] = {}


def reader(stack: EmbeddedStack, enterprise_ids: Iterable[str] = ()) -> Lender:
    """The stack's test lender, authorized (both products) for ``enterprise_ids``: every
    pull is authorized and recorded, in the tests as anywhere."""
    lender = _READERS.get(id(stack))
    if lender is None:
        lender = _READERS[id(stack)] = provision_lender(stack.settings, "TESTREAD")
    authorize(stack.settings, lender, enterprise_ids)
    return lender


def operator(stack: EmbeddedStack) -> dict[str, str]:
    """The headers of the stack's test operator (reads the API's metrics and rejects)."""
    found = _OPERATORS.get(id(stack))
    if found is None:
        found = _OPERATORS[id(stack)] = provision_lender(
            stack.settings, "TESTOPS", roles=(Role.OPERATOR,)
        )
    return found.headers


def pull(stack: EmbeddedStack, enterprise_id: str, label: str) -> tuple[int, Any]:
    """A product as the test lender pulls it, under its authorization."""
    lender = reader(stack, [enterprise_id])
    kind = "quarterly" if "Q" in label else "monthly"
    return get(stack.api_url + lender.path(enterprise_id, kind, label), lender.headers)


def product_items(stack: EmbeddedStack, enterprise_id: str, label: str) -> dict[str, Any] | None:
    status, body = pull(stack, enterprise_id, label)
    if status != 200:
        return None
    items: dict[str, Any] = {}
    for segment in body["segments"]:
        items.update(segment["items"])
    return items


def engine_products(
    stack: EmbeddedStack, expected: Mapping[str, Mapping[str, Mapping[str, int]]]
) -> dict[str, dict[str, dict[str, Any] | None]]:
    """What the API serves for every (enterprise, period) of ``expected``, pinned items only."""
    reader(stack, expected)  # one batch of authorizations for every enterprise
    result: dict[str, dict[str, dict[str, Any] | None]] = {}
    for enterprise_id, periods in expected.items():
        result[enterprise_id] = {}
        for label, items in periods.items():
            served = product_items(stack, enterprise_id, label)
            result[enterprise_id][label] = (
                None if served is None else {k: served.get(k) for k in items}
            )
    return result


def kept_episodes(
    stack: EmbeddedStack, enterprise_ids: Iterable[str]
) -> dict[str, list[tuple[str, date, date | None]]]:
    """The signal episodes the worker kept for each enterprise, as its views hold them
    (field "e", state/views.py)."""
    from state.redis_client import connect_settings

    async def read() -> dict[str, bytes | None]:
        client = connect_settings(stack.settings)
        try:
            prefix = stack.settings.redis_prefix
            return {
                e: await client.hget(f"{prefix}:v1:ent:{{{e}}}", "e")  # type: ignore[misc]
                for e in enterprise_ids
            }
        finally:
            await client.aclose()

    return {
        e: [
            (rule, date.fromisoformat(opened), date.fromisoformat(closed) if closed else None)
            for rule, opened, closed in codec.loads(raw)
        ]
        for e, raw in asyncio.run(read()).items()
        if raw
    }


def wait_signals_judged(
    stack: EmbeddedStack, timeout: float = 60.0, worker_url: str | None = None
) -> None:
    """Until the worker (the stack's, or the one at ``worker_url``) has judged every
    enterprise whose state changed (its pending gauge reads zero twice, a second apart): the
    episodes it keeps have settled."""
    deadline = time.monotonic() + timeout
    settled = 0
    while settled < 2:
        assert time.monotonic() < deadline, "the worker's signals did not settle"
        pending = total(worker_url or stack.worker_url, "creditflow_signals_pending_enterprises")
        settled = settled + 1 if pending == 0 else 0
        time.sleep(1.0)


def with_signal_days(
    stack: EmbeddedStack, expected: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> Mapping[str, Mapping[str, Mapping[str, Any]]]:
    """``expected`` with the signal items of its quarters counted by the reference from the
    episodes the worker kept. Which episodes a worker keeps depends on when it judged what
    had arrived (an episode raised on part of a firm's history and cleared as the rest came
    is kept): tests/integration/test_signals.py checks them against the rules' reference;
    here the products are checked to count their days."""
    if not any(k.startswith("signal_") for p in expected.values() for i in p.values() for k in i):
        return expected
    episodes = kept_episodes(stack, expected)
    result: dict[str, dict[str, Mapping[str, Any]]] = {}
    for enterprise_id, periods in expected.items():
        result[enterprise_id] = {}
        for label, items in periods.items():
            if "Q" in label and any(k.startswith("signal_") for k in items):
                counted = reference.signal_items(episodes.get(enterprise_id, []), label)
                items = {**items, **{k: v for k, v in counted.items() if k in items}}
            result[enterprise_id][label] = items
    return result


def wait_for_products(
    stack: EmbeddedStack,
    expected: Mapping[str, Mapping[str, Mapping[str, Any]]],
    timeout: float = 90.0,
) -> dict[str, dict[str, dict[str, Any] | None]]:
    """Poll the API until it serves ``expected`` (or the timeout); returns what it served.
    The signal items are expected from the episodes the worker kept (with_signal_days)."""
    deadline = time.monotonic() + timeout
    while True:
        served = engine_products(stack, expected)
        if not differences(with_signal_days(stack, expected), served):
            return served
        if time.monotonic() > deadline:
            return served
        time.sleep(0.5)


def assert_products(
    stack: EmbeddedStack,
    expected: Mapping[str, Mapping[str, Mapping[str, Any]]],
    timeout: float = 90.0,
) -> None:
    """The API serves ``expected``; on failure, show a few differences and the worker log."""
    served = wait_for_products(stack, expected, timeout)
    problems = differences(with_signal_days(stack, expected), served)
    if not problems:
        return
    worker_log = stack.worker.log_path.read_text()[-3000:] if stack.worker.log_path else ""
    shown = "\n".join(f"  {line}" for line in problems[:8])
    pytest.fail(f"{len(problems)} values differ, e.g.\n{shown}\nworker log tail:\n{worker_log}")
