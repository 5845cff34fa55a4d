"""What the engine's operators read through the API: rejected events and the API's metrics.

Both need the bearer token of an institution with the ``operator`` (or ``admin``) role. A
rejected event is a bank's original bytes, so it is an enterprise's data like any other, and
reading it is recorded as a query of each enterprise shown;
metrics carry no identifier, but they tell an outsider the platform's load and errors.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine import codec
from engine.access.model import Role
from engine.access.records import QueryRecord
from engine.api.errors import ApiError
from engine.api.identity import Principal
from engine.api.schemas import ErrorOut, RejectsOut
from engine.api.services import Services, new_request_id, now_us, principal_of, services_of
from engine.events import credit_code
from engine.events.contract import RejectReason
from engine.events.rejects import recent_rejects

__all__ = ["metrics", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 422, 429, 503)
}
_READ_TIMEOUT_SECONDS = 10.0  # reading the rejected topic through (engine/events/rejects.py)
_REASONS = "|".join(reason.value for reason in RejectReason)

router = APIRouter(tags=["operations"], responses=_ERRORS)


async def _operator(request: Request) -> tuple[Services, Principal]:
    """The services and the caller, once it is shown to be an operator (or an admin)."""
    principal: Principal = await principal_of(request)
    institution = principal.institution
    if institution is None or not (
        institution.has_role(Role.OPERATOR) or institution.has_role(Role.ADMIN)
    ):
        raise ApiError(403, "operator_required", "this needs the 'operator' role")
    return services_of(request), principal


async def _record_reads(
    services: Services, principal: Principal, shown: list[dict[str, Any]]
) -> None:
    """A query record for each enterprise whose rejected events the operator is shown
    (by "operator": the enterprise sees it, its credit report does not count it), or one
    without an enterprise; durable before the events leave, as for a product."""
    found = {e for record in shown if (e := _enterprise_of(record)) is not None}
    enterprises: list[str | None] = [*sorted(found)] or [None]
    at = now_us()
    await asyncio.gather(
        *(
            services.recorder.confirm(
                QueryRecord(
                    new_request_id(),
                    at,
                    "operator",
                    principal.id,
                    enterprise,
                    "rejects",
                    None,
                    None,
                    None,
                    "served",
                    200,
                )
            )
            for enterprise in enterprises
        )
    )


def _enterprise_of(record: dict[str, Any]) -> str | None:
    """The valid enterprise id a rejected event names, if it can be read."""
    if record.get("original_encoding") != "utf-8":
        return None
    try:
        original = codec.loads(record["original"])
    except ValueError:
        return None
    found = original.get("enterprise_id") if isinstance(original, dict) else None
    return found if isinstance(found, str) and credit_code.is_valid(found) else None


@router.get(
    "/v1/operations/rejects",
    response_model=RejectsOut,
    summary="Rejected events by reason, and the most recent ones with their original bytes",
)
async def rejects(
    request: Request,
    limit: int = Query(default=20, ge=1, le=500),
    reason: str | None = Query(default=None, pattern=f"^({_REASONS})$"),
) -> dict[str, Any]:
    services, principal = await _operator(request)
    bootstrap = services.settings.kafka_bootstrap
    assert bootstrap is not None, "the API runs with a broker"
    counts, shown = await asyncio.to_thread(
        recent_rejects, bootstrap, limit, reason, _READ_TIMEOUT_SECONDS
    )
    await _record_reads(services, principal, shown)
    return {"by_reason": counts, "rejects": shown[::-1]}  # newest first


async def metrics(request: Request) -> Response:
    """The API's Prometheus metrics (operators only)."""
    services, _ = await _operator(request)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
