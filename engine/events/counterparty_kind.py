"""Who a counterparty is: an organization or an individual (``counterparty.kind``).

A bank knows whether it paid a firm or a person, and says so in the optional field
``counterparty.kind``. When it does not, the kind follows from the id's shape: an id shaped
like a resident identity number (公民身份号码, GB 11643-1999: a six-digit division code, a
birth date, a sequence number and an ISO 7064 MOD 11-2 check character) is an individual's;
every other id (credit codes, registry ids, opaque account ids) is an organization's. A bank
that identifies persons by account number must send the kind: the default cannot know.

A Txn keeps the kind only where it differs from that default (None otherwise), so that events
sent before the field existed keep their content hash, and a redelivery that now spells out
the default is still the same event.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

__all__ = ["INDIVIDUAL", "KINDS", "ORGANIZATION", "effective_kind", "is_resident_id", "shape_kind"]

ORGANIZATION = "organization"
INDIVIDUAL = "individual"
KINDS = frozenset({ORGANIZATION, INDIVIDUAL})

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: the check character of each remainder


def is_resident_id(text: str) -> bool:
    """True when ``text`` has the shape of an 18-character resident identity number: 17
    digits with a real birth date (1900 to 2099) in positions 7 to 14, and a valid check
    character (a digit or X)."""
    if len(text) != 18 or not text[:17].isdigit():
        return False
    remainder = sum(int(ch) * w for ch, w in zip(text[:17], _WEIGHTS, strict=True)) % 11
    if text[17] != _CHECK[remainder]:
        return False
    year, month, day = int(text[6:10]), int(text[10:12]), int(text[12:14])
    if not 1900 <= year <= 2099:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1 << 16)
def shape_kind(cp_id: str) -> str:
    """The kind a counterparty id's shape implies (remembered: ids repeat)."""
    return INDIVIDUAL if is_resident_id(cp_id) else ORGANIZATION


def effective_kind(cp_id: str, kind: str | None) -> str:
    """The kind of a counterparty whose Txn keeps ``kind`` (None: the shape's)."""
    return shape_kind(cp_id) if kind is None else kind
