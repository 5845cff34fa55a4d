"""A throwaway lender for the demo, the benchmark and the tests: an institution with a token,
and an authorization of each enterprise it will pull.

Real deployments register institutions with `creditflow institution add` and let each
enterprise grant its own authorizations through the API. This stands in for those grants
(each recorded in the access log as made by "admin"), in one batch of commands.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.access import commands, tokens
from engine.access.model import Purpose, Role
from engine.api.access_log import AccessLog
from engine.api.access_view import AccessView
from engine.api.errors import ApiError
from engine.api.producer import AsyncProducer
from engine.errors import CreditflowError
from engine.events import kafka_admin
from engine.settings import Settings
from state.access import AccessKeys
from state.redis_client import connect_settings

__all__ = ["Lender", "authorize", "provision_lender", "revoke", "with_access_log"]

_DAY_US = 86_400_000_000
T = TypeVar("T")


@dataclass
class Lender:
    code: str
    token: str
    authorizations: dict[str, str] = field(default_factory=dict)  # enterprise -> its id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, enterprise_id: str, product: str, period: str) -> str:
        authorization = self.authorizations[enterprise_id]
        return f"/v1/enterprises/{enterprise_id}/{product}/{period}?authorization={authorization}"


def provision_lender(
    settings: Settings,
    code: str,
    enterprise_ids: Iterable[str] = (),
    name: str | None = None,
    roles: tuple[Role, ...] = (Role.PROVIDER, Role.USER),
) -> Lender:
    """Register ``code`` (by default a user and provider) and authorize it for
    ``enterprise_ids``. With ``roles=(Role.OPERATOR,)`` it stands for an operator."""
    return asyncio.run(
        _provision(settings, code, name or f"Lender {code}", list(enterprise_ids), roles)
    )


def authorize(
    settings: Settings,
    lender: Lender,
    enterprise_ids: Iterable[str],
    purpose: Purpose = Purpose.CREDIT_APPLICATION,
) -> None:
    """Authorize ``lender`` (both products, a year, for ``purpose``) for the enterprises it
    lacks."""
    missing = [e for e in dict.fromkeys(enterprise_ids) if e not in lender.authorizations]
    if missing:
        asyncio.run(with_access_log(settings, lambda log: _grant(log, lender, missing, purpose)))


def revoke(settings: Settings, lender: Lender, enterprise_id: str) -> None:
    """Revoke ``lender``'s authorization of ``enterprise_id`` (as the enterprise would)."""
    authorization_id = lender.authorizations.pop(enterprise_id)
    command = commands.RevokeAuthorization(
        **_fields(), enterprise_id=enterprise_id, authorization_id=authorization_id
    )

    async def run(log: AccessLog) -> None:
        result = (await log.submit_many([command]))[0]
        if isinstance(result, ApiError):
            raise CreditflowError(f"could not revoke: {result.message}")

    asyncio.run(with_access_log(settings, run))


async def _provision(
    settings: Settings, code: str, name: str, enterprises: list[str], roles: tuple[Role, ...]
) -> Lender:
    async def run(log: AccessLog) -> Lender:
        key = settings.token_hash_key.get_secret_value().encode()
        token, credential = tokens.issue(key, "institution", code, _now_us())
        await log.submit(
            commands.AddInstitution(
                **_fields(),
                code=code,
                name=name,
                roles=tuple(role.value for role in roles),
                credential=credential,
            )
        )
        lender = Lender(code, token)
        await _grant(log, lender, enterprises)
        return lender

    return await with_access_log(settings, run)


async def _grant(
    log: AccessLog,
    lender: Lender,
    enterprises: list[str],
    purpose: Purpose = Purpose.CREDIT_APPLICATION,
) -> None:
    for start in range(0, len(enterprises), 2000):
        chunk = enterprises[start : start + 2000]
        grants: list[commands.Command] = [
            commands.GrantAuthorization(
                **_fields(),
                authorization_id=secrets.token_hex(16),
                enterprise_id=enterprise_id,
                institution=lender.code,
                products=("monthly", "quarterly"),
                purpose=purpose.value,
                valid_until_us=_now_us() + 365 * _DAY_US,
            )
            for enterprise_id in chunk
        ]
        for command, result in zip(grants, await log.submit_many(grants), strict=True):
            if isinstance(result, ApiError):
                raise CreditflowError(f"could not authorize {lender.code}: {result.message}")
            assert isinstance(command, commands.GrantAuthorization)
            lender.authorizations[command.enterprise_id] = command.authorization_id


async def with_access_log(settings: Settings, body: Callable[[AccessLog], Awaitable[T]]) -> T:
    """``body(log)``, with an access log client that lives as long as the call."""
    if settings.kafka_bootstrap is None:
        raise CreditflowError("changing access state needs CREDITFLOW_KAFKA_BOOTSTRAP")
    kafka_admin.ensure_access_topics(
        settings.kafka_bootstrap, settings.partitions, settings.query_record_retention_days
    )
    redis = connect_settings(settings)
    producer = AsyncProducer(settings.kafka_bootstrap, settings.api_record_timeout_seconds)
    producer.start()
    try:
        view = AccessView(redis, AccessKeys(settings.redis_prefix))
        return await body(AccessLog(producer, view, max(settings.api_command_timeout_seconds, 60)))
    finally:
        producer.stop()
        await redis.aclose()


def _fields() -> dict[str, Any]:
    return {"id": secrets.token_hex(16), "at_us": _now_us(), "by": "admin"}


def _now_us() -> int:
    return time.time_ns() // 1000
