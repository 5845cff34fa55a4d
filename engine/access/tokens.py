"""Bearer credentials: long random secrets, kept only as keyed hashes.

A token reads ``cf1.<credential id>.<secret>``: the id (16 random bytes, hex) finds the stored
credential, the secret (32 random bytes, URL-safe base64) proves possession. Only
HMAC-SHA256(key, secret) is stored, and it is compared with ``hmac.compare_digest``, so
neither a leaked store nor response timing gives the secret away. The secrets come from
``secrets`` (the operating system's CSPRNG); the key is ``CREDITFLOW_TOKEN_HASH_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Literal

from engine.access.model import Credential

__all__ = ["issue", "parse", "secret_hash", "verify"]

_TOKEN_RE = re.compile(r"^cf1\.([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$")


def secret_hash(key: bytes, secret: str) -> str:
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def issue(
    key: bytes,
    kind: Literal["institution", "enterprise"],
    principal: str,
    now_us: int,
) -> tuple[str, Credential]:
    """A new token (shown once, never stored) and the credential that verifies it."""
    credential_id = secrets.token_hex(16)
    secret = secrets.token_urlsafe(32)
    credential = Credential(credential_id, secret_hash(key, secret), kind, principal, now_us)
    return f"cf1.{credential_id}.{secret}", credential


def parse(token: str) -> tuple[str, str] | None:
    """(credential id, secret) of a well-formed token, else None."""
    match = _TOKEN_RE.match(token)
    return (match.group(1), match.group(2)) if match else None


def verify(key: bytes, credential: Credential, secret: str) -> bool:
    return hmac.compare_digest(credential.hash, secret_hash(key, secret))
