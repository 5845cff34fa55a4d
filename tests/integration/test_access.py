"""The rights layer against the live stack: credentials, authorizations, query records,
disputes and statements, and the attack table of the README's Security section.

The tests of this module run in order and share one stack: the rate-limit floods come last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine import codec
from engine.events.publisher import BankPublisher
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests.factories import enterprise_ids, event
from tests.integration.conftest import BANKS, PARTITIONS, module_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

E1, E2, UNKNOWN = enterprise_ids(3, seed=1414)  # E1 and E2 have data; UNKNOWN has none
MONTH, QUARTER = "2026-03", "2026Q1"
LENDER, OTHER, PROVIDER_ONLY = "LEND0001", "OTHR0002", BANKS[0]


@dataclass
class World:
    stack: EmbeddedStack
    tokens: dict[str, str]  # institution code or enterprise id -> token

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.stack.api_url + path, data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                text = response.read()
                decoded = codec.loads(text) if text else None
                return response.status, decoded, _lower(response.headers)
        except urllib.error.HTTPError as exc:
            text = exc.read()
            return exc.code, codec.loads(text) if text else None, _lower(exc.headers)

    def pull(
        self,
        who: str,
        enterprise: str,
        authorization: str | None,
        product: str = "monthly",
        period: str = MONTH,
    ) -> tuple[int, Any]:
        query = "" if authorization is None else f"?authorization={authorization}"
        path = f"/v1/enterprises/{enterprise}/{product}/{period}{query}"
        status, body, _ = self.call("GET", path, self.tokens.get(who, who) if who else None)
        return status, body

    def grant(
        self,
        enterprise: str,
        institution: str,
        products: list[str] | None = None,
        purpose: str = "credit_application",
        days: float = 30,
    ) -> dict[str, Any]:
        until = (datetime.now(UTC) + timedelta(days=days)).isoformat()
        status, body, _ = self.call(
            "POST",
            f"/v1/enterprises/{enterprise}/authorizations",
            self.tokens[enterprise],
            {
                "institution": institution,
                "products": products or ["monthly"],
                "purpose": purpose,
                "valid_until": until,
            },
        )
        assert status == 201, body
        result: dict[str, Any] = body
        return result


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def cli(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def token_of(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    token: str = json.loads(result.stdout.strip().splitlines()[-1])["token"]
    return token


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    settings = module_settings(
        "access",
        api_institution_rate_limit="40/second",
        api_auth_failure_limit="60/minute",
        api_record_timeout_seconds=1.5,
    )
    with embedded_stack(settings, banks=BANKS) as stack:
        publisher = BankPublisher(stack.settings.kafka_bootstrap or "", BANKS[0], PARTITIONS)
        for n, who in enumerate((E1, E2)):
            publisher.publish(
                event(
                    txn_id=f"A-{n}",
                    bank=BANKS[0],
                    enterprise_id=who,
                    booked_at="2026-03-05T10:00:00+08:00",
                    amount_fen=5_000,
                )
            )
        publisher.flush(30)
        tokens: dict[str, str] = {}
        for code, roles in (
            (LENDER, ("user", "provider")),
            (OTHER, ("user", "provider")),
            (PROVIDER_ONLY, ("provider",)),
        ):
            args = [arg for role in roles for arg in ("--role", role)]
            tokens[code] = token_of(cli(stack, "institution", "add", code, "--name", code, *args))
        for enterprise in (E1, E2):
            tokens[enterprise] = token_of(cli(stack, "enterprise", "token", enterprise))
        yield World(stack, tokens)


def _until(check: Callable[[], bool], timeout: float = 30.0) -> float:
    """Seconds until ``check()`` holds (fails after ``timeout``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_the_command_line_registers_lists_and_refuses_a_user_that_provides_nothing(
    world: World,
) -> None:
    listed = cli(world.stack, "institution", "list")
    assert listed.returncode == 0 and LENDER in listed.stdout and OTHER in listed.stdout
    refused = cli(world.stack, "institution", "add", "USER0009", "--name", "u", "--role", "user")
    assert refused.returncode != 0 and "reciprocity" in refused.stderr
    again = cli(world.stack, "institution", "add", LENDER, "--name", "x", "--role", "provider")
    assert again.returncode != 0 and "institution_exists" in again.stderr
    assert all(token not in listed.stdout for token in world.tokens.values())


def test_an_authorized_lender_pulls_and_the_enterprise_sees_who_did(world: World) -> None:
    granted = world.grant(E1, LENDER, ["monthly", "quarterly"])
    assert granted["status"] == "active" and granted["requested_by"] == "enterprise"
    _until(lambda: world.pull(LENDER, E1, granted["id"])[0] == 200)
    status, body = world.pull(LENDER, E1, granted["id"])
    assert body["segments"][0]["items"]["inflow_amount_fen"] == 5_000
    status, own = world.pull(E1, E1, None)  # the enterprise reads its own
    assert status == 200 and own["segments"] == body["segments"]

    def recorded() -> list[dict[str, Any]]:
        return world.call("GET", f"/v1/enterprises/{E1}/queries", world.tokens[E1])[1]["queries"]

    _until(lambda: any(q["outcome"] == "served" and q["by"] == "institution" for q in recorded()))
    served = next(q for q in recorded() if q["by"] == "institution" and q["outcome"] == "served")
    assert served["institution"] == LENDER and served["authorization_id"] == granted["id"]
    assert served["purpose"] == "credit_application" and served["period"] == MONTH
    mine = world.call("GET", f"/v1/institutions/{LENDER}/queries", world.tokens[LENDER])[1]
    assert {q["request_id"] for q in mine["queries"]} >= {served["request_id"]}


def test_a_request_stays_pending_until_the_enterprise_approves_it(world: World) -> None:
    until = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    status, requested, _ = world.call(
        "POST",
        f"/v1/enterprises/{E2}/authorizations",
        world.tokens[OTHER],
        {
            "institution": OTHER,
            "products": ["monthly"],
            "purpose": "guarantee_review",
            "valid_until": until,
        },
    )
    assert status == 201 and requested["status"] == "pending"
    assert world.pull(OTHER, E2, requested["id"])[1]["error"]["code"] == "authorization_pending"
    status, approved, _ = world.call(
        "POST", f"/v1/enterprises/{E2}/authorizations/{requested['id']}/approve", world.tokens[E2]
    )
    assert status == 200 and approved["status"] == "active"
    assert [step["status"] for step in approved["history"]] == ["pending", "active"]
    _until(lambda: world.pull(OTHER, E2, requested["id"])[0] == 200)
    again = world.call(
        "POST", f"/v1/enterprises/{E2}/authorizations/{requested['id']}/approve", world.tokens[E2]
    )
    assert again[0] == 409 and again[1]["error"]["code"] == "authorization_active"


def test_a_revocation_is_refused_by_the_next_pull(world: World) -> None:
    granted = world.grant(E1, OTHER)
    _until(lambda: world.pull(OTHER, E1, granted["id"])[0] == 200)
    status, revoked, _ = world.call(
        "DELETE", f"/v1/enterprises/{E1}/authorizations/{granted['id']}", world.tokens[E1]
    )
    assert status == 200 and revoked["status"] == "revoked"
    # The API that took the revocation refuses the very next pull: it does not wait for
    # Redis's announcement of the change, which other API processes act on (the render
    # cache's invalidation test shows how fast those arrive).
    status, body = world.pull(OTHER, E1, granted["id"])
    assert status == 403 and body["error"]["code"] == "authorization_revoked"
    second = world.call(
        "DELETE", f"/v1/enterprises/{E1}/authorizations/{granted['id']}", world.tokens[E1]
    )
    assert second[0] == 409


def _attacks(world: World) -> list[tuple[str, Callable[[], tuple[int, Any]], int, str]]:
    lender_auth = world.grant(E1, LENDER)["id"]
    other_auth = world.grant(E2, OTHER)["id"]
    expiring = world.grant(E1, LENDER, days=1 / 86400)["id"]  # one second
    rejected_id = world.call(
        "POST",
        f"/v1/enterprises/{E1}/authorizations",
        world.tokens[LENDER],
        {
            "institution": LENDER,
            "products": ["monthly"],
            "purpose": "credit_application",
            "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )[1]["id"]
    world.call(
        "POST", f"/v1/enterprises/{E1}/authorizations/{rejected_id}/reject", world.tokens[E1]
    )
    pending_id = world.call(
        "POST",
        f"/v1/enterprises/{E1}/authorizations",
        world.tokens[LENDER],
        {
            "institution": LENDER,
            "products": ["monthly"],
            "purpose": "credit_application",
            "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )[1]["id"]
    _until(lambda: _status_of(world, E1, expiring) == "expired", timeout=10)
    lender = world.tokens[LENDER]
    wrong = lender[:-4] + ("AAAA" if not lender.endswith("AAAA") else "BBBB")
    unknown_credential = "cf1." + "0" * 32 + "." + lender.split(".")[2]

    def get(path: str, token: str | None) -> tuple[int, Any]:
        status, body, _ = world.call("GET", path, token)
        return status, body

    return [
        ("no token", lambda: world.pull("", E1, lender_auth), 401, "unauthenticated"),
        (
            "malformed token",
            lambda: world.pull("not-a-token", E1, lender_auth),
            401,
            "unauthenticated",
        ),
        ("wrong secret", lambda: world.pull(wrong, E1, lender_auth), 401, "unauthenticated"),
        (
            "unknown credential",
            lambda: world.pull(unknown_credential, E1, lender_auth),
            401,
            "unauthenticated",
        ),
        ("no authorization", lambda: world.pull(LENDER, E1, None), 403, "authorization_required"),
        (
            "another institution's token, a valid id",
            lambda: world.pull(OTHER, E1, lender_auth),
            403,
            "authorization_not_found",
        ),
        (
            "another enterprise's authorization",
            lambda: world.pull(OTHER, E1, other_auth),
            403,
            "authorization_not_found",
        ),
        (
            "an unknown enterprise, the same answer",
            lambda: world.pull(OTHER, UNKNOWN, other_auth),
            403,
            "authorization_not_found",
        ),
        (
            "an unknown authorization id",
            lambda: world.pull(LENDER, E1, "f" * 32),
            403,
            "authorization_not_found",
        ),
        (
            "a path trick in the id",
            lambda: world.pull(LENDER, E1, "../../" + lender_auth),
            403,
            "authorization_not_found",
        ),
        ("pending", lambda: world.pull(LENDER, E1, pending_id), 403, "authorization_pending"),
        ("rejected", lambda: world.pull(LENDER, E1, rejected_id), 403, "authorization_rejected"),
        ("expired", lambda: world.pull(LENDER, E1, expiring), 403, "authorization_expired"),
        (
            "a product not covered",
            lambda: world.pull(LENDER, E1, lender_auth, "quarterly", QUARTER),
            403,
            "product_not_covered",
        ),
        (
            "a provider without the user role",
            lambda: world.pull(PROVIDER_ONLY, E1, lender_auth),
            403,
            "role_required",
        ),
        (
            "an enterprise on another's products",
            lambda: world.pull(E2, E1, None),
            403,
            "not_your_enterprise",
        ),
        (
            "an enterprise on another's queries",
            lambda: get(f"/v1/enterprises/{E1}/queries", world.tokens[E2]),
            403,
            "not_your_enterprise",
        ),
        (
            "an enterprise on another's disputes",
            lambda: get(f"/v1/enterprises/{E1}/disputes", world.tokens[E2]),
            403,
            "not_your_enterprise",
        ),
        (
            "an institution on another's queries",
            lambda: get(f"/v1/institutions/{OTHER}/queries", lender),
            403,
            "not_your_institution",
        ),
        (
            "a malformed enterprise id",
            lambda: world.pull(LENDER, "NOT-A-CODE", lender_auth),
            400,
            "bad_request",
        ),
        (
            "dots and slashes for an id",
            lambda: world.pull(LENDER, "..%2F..%2Fetc", lender_auth),
            404,
            "not_found",
        ),
        (
            "a malformed period",
            lambda: world.pull(LENDER, E1, lender_auth, period="2026-13"),
            400,
            "bad_request",
        ),
        (
            "an encoded slash in the path",
            lambda: get(f"/v1/enterprises/{E1}%2Fmonthly%2F{MONTH}/monthly/{MONTH}", lender),
            404,
            "not_found",
        ),
    ]


def test_every_attack_of_the_table_gets_its_answer(world: World) -> None:
    _until(lambda: world.pull(LENDER, E1, world.grant(E1, LENDER)["id"])[0] == 200)
    failures = []
    for name, attempt, status, code in _attacks(world):
        got_status, body = attempt()
        got_code = (body or {}).get("error", {}).get("code")
        if (got_status, got_code) != (status, code):
            failures.append(f"{name}: expected {status} {code}, got {got_status} {got_code}")
        if got_status >= 400:
            assert "segments" not in (body or {}), name  # never data with a refusal
    assert not failures, "\n".join(failures)


def test_unknown_and_known_enterprises_are_indistinguishable_without_authorization(
    world: World,
) -> None:
    other_auth = world.grant(E2, OTHER)["id"]
    known = world.pull(OTHER, E1, other_auth)
    unknown = world.pull(OTHER, UNKNOWN, other_auth)
    assert known == unknown


def test_bodies_are_validated_and_bounded(world: World) -> None:
    path = f"/v1/enterprises/{E1}/authorizations"
    token = world.tokens[E1]
    big = world.call("POST", path, token, raw=b"{" + b" " * (70 * 1024) + b"}")
    assert big[0] == 413 and big[1]["error"]["code"] == "body_too_large"
    bad_json = world.call("POST", path, token, raw=b"{not json")
    assert bad_json[0] == 422 and bad_json[1]["error"]["code"] == "invalid_request"
    extra = world.call(
        "POST",
        path,
        token,
        {
            "institution": LENDER,
            "products": ["monthly"],
            "purpose": "credit_application",
            "valid_until": "2030-01-01T00:00:00Z",
            "admin": 1,
        },
    )
    assert extra[0] == 422
    purpose = world.call(
        "POST",
        path,
        token,
        {
            "institution": LENDER,
            "products": ["monthly"],
            "purpose": "curiosity",
            "valid_until": "2030-01-01T00:00:00Z",
        },
    )
    assert purpose[0] == 422
    naive = world.call(
        "POST",
        path,
        token,
        {
            "institution": LENDER,
            "products": ["monthly"],
            "purpose": "credit_application",
            "valid_until": "2030-01-01T00:00:00",
        },
    )
    assert naive[0] == 422  # a time without an offset
    past = world.call(
        "POST",
        path,
        token,
        {
            "institution": LENDER,
            "products": ["monthly"],
            "purpose": "credit_application",
            "valid_until": "2020-01-01T00:00:00Z",
        },
    )
    assert past[0] == 422 and past[1]["error"]["code"] == "bad_valid_until"
    status, listed, _ = world.call("GET", path, token)
    assert status == 200 and all(a["valid_until"] > "2025" for a in listed)


def test_a_dispute_marks_its_items_until_a_provider_answers_it(world: World) -> None:
    lender_auth = world.grant(E1, LENDER, ["monthly", "quarterly"])["id"]
    status, dispute, _ = world.call(
        "POST",
        f"/v1/enterprises/{E1}/disputes",
        world.tokens[E1],
        {"period": MONTH, "items": ["inflow_amount_fen"], "statement": "A loan, not sales."},
    )
    assert status == 201 and dispute["status"] == "received"
    filed = datetime.fromisoformat(dispute["filed_at"])
    assert datetime.fromisoformat(dispute["due_at"]) - filed == timedelta(days=20)

    def marks() -> dict[str, Any]:
        body = world.pull(LENDER, E1, lender_auth)[1]
        return body["segments"][0].get("disputed", {})

    _until(lambda: marks() == {"inflow_amount_fen": [dispute["id"]]})
    body = world.pull(LENDER, E1, lender_auth)[1]
    assert body["disputes"][0]["statement"] == "A loan, not sales."
    quarterly = world.pull(LENDER, E1, lender_auth, "quarterly", QUARTER)[1]
    subject = {s["id"]: s["items"] for s in quarterly["segments"][-3:]}
    assert subject["disputes"]["open_disputes"] == 1
    assert subject["disputes"]["disputed_items"] == 0  # the dispute is about the month
    listed = world.call(
        "GET", f"/v1/institutions/{PROVIDER_ONLY}/disputes", world.tokens[PROVIDER_ONLY]
    )[1]
    assert [d["id"] for d in listed] == [dispute["id"]]
    resolution = f"/v1/enterprises/{E1}/disputes/{dispute['id']}/resolution"
    not_provider = world.call(
        "POST", resolution, world.tokens[OTHER], {"outcome": "confirmed", "note": ""}
    )
    assert not_provider[0] == 403
    answered = world.call(
        "POST",
        resolution,
        world.tokens[PROVIDER_ONLY],
        {"outcome": "confirmed", "note": "The inflow is sales."},
    )
    assert answered[0] == 200 and answered[1]["status"] == "confirmed"
    _until(lambda: marks() == {})
    twice = world.call(
        "POST", resolution, world.tokens[PROVIDER_ONLY], {"outcome": "corrected", "note": ""}
    )
    assert twice[0] == 409 and twice[1]["error"]["code"] == "dispute_closed"
    steps = world.call("GET", f"/v1/enterprises/{E1}/disputes", world.tokens[E1])[1][0]
    assert [s["status"] for s in steps["history"]] == ["received", "confirmed"]
    unknown_item = world.call(
        "POST",
        f"/v1/enterprises/{E1}/disputes",
        world.tokens[E1],
        {"period": MONTH, "items": ["no_such_item"], "statement": "x"},
    )
    assert unknown_item[0] == 422


def test_a_statement_and_the_query_records_fill_the_quarterly_subject_segments(
    world: World,
) -> None:
    status, statement, _ = world.call(
        "POST",
        f"/v1/enterprises/{E2}/statements",
        world.tokens[E2],
        {"text": "We moved banks in 2025."},
    )
    assert status == 201
    auth = world.grant(E2, LENDER, ["quarterly"])["id"]

    def subject() -> dict[str, Any]:
        body = world.pull(LENDER, E2, auth, "quarterly", QUARTER)[1]
        return {s["id"]: s["items"] for s in body["segments"][-3:]}

    _until(lambda: subject()["statements"]["statement_date"] is not None)
    assert subject()["statements"]["statement_date"] == statement["filed_at"][:10]
    # Pulls by LENDER (and OTHER, earlier) are answered queries of E2 once indexed.
    _until(lambda: subject()["query_records"]["distinct_queriers_90d"] >= 1)
    items = subject()["query_records"]
    assert items["queries_90d"] >= 1 and items["last_query_date"] is not None


def test_the_header_describes_the_pull_and_the_query_items_count_credit_applications(
    world: World,
) -> None:
    credit = world.grant(E2, LENDER, ["quarterly"])["id"]
    guarantee = world.grant(E2, OTHER, ["quarterly"], purpose="guarantee_review")["id"]
    path = f"/v1/enterprises/{E2}/quarterly/{QUARTER}?authorization="
    before = time.time()
    status, body, headers = world.call("GET", path + credit, world.tokens[LENDER])
    assert status == 200
    header = body["segments"][0]
    assert header["id"] == "header" and header["name"] == "报告头"
    items = header["items"]
    assert items["report_id"] == headers["x-request-id"]
    assert items["querying_institution"] == LENDER
    assert items["query_purpose"] == "credit_application"
    assert items["data_as_of"] == body["as_of"]["watermark"] is not None
    generated = datetime.fromisoformat(items["generated_at"])
    assert generated.utcoffset() == timedelta(hours=8)
    assert before - 1 <= generated.timestamp() <= time.time() + 1

    # The enterprise finds the report's id among its query records, with who asked and why.
    def records() -> list[dict[str, Any]]:
        found = world.call("GET", f"/v1/enterprises/{E2}/queries?limit=200", world.tokens[E2])
        queries: list[dict[str, Any]] = found[1]["queries"]
        return queries

    _until(lambda: any(r["request_id"] == items["report_id"] for r in records()))
    mine = next(r for r in records() if r["request_id"] == items["report_id"])
    assert (mine["institution"], mine["purpose"]) == (LENDER, "credit_application")
    # Read by the enterprise itself, the header names nobody and no purpose.
    own = world.pull(E2, E2, None, "quarterly", QUARTER)[1]["segments"][0]["items"]
    assert own["querying_institution"] is None and own["query_purpose"] is None
    assert own["report_id"] != items["report_id"]
    # A guarantee review is a query, not a credit application.
    assert world.call("GET", path + guarantee, world.tokens[OTHER])[0] == 200

    def expected() -> tuple[int, int, int]:
        answered = [
            r
            for r in records()
            if r["by"] == "institution"
            and r["outcome"] in ("served", "no_data")
            and r["product"] in ("monthly", "quarterly")
        ]
        credit = [r for r in answered if r["purpose"] == "credit_application"]
        return len(answered), len(credit), len({r["institution"] for r in credit})

    def shown() -> tuple[int, int, int]:
        body = world.pull(E2, E2, None, "quarterly", QUARTER)[1]
        seen = {s["id"]: s["items"] for s in body["segments"]}["query_records"]
        return (
            seen["queries_90d"],
            seen["credit_application_queries_90d"],
            seen["credit_application_queriers_30d"],
        )

    _until(lambda: any(r["purpose"] == "guarantee_review" for r in records()))
    _until(lambda: shown() == expected())
    total, for_credit, lenders = shown()
    assert total > for_credit >= 1 and lenders >= 1


def test_a_rotated_token_stops_at_once_and_the_new_one_works(world: World) -> None:
    auth = world.grant(E1, OTHER)["id"]
    old = world.tokens[OTHER]
    _until(lambda: world.pull(old, E1, auth)[0] == 200)
    new = token_of(cli(world.stack, "institution", "rotate-token", OTHER))
    world.tokens[OTHER] = new
    assert _until(lambda: world.pull(old, E1, auth)[0] == 401, timeout=5) < 1.0
    assert world.pull(new, E1, auth)[0] == 200
    previous = world.tokens[E2]
    world.tokens[E2] = token_of(cli(world.stack, "enterprise", "token", E2))
    _until(lambda: world.pull(previous, E2, None)[0] == 401, timeout=5)
    assert world.pull(E2, E2, None)[0] == 200


def test_access_state_survives_the_loss_of_redis(world: World) -> None:
    """The access keys go (as after a Redis restart): the stage replays the log."""
    import asyncio

    from redis.asyncio import Redis

    auth = world.grant(E1, LENDER)["id"]
    _until(lambda: world.pull(LENDER, E1, auth)[0] == 200)

    async def drop() -> int:
        client = Redis.from_url(world.stack.settings.redis_url.get_secret_value())
        try:
            keys = [
                k
                async for k in client.scan_iter(
                    match=f"{world.stack.settings.redis_prefix}:access:*", count=1000
                )
            ]
            return int(await client.delete(*keys)) if keys else 0
        finally:
            await client.aclose()

    assert asyncio.run(drop()) > 0
    # Nothing is served meanwhile but what the log says; once replayed, all is as before.
    _until(lambda: world.pull(LENDER, E1, auth)[0] == 200, timeout=60)
    listed = world.call("GET", f"/v1/enterprises/{E1}/authorizations", world.tokens[E1])[1]
    assert any(a["id"] == auth and a["status"] == "active" for a in listed)


def test_while_records_cannot_reach_the_broker_pulls_get_503_and_no_data(world: World) -> None:
    auth = world.grant(E1, LENDER)["id"]
    _until(lambda: world.pull(LENDER, E1, auth)[0] == 200)
    broker = next(c for c in world.stack.stack.children if c.name == "broker")
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        # The API's journal holds the records for api_record_timeout_seconds (1.5 s here),
        # then refuses: no API serves for long what the system of record has not seen.
        started = time.monotonic()
        assert world.pull(LENDER, E1, auth)[0] == 200
        _until(lambda: world.pull(LENDER, E1, auth)[0] == 503, timeout=15)
        # 1.5 s from the oldest record not shipped, which may be up to a shipping interval
        # (50 ms) older than the stop.
        assert time.monotonic() - started >= 1.4
        status, body = world.pull(LENDER, E1, auth)
        assert status == 503 and body["error"]["code"] == "query_record_unavailable"
        assert "segments" not in body
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    _until(lambda: world.pull(LENDER, E1, auth)[0] == 200, timeout=60)

    def refused() -> list[dict[str, Any]]:  # recorded too, once the broker is back
        return [q for q in _queries(world, E1) if q["outcome"] == "query_record_unavailable"]

    _until(lambda: bool(refused()))
    assert all(q["status"] == 503 for q in refused())


def test_a_record_journaled_when_the_api_dies_reaches_the_enterprise_once(world: World) -> None:
    auth = world.grant(E2, LENDER)["id"]
    _until(lambda: world.pull(LENDER, E2, auth)[0] == 200)
    broker = next(c for c in world.stack.stack.children if c.name == "broker")
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        # Served while durable in the API's journal only: the broker is stopped.
        request_id = _until_pulled(world, E2, auth)
        world.stack.api.kill()
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    world.stack.restart_api()  # an API starts only with a broker (it checks its topics)
    _until(lambda: request_id in {q["request_id"] for q in _queries(world, E2)}, timeout=60)
    # A record of a later pull, indexed after anything the restarted API shipped again:
    # the enterprise's records are indexed in the order they reach its partition.
    later = _until_pulled(world, E2, auth)
    _until(lambda: later in {q["request_id"] for q in _queries(world, E2)}, timeout=60)
    assert [q["request_id"] for q in _queries(world, E2)].count(request_id) == 1


def _until_pulled(world: World, enterprise: str, authorization: str) -> str:
    """The request id of a pull that was served (retried while the lender's rate limit, 40/s
    here, refuses it)."""
    path = f"/v1/enterprises/{enterprise}/monthly/{MONTH}?authorization={authorization}"
    served: list[str] = []

    def pulled() -> bool:
        status, _, headers = world.call("GET", path, world.tokens[LENDER])
        if status == 200:
            served.append(headers["x-request-id"])
        return status == 200

    _until(pulled)
    return served[0]


def _status_of(world: World, enterprise: str, authorization: str) -> str:
    """The authorization's status as its enterprise reads it (expiry is derived from the
    clock at each read)."""
    listed = world.call(
        "GET", f"/v1/enterprises/{enterprise}/authorizations", world.tokens[enterprise]
    )[1]
    return str(next(a["status"] for a in listed if a["id"] == authorization))


def _queries(world: World, enterprise: str) -> list[dict[str, Any]]:
    path = f"/v1/enterprises/{enterprise}/queries?limit=200"
    queries: list[dict[str, Any]] = world.call("GET", path, world.tokens[enterprise])[1]["queries"]
    return queries


def test_only_an_operator_reads_the_metrics_and_the_rejected_events(world: World) -> None:
    for path in ("/metrics", "/v1/operations/rejects"):
        assert world.call("GET", path)[0] == 401
        assert world.call("GET", path, world.tokens[LENDER])[0] == 403
        assert world.call("GET", path, world.tokens[E1])[0] == 403
    added = cli(world.stack, "institution", "add", "OPS00001", "--name", "O", "--role", "operator")
    ops = token_of(added)
    status, body, _ = world.call("GET", "/v1/operations/rejects?limit=5", ops)
    assert status == 200 and isinstance(body["by_reason"], dict)
    # Recorded, with no enterprise to name here: in the operator's own list of queries.
    _until(
        lambda: any(
            q["product"] == "rejects" and q["by"] == "operator"
            for q in world.call("GET", "/v1/institutions/OPS00001/queries", ops)[1]["queries"]
        )
    )
    request = urllib.request.Request(
        world.stack.api_url + "/metrics", headers={"Authorization": f"Bearer {ops}"}
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert b"creditflow_api_query_records_total" in response.read()


def test_a_flood_from_one_institution_gets_429_with_retry_after(world: World) -> None:
    auth = world.grant(E1, LENDER)["id"]
    answers = [
        world.call(
            "GET",
            f"/v1/enterprises/{E1}/monthly/{MONTH}?authorization={auth}",
            world.tokens[LENDER],
        )
        for _ in range(80)
    ]
    limited = [a for a in answers if a[0] == 429]
    assert limited and int(limited[0][2]["retry-after"]) >= 1
    assert limited[0][1]["error"]["code"] == "rate_limited"


def test_repeated_bad_tokens_from_one_address_get_429(world: World) -> None:
    statuses = [world.pull("cf1." + "1" * 32 + "." + "x" * 43, E1, None)[0] for _ in range(70)]
    assert statuses[0] == 401 and statuses[-1] == 429
    # While the address is blocked even a valid token waits (the window is tested first).
    assert world.pull(LENDER, E1, "0" * 32)[0] == 429
