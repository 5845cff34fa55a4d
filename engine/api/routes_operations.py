"""What the engine's operators read through the API: rejected events and the API's metrics.

Both need the bearer token of an institution with the ``operator`` (or ``admin``) role. A
rejected event is a bank's original bytes, so it is an enterprise's data like any other;
metrics carry no identifier, but they tell an outsider the platform's load and errors.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.access.model import Role
from engine.api.errors import ApiError
from engine.api.identity import Principal
from engine.api.schemas import ErrorOut, RejectsOut
from engine.api.services import Services, principal_of, services_of
from engine.events.contract import RejectReason
from engine.events.rejects import recent_rejects

__all__ = ["metrics", "router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 422, 429, 503)
}
_READ_TIMEOUT_SECONDS = 10.0  # reading the rejected topic through (engine/events/rejects.py)
_REASONS = "|".join(reason.value for reason in RejectReason)

router = APIRouter(tags=["operations"], responses=_ERRORS)


async def _operator(request: Request) -> Services:
    """The services, once the caller is shown to be an operator (or an admin)."""
    principal: Principal = await principal_of(request)
    institution = principal.institution
    if institution is None or not (
        institution.has_role(Role.OPERATOR) or institution.has_role(Role.ADMIN)
    ):
        raise ApiError(403, "operator_required", "this needs the 'operator' role")
    return services_of(request)


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
    services = await _operator(request)
    bootstrap = services.settings.kafka_bootstrap
    assert bootstrap is not None, "the API runs with a broker"
    counts, shown = await asyncio.to_thread(
        recent_rejects, bootstrap, limit, reason, _READ_TIMEOUT_SECONDS
    )
    return {"by_reason": counts, "rejects": shown[::-1]}  # newest first


async def metrics(request: Request) -> Response:
    """The API's Prometheus metrics (operators only)."""
    services = await _operator(request)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
