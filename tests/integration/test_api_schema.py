"""Schemathesis against the live API, from the OpenAPI document it generates.

Every operation gets generated requests (valid and invalid) with institution A's token: no
answer may be a server error, and an operation that declares authentication must enforce it
(schemathesis' ignored_auth). Every product route is also asked, for each generated request,
under A's authorization with institution B's token (B holds authorizations of its own, not
A's) and with no token: neither gets data (tests/integration/schemathesis_hooks.py). It runs
schemathesis' command line: its pytest plugin does not run under pytest 9.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from engine.events.publisher import BankPublisher
from engine.runtime.provision import Lender, provision_lender
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests.factories import enterprise_ids, event
from tests.integration.conftest import BANKS, PARTITIONS, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

E1, E2 = enterprise_ids(2, seed=2727)
PRODUCT_ROUTES = (
    "/v1/enterprises/{enterprise_id}/monthly/{period}",
    "/v1/enterprises/{enterprise_id}/quarterly/{period}",
)


@dataclass
class Api:
    stack: EmbeddedStack
    a: Lender  # authorized for E1
    b: Lender  # authorized for E2


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    settings_ = module_settings(
        "schema", api_auth_failure_limit="1000000/minute", api_record_timeout_seconds=5.0
    )
    with embedded_stack(settings_, banks=BANKS) as stack:
        publisher = BankPublisher(stack.settings.kafka_bootstrap or "", BANKS[0], PARTITIONS)
        for n, who in enumerate((E1, E2)):
            publisher.publish(
                event(
                    txn_id=f"S-{n}",
                    bank=BANKS[0],
                    enterprise_id=who,
                    booked_at="2026-03-05T10:00:00+08:00",
                )
            )
        publisher.flush(30)
        yield Api(
            stack,
            provision_lender(stack.settings, "INSTA001", [E1]),
            provision_lender(stack.settings, "INSTB002", [E2]),
        )


def test_no_server_error_and_no_data_without_authorization(api: Api) -> None:
    """Generated requests to every operation (examples, coverage and fuzzing phases)."""
    a_token = api.a.headers["Authorization"].removeprefix("Bearer ")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{api.stack.api_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {a_token}",
            "--checks",
            "not_a_server_error,ignored_auth,another_institution_gets_no_data",
            "--max-examples",
            "25",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            # An event stream never ends by itself: a request of it could only time out.
            # tests/integration/test_signals.py reads it.
            "--exclude-path",
            "/v1/signals/stream",
        ],
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
            "CF_TEST_A_AUTHORIZATION": api.a.authorizations[E1],
            "CF_TEST_E1": E1,
            "CF_TEST_B_TOKEN": api.b.headers["Authorization"].removeprefix("Bearer "),
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    summary = run.stdout[-4000:]
    assert run.returncode == 0, summary + run.stderr[-2000:]
    assert "another_institution_gets_no_data" in run.stdout or "passed" in run.stdout.lower()


def test_the_document_declares_the_bearer_scheme_and_every_route(api: Api) -> None:
    with urllib.request.urlopen(f"{api.stack.api_url}/openapi.json", timeout=10) as response:
        raw = json.loads(response.read())
    assert raw["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = set(raw["paths"])
    assert set(PRODUCT_ROUTES) <= paths
    assert "/v1/enterprises/{enterprise_id}/authorizations" in paths
    assert "/v1/institutions/{code}/queries" in paths
