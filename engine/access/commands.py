"""The commands that change access state, and the transitions each is allowed.

Every change of access state is a command appended to the access log (one Kafka partition,
so the log orders them all); ``apply`` decides each against the state the earlier commands
left. ``apply`` is deterministic: it reads nothing but the command (which carries its own
time, ids and credential hashes) and that state, so replaying the log from the start
rebuilds exactly the same state and the same answers. Checks that depend on anything else
(the product specs, which banks provide an enterprise's data, the reciprocity setting) are
made by the API before a command is appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from engine.access.model import (
    DISPUTE_DUE_DAYS,
    INSTITUTION_CODE_RE,
    PRODUCTS,
    Authorization,
    AuthorizationStatus,
    Credential,
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    EnterpriseAccount,
    Institution,
    InstitutionStatus,
    Purpose,
    Role,
    Statement,
    Step,
)

__all__ = [
    "MAX_STATEMENT_CHARS",
    "AccessState",
    "AddInstitution",
    "Applied",
    "ApproveAuthorization",
    "Command",
    "Entity",
    "FileDispute",
    "FileStatement",
    "GrantAuthorization",
    "IssueEnterpriseToken",
    "RejectAuthorization",
    "RequestAuthorization",
    "ResolveDispute",
    "RevokeAuthorization",
    "RevokeInstitution",
    "RotateInstitutionToken",
    "apply",
    "decode_command",
    "encode_command",
    "entity_key",
    "reads",
]

MAX_STATEMENT_CHARS = 2000
_DAY_US = 86_400_000_000
_STATEMENT_RULE = f"the statement must have 1 to {MAX_STATEMENT_CHARS} characters"

Entity = Institution | Credential | EnterpriseAccount | Authorization | Dispute | Statement


class _Command(msgspec.Struct, frozen=True, tag_field="op"):
    id: str  # unique per request: the API waits for this id's answer
    at_us: int  # when it was accepted for the log: the time every rule of it uses
    by: str  # "admin", "enterprise" or "institution:<CODE>"


class AddInstitution(_Command, frozen=True, tag="institution.add"):
    code: str
    name: str
    roles: tuple[str, ...]
    credential: Credential


class RotateInstitutionToken(_Command, frozen=True, tag="institution.rotate_token"):
    code: str
    credential: Credential


class RevokeInstitution(_Command, frozen=True, tag="institution.revoke"):
    code: str


class IssueEnterpriseToken(_Command, frozen=True, tag="enterprise.issue_token"):
    enterprise_id: str
    credential: Credential


class _NewAuthorization(_Command, frozen=True):
    authorization_id: str
    enterprise_id: str
    institution: str
    products: tuple[str, ...]
    purpose: str
    valid_until_us: int


class GrantAuthorization(_NewAuthorization, frozen=True, tag="authorization.grant"):
    """The enterprise grants: active at once."""


class RequestAuthorization(_NewAuthorization, frozen=True, tag="authorization.request"):
    """An institution asks: pending until the enterprise approves or rejects it."""


class _Decision(_Command, frozen=True):
    enterprise_id: str
    authorization_id: str


class ApproveAuthorization(_Decision, frozen=True, tag="authorization.approve"):
    pass


class RejectAuthorization(_Decision, frozen=True, tag="authorization.reject"):
    pass


class RevokeAuthorization(_Decision, frozen=True, tag="authorization.revoke"):
    pass


class FileDispute(_Command, frozen=True, tag="dispute.file"):
    dispute_id: str
    enterprise_id: str
    product: str
    period: str
    items: tuple[str, ...]
    statement: str
    providers: tuple[str, ...]  # who provided the enterprise's data when it filed


class ResolveDispute(_Command, frozen=True, tag="dispute.resolve"):
    enterprise_id: str
    dispute_id: str
    outcome: str
    note: str


class FileStatement(_Command, frozen=True, tag="statement.file"):
    statement_id: str
    enterprise_id: str
    text: str


Command = (
    AddInstitution
    | RotateInstitutionToken
    | RevokeInstitution
    | IssueEnterpriseToken
    | GrantAuthorization
    | RequestAuthorization
    | ApproveAuthorization
    | RejectAuthorization
    | RevokeAuthorization
    | FileDispute
    | ResolveDispute
    | FileStatement
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Command)


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(data: bytes) -> Command:
    """Raises msgspec.ValidationError (or DecodeError) for what is not a command."""
    return _decoder.decode(data)


class AccessState(Protocol):
    """The current entities, as the commands before this one left them."""

    def institution(self, code: str) -> Institution | None: ...
    def credential(self, credential_id: str) -> Credential | None: ...
    def enterprise_account(self, enterprise_id: str) -> EnterpriseAccount | None: ...
    def authorization(self, authorization_id: str) -> Authorization | None: ...
    def dispute(self, dispute_id: str) -> Dispute | None: ...
    def statement(self, statement_id: str) -> Statement | None: ...


@dataclass(slots=True)
class Applied:
    """What a command did: the entities written and deleted, and its answer.

    ``refusal`` is (HTTP status, machine-readable code, message) when the command changed
    nothing; otherwise ``entity`` is the entity the caller asked about.
    """

    entity: Entity | None = None
    writes: list[Entity] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)  # (kind, id)
    refusal: tuple[int, str, str] | None = None


def entity_key(entity: Entity) -> tuple[str, str]:
    """(kind, id): where an entity is kept."""
    match entity:
        case Institution():
            return "institution", entity.code
        case Credential():
            return "credential", entity.id
        case EnterpriseAccount():
            return "enterprise", entity.enterprise_id
        case Authorization():
            return "authorization", entity.id
        case Dispute():
            return "dispute", entity.id
        case Statement():
            return "statement", entity.id
    raise TypeError(f"not an entity: {entity!r}")


def reads(command: Command) -> list[tuple[str, str]]:
    """The entities (kind, id) ``apply`` may read for ``command``: what to fetch first."""
    match command:
        case AddInstitution() | RotateInstitutionToken() | RevokeInstitution():
            return [("institution", command.code)]
        case IssueEnterpriseToken():
            return [("enterprise", command.enterprise_id)]
        case GrantAuthorization() | RequestAuthorization():
            return [
                ("authorization", command.authorization_id),
                ("institution", command.institution),
            ]
        case ApproveAuthorization() | RejectAuthorization() | RevokeAuthorization():
            return [("authorization", command.authorization_id)]
        case FileDispute():
            return [("dispute", command.dispute_id)]
        case ResolveDispute():
            return [("dispute", command.dispute_id)]
        case FileStatement():
            return [("statement", command.statement_id)]
    raise TypeError(f"not a command: {command!r}")


def _refuse(status: int, code: str, message: str) -> Applied:
    return Applied(refusal=(status, code, message))


def _done(entity: Entity, *more: Entity, deletes: list[tuple[str, str]] | None = None) -> Applied:
    return Applied(entity=entity, writes=[entity, *more], deletes=deletes or [])


def apply(state: AccessState, command: Command) -> Applied:
    """Decide ``command`` against ``state``; never raises for a command that decodes."""
    match command:
        case AddInstitution():
            return _add_institution(state, command)
        case RotateInstitutionToken():
            return _rotate(state, command)
        case RevokeInstitution():
            return _revoke_institution(state, command)
        case IssueEnterpriseToken():
            return _issue_enterprise_token(state, command)
        case GrantAuthorization() | RequestAuthorization():
            return _new_authorization(state, command)
        case ApproveAuthorization() | RejectAuthorization() | RevokeAuthorization():
            return _decide(state, command)
        case FileDispute():
            return _file_dispute(state, command)
        case ResolveDispute():
            return _resolve_dispute(state, command)
        case FileStatement():
            return _file_statement(state, command)
    raise TypeError(f"not a command: {command!r}")


# -- institutions and credentials ---------------------------------------------------------


def _add_institution(state: AccessState, c: AddInstitution) -> Applied:
    if not INSTITUTION_CODE_RE.match(c.code):
        return _refuse(
            422, "bad_code", f"institution code must match {INSTITUTION_CODE_RE.pattern}"
        )
    if not c.name.strip() or len(c.name) > 200:
        return _refuse(422, "bad_name", "the name must have 1 to 200 characters")
    roles = set(c.roles)
    if not roles or not roles <= {r.value for r in Role}:
        return _refuse(422, "bad_roles", f"roles must be among {', '.join(r.value for r in Role)}")
    if state.institution(c.code) is not None:
        return _refuse(409, "institution_exists", f"institution {c.code} is already registered")
    institution = Institution(
        c.code,
        c.name.strip(),
        tuple(r.value for r in Role if r.value in roles),
        InstitutionStatus.ACTIVE.value,
        c.credential.id,
        c.at_us,
        c.at_us,
    )
    return _done(institution, c.credential)


def _rotate(state: AccessState, c: RotateInstitutionToken) -> Applied:
    institution = state.institution(c.code)
    if institution is None:
        return _refuse(404, "institution_not_found", f"no institution {c.code}")
    if not institution.active:
        return _refuse(409, "institution_revoked", f"institution {c.code} is revoked")
    rotated = msgspec.structs.replace(
        institution, credential_id=c.credential.id, updated_at_us=c.at_us
    )
    old = [("credential", institution.credential_id)] if institution.credential_id else []
    return _done(rotated, c.credential, deletes=old)


def _revoke_institution(state: AccessState, c: RevokeInstitution) -> Applied:
    institution = state.institution(c.code)
    if institution is None:
        return _refuse(404, "institution_not_found", f"no institution {c.code}")
    if not institution.active:
        return _refuse(409, "institution_revoked", f"institution {c.code} is already revoked")
    revoked = msgspec.structs.replace(
        institution,
        status=InstitutionStatus.REVOKED.value,
        credential_id=None,
        updated_at_us=c.at_us,
    )
    old = [("credential", institution.credential_id)] if institution.credential_id else []
    return _done(revoked, deletes=old)


def _issue_enterprise_token(state: AccessState, c: IssueEnterpriseToken) -> Applied:
    previous = state.enterprise_account(c.enterprise_id)
    account = EnterpriseAccount(c.enterprise_id, c.credential.id, c.at_us)
    old = [("credential", previous.credential_id)] if previous is not None else []
    return _done(account, c.credential, deletes=old)


# -- authorizations -----------------------------------------------------------------------


def _new_authorization(state: AccessState, c: GrantAuthorization | RequestAuthorization) -> Applied:
    if state.authorization(c.authorization_id) is not None:
        return _refuse(409, "authorization_exists", "an authorization with this id exists")
    institution = state.institution(c.institution)
    if institution is None or not institution.active:
        return _refuse(404, "institution_not_found", f"no active institution {c.institution}")
    if not institution.has_role(Role.USER):
        return _refuse(422, "institution_not_user", f"{c.institution} has no 'user' role")
    if (
        not c.products
        or not set(c.products) <= set(PRODUCTS)
        or len(set(c.products)) != len(c.products)
    ):
        return _refuse(422, "bad_products", f"products must be distinct, among {PRODUCTS}")
    if c.purpose not in {p.value for p in Purpose}:
        return _refuse(422, "bad_purpose", f"purpose must be one of {[p.value for p in Purpose]}")
    if c.valid_until_us <= c.at_us:
        return _refuse(422, "bad_valid_until", "valid_until must be in the future")
    granted = isinstance(c, GrantAuthorization)
    status = AuthorizationStatus.ACTIVE if granted else AuthorizationStatus.PENDING
    authorization = Authorization(
        c.authorization_id,
        c.enterprise_id,
        c.institution,
        tuple(p for p in PRODUCTS if p in c.products),
        c.purpose,
        c.valid_until_us,
        status.value,
        "enterprise" if granted else "institution",
        c.at_us,
        (Step(status.value, c.at_us, c.by),),
    )
    return _done(authorization)


_DECISIONS: dict[type, tuple[AuthorizationStatus, tuple[AuthorizationStatus, ...]]] = {
    # command -> (status it leads to, statuses it may start from)
    ApproveAuthorization: (AuthorizationStatus.ACTIVE, (AuthorizationStatus.PENDING,)),
    RejectAuthorization: (AuthorizationStatus.REJECTED, (AuthorizationStatus.PENDING,)),
    RevokeAuthorization: (
        AuthorizationStatus.REVOKED,
        (AuthorizationStatus.PENDING, AuthorizationStatus.ACTIVE),
    ),
}


def _decide(
    state: AccessState, c: ApproveAuthorization | RejectAuthorization | RevokeAuthorization
) -> Applied:
    authorization = state.authorization(c.authorization_id)
    if authorization is None or authorization.enterprise_id != c.enterprise_id:
        return _refuse(404, "authorization_not_found", "no such authorization of this enterprise")
    target, sources = _DECISIONS[type(c)]
    current = authorization.status_at(c.at_us)
    if current not in sources:
        return _refuse(
            409,
            f"authorization_{current.value}",
            f"the authorization is {current.value}; it cannot become {target.value}",
        )
    decided = msgspec.structs.replace(
        authorization,
        status=target.value,
        history=(*authorization.history, Step(target.value, c.at_us, c.by)),
    )
    return _done(decided)


# -- disputes and statements --------------------------------------------------------------


def _file_dispute(state: AccessState, c: FileDispute) -> Applied:
    if state.dispute(c.dispute_id) is not None:
        return _refuse(409, "dispute_exists", "a dispute with this id exists")
    if not c.items or len(set(c.items)) != len(c.items):
        return _refuse(422, "bad_items", "items must be distinct and at least one")
    if not c.statement.strip() or len(c.statement) > MAX_STATEMENT_CHARS:
        return _refuse(
            422, "bad_statement", f"the statement must have 1 to {MAX_STATEMENT_CHARS} characters"
        )
    status = DisputeStatus.RECEIVED.value
    dispute = Dispute(
        c.dispute_id,
        c.enterprise_id,
        c.product,
        c.period,
        c.items,
        c.statement,
        status,
        c.at_us,
        c.at_us + DISPUTE_DUE_DAYS * _DAY_US,
        (Step(status, c.at_us, c.by),),
        tuple(sorted(set(c.providers))),
    )
    return _done(dispute)


def _resolve_dispute(state: AccessState, c: ResolveDispute) -> Applied:
    dispute = state.dispute(c.dispute_id)
    if dispute is None or dispute.enterprise_id != c.enterprise_id:
        return _refuse(404, "dispute_not_found", "no such dispute of this enterprise")
    if c.by not in {f"institution:{code}" for code in dispute.providers}:
        return _refuse(403, "not_a_provider", "only a provider of this enterprise's data may")
    if c.outcome not in {o.value for o in DisputeOutcome}:
        return _refuse(
            422, "bad_outcome", f"outcome must be one of {[o.value for o in DisputeOutcome]}"
        )
    if dispute.status != DisputeStatus.RECEIVED:
        return _refuse(409, "dispute_closed", f"the dispute is already {dispute.status}")
    if len(c.note) > MAX_STATEMENT_CHARS:
        return _refuse(
            422, "bad_note", f"the note may have at most {MAX_STATEMENT_CHARS} characters"
        )
    resolved = msgspec.structs.replace(
        dispute,
        status=c.outcome,
        history=(*dispute.history, Step(c.outcome, c.at_us, c.by, c.note or None)),
    )
    return _done(resolved)


def _file_statement(state: AccessState, c: FileStatement) -> Applied:
    if state.statement(c.statement_id) is not None:
        return _refuse(409, "statement_exists", "a statement with this id exists")
    if not c.text.strip() or len(c.text) > MAX_STATEMENT_CHARS:
        return _refuse(
            422, "bad_statement", f"the statement must have 1 to {MAX_STATEMENT_CHARS} characters"
        )
    return _done(Statement(c.statement_id, c.enterprise_id, c.text, c.at_us))
