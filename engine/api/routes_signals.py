"""Signals delivered to the institutions allowed to see them (issue 16).

An institution with the ``user`` role (and ``provider``, while reciprocity is required)
reads its feed (state/signal_feeds.py) by polling ``GET /v1/signals?since=<cursor>`` or as
server-sent events from ``GET /v1/signals/stream`` (resumable with ``Last-Event-ID``). A
signal leaves only while one of the authorizations it was fed under is still the
institution's, active and for post-loan monitoring: a revocation stops delivery at once,
also of signals already in the feed. Every delivery is recorded like a query (product
``signals``, one record per enterprise delivered), durable before the signals leave.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from engine import codec
from engine.access.model import Authorization, AuthorizationStatus, Institution, Purpose, Role
from engine.access.records import QueryRecord
from engine.api.errors import ApiError
from engine.api.identity import Principal
from engine.api.schemas import ErrorOut, SignalsOut
from engine.api.services import Services, new_request_id, now_us, principal_of, services_of
from state.signal_feeds import FeedEntry

__all__ = ["router"]

CURSOR_RE = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
_PRODUCT = "signals"
_BLOCK_MS = 10_000  # a stream waits this long for a signal before it looks again
_PING_SECONDS = 15  # keeps proxies from closing an idle stream
_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 429, 503)
}

router = APIRouter(tags=["signals"], responses=_ERRORS)


async def _subscriber(request: Request) -> tuple[Services, Institution]:
    """The calling institution, once it may receive signals at all."""
    services = services_of(request)
    principal: Principal = await principal_of(request)
    institution = principal.institution
    if institution is None:
        raise ApiError(403, "institution_required", "signals are delivered to institutions")
    if not institution.has_role(Role.USER):
        raise ApiError(403, "role_required", "receiving signals needs the 'user' role")
    if services.settings.reciprocity_required and not institution.has_role(Role.PROVIDER):
        raise ApiError(403, "reciprocity_required", "an institution using data must provide data")
    return services, institution


def _cursor(text: str | None) -> str | None:
    if text is not None and not CURSOR_RE.match(text):
        raise ApiError(400, "bad_request", "a cursor looks like 1733300000000-0")
    return text


async def _allowed(
    services: Services, institution: str, entries: list[FeedEntry]
) -> list[tuple[FeedEntry, str, Authorization]]:
    """The entries the institution may still receive, with their enterprise and the
    authorization that allows it, as of now."""
    now = now_us()
    found: list[tuple[FeedEntry, str, Authorization]] = []
    for entry in entries:
        enterprise_id = str(codec.loads(entry.signal)["enterprise_id"])
        for authorization_id in entry.authorizations:
            a = await services.access.get("authorization", authorization_id, Authorization)
            if (
                a is not None
                and a.institution == institution
                and a.enterprise_id == enterprise_id
                and a.purpose == Purpose.POST_LOAN_MONITORING
                and a.status_at(now) == AuthorizationStatus.ACTIVE
            ):
                found.append((entry, enterprise_id, a))
                break
    return found


async def _record(
    services: Services, institution: str, delivered: list[tuple[FeedEntry, str, Authorization]]
) -> None:
    """One query record per enterprise delivered, durable before the signals leave."""
    at = now_us()
    per_enterprise = {enterprise_id: a for _, enterprise_id, a in delivered}
    await asyncio.gather(
        *(
            services.recorder.confirm(
                QueryRecord(
                    new_request_id(),
                    at,
                    "institution",
                    institution,
                    enterprise_id,
                    _PRODUCT,
                    None,
                    a.id,
                    a.purpose,
                    "served",
                    200,
                )
            )
            for enterprise_id, a in sorted(per_enterprise.items())
        )
    )


@router.get(
    "/v1/signals",
    summary="Signals of the enterprises the institution monitors, oldest first",
    response_model=SignalsOut,
    response_class=Response,
)
async def signals(
    request: Request,
    since: str | None = Query(
        default=None,
        max_length=41,
        description="The `next` of the last answer; absent: from the oldest signal kept.",
    ),
    limit: int = Query(default=100, ge=1, le=1000),
) -> Response:
    services, institution = await _subscriber(request)
    after = _cursor(since)
    entries = await services.signals.read(institution.code, after, limit)
    delivered = await _allowed(services, institution.code, entries)
    if delivered:
        await _record(services, institution.code, delivered)
        services.metrics.signals_delivered.labels("poll").inc(len(delivered))
    next_cursor = entries[-1].cursor if entries else (after or "0-0")
    body = b'{"signals":[%s],"next":%s}' % (
        b",".join(entry.signal for entry, _, _ in delivered),
        codec.dumps(next_cursor),
    )
    return Response(body, media_type="application/json")


@router.get(
    "/v1/signals/stream",
    summary="Signals as server-sent events (resume with Last-Event-ID)",
    response_class=EventSourceResponse,
)
async def stream(
    request: Request,
    since: str | None = Query(
        default=None,
        max_length=41,
        description="Start after this cursor; absent (and no Last-Event-ID): new signals only.",
    ),
) -> EventSourceResponse:
    services, institution = await _subscriber(request)
    after = _cursor(request.headers.get("last-event-id") or since)
    start = after if after is not None else await services.signals.last_cursor(institution.code)
    return EventSourceResponse(
        _events(services, institution.code, start), ping=_PING_SECONDS, send_timeout=30
    )


async def _events(services: Services, institution: str, cursor: str) -> AsyncIterator[Any]:
    streams = services.metrics.signal_streams
    streams.inc()
    try:
        while True:
            entries = await services.signals.wait(institution, cursor, 100, _BLOCK_MS)
            if not entries:
                continue
            cursor = entries[-1].cursor
            member = await services.access.get("institution", institution, Institution)
            if member is None or not member.active:
                return  # revoked while streaming
            delivered = await _allowed(services, institution, entries)
            if not delivered:
                continue
            await _record(services, institution, delivered)
            services.metrics.signals_delivered.labels("stream").inc(len(delivered))
            for entry, _, _ in delivered:
                yield ServerSentEvent(data=entry.signal.decode(), id=entry.cursor, event="signal")
    finally:
        streams.dec()
