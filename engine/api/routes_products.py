"""The two products, pulled under an authorization, every pull recorded.

A pull is answered only when its bearer token is valid and, for an institution, the
institution holds the ``user`` role (and, by default, ``provider``: reciprocity) and names an
authorization (``?authorization=<id>``) that exists, belongs to this enterprise and this
institution, covers this product, is active and unexpired. An enterprise reads its own
products with its own token. An institution without a valid authorization gets the same
403 whether or not the enterprise exists or has data.
"""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.routing import Route

from engine.access.model import Authorization, AuthorizationStatus, Role
from engine.access.records import QueryRecord
from engine.api.errors import ApiError
from engine.api.identity import Principal
from engine.api.schemas import ErrorOut
from engine.api.services import Services, bearer, new_request_id, now_us, principal_of, services_of
from engine.errors import NotFoundError
from engine.events import credit_code
from engine.periods import Period
from engine.products.subject import Pull

__all__ = ["AUTHORIZATION_ID_RE", "fast_routes", "router"]

AUTHORIZATION_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 429, 503)
}
_AUTHORIZATION = Query(
    default=None,
    description="Id of the authorization the pull is made under (institutions).",
    max_length=64,
)

_BEARER = Depends(bearer)


router = APIRouter(tags=["products"])


@router.get(
    "/v1/enterprises/{enterprise_id}/monthly/{period}",
    summary="Monthly detail summary (YYYY-MM)",
    responses=_ERRORS,
    response_class=Response,
)
async def monthly(
    request: Request,
    enterprise_id: str,
    period: str,
    authorization: str | None = _AUTHORIZATION,
    _: HTTPAuthorizationCredentials | None = _BEARER,
) -> Response:
    return await _pull(request, "monthly", enterprise_id, period, authorization)


@router.get(
    "/v1/enterprises/{enterprise_id}/quarterly/{period}",
    summary="Quarterly report (YYYYQn)",
    responses=_ERRORS,
    response_class=Response,
)
async def quarterly(
    request: Request,
    enterprise_id: str,
    period: str,
    authorization: str | None = _AUTHORIZATION,
    _: HTTPAuthorizationCredentials | None = _BEARER,
) -> Response:
    return await _pull(request, "quarterly", enterprise_id, period, authorization)


async def _fast(request: Request) -> Response:
    product: Literal["monthly", "quarterly"] = (
        "monthly" if request.url.path.split("/")[4] == "monthly" else "quarterly"
    )
    request.scope["route"] = _FAST[product]  # the route template, for the request metrics
    params = request.path_params
    authorization = request.query_params.get("authorization")
    return await _pull(request, product, params["enterprise_id"], params["period"], authorization)


#: The same two routes, dispatched without FastAPI's parameter solving, which cost about as
#: much as the whole pull besides (measured: engine/api/app.py). Mounted ahead of the routes
#: above, which declare the operations for the OpenAPI document and validate nothing more:
#: both call ``_pull``, where every check is made.
_FAST = {
    product: Route(
        f"/v1/enterprises/{{enterprise_id}}/{product}/{{period}}", _fast, methods=["GET"]
    )
    for product in ("monthly", "quarterly")
}
fast_routes = list(_FAST.values())


async def _pull(
    request: Request,
    product: Literal["monthly", "quarterly"],
    enterprise_id: str,
    period_text: str,
    authorization_id: str | None,
) -> Response:
    services = services_of(request)
    now = now_us()
    request_id = new_request_id()
    valid_id = credit_code.is_valid_cached(enterprise_id)
    period = (Period.monthly if product == "monthly" else Period.quarterly)(period_text)
    record = _Record(services, request_id, now, enterprise_id if valid_id else None, product)
    record.period = period.label if period is not None else None
    try:
        principal = await principal_of(request)
    except ApiError as exc:
        if exc.status == 401:
            record.refused("unknown", None, exc)
        raise
    record.by, record.institution = (
        principal.kind,
        (principal.id if principal.kind == "institution" else None),
    )
    if not valid_id:
        raise record.refused_now(
            ApiError(400, "bad_request", "enterprise_id must be an 18-character credit code")
        )
    if period is None:
        expected = "YYYY-MM" if product == "monthly" else "YYYYQn"
        raise record.refused_now(ApiError(400, "bad_request", f"period must look like {expected}"))
    try:
        granted = await _authorize(
            services, principal, enterprise_id, product, authorization_id, now
        )
    except ApiError as exc:
        raise record.refused_now(exc) from None
    if granted is not None:
        record.authorization_id, record.purpose = granted.id, granted.purpose
    try:
        pull = Pull(request_id, record.institution, record.purpose)
        body = await services.products.body(product, enterprise_id, period, now, pull)
    except NotFoundError as exc:
        await record.answered("no_data", 404)
        raise ApiError(404, "not_found", str(exc)) from exc
    await record.answered("served", 200)
    return Response(body, media_type="application/json", headers={"X-Request-Id": request_id})


async def _authorize(
    services: Services,
    principal: Principal,
    enterprise_id: str,
    product: str,
    authorization_id: str | None,
    now: int,
) -> Authorization | None:
    """The authorization the pull is made under (None for an enterprise reading its own);
    ApiError 403 with the reason otherwise."""
    if principal.kind == "enterprise":
        if principal.id != enterprise_id:
            raise _forbidden("not_your_enterprise", "an enterprise reads only its own products")
        return None
    institution = principal.institution
    assert institution is not None
    if not institution.has_role(Role.USER):
        raise _forbidden("role_required", "pulling products needs the 'user' role")
    if services.settings.reciprocity_required and not institution.has_role(Role.PROVIDER):
        raise _forbidden("reciprocity_required", "an institution using data must provide data")
    if authorization_id is None:
        raise _forbidden("authorization_required", "name the authorization: ?authorization=<id>")
    found = None
    if AUTHORIZATION_ID_RE.match(authorization_id):
        found = await services.access.get("authorization", authorization_id, Authorization)
        if found is None:  # or not yet again, while Redis is refilled (503 then)
            found = await services.access.confirm_missing(
                "authorization", authorization_id, Authorization
            )
    mine = found is not None and found.institution == institution.code
    if found is None or not mine or found.enterprise_id != enterprise_id:
        # The same answer whether the id is unknown, another institution's or another
        # enterprise's: nothing tells whether this enterprise is known.
        raise _forbidden("authorization_not_found", "no such authorization for this pull")
    status = found.status_at(now)
    if status != AuthorizationStatus.ACTIVE:
        raise _forbidden(f"authorization_{status.value}", f"the authorization is {status.value}")
    if product not in found.products:
        raise _forbidden("product_not_covered", f"the authorization does not cover {product}")
    return found


def _forbidden(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


class _Record:
    """The query record of one pull, filled in as the pull goes."""

    def __init__(
        self,
        services: Services,
        request_id: str,
        at_us: int,
        enterprise_id: str | None,
        product: str,
    ) -> None:
        self._services = services
        self.request_id = request_id
        self.at_us = at_us
        self.enterprise_id = enterprise_id
        self.product = product
        self.period: str | None = None
        self.by = "unknown"
        self.institution: str | None = None
        self.authorization_id: str | None = None
        self.purpose: str | None = None

    def _build(self, outcome: str, status: int) -> QueryRecord:
        return QueryRecord(
            self.request_id,
            self.at_us,
            self.by,
            self.institution,
            self.enterprise_id,
            self.product,
            self.period,
            self.authorization_id,
            self.purpose,
            outcome,
            status,
        )

    def refused(self, by: str, institution: str | None, error: ApiError) -> None:
        self.by, self.institution = by, institution
        self._services.recorder.later(self._build(error.code, error.status))

    def refused_now(self, error: ApiError) -> ApiError:
        self._services.metrics.refusals.labels(error.code).inc()
        self._services.recorder.later(self._build(error.code, error.status))
        return error

    async def answered(self, outcome: str, status: int) -> None:
        await self._services.recorder.confirm(self._build(outcome, status))
