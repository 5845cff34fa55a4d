"""Unified social credit codes (统一社会信用代码, GB 32100-2015).

An 18-character code: registration authority (1), entity type (1), administrative division
(6 digits), the GB 11714 organization code (8 characters and its check character), and a
final check character. Both check characters must be valid.
"""

from __future__ import annotations

import random
from functools import lru_cache

__all__ = ["generate", "is_valid", "is_valid_cached"]

# GB 32100-2015 alphabet: digits and capitals without I, O, S, V, Z.
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# GB 11714-1997: characters take their digit value, letters A=10 ... Z=35.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - 55


def _org_check(body: str) -> str:
    c = 11 - sum(_org_value(ch) * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def _uscc_check(body: str) -> str:
    c = 31 - sum(_VALUE[ch] * w for ch, w in zip(body, _USCC_WEIGHTS, strict=True)) % 31
    return _ALPHABET[0 if c == 31 else c]


def is_valid(code: str) -> bool:
    """True when ``code`` is a well-formed credit code with both check characters valid."""
    if len(code) != 18 or any(ch not in _VALUE for ch in code):
        return False
    if not code[2:8].isdigit():
        return False
    org = code[8:17]
    if _org_check(org[:8]) != org[8]:
        return False
    return _uscc_check(code[:17]) == code[17]


#: :func:`is_valid`, remembered for the most recently seen codes: banks publish and lenders
#: pull the same firms again and again. Bounded, whatever codes are sent.
is_valid_cached = lru_cache(maxsize=1 << 20)(is_valid)


def generate(rng: random.Random) -> str:
    """A synthetic but valid credit code (for generated data and tests)."""
    org_alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    while True:
        body = rng.choice("9") + rng.choice("123") + f"{rng.randrange(110000, 660000):06d}"
        org_body = "".join(rng.choice(org_alphabet) for _ in range(8))
        check = _org_check(org_body)
        if check not in _VALUE:  # an org check digit must itself be in the USCC alphabet
            continue
        first17 = body + org_body + check
        return first17 + _uscc_check(first17)
