"""Building valid events for tests."""

from __future__ import annotations

import random
from typing import Any

from engine.events import credit_code

ENTERPRISE = "91350100M000100Y43"


def enterprise_ids(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [credit_code.generate(rng) for _ in range(n)]


def event(**overrides: Any) -> dict[str, Any]:
    """A valid event of bank BANK0001; keyword arguments replace fields."""
    base: dict[str, Any] = {
        "schema": 1,
        "txn_id": "T0001",
        "bank": "BANK0001",
        "enterprise_id": ENTERPRISE,
        "account": "6222000011112222",
        "booked_at": "2026-03-05T10:22:13+08:00",
        "direction": "in",
        "amount_fen": 12_345,
        "currency": "CNY",
        "balance_after_fen": 1_000_000,
        "channel": "transfer",
        "counterparty": {"id": "91110000600037341L", "name": "某某贸易有限公司"},
    }
    base.update(overrides)
    return base
