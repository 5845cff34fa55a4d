"""The vocabulary of access: roles, purposes, and the entities the access log builds.

Entities are immutable msgspec structs: a change makes a new one. They are stored as JSON in
Redis and on the access state topic, so renaming a field is a migration. Times are
microseconds since the epoch (UTC); the API shows them as RFC 3339.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

import msgspec

__all__ = [
    "DISPUTE_DUE_DAYS",
    "INSTITUTION_CODE_RE",
    "PRODUCTS",
    "Authorization",
    "AuthorizationStatus",
    "Credential",
    "Dispute",
    "DisputeOutcome",
    "DisputeStatus",
    "EnterpriseAccount",
    "Institution",
    "InstitutionStatus",
    "Purpose",
    "Role",
    "Statement",
    "Step",
]

#: Institution codes are bank codes: a provider publishes ``bank.<CODE>.txns``.
INSTITUTION_CODE_RE = re.compile(r"^[A-Z0-9]{4,12}$")
#: The products an authorization may cover.
PRODUCTS = ("monthly", "quarterly")
#: A dispute is answered in writing within this many days (DOMAIN.md, "Rules that bind").
DISPUTE_DUE_DAYS = 20


class Role(StrEnum):
    PROVIDER = "provider"  # publishes bank.<CODE>.txns; answers disputes about its data
    USER = "user"  # pulls products under authorizations
    OPERATOR = "operator"  # reads the engine's own operational data
    ADMIN = "admin"  # reads every query record


class Purpose(StrEnum):
    """The agreed purposes of a query: a closed list, as the law requires one per use."""

    CREDIT_APPLICATION = "credit_application"
    POST_LOAN_MONITORING = "post_loan_monitoring"
    GUARANTEE_REVIEW = "guarantee_review"
    SUPPLY_CHAIN_FINANCE = "supply_chain_finance"


class InstitutionStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class AuthorizationStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"  # derived: pending or active past valid_until


class DisputeStatus(StrEnum):
    RECEIVED = "received"
    CORRECTED = "corrected"
    CONFIRMED = "confirmed"
    UNRESOLVED = "unresolved"


class DisputeOutcome(StrEnum):
    CORRECTED = "corrected"  # the provider republished corrections; the mark goes
    CONFIRMED = "confirmed"  # the data stand; the mark goes
    UNRESOLVED = "unresolved"  # no agreement; the mark and the statement stay


#: Who made a change: "enterprise", "institution:<CODE>", "admin" (the command line).
Actor = str


class Step(msgspec.Struct, frozen=True):
    """One timestamped change of status, kept in the entity's history."""

    status: str
    at_us: int
    by: Actor
    note: str | None = None


class Credential(msgspec.Struct, frozen=True):
    """A bearer credential: its id (in the token) and the keyed hash of its secret."""

    id: str
    hash: str
    principal_kind: Literal["institution", "enterprise"]
    principal: str  # institution code or enterprise id
    issued_at_us: int


class Institution(msgspec.Struct, frozen=True):
    code: str
    name: str
    roles: tuple[str, ...]
    status: str
    credential_id: str | None
    created_at_us: int
    updated_at_us: int

    def has_role(self, role: Role) -> bool:
        return role.value in self.roles

    @property
    def active(self) -> bool:
        return self.status == InstitutionStatus.ACTIVE


class EnterpriseAccount(msgspec.Struct, frozen=True):
    """An enterprise's own credential (one at a time: issuing another retires the last)."""

    enterprise_id: str
    credential_id: str
    issued_at_us: int


class Authorization(msgspec.Struct, frozen=True):
    id: str
    enterprise_id: str
    institution: str
    products: tuple[str, ...]
    purpose: str
    valid_until_us: int
    status: str
    requested_by: Literal["enterprise", "institution"]
    created_at_us: int
    history: tuple[Step, ...]

    def status_at(self, now_us: int) -> AuthorizationStatus:
        """The status at ``now_us``: pending and active ones expire at valid_until."""
        status = AuthorizationStatus(self.status)
        live = status in (AuthorizationStatus.PENDING, AuthorizationStatus.ACTIVE)
        if live and now_us >= self.valid_until_us:
            return AuthorizationStatus.EXPIRED
        return status


class Dispute(msgspec.Struct, frozen=True):
    id: str
    enterprise_id: str
    product: str
    period: str
    items: tuple[str, ...]
    statement: str
    status: str
    filed_at_us: int
    due_at_us: int
    history: tuple[Step, ...]
    providers: tuple[str, ...] = ()  # the banks whose data the enterprise had when it filed

    @property
    def marks_items(self) -> bool:
        """Products mark the disputed items while the dispute is open or unresolved."""
        return self.status in (DisputeStatus.RECEIVED, DisputeStatus.UNRESOLVED)

    @property
    def answered_at_us(self) -> int | None:
        return self.history[-1].at_us if self.status != DisputeStatus.RECEIVED else None


class Statement(msgspec.Struct, frozen=True):
    """A statement the enterprise files to accompany its report."""

    id: str
    enterprise_id: str
    text: str
    filed_at_us: int
