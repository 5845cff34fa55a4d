"""Every error the API answers is JSON: ``{"error": {"code": ..., "message": ...}}``.

``code`` is machine-readable and stable (a client may branch on it); ``message`` is for a
person. Handlers here turn the framework's own errors (unknown route, wrong method, a body
that fails validation) into the same shape, and a Redis that does not answer into a 503 the
client may retry (an outage is not a bug of the request: no traceback per request).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisClusterException, RedisError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from engine import codec
from engine.errors import BadRequestError, NotFoundError

__all__ = ["ApiError", "error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

# While Redis is away every request fails the same way: one log line per this many seconds
# says so, with how many requests it answered 503 since the last one.
_OUTAGE_LOG_EVERY_SECONDS = 10.0
_RETRY_AFTER = {"Retry-After": "1"}

_STARLETTE_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    422: "invalid_request",
}


class ApiError(Exception):
    """An answer other than success, with its status, code and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = codec.dumps({"error": {"code": code, "message": message}})
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return error_response(400, "bad_request", str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, "not_found", str(exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()[:10]
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _STARLETTE_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    outage = {"logged_at": float("-inf"), "unlogged": 0}

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        now = time.monotonic()
        if now - outage["logged_at"] >= _OUTAGE_LOG_EVERY_SECONDS:
            log.warning(
                "Redis did not answer (%s: %s); answering 503 (%d more since the last line)",
                type(exc).__name__,
                exc,
                outage["unlogged"],
            )
            outage["logged_at"], outage["unlogged"] = now, 0
        else:
            outage["unlogged"] += 1
        return error_response(
            503, "store_unavailable", "the product store is not reachable; retry", _RETRY_AFTER
        )

    async def internal(request: Request, exc: Exception) -> Response:
        # The route template, not the path: a path carries enterprise ids.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        log.error("request failed: %s %s", request.method, route, exc_info=exc)
        return error_response(500, "internal", "internal error; see the API log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(BadRequestError, bad_request)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RedisError, store_unavailable)
    # A Redis Cluster without a reachable primary for a slot (a failover under way):
    # redis-py's own exception, not a RedisError.
    app.add_exception_handler(RedisClusterException, store_unavailable)
    app.add_exception_handler(Exception, internal)
