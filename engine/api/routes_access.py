"""The information subject's rights and the institutions' side of them: authorizations,
query records, disputes and statements.

Every change goes through the access log (engine/api/access_log.py); reads come from the
state the access stage keeps in Redis. An enterprise acts with its own token on its own
records only; an institution sees what names it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials

from engine.access import commands
from engine.access.model import Authorization, Dispute, Institution, Role, Statement
from engine.api.errors import ApiError
from engine.api.identity import Principal
from engine.api.products import history_from_fields, providers_of
from engine.api.schemas import (
    AuthorizationIn,
    AuthorizationOut,
    DisputeIn,
    DisputeOut,
    ErrorOut,
    InstitutionOut,
    QueryPage,
    ResolutionIn,
    StatementIn,
    StatementOut,
    authorization_out,
    dispute_out,
    institution_out,
    query_out,
    statement_out,
    to_us,
)
from engine.api.services import Services, bearer, now_us, principal_of, services_of
from engine.events import credit_code
from engine.periods import Period
from engine.products.subject import SUBJECT_SEGMENTS

__all__ = ["router"]

_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_CODE_RE = re.compile(r"^[A-Z0-9]{4,12}$")
_CURSOR_RE = re.compile(r"^(\d{1,19})\.([0-9a-f]{32})$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 422, 429, 503)
}

router = APIRouter(tags=["access"], responses=_ERRORS)
Caller = Depends(principal_of)
Bearer = Depends(bearer)
_LIMIT = Query(default=50, ge=1, le=500)
_CURSOR = Query(default=None, max_length=60, description="`next` of the previous page")


def _enterprise(enterprise_id: str) -> str:
    if not credit_code.is_valid_cached(enterprise_id):
        raise ApiError(400, "bad_request", "enterprise_id must be an 18-character credit code")
    return enterprise_id


def _own(principal: Principal, enterprise_id: str) -> None:
    if principal.kind != "enterprise" or principal.id != _enterprise(enterprise_id):
        raise ApiError(403, "not_your_enterprise", "only the enterprise itself may do this")


def _id(value: str, what: str) -> str:
    if not _ID_RE.match(value):
        raise ApiError(404, f"{what}_not_found", f"no such {what}")
    return value


_Decision = (
    commands.ApproveAuthorization | commands.RejectAuthorization | commands.RevokeAuthorization
)


def _new_id() -> str:
    return secrets.token_hex(16)


# -- authorizations -----------------------------------------------------------------------


@router.post(
    "/v1/enterprises/{enterprise_id}/authorizations",
    status_code=201,
    response_model=AuthorizationOut,
    summary="Grant (the enterprise) or request (an institution) an authorization",
)
async def create_authorization(
    request: Request,
    enterprise_id: str,
    body: AuthorizationIn,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    services = services_of(request)
    _enterprise(enterprise_id)
    fields: dict[str, Any] = {
        "id": _new_id(),
        "at_us": now_us(),
        "by": principal.actor,
        "authorization_id": _new_id(),
        "enterprise_id": enterprise_id,
        "institution": body.institution,
        "products": tuple(body.products),
        "purpose": body.purpose.value,
        "valid_until_us": to_us(body.valid_until),
    }
    command: commands.GrantAuthorization | commands.RequestAuthorization
    if principal.kind == "enterprise":
        _own(principal, enterprise_id)
        command = commands.GrantAuthorization(**fields)
    else:
        if body.institution != principal.id:
            raise ApiError(403, "not_your_institution", "an institution requests for itself only")
        command = commands.RequestAuthorization(**fields)
    entity = await services.access_log.submit(command)
    assert isinstance(entity, Authorization)
    return authorization_out(entity, now_us())


@router.get(
    "/v1/enterprises/{enterprise_id}/authorizations",
    response_model=list[AuthorizationOut],
    summary="The enterprise's authorizations",
)
async def list_authorizations(
    request: Request,
    enterprise_id: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> list[dict[str, Any]]:
    services = services_of(request)
    _own(principal, enterprise_id)
    found = await services.access.indexed("ent-auth", enterprise_id, "authorization", Authorization)
    now = now_us()
    return [authorization_out(a, now) for a in sorted(found, key=lambda a: -a.created_at_us)]


@router.get(
    "/v1/enterprises/{enterprise_id}/authorizations/{authorization_id}",
    response_model=AuthorizationOut,
    summary="One authorization (the enterprise, or the institution it names)",
)
async def get_authorization(
    request: Request,
    enterprise_id: str,
    authorization_id: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    found = await _authorization(request, enterprise_id, authorization_id, principal)
    return authorization_out(found, now_us())


async def _authorization(
    request: Request, enterprise_id: str, authorization_id: str, principal: Principal
) -> Authorization:
    services = services_of(request)
    _enterprise(enterprise_id)
    found = await services.access.get(
        "authorization", _id(authorization_id, "authorization"), Authorization
    )
    visible = found is not None and found.enterprise_id == enterprise_id
    if found is not None and principal.kind == "enterprise":
        visible = visible and principal.id == enterprise_id
    elif found is not None:
        visible = visible and found.institution == principal.id
    if found is None or not visible:
        raise ApiError(404, "authorization_not_found", "no such authorization")
    return found


async def _decide(
    request: Request,
    enterprise_id: str,
    authorization_id: str,
    principal: Principal,
    kind: type[
        commands.ApproveAuthorization | commands.RejectAuthorization | commands.RevokeAuthorization
    ],
) -> dict[str, Any]:
    services = services_of(request)
    _own(principal, enterprise_id)
    command = kind(
        id=_new_id(),
        at_us=now_us(),
        by=principal.actor,
        enterprise_id=enterprise_id,
        authorization_id=_id(authorization_id, "authorization"),
    )
    entity = await services.access_log.submit(command)
    assert isinstance(entity, Authorization)
    return authorization_out(entity, now_us())


@router.post(
    "/v1/enterprises/{enterprise_id}/authorizations/{authorization_id}/approve",
    response_model=AuthorizationOut,
    summary="Approve an institution's pending request",
)
async def approve_authorization(
    request: Request,
    enterprise_id: str,
    authorization_id: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    return await _decide(
        request, enterprise_id, authorization_id, principal, commands.ApproveAuthorization
    )


@router.post(
    "/v1/enterprises/{enterprise_id}/authorizations/{authorization_id}/reject",
    response_model=AuthorizationOut,
    summary="Reject an institution's pending request",
)
async def reject_authorization(
    request: Request,
    enterprise_id: str,
    authorization_id: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    return await _decide(
        request, enterprise_id, authorization_id, principal, commands.RejectAuthorization
    )


@router.delete(
    "/v1/enterprises/{enterprise_id}/authorizations/{authorization_id}",
    response_model=AuthorizationOut,
    summary="Revoke an authorization: every API process refuses it within a second",
)
async def revoke_authorization(
    request: Request,
    enterprise_id: str,
    authorization_id: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    return await _decide(
        request, enterprise_id, authorization_id, principal, commands.RevokeAuthorization
    )


# -- query records ------------------------------------------------------------------------


def _cursor(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    match = _CURSOR_RE.match(text)
    if match is None:
        raise ApiError(400, "bad_cursor", "cursor must be the `next` of a previous page")
    return int(match.group(1)), match.group(2)


async def _page(services: Services, key: str, limit: int, cursor: str | None) -> dict[str, Any]:
    records, after = await services.queries.page(key, limit, _cursor(cursor))
    return {
        "queries": [query_out(r) for r in records],
        "next": None if after is None else f"{after[0]}.{after[1]}",
    }


@router.get(
    "/v1/enterprises/{enterprise_id}/queries",
    response_model=QueryPage,
    summary="Who queried the enterprise, newest first",
)
async def enterprise_queries(
    request: Request,
    enterprise_id: str,
    limit: int = _LIMIT,
    cursor: str | None = _CURSOR,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    services = services_of(request)
    _own(principal, enterprise_id)
    return await _page(services, services.queries.enterprise_key(enterprise_id), limit, cursor)


def _institution_self_or_admin(principal: Principal, code: str) -> None:
    if not _CODE_RE.match(code):
        raise ApiError(400, "bad_request", "institution code must match [A-Z0-9]{4,12}")
    admin = principal.institution is not None and principal.institution.has_role(Role.ADMIN)
    if not (principal.kind == "institution" and (principal.id == code or admin)):
        raise ApiError(403, "not_your_institution", "an institution reads its own records")


@router.get(
    "/v1/institutions/{code}/queries",
    response_model=QueryPage,
    summary="The institution's own queries, newest first (or any, for an admin)",
)
async def institution_queries(
    request: Request,
    code: str,
    limit: int = _LIMIT,
    cursor: str | None = _CURSOR,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    services = services_of(request)
    _institution_self_or_admin(principal, code)
    return await _page(services, services.queries.institution_key(code), limit, cursor)


@router.get(
    "/v1/institutions/{code}",
    response_model=InstitutionOut,
    summary="An institution's registration (itself, or an admin)",
)
async def get_institution(
    request: Request,
    code: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    _institution_self_or_admin(principal, code)
    found = await services_of(request).access.get("institution", code, Institution)
    if found is None:
        raise ApiError(404, "institution_not_found", "no such institution")
    return institution_out(found)


@router.get(
    "/v1/institutions/{code}/authorizations",
    response_model=list[AuthorizationOut],
    summary="The authorizations that name the institution",
)
async def institution_authorizations(
    request: Request,
    code: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> list[dict[str, Any]]:
    services = services_of(request)
    _institution_self_or_admin(principal, code)
    found = await services.access.indexed("inst-auth", code, "authorization", Authorization)
    now = now_us()
    return [authorization_out(a, now) for a in sorted(found, key=lambda a: -a.created_at_us)]


# -- disputes and statements --------------------------------------------------------------


def _dispute_target(services: Services, period_text: str, items: list[str]) -> tuple[str, str]:
    """(product, period) of a dispute; ApiError 422 for an unknown period or item."""
    product = "monthly" if Period.monthly(period_text) else None
    if product is None and Period.quarterly(period_text):
        product = "quarterly"
    if product is None:
        raise ApiError(422, "bad_period", "period must be YYYY-MM or YYYYQn")
    spec = services.products.products[product]
    disputable = {
        item.id
        for segment in spec.segments
        if segment.id not in SUBJECT_SEGMENTS
        for item in segment.items
    }
    unknown = sorted(set(items) - disputable)
    if unknown or len(set(items)) != len(items):
        raise ApiError(
            422, "bad_items", f"items must be distinct items of the {product} product: {unknown}"
        )
    return product, period_text


@router.post(
    "/v1/enterprises/{enterprise_id}/disputes",
    status_code=201,
    response_model=DisputeOut,
    summary="Dispute items of a period; answered within 20 days",
)
async def file_dispute(
    request: Request,
    enterprise_id: str,
    body: DisputeIn,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    services = services_of(request)
    _own(principal, enterprise_id)
    product, period = _dispute_target(services, body.period, body.items)
    history = history_from_fields(await services.products.fields(enterprise_id))
    command = commands.FileDispute(
        id=_new_id(),
        at_us=now_us(),
        by=principal.actor,
        dispute_id=_new_id(),
        enterprise_id=enterprise_id,
        product=product,
        period=period,
        items=tuple(body.items),
        statement=body.statement,
        providers=tuple(sorted(providers_of(history))),
    )
    entity = await services.access_log.submit(command)
    assert isinstance(entity, Dispute)
    return dispute_out(entity)


@router.get(
    "/v1/enterprises/{enterprise_id}/disputes",
    response_model=list[DisputeOut],
    summary="The enterprise's disputes, with every step",
)
async def list_disputes(
    request: Request,
    enterprise_id: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> list[dict[str, Any]]:
    services = services_of(request)
    _own(principal, enterprise_id)
    found = await services.access.indexed("ent-dispute", enterprise_id, "dispute", Dispute)
    return [dispute_out(d) for d in sorted(found, key=lambda d: -d.filed_at_us)]


@router.get(
    "/v1/institutions/{code}/disputes",
    response_model=list[DisputeOut],
    summary="Disputes about data the institution provided",
)
async def provider_disputes(
    request: Request,
    code: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> list[dict[str, Any]]:
    services = services_of(request)
    _institution_self_or_admin(principal, code)
    found = await services.access.indexed("prov-dispute", code, "dispute", Dispute)
    return [dispute_out(d) for d in sorted(found, key=lambda d: d.due_at_us)]


@router.post(
    "/v1/enterprises/{enterprise_id}/disputes/{dispute_id}/resolution",
    response_model=DisputeOut,
    summary="Answer a dispute (a provider of the enterprise's data)",
)
async def resolve_dispute(
    request: Request,
    enterprise_id: str,
    dispute_id: str,
    body: ResolutionIn,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    services = services_of(request)
    _enterprise(enterprise_id)
    institution = principal.institution
    if institution is None or not institution.has_role(Role.PROVIDER):
        raise ApiError(403, "not_a_provider", "only a provider of this enterprise's data may")
    command = commands.ResolveDispute(
        id=_new_id(),
        at_us=now_us(),
        by=principal.actor,
        enterprise_id=enterprise_id,
        dispute_id=_id(dispute_id, "dispute"),
        outcome=body.outcome,
        note=body.note,
    )
    entity = await services.access_log.submit(command)
    assert isinstance(entity, Dispute)
    return dispute_out(entity)


@router.post(
    "/v1/enterprises/{enterprise_id}/statements",
    status_code=201,
    response_model=StatementOut,
    summary="File a statement to accompany the enterprise's reports",
)
async def file_statement(
    request: Request,
    enterprise_id: str,
    body: StatementIn,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> dict[str, Any]:
    services = services_of(request)
    _own(principal, enterprise_id)
    command = commands.FileStatement(
        id=_new_id(),
        at_us=now_us(),
        by=principal.actor,
        statement_id=_new_id(),
        enterprise_id=enterprise_id,
        text=body.text,
    )
    entity = await services.access_log.submit(command)
    assert isinstance(entity, Statement)
    return statement_out(entity)


@router.get(
    "/v1/enterprises/{enterprise_id}/statements",
    response_model=list[StatementOut],
    summary="The enterprise's statements",
)
async def list_statements(
    request: Request,
    enterprise_id: str,
    principal: Principal = Caller,
    _: HTTPAuthorizationCredentials | None = Bearer,
) -> list[dict[str, Any]]:
    services = services_of(request)
    _own(principal, enterprise_id)
    found = await services.access.indexed("ent-statement", enterprise_id, "statement", Statement)
    return [statement_out(s) for s in sorted(found, key=lambda s: -s.filed_at_us)]
