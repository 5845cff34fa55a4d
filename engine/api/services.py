"""The parts of one API process, built once at start-up and shared by every route."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass

from fastapi import Request
from fastapi.security import HTTPBearer

from engine.api.access_log import AccessLog
from engine.api.access_view import AccessView
from engine.api.errors import ApiError
from engine.api.identity import Authenticator, Principal, Throttle
from engine.api.products import ProductService
from engine.api.recorder import QueryRecorder
from engine.metrics import ApiMetrics
from engine.settings import Settings
from state.queries import QueryIndex
from state.redis_client import RedisClient
from state.signal_feeds import SignalFeeds
from state.views import ViewStore

__all__ = [
    "Services",
    "bearer",
    "client_address",
    "new_request_id",
    "now_us",
    "principal_of",
    "services_of",
]

#: Declares the bearer scheme in the OpenAPI document; the token itself is checked by
#: :class:`Authenticator` (auto_error off: a missing token is our 401, in our error shape).
bearer = HTTPBearer(
    auto_error=False,
    description="A token from `creditflow institution add` or `creditflow enterprise token`.",
)


@dataclass(slots=True)
class Services:
    settings: Settings
    redis: RedisClient
    views: ViewStore
    access: AccessView
    access_log: AccessLog
    queries: QueryIndex
    products: ProductService
    recorder: QueryRecorder
    signals: SignalFeeds
    authenticator: Authenticator
    throttle: Throttle
    metrics: ApiMetrics


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


class _RequestIds:
    """Unique request ids (32 hex characters): a random prefix per process and a counter. A
    random id per request asked the kernel for random bytes each time (33 us here under the
    profiler)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id = _RequestIds()


def now_us() -> int:
    return time.time_ns() // 1000


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


async def principal_of(request: Request) -> Principal:
    """The caller, authenticated and within its rate limits; ApiError 401 or 429 otherwise."""
    services = services_of(request)
    address = client_address(request)
    try:
        services.throttle.before_authentication(address)
        try:
            principal = await services.authenticator.principal(request.headers.get("authorization"))
        except ApiError as exc:
            if exc.status == 401:  # not a 503 while access state is restored
                services.throttle.failed(address)
            raise
        if principal.kind == "institution":
            services.throttle.institution(principal.id)
    except ApiError as exc:
        services.metrics.refusals.labels(exc.code).inc()
        raise
    return principal
