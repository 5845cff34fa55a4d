"""Ledger records in a compact binary form (format 1).

A ledger record holds, per transaction, what idempotence, reversals and balances need: its
status, content hash, booking time, direction, amount, balance after, account, counterparty,
the linked txn_id (its reversal, or the original it reverses), the kept event of a pending
reversal, and how it was counted (class, subtype, channel, currency, registry version), so
that a reversal removes exactly what was added whatever registry is current by then.

Decoded, a record is the list the ledger works on (positions ``STATUS`` ... ``INDIVIDUAL``);
:func:`decode` of :func:`encode` gives back every record the ledger writes, its hash cut to
what is kept (:func:`kept_hash`). Encoded::

    fixed part, little endian: how it was counted (``_KIND``, the same for every record
    of one kind), then the transaction's own numbers (``_OWN``)
        format     u8     2; any change of this layout is a new number (a migration)
        status     u8     ASCII C (counted), X (reversed), R (reversal), P (pending)
        flags      u8     1 inflow, 2 has a link, 4 has a kept event, 8 the counterparty
                          is an individual (engine/events/counterparty_kind.py)
        class      u8     index in ``CLASSES``
        subtype    u8     index in ``SUBTYPES``
        channel    u8     index in ``CHANNELS``
        currency   3s     ISO 4217 letters
        registry   u64    registry version that classified it
        hash       4s     the first 4 bytes of the content hash, raw (the first 8 of the
                   Txn's 16 lowercase hex digits; format 1 kept all 8 bytes)
        booked     i64 seconds, u32 microseconds (of booked_us: bookings are mostly
                   whole seconds, and a run of zero bytes compresses better than the
                   low bytes of a product by 10^6)
        amount     i64    fen (<= 10^15)
        balance    i64    fen after booking (within +-10^17)
        account    u16    byte length of the account (UTF-8)
        cp         u16    byte length of the counterparty id (UTF-8)
    account, counterparty id
    link         u16 byte length, then UTF-8 (when flagged)
    kept event   the rest, JSON (when flagged: only pending reversals, a rare path)

The vocabularies are append-only: a code, once written, keeps its meaning.

Why 4 bytes of hash: it only tells a redelivery (same content) from a conflicting reuse of
a txn_id, and either way the first booking stays; a conflict whose hash agrees in 32 bits
(one in 4.3 billion conflicts) is taken for a redelivery and not reported as rejected. The
4 bytes saved are 13 % of the compacted ledger (loadtest/state_size.py: 1,465 to 1,278
bytes per enterprise-month): random bytes are what compression cannot shrink.

Format 1 (8 hash bytes, otherwise the same) is still read: its records decode with their
hash cut to 4 bytes and are written in format 2 when they next change.
"""

from __future__ import annotations

import struct
from typing import Any

from engine import codec
from engine.errors import StateError
from engine.products.classify import CounterpartyClass

__all__ = [
    "ACCOUNT",
    "AMOUNT",
    "BALANCE",
    "BOOKED",
    "CHANNEL",
    "CHANNELS",
    "CLASS",
    "CLASSES",
    "COUNTED",
    "CP",
    "CURRENCY",
    "EVENT",
    "FORMAT",
    "HASH",
    "INDIVIDUAL",
    "INFLOW",
    "LINK",
    "PENDING",
    "REGISTRY",
    "REVERSAL",
    "REVERSED",
    "STATUS",
    "SUBTYPE",
    "SUBTYPES",
    "counted",
    "decode",
    "encode",
    "hash_of",
    "kept_hash",
    "kind",
]

FORMAT = 2
_FORMATS_READ = (1, 2)
# Statuses.
COUNTED = "C"  # counted in its month
REVERSED = "X"  # an original removed by its reversal
REVERSAL = "R"  # a reversal that removed its original
PENDING = "P"  # a reversal whose original has not arrived yet
# Positions in a decoded record.
(
    STATUS,
    HASH,
    BOOKED,
    INFLOW,
    AMOUNT,
    BALANCE,
    ACCOUNT,
    CP,
    LINK,
    EVENT,
    CLASS,
    SUBTYPE,
    CHANNEL,
    CURRENCY,
    REGISTRY,
    INDIVIDUAL,
) = range(16)

# Append-only code tables (engine/products/classify.py and the contract's channels; a test
# checks that they cover both).
CLASSES: tuple[str, ...] = (
    "SELF",
    "BANK_OWN",
    "FIN_PARTNER",
    "UTILITY",
    "TAX",
    "SOCIAL",
    "GOV_OTHER",
    "PSP",
    "CASH",
    "PAYROLL",
    "TRADE",
    "JUDICIAL",
)
SUBTYPES: tuple[str, ...] = (
    "",
    "power",
    "water",
    "gas",
    "heating",
    "telecom",
    "social_insurance",
    "housing_fund",
    "bank",
    "lender",
    "lessor",
    "factor",
    "guarantor",
    "investor",
    "other",
)
CHANNELS: tuple[str, ...] = (
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
)
# Decoded classes are the enum members, as classify returns them.
_CLASS_VALUES: tuple[CounterpartyClass, ...] = tuple(CounterpartyClass(c) for c in CLASSES)
_CLASS_CODES = {name: code for code, name in enumerate(CLASSES)}
_SUBTYPE_CODES = {name: code for code, name in enumerate(SUBTYPES)}
_CHANNEL_CODES = {name: code for code, name in enumerate(CHANNELS)}

_KIND = struct.Struct("<BBBBBB3sQ")
_HASH_BYTES = 4  # kept of the content hash's 8
_HASH_DIGITS = 2 * _HASH_BYTES
_OWN = struct.Struct(f"<{_HASH_BYTES}sqIqqHH")
_OWN_BY_FORMAT = {1: struct.Struct("<8sqIqqHH"), 2: _OWN}
_LINK_LENGTH = struct.Struct("<H")
_INFLOW, _HAS_LINK, _HAS_EVENT, _INDIVIDUAL = 1, 2, 4, 8
_HASH_AT = _KIND.size  # offset of the hash
_pack_own = _OWN.pack


def kept_hash(content_hash: str) -> str:
    """What a record keeps of a content hash (16 lowercase hex digits, or a decoded
    record's 8): its first 8 digits. Compare a record's hash with this."""
    kept = content_hash[:_HASH_DIGITS]
    if len(content_hash) not in (_HASH_DIGITS, 2 * _HASH_DIGITS) or not _is_lower_hex(kept):
        raise ValueError(f"content hash {content_hash!r} is not 16 lowercase hex digits")
    return kept


def _is_lower_hex(digits: str) -> bool:
    try:
        return bytes.fromhex(digits).hex() == digits
    except ValueError:
        return False


def _hash_bytes(content_hash: str) -> bytes:
    return bytes.fromhex(kept_hash(content_hash))


def kind(
    inflow: bool,
    cls: str,
    subtype: str,
    channel: str,
    currency: str,
    registry: int,
    individual: bool = False,
) -> bytes:
    """How a counted transaction was counted, encoded: the first bytes of its record, the
    same for every transaction of that kind (the ledger keeps them with its classifications)."""
    return _KIND.pack(
        FORMAT,
        ord(COUNTED),
        (_INFLOW if inflow else 0) | (_INDIVIDUAL if individual else 0),
        _CLASS_CODES[cls],
        _SUBTYPE_CODES[subtype],
        _CHANNEL_CODES[channel],
        _currency_bytes(currency),
        registry,
    )


def counted(
    prefix: bytes,
    content_hash: str,
    booked_us: int,
    amount: int,
    balance: int,
    account: str,
    cp_id: str,
) -> bytes:
    """The record of a counted transaction whose :func:`kind` is ``prefix``, without link or
    kept event (the ledger's per-event path: the same bytes as :func:`encode` of that record)."""
    account_bytes = account.encode()
    cp_bytes = cp_id.encode()
    raw_hash = bytes.fromhex(content_hash)[:_HASH_BYTES]
    if len(content_hash) != 2 * _HASH_DIGITS:  # the contract's are 16 lowercase hex digits
        raise ValueError(f"content hash {content_hash!r} is not 16 hex digits")
    seconds, micros = divmod(booked_us, 1_000_000)
    return (
        prefix
        + _pack_own(raw_hash, seconds, micros, amount, balance, len(account_bytes), len(cp_bytes))
        + account_bytes
        + cp_bytes
    )


def _currency_bytes(currency: str) -> bytes:
    raw = currency.encode("ascii")
    if len(raw) != 3:
        raise ValueError(f"currency {currency!r} is not three letters")
    return raw


def encode(record: list[Any]) -> bytes:
    """A decoded record (positions ``STATUS`` ... ``INDIVIDUAL``) as bytes."""
    account_bytes = record[ACCOUNT].encode()
    cp_bytes = record[CP].encode()
    link, event = record[LINK], record[EVENT]
    flags = (
        (_INFLOW if record[INFLOW] else 0)
        | (0 if link is None else _HAS_LINK)
        | (0 if event is None else _HAS_EVENT)
        | (_INDIVIDUAL if record[INDIVIDUAL] else 0)
    )
    seconds, micros = divmod(record[BOOKED], 1_000_000)
    parts = [
        _KIND.pack(
            FORMAT,
            ord(record[STATUS]),
            flags,
            _CLASS_CODES[record[CLASS]],
            _SUBTYPE_CODES[record[SUBTYPE]],
            _CHANNEL_CODES[record[CHANNEL]],
            _currency_bytes(record[CURRENCY]),
            record[REGISTRY],
        ),
        _pack_own(
            _hash_bytes(record[HASH]),
            seconds,
            micros,
            record[AMOUNT],
            record[BALANCE],
            len(account_bytes),
            len(cp_bytes),
        ),
        account_bytes,
        cp_bytes,
    ]
    if link is not None:
        link_bytes = link.encode()
        parts += (_LINK_LENGTH.pack(len(link_bytes)), link_bytes)
    if event is not None:
        parts.append(codec.dumps(event))
    return b"".join(parts)


def decode(raw: bytes) -> list[Any]:
    """The record :func:`encode` wrote."""
    own = _OWN_BY_FORMAT[_check_format(raw)]
    _, status, flags, cls, subtype, channel, currency, registry = _KIND.unpack_from(raw)
    raw_hash, seconds, micros, amount, balance, account_length, cp_length = own.unpack_from(
        raw, _KIND.size
    )
    at = _KIND.size + own.size
    account = raw[at : at + account_length].decode()
    at += account_length
    cp_id = raw[at : at + cp_length].decode()
    at += cp_length
    link = None
    if flags & _HAS_LINK:
        (link_length,) = _LINK_LENGTH.unpack_from(raw, at)
        at += _LINK_LENGTH.size
        link = raw[at : at + link_length].decode()
        at += link_length
    event = codec.loads(raw[at:]) if flags & _HAS_EVENT else None
    return [
        chr(status),
        raw_hash[:_HASH_BYTES].hex(),
        seconds * 1_000_000 + micros,
        bool(flags & _INFLOW),
        amount,
        balance,
        account,
        cp_id,
        link,
        event,
        _CLASS_VALUES[cls],
        SUBTYPES[subtype],
        CHANNELS[channel],
        currency.decode("ascii"),
        registry,
        bool(flags & _INDIVIDUAL),
    ]


def _check_format(raw: bytes) -> int:
    found = raw[0] if raw else None
    if found not in _FORMATS_READ:
        raise StateError(
            f"a ledger record has format {found}, not one of {_FORMATS_READ}: the state was "
            "written by another version. Delete the partition's directory under "
            "CREDITFLOW_DATA_DIR/state/ to rebuild it from the routed topic."
        )
    return found


def hash_of(raw: bytes) -> str:
    """The kept content hash of an encoded record (see :func:`kept_hash`), without
    decoding the rest."""
    _check_format(raw)
    return raw[_HASH_AT : _HASH_AT + _HASH_BYTES].hex()
