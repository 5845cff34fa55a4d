"""A check of object-level authorization for the schemathesis run of test_api_schema.py.

Loaded by the schemathesis command line (SCHEMATHESIS_HOOKS). For every generated request to
a product route, the same request is made again under institution A's authorization of
enterprise E1, first with institution B's token and then with none: neither may get data.
The tokens and ids come from the test, through the environment of the run.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

PRODUCT_ROUTES = (
    "/v1/enterprises/{enterprise_id}/monthly/{period}",
    "/v1/enterprises/{enterprise_id}/quarterly/{period}",
)


@schemathesis.check
def another_institution_gets_no_data(ctx: Any, response: Any, case: Any) -> bool | None:
    if case.operation.path not in PRODUCT_ROUTES:
        return None
    case.query = {**(case.query or {}), "authorization": os.environ["CF_TEST_A_AUTHORIZATION"]}
    # A well-formed pull of E1's data, whatever was generated: else the period's own check
    # would answer first and the authorization would never be looked at.
    period = "2026Q1" if "quarterly" in case.operation.path else "2026-03"
    case.path_parameters = {"enterprise_id": os.environ["CF_TEST_E1"], "period": period}
    as_b = case.call(headers={"Authorization": f"Bearer {os.environ['CF_TEST_B_TOKEN']}"})
    # Any refusal will do (a generated case may carry a header of its own that spoils B's
    # token, or another method: 401, 405): never a success, never data.
    if not 400 <= as_b.status_code < 500 or b"segments" in as_b.content:
        raise AssertionError(f"institution B got {as_b.status_code} under A's authorization")
    anonymous = case.call(headers={"Authorization": ""})
    if anonymous.status_code not in (400, 401, 404, 405) or b"segments" in anonymous.content:
        raise AssertionError(f"a request without a token got {anonymous.status_code}")
    return True
