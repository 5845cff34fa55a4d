"""`creditflow institution ...` and `creditflow enterprise token`: credentials and
registrations, appended to the access log as the API's changes are.

A new token is printed once, as the last line, in a JSON object with ``token``: it is stored
nowhere but as a keyed hash.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from typing import Any

from engine import codec
from engine.access import commands, tokens
from engine.access.model import INSTITUTION_CODE_RE, Institution, Role
from engine.api.access_log import AccessLog
from engine.api.access_view import AccessView
from engine.api.errors import ApiError
from engine.errors import CreditflowError
from engine.events import credit_code, kafka_admin
from engine.events.topics import bank_topic
from engine.runtime.provision import with_access_log
from engine.settings import Settings

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    institution = sub.add_parser("institution", help="register institutions, manage tokens")
    actions = institution.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register an institution; prints its token once")
    add.add_argument("code", help="[A-Z0-9]{4,12}; a provider's code is its bank code")
    add.add_argument("--name", required=True)
    add.add_argument(
        "--role", action="append", required=True, choices=[r.value for r in Role], dest="roles"
    )
    actions.add_parser("list", help="list institutions")
    rotate = actions.add_parser("rotate-token", help="a new token; the old one stops at once")
    rotate.add_argument("code")
    revoke = actions.add_parser("revoke", help="revoke an institution and its token")
    revoke.add_argument("code")
    enterprise = sub.add_parser("enterprise", help="enterprises' own credentials")
    enterprise_actions = enterprise.add_subparsers(dest="action", required=True)
    token = enterprise_actions.add_parser(
        "token", help="issue an enterprise's own token (the last one stops working)"
    )
    token.add_argument("enterprise_id")


def run(settings: Settings, args: argparse.Namespace) -> None:
    asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> None:
    key = settings.token_hash_key.get_secret_value().encode()

    async def act(log: AccessLog) -> None:
        if args.command == "enterprise":
            await _enterprise_token(log, key, args.enterprise_id)
        elif args.action == "list":
            await _list(log.view)
        elif args.action == "add":
            await _add(settings, log, key, args)
        elif args.action == "rotate-token":
            await _rotate(log, key, args.code)
        else:
            await _revoke(log, args.code)

    try:
        await with_access_log(settings, act)
    except ApiError as exc:
        raise CreditflowError(f"{exc.code}: {exc.message}") from exc


def _now_us() -> int:
    return time.time_ns() // 1000


def _command_fields() -> dict[str, Any]:
    return {"id": secrets.token_hex(16), "at_us": _now_us(), "by": "admin"}


def _print_token(token: str, **fields: Any) -> None:
    print(codec.dumps({**fields, "token": token}).decode(), flush=True)


async def _add(settings: Settings, log: AccessLog, key: bytes, args: argparse.Namespace) -> None:
    code = args.code
    if not INSTITUTION_CODE_RE.match(code):
        raise CreditflowError(f"institution code must match {INSTITUTION_CODE_RE.pattern}")
    roles = sorted(set(args.roles))
    if settings.reciprocity_required and Role.USER in roles and Role.PROVIDER not in roles:
        raise CreditflowError(
            "a user must also be a provider (reciprocity); add --role provider, or set "
            "CREDITFLOW_RECIPROCITY_REQUIRED=false"
        )
    token, credential = tokens.issue(key, "institution", code, _now_us())
    command = commands.AddInstitution(
        **_command_fields(), code=code, name=args.name, roles=tuple(roles), credential=credential
    )
    await log.submit(command)
    if Role.PROVIDER in roles:
        assert settings.kafka_bootstrap is not None
        topic = bank_topic(code)
        kafka_admin.ensure_topics(settings.kafka_bootstrap, {topic: settings.partitions})
        print(f"institution {code} registered ({', '.join(roles)}); it publishes to {topic}")
    else:
        print(f"institution {code} registered ({', '.join(roles)})")
    print("its token is shown once, on the next line: keep it secret", file=sys.stderr)
    _print_token(token, institution=code)


async def _rotate(log: AccessLog, key: bytes, code: str) -> None:
    token, credential = tokens.issue(key, "institution", code, _now_us())
    command = commands.RotateInstitutionToken(**_command_fields(), code=code, credential=credential)
    await log.submit(command)
    print(f"institution {code}: new token issued; the old one no longer works")
    _print_token(token, institution=code)


async def _revoke(log: AccessLog, code: str) -> None:
    await log.submit(commands.RevokeInstitution(**_command_fields(), code=code))
    print(f"institution {code} revoked; its token no longer works")


async def _enterprise_token(log: AccessLog, key: bytes, enterprise_id: str) -> None:
    if not credit_code.is_valid(enterprise_id):
        raise CreditflowError("enterprise id must be an 18-character unified social credit code")
    token, credential = tokens.issue(key, "enterprise", enterprise_id, _now_us())
    command = commands.IssueEnterpriseToken(
        **_command_fields(), enterprise_id=enterprise_id, credential=credential
    )
    await log.submit(command)
    print(f"enterprise {enterprise_id}: token issued (any earlier one no longer works)")
    _print_token(token, enterprise_id=enterprise_id)


async def _list(view: AccessView) -> None:
    codes = await view.institution_codes()
    found = await view.many("institution", codes, Institution)
    print(f"{'code':<13}{'status':<9}{'roles':<36}name")
    for institution in found:
        roles = ",".join(institution.roles)
        print(f"{institution.code:<13}{institution.status:<9}{roles:<36}{institution.name}")
