"""The rules of access state: each command's allowed transitions, and determinism."""

from __future__ import annotations

from typing import Any

import pytest

from engine.access import commands, tokens
from engine.access.commands import Applied, Command, Entity, apply, entity_key
from engine.access.model import (
    Authorization,
    Credential,
    Dispute,
    EnterpriseAccount,
    Institution,
    Statement,
)

KEY = b"test-key"
E1, E2 = "91350100M000100Y43", "91110000MA0000001X"
DAY = 86_400_000_000
T0 = 1_790_000_000_000_000


class State:
    """A dict of entities that applies commands as the access stage does."""

    def __init__(self) -> None:
        self.entities: dict[tuple[str, str], Entity] = {}

    def _get(self, kind: str, entity_id: str, cls: type[Any]) -> Any:
        found = self.entities.get((kind, entity_id))
        return found if isinstance(found, cls) else None

    def institution(self, code: str) -> Institution | None:
        return self._get("institution", code, Institution)

    def credential(self, credential_id: str) -> Credential | None:
        return self._get("credential", credential_id, Credential)

    def enterprise_account(self, enterprise_id: str) -> EnterpriseAccount | None:
        return self._get("enterprise", enterprise_id, EnterpriseAccount)

    def authorization(self, authorization_id: str) -> Authorization | None:
        return self._get("authorization", authorization_id, Authorization)

    def dispute(self, dispute_id: str) -> Dispute | None:
        return self._get("dispute", dispute_id, Dispute)

    def statement(self, statement_id: str) -> Statement | None:
        return self._get("statement", statement_id, Statement)

    def run(self, command: Command) -> Applied:
        # Through the wire format, as the log carries it.
        applied = apply(self, commands.decode_command(commands.encode_command(command)))
        for entity in applied.writes:
            self.entities[entity_key(entity)] = entity
        for key in applied.deletes:
            self.entities.pop(key, None)
        return applied


def _credential(kind: str, principal: str) -> Credential:
    return tokens.issue(KEY, kind, principal, T0)[1]  # type: ignore[arg-type]


def add(state: State, code: str, *roles: str, at: int = T0) -> Applied:
    return state.run(
        commands.AddInstitution(
            id=f"c-add-{code}",
            at_us=at,
            by="admin",
            code=code,
            name=f"Bank {code}",
            roles=roles,
            credential=_credential("institution", code),
        )
    )


def grant(
    state: State, aid: str, enterprise: str = E1, code: str = "BANK0001", **kw: Any
) -> Applied:
    fields = {
        "id": f"c-grant-{aid}",
        "at_us": T0,
        "by": "enterprise",
        "authorization_id": aid,
        "enterprise_id": enterprise,
        "institution": code,
        "products": ("monthly",),
        "purpose": "credit_application",
        "valid_until_us": T0 + 30 * DAY,
        **kw,
    }
    return state.run(commands.GrantAuthorization(**fields))


def request(state: State, aid: str, **kw: Any) -> Applied:
    fields = {
        "id": f"c-req-{aid}",
        "at_us": T0,
        "by": "institution:BANK0001",
        "authorization_id": aid,
        "enterprise_id": E1,
        "institution": "BANK0001",
        "products": ("monthly", "quarterly"),
        "purpose": "post_loan_monitoring",
        "valid_until_us": T0 + 30 * DAY,
        **kw,
    }
    return state.run(commands.RequestAuthorization(**fields))


def decide(
    state: State, kind: type[Any], aid: str, at: int = T0 + 1, enterprise: str = E1
) -> Applied:
    return state.run(
        kind(
            id=f"c-{kind.__name__}-{aid}-{at}",
            at_us=at,
            by="enterprise",
            enterprise_id=enterprise,
            authorization_id=aid,
        )
    )


@pytest.fixture
def state() -> State:
    s = State()
    assert add(s, "BANK0001", "provider", "user").refusal is None
    return s


def test_an_institution_is_registered_once_with_valid_code_and_roles(state: State) -> None:
    assert add(state, "BANK0001", "user").refusal[:2] == (409, "institution_exists")  # type: ignore[index]
    assert add(state, "bank1", "user").refusal[1] == "bad_code"  # type: ignore[index]
    assert add(state, "BANK0002", "lender").refusal[1] == "bad_roles"  # type: ignore[index]
    assert add(state, "BANK0003").refusal[1] == "bad_roles"  # type: ignore[index]


def test_rotation_replaces_the_credential_and_revocation_removes_it(state: State) -> None:
    first = state.institution("BANK0001")
    assert first is not None and first.credential_id is not None
    new = _credential("institution", "BANK0001")
    rotated = state.run(
        commands.RotateInstitutionToken(
            id="c-rot", at_us=T0 + 5, by="admin", code="BANK0001", credential=new
        )
    )
    assert rotated.refusal is None
    assert state.credential(first.credential_id) is None
    assert state.credential(new.id) == new
    revoked = state.run(
        commands.RevokeInstitution(id="c-rev", at_us=T0 + 6, by="admin", code="BANK0001")
    )
    assert revoked.refusal is None and state.credential(new.id) is None
    assert state.institution("BANK0001").status == "revoked"  # type: ignore[union-attr]
    again = state.run(
        commands.RevokeInstitution(id="c-rev2", at_us=T0 + 7, by="admin", code="BANK0001")
    )
    assert again.refusal is not None and again.refusal[:2] == (409, "institution_revoked")


def test_a_granted_authorization_is_active_and_a_requested_one_pending(state: State) -> None:
    assert grant(state, "a" * 32).entity.status == "active"  # type: ignore[union-attr]
    assert request(state, "b" * 32).entity.status == "pending"  # type: ignore[union-attr]
    assert grant(state, "a" * 32).refusal[:2] == (409, "authorization_exists")  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"institution": "NOBANK01"}, "institution_not_found"),
        ({"products": ()}, "bad_products"),
        ({"products": ("monthly", "monthly")}, "bad_products"),
        ({"products": ("weekly",)}, "bad_products"),
        ({"purpose": "curiosity"}, "bad_purpose"),
        ({"valid_until_us": T0}, "bad_valid_until"),
    ],
)
def test_an_authorization_must_name_a_user_products_purpose_and_future(
    state: State, change: dict[str, Any], code: str
) -> None:
    applied = grant(state, "c" * 32, **change)
    assert applied.refusal is not None and applied.refusal[1] == code
    assert state.authorization("c" * 32) is None


def test_an_institution_without_the_user_role_cannot_be_authorized(state: State) -> None:
    add(state, "PROV0001", "provider")
    assert grant(state, "d" * 32, code="PROV0001").refusal[1] == "institution_not_user"  # type: ignore[index]


def test_the_lifecycle_allows_only_its_transitions(state: State) -> None:
    aid = "e" * 32
    request(state, aid)
    assert decide(state, commands.ApproveAuthorization, aid).entity.status == "active"  # type: ignore[union-attr]
    assert (
        decide(state, commands.ApproveAuthorization, aid, T0 + 2).refusal[1]
        == "authorization_active"
    )  # type: ignore[index]
    assert (
        decide(state, commands.RejectAuthorization, aid, T0 + 3).refusal[1]
        == "authorization_active"
    )  # type: ignore[index]
    revoked = decide(state, commands.RevokeAuthorization, aid, T0 + 4)
    assert revoked.entity.status == "revoked"  # type: ignore[union-attr]
    assert [s.status for s in revoked.entity.history] == ["pending", "active", "revoked"]  # type: ignore[union-attr]
    assert (
        decide(state, commands.RevokeAuthorization, aid, T0 + 5).refusal[1]
        == "authorization_revoked"
    )  # type: ignore[index]


def test_a_pending_request_cannot_be_approved_once_expired(state: State) -> None:
    aid = "f" * 32
    request(state, aid, valid_until_us=T0 + DAY)
    late = decide(state, commands.ApproveAuthorization, aid, T0 + DAY)
    assert late.refusal is not None and late.refusal[1] == "authorization_expired"
    assert state.authorization(aid).status_at(T0 + DAY).value == "expired"  # type: ignore[union-attr]


def test_another_enterprise_cannot_decide_on_an_authorization(state: State) -> None:
    aid = "9" * 32
    request(state, aid)
    other = decide(state, commands.RevokeAuthorization, aid, enterprise=E2)
    assert other.refusal is not None and other.refusal[:2] == (404, "authorization_not_found")


def _file(state: State, did: str, **kw: Any) -> Applied:
    fields = {
        "id": f"c-file-{did}",
        "at_us": T0,
        "by": "enterprise",
        "dispute_id": did,
        "enterprise_id": E1,
        "product": "monthly",
        "period": "2026-08",
        "items": ("inflow_amount_fen",),
        "statement": "This inflow was a loan, not a sale.",
        "providers": ("BANK0001",),
        **kw,
    }
    return state.run(commands.FileDispute(**fields))


def _resolve(state: State, did: str, outcome: str, by: str = "institution:BANK0001") -> Applied:
    return state.run(
        commands.ResolveDispute(
            id=f"c-res-{did}-{outcome}-{by}",
            at_us=T0 + DAY,
            by=by,
            enterprise_id=E1,
            dispute_id=did,
            outcome=outcome,
            note="checked",
        )
    )


def test_a_dispute_is_due_in_20_days_and_answered_once_by_a_provider(state: State) -> None:
    filed = _file(state, "1" * 32).entity
    assert isinstance(filed, Dispute) and filed.status == "received"
    assert filed.due_at_us == T0 + 20 * DAY and filed.marks_items
    assert (
        _resolve(state, "1" * 32, "confirmed", by="institution:OTHER001").refusal[1]
        == "not_a_provider"
    )  # type: ignore[index]
    answered = _resolve(state, "1" * 32, "unresolved").entity
    assert isinstance(answered, Dispute) and answered.marks_items
    assert [s.status for s in answered.history] == ["received", "unresolved"]
    assert _resolve(state, "1" * 32, "corrected").refusal[1] == "dispute_closed"  # type: ignore[index]


def test_a_corrected_or_confirmed_dispute_no_longer_marks(state: State) -> None:
    for did, outcome in (("2" * 32, "corrected"), ("3" * 32, "confirmed")):
        _file(state, did)
        answered = _resolve(state, did, outcome).entity
        assert isinstance(answered, Dispute) and not answered.marks_items


def test_an_enterprise_token_replaces_the_last() -> None:
    state = State()
    first, second = _credential("enterprise", E1), _credential("enterprise", E1)
    state.run(
        commands.IssueEnterpriseToken(
            id="t1", at_us=T0, by="admin", enterprise_id=E1, credential=first
        )
    )
    state.run(
        commands.IssueEnterpriseToken(
            id="t2", at_us=T0 + 1, by="admin", enterprise_id=E1, credential=second
        )
    )
    assert state.credential(first.id) is None and state.credential(second.id) == second
    assert state.enterprise_account(E1).credential_id == second.id  # type: ignore[union-attr]


def test_replaying_the_same_log_gives_the_same_state_and_answers(state: State) -> None:
    log: list[Command] = [
        commands.AddInstitution(
            id="x1",
            at_us=T0,
            by="admin",
            code="BANK0009",
            name="B9",
            roles=("user", "provider"),
            credential=_credential("institution", "BANK0009"),
        ),
        commands.GrantAuthorization(
            id="x2",
            at_us=T0,
            by="enterprise",
            authorization_id="7" * 32,
            enterprise_id=E1,
            institution="BANK0009",
            products=("monthly",),
            purpose="guarantee_review",
            valid_until_us=T0 + DAY,
        ),
        commands.RevokeAuthorization(
            id="x3", at_us=T0 + 1, by="enterprise", enterprise_id=E1, authorization_id="7" * 32
        ),
        commands.RevokeAuthorization(
            id="x4", at_us=T0 + 2, by="enterprise", enterprise_id=E1, authorization_id="7" * 32
        ),
        commands.FileStatement(
            id="x5",
            at_us=T0 + 3,
            by="enterprise",
            statement_id="8" * 32,
            enterprise_id=E1,
            text="We restructured in 2025.",
        ),
    ]
    first, second = State(), State()
    answers = [(first.run(c).refusal, second.run(c).refusal) for c in log]
    assert all(a == b for a, b in answers)
    assert answers[3][0] is not None  # the second revocation is refused, both times
    assert first.entities == second.entities


def test_tokens_verify_only_with_their_secret_and_key() -> None:
    token, credential = tokens.issue(KEY, "institution", "BANK0001", T0)
    parsed = tokens.parse(token)
    assert parsed is not None and parsed[0] == credential.id
    assert tokens.verify(KEY, credential, parsed[1])
    assert not tokens.verify(b"other-key", credential, parsed[1])
    assert not tokens.verify(
        KEY, credential, parsed[1][:-1] + ("A" if parsed[1][-1] != "A" else "B")
    )
    assert token.split(".")[2] not in credential.hash  # only the keyed hash is kept
    for bad in ("", "cf1", token + "x", token.replace("cf1", "cf2"), "Bearer " + token):
        assert tokens.parse(bad) is None
