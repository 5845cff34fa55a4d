"""The event contract: what a bank publishes, and why an event is rejected.

A message on ``bank.<CODE>.txns`` is one JSON object (one transaction) or a JSON array of
them (a batch). :func:`split_message` turns message bytes into elements,
:func:`validate` turns one element into a :class:`Txn` or an :class:`Invalid` with a reason
from the closed vocabulary :class:`RejectReason`. Both are pure and never raise on input.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from hashlib import blake2b
from typing import Any, NamedTuple

from engine import codec
from engine.events import credit_code
from engine.events.counterparty_kind import KINDS, shape_kind
from engine.periods import now_us

__all__ = [
    "CHANNELS",
    "CURRENCY_PATTERN",
    "FUTURE_SLACK_US",
    "MAX_ABS_BALANCE_FEN",
    "MAX_AMOUNT_FEN",
    "MIN_BOOKED_US",
    "Elements",
    "Invalid",
    "RejectReason",
    "Txn",
    "hash_content",
    "kept_kind",
    "parse_booked_at",
    "split_message",
    "validate",
]

SCHEMA_VERSION = 1
MAX_AMOUNT_FEN = 10**15
MAX_ABS_BALANCE_FEN = 10**17
CHANNELS = frozenset(
    {
        "transfer",
        "cash",
        "card",
        "payroll",
        "tax",
        "utility",
        "fee",
        "interest",
        "loan",
        "fx",
        "other",
        "judicial",
        "margin",
        "bill",
    }
)
MIN_BOOKED_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z: older is a clock or field error
FUTURE_SLACK_US = 24 * 3600 * 1_000_000  # a booking more than a day ahead of now is an error
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_midnights: dict[str, int | None] = {}
_UNKNOWN = -1  # no midnight is at the epoch's last microsecond


class RejectReason(StrEnum):
    """Why an event was rejected. Stable codes: dashboards and replay tools key on them."""

    MALFORMED_JSON = "malformed_json"
    BAD_TYPE = "bad_type"
    MISSING_FIELD = "missing_field"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    BAD_VALUE = "bad_value"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_ENTERPRISE_ID = "bad_enterprise_id"
    BANK_MISMATCH = "bank_mismatch"
    BAD_AMOUNT = "bad_amount"
    EMPTY_BATCH = "empty_batch"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    BAD_REVERSAL = "bad_reversal"
    TOO_OLD = "too_old"
    # Not a rule of the contract: the ledger set the event aside because applying it raised
    # again and again (a bug, or a routed row no intake wrote). Replayed once fixed.
    APPLY_FAILED = "apply_failed"


class Invalid(NamedTuple):
    reason: RejectReason
    detail: str


class Txn(NamedTuple):
    """One valid transaction, normalized. Field order is the routed wire format (v1)."""

    enterprise_id: str
    bank: str
    txn_id: str
    account: str
    booked_us: int  # epoch microseconds, UTC
    booked_at: str  # as published, kept to re-emit the event faithfully
    inflow: bool
    amount_fen: int
    currency: str
    balance_after_fen: int
    channel: str
    cp_id: str
    cp_name: str | None
    cp_bank: str | None
    cp_kind: str | None  # "organization" or "individual" where the id's shape says otherwise
    reversal_of: str | None
    content_hash: str  # over every contract field: tells a redelivery from a conflict

    def to_event(self) -> dict[str, Any]:
        """The transaction as a contract JSON object (unknown fields of the original dropped)."""
        counterparty: dict[str, Any] = {"id": self.cp_id}
        if self.cp_name is not None:
            counterparty["name"] = self.cp_name
        if self.cp_bank is not None:
            counterparty["bank"] = self.cp_bank
        if self.cp_kind is not None:
            counterparty["kind"] = self.cp_kind
        event: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "txn_id": self.txn_id,
            "bank": self.bank,
            "enterprise_id": self.enterprise_id,
            "account": self.account,
            "booked_at": self.booked_at,
            "direction": "in" if self.inflow else "out",
            "amount_fen": self.amount_fen,
            "currency": self.currency,
            "balance_after_fen": self.balance_after_fen,
            "channel": self.channel,
            "counterparty": counterparty,
        }
        if self.reversal_of is not None:
            event["reversal_of"] = self.reversal_of
        return event


class Elements(NamedTuple):
    items: list[Any]
    is_batch: bool  # the message was a JSON array (elements are then addressed by index)


def split_message(value: bytes | None) -> Elements | Invalid:
    """The elements of one bank message, or why the message as a whole is rejected."""
    if value is None:
        return Invalid(RejectReason.MALFORMED_JSON, "message has no value")
    try:
        doc = codec.loads(value)
    except codec.DecodeError as exc:
        return Invalid(RejectReason.MALFORMED_JSON, f"not valid JSON: {exc}")
    if isinstance(doc, dict):
        return Elements([doc], is_batch=False)
    if isinstance(doc, list):
        if not doc:
            return Invalid(RejectReason.EMPTY_BATCH, "a batch must hold at least one event")
        return Elements(doc, is_batch=True)
    return Invalid(RejectReason.BAD_TYPE, "a message must be a JSON object or an array of them")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _string(event: dict[str, Any], name: str, max_len: int) -> str | Invalid:
    value = event.get(name)
    if value is None:
        return Invalid(RejectReason.MISSING_FIELD, f"field {name!r} is required")
    if not isinstance(value, str):
        return Invalid(RejectReason.BAD_TYPE, f"{name!r} must be a string, got {_type_name(value)}")
    if not 1 <= len(value) <= max_len:
        return Invalid(RejectReason.BAD_VALUE, f"{name!r} must have 1 to {max_len} characters")
    return value


def _integer(event: dict[str, Any], name: str) -> int | Invalid:
    value = event.get(name)
    if value is None:
        return Invalid(RejectReason.MISSING_FIELD, f"field {name!r} is required")
    if type(value) is not int:  # bool is an int subclass and must not pass
        return Invalid(
            RejectReason.BAD_TYPE, f"{name!r} must be an integer (fen), got {_type_name(value)}"
        )
    return value


def _optional_string(obj: dict[str, Any], name: str, max_len: int) -> str | Invalid | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        return Invalid(RejectReason.BAD_TYPE, f"{name!r} must be a string, got {_type_name(value)}")
    if not 1 <= len(value) <= max_len:
        return Invalid(RejectReason.BAD_VALUE, f"{name!r} must have 1 to {max_len} characters")
    return value


def parse_booked_at(text: str, latest_us: int) -> int | Invalid:
    """``booked_at`` (RFC 3339 with an offset) in epoch microseconds, from 2000 up to
    ``latest_us``; the fast path (engine/events/fast_contract.py) reads through this too."""
    match = _RFC3339.match(text)
    if match is None:
        return Invalid(
            RejectReason.BAD_TIMESTAMP,
            "'booked_at' must be RFC 3339 with an offset, e.g. 2026-03-05T10:22:13+08:00",
        )
    date, time, frac, offset = match.groups()
    midnight_us = _midnight_us(date, "+00:00" if offset in ("Z", "z") else offset)
    hour, minute, second = int(time[0:2]), int(time[3:5]), int(time[6:8])
    if midnight_us is None or hour > 23 or minute > 59 or second > 59:
        return Invalid(RejectReason.BAD_TIMESTAMP, f"'booked_at' is not a valid time: {text!r}")
    # Sub-microsecond digits are truncated: the engine keeps microseconds.
    us = (
        midnight_us
        + ((hour * 60 + minute) * 60 + second) * 1_000_000
        + (int(frac[:6].ljust(6, "0")) if frac else 0)
    )
    if us < MIN_BOOKED_US or us > latest_us:
        return Invalid(RejectReason.BAD_TIMESTAMP, "'booked_at' is before 2000 or in the future")
    return us


def _midnight_us(date: str, offset: str) -> int | None:
    """Epoch microseconds of 00:00 of ``date`` at ``offset``; None for an impossible date.

    Cached: a bank's stream has few distinct (date, offset) pairs, and building a datetime
    per event was a tenth of the intake's time.
    """
    key = date + offset
    known = _midnights.get(key, _UNKNOWN)
    if known is _UNKNOWN:
        try:
            known = (datetime.fromisoformat(f"{date}T00:00:00{offset}") - _EPOCH) // _MICROSECOND
        except ValueError:
            known = None
        if len(_midnights) > 100_000:  # bounded: a flood of odd dates must not grow memory
            _midnights.clear()
        _midnights[key] = known
    return known


_HASH_SEED = blake2b(digest_size=8)  # copying a hash is cheaper than building one


def hash_content(
    enterprise_id: str,
    account: str,
    booked_us: int,
    inflow: bool,
    amount_fen: int,
    currency: str,
    balance_after_fen: int,
    channel: str,
    cp_id: str,
    cp_name: str | None,
    cp_bank: str | None,
    reversal_of: str | None,
    cp_kind: str | None = None,
) -> str:
    """The content hash of a transaction (:attr:`Txn.content_hash`): what tells a
    redelivery (the same hash) from a conflict. Every path that accepts an event uses this.
    ``cp_kind`` as a Txn keeps it: None (the id's shape decides) hashes as before the field
    existed, so events published earlier keep their hash."""
    fields: tuple[Any, ...] = (
        enterprise_id,
        account,
        booked_us,
        inflow,
        amount_fen,
        currency,
        balance_after_fen,
        channel,
        cp_id,
        cp_name,
        cp_bank,
        reversal_of,
    )
    digest = _HASH_SEED.copy()
    digest.update(codec.dumps(fields if cp_kind is None else (*fields, cp_kind)))
    return digest.hexdigest()


def kept_kind(cp_id: str, kind: str | None) -> str | None:
    """``counterparty.kind`` as a Txn keeps it: None where the id's shape implies it."""
    return None if kind is None or kind == shape_kind(cp_id) else kind


def validate(
    event: Any, bank: str, oldest_us: int | None = None, now: int | None = None
) -> Txn | Invalid:
    """Check one element against the contract of topic ``bank.<bank>.txns``.

    ``oldest_us``: bookings before it are outside the history the products keep (too_old).
    ``now``: the current time in epoch microseconds (taken once per batch by the caller).
    """
    if not isinstance(event, dict):
        return Invalid(
            RejectReason.BAD_TYPE, f"an event must be a JSON object, got {_type_name(event)}"
        )
    schema = _integer(event, "schema")
    if isinstance(schema, Invalid):
        return schema
    if schema != SCHEMA_VERSION:
        return Invalid(RejectReason.UNSUPPORTED_SCHEMA, f"schema {schema} is not supported (1 is)")
    txn_id = _string(event, "txn_id", 64)
    if isinstance(txn_id, Invalid):
        return txn_id
    event_bank = _string(event, "bank", 64)
    if isinstance(event_bank, Invalid):
        return event_bank
    if event_bank != bank:
        return Invalid(RejectReason.BANK_MISMATCH, "'bank' differs from the topic's bank code")
    enterprise_id = _string(event, "enterprise_id", 18)
    if isinstance(enterprise_id, Invalid):
        return enterprise_id
    if not credit_code.is_valid_cached(enterprise_id):
        return Invalid(
            RejectReason.BAD_ENTERPRISE_ID,
            "'enterprise_id' is not an 18-character credit code with valid check characters",
        )
    account = _string(event, "account", 64)
    if isinstance(account, Invalid):
        return account
    booked_at = _string(event, "booked_at", 40)
    if isinstance(booked_at, Invalid):
        return booked_at
    booked_us = parse_booked_at(booked_at, (now_us() if now is None else now) + FUTURE_SLACK_US)
    if isinstance(booked_us, Invalid):
        return booked_us
    if oldest_us is not None and booked_us < oldest_us:
        return Invalid(
            RejectReason.TOO_OLD,
            "'booked_at' is before the months of history the products keep "
            "(CREDITFLOW_HISTORY_MONTHS)",
        )
    direction = _string(event, "direction", 3)
    if isinstance(direction, Invalid):
        return direction
    if direction not in ("in", "out"):
        return Invalid(RejectReason.BAD_VALUE, '\'direction\' must be "in" or "out"')
    amount = _integer(event, "amount_fen")
    if isinstance(amount, Invalid):
        return amount
    if not 0 < amount <= MAX_AMOUNT_FEN:
        return Invalid(RejectReason.BAD_AMOUNT, "'amount_fen' must be > 0 and <= 10^15")
    currency = event.get("currency", "CNY")
    if not isinstance(currency, str) or not CURRENCY_PATTERN.match(currency):
        return Invalid(RejectReason.BAD_VALUE, "'currency' must be an ISO 4217 code such as CNY")
    balance = _integer(event, "balance_after_fen")
    if isinstance(balance, Invalid):
        return balance
    if abs(balance) > MAX_ABS_BALANCE_FEN:
        return Invalid(RejectReason.BAD_AMOUNT, "'balance_after_fen' is beyond +-10^17")
    channel = _string(event, "channel", 16)
    if isinstance(channel, Invalid):
        return channel
    if channel not in CHANNELS:
        return Invalid(RejectReason.BAD_VALUE, f"'channel' must be one of {sorted(CHANNELS)}")
    counterparty = event.get("counterparty")
    if counterparty is None:
        return Invalid(RejectReason.MISSING_FIELD, "field 'counterparty' is required")
    if not isinstance(counterparty, dict):
        return Invalid(RejectReason.BAD_TYPE, "'counterparty' must be an object")
    cp_id = _string(counterparty, "id", 64)
    if isinstance(cp_id, Invalid):
        return Invalid(cp_id.reason, cp_id.detail.replace("'id'", "'counterparty.id'"))
    cp_name = _optional_string(counterparty, "name", 256)
    if isinstance(cp_name, Invalid):
        return Invalid(cp_name.reason, cp_name.detail.replace("'name'", "'counterparty.name'"))
    cp_bank = _optional_string(counterparty, "bank", 64)
    if isinstance(cp_bank, Invalid):
        return Invalid(cp_bank.reason, cp_bank.detail.replace("'bank'", "'counterparty.bank'"))
    cp_kind = counterparty.get("kind")
    if cp_kind is not None and (not isinstance(cp_kind, str) or cp_kind not in KINDS):
        return Invalid(
            RejectReason.BAD_VALUE, '\'counterparty.kind\' must be "organization" or "individual"'
        )
    cp_kind = kept_kind(cp_id, cp_kind)
    reversal_of = _optional_string(event, "reversal_of", 64)
    if isinstance(reversal_of, Invalid):
        return reversal_of
    if reversal_of == txn_id:
        return Invalid(RejectReason.BAD_REVERSAL, "a transaction cannot reverse itself")
    inflow = direction == "in"
    content_hash = hash_content(
        enterprise_id,
        account,
        booked_us,
        inflow,
        amount,
        currency,
        balance,
        channel,
        cp_id,
        cp_name,
        cp_bank,
        reversal_of,
        cp_kind,
    )
    return Txn(
        enterprise_id,
        bank,
        txn_id,
        account,
        booked_us,
        booked_at,
        inflow,
        amount,
        currency,
        balance,
        channel,
        cp_id,
        cp_name,
        cp_bank,
        cp_kind,
        reversal_of,
        content_hash,
    )
