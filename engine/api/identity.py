"""Who is asking: bearer tokens to principals, and the rate limits that bound abuse.

A token names its credential (engine/access/tokens.py); the credential must still exist (a
rotated or revoked one is deleted by the access stage), verify in constant time, and belong
to an active institution whose current credential it is, or to an enterprise whose current
credential it is. Anything else is 401, with the same body whatever failed.

Rate limits come from the ``limits`` library (moving windows, in this process's memory):
per institution on every request, and per client address on failed authentications, whose
window is tested before a token is even looked at. With several API processes each holds
its own windows, so the limits are per process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from engine.access import tokens
from engine.access.model import Credential, EnterpriseAccount, Institution
from engine.api.access_view import AccessView
from engine.api.errors import ApiError

__all__ = ["Authenticator", "Principal", "Throttle"]

_UNAUTHENTICATED = "a valid bearer token is required"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="creditflow"'}


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["institution", "enterprise"]
    id: str  # institution code or enterprise id
    institution: Institution | None = None

    @property
    def actor(self) -> str:
        return "enterprise" if self.kind == "enterprise" else f"institution:{self.id}"


class Authenticator:
    def __init__(self, view: AccessView, hash_key: bytes) -> None:
        self._view = view
        self._key = hash_key

    async def principal(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer`` header; ApiError 401 otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        parsed = tokens.parse(token.strip()) if scheme.lower() == "bearer" else None
        if parsed is None:
            raise ApiError(401, "unauthenticated", _UNAUTHENTICATED, _CHALLENGE)
        credential_id, secret = parsed
        credential = await self._view.get("credential", credential_id, Credential)
        if credential is None:  # or not yet again, while Redis is refilled (503 then)
            credential = await self._view.confirm_missing("credential", credential_id, Credential)
        if credential is None or not tokens.verify(self._key, credential, secret):
            raise ApiError(401, "unauthenticated", _UNAUTHENTICATED, _CHALLENGE)
        if credential.principal_kind == "institution":
            institution = await self._view.get("institution", credential.principal, Institution)
            if institution is None:
                institution = await self._view.confirm_missing(
                    "institution", credential.principal, Institution
                )
            if institution is None or not institution.active:
                raise ApiError(401, "unauthenticated", _UNAUTHENTICATED, _CHALLENGE)
            if institution.credential_id != credential.id:
                raise ApiError(401, "unauthenticated", _UNAUTHENTICATED, _CHALLENGE)
            return Principal("institution", institution.code, institution)
        account = await self._view.get("enterprise", credential.principal, EnterpriseAccount)
        if account is None or account.credential_id != credential.id:
            raise ApiError(401, "unauthenticated", _UNAUTHENTICATED, _CHALLENGE)
        return Principal("enterprise", account.enterprise_id)


class Throttle:
    def __init__(self, institution_limit: str, failure_limit: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_institution = limits.parse(institution_limit)
        self._failures = limits.parse(failure_limit)

    def before_authentication(self, address: str) -> None:
        """429 when ``address`` has used up its failed authentications."""
        if not self._limiter.test(self._failures, "auth-failure", address):
            raise self._too_many(self._failures, "auth-failure", address, "auth_failures")

    def failed(self, address: str) -> None:
        self._limiter.hit(self._failures, "auth-failure", address)

    def institution(self, code: str) -> None:
        """Count a request of ``code``; 429 once its window is full."""
        if not self._limiter.hit(self._per_institution, "institution", code):
            raise self._too_many(self._per_institution, "institution", code, "rate_limited")

    def _too_many(self, limit: limits.RateLimitItem, *keys_and_code: str) -> ApiError:
        *keys, code = keys_and_code
        reset_at = self._limiter.get_window_stats(limit, *keys).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return ApiError(
            429, code, "too many requests; retry later", {"Retry-After": str(retry_after)}
        )
