"""Keyed pseudonyms for counterparty and account ids.

Aggregates and Redis views never hold a counterparty id or account number, only this keyed
hash of it: distinct counts and unions still work, and nobody without the key can test a
guessed credit code against a view.
"""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["Pseudonymizer"]


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        self._key = key[:64]
        self._cache: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        """16 hex characters (64 bits) standing for ``value``."""
        known = self._cache.get(value)
        if known is None:
            known = blake2b(value.encode(), digest_size=8, key=self._key).hexdigest()
            if len(self._cache) > 500_000:
                self._cache.clear()
            self._cache[value] = known
        return known
