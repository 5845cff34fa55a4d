"""Reference, part 1: from raw events to the transactions that count, classified.

Plain Python over the events as published, in arrival order. It shares nothing with the
engine but the specs (it reads specs/registries.toml itself): a bug in the engine's contract,
classification, periods or kernels cannot hide here.

Semantics (the contract, restated):
- an event is identified by (bank, txn_id); the first to arrive stays, later ones with the
  same id are duplicates (same content) or rejected conflicts (other content);
- a reversal removes its original, whichever came first; a reversal of a reversal, and a
  second reversal of one original, are rejected; a reversal itself never counts;
- periods are calendar months and quarters in UTC+08:00;
- balances follow (booked_at, txn_id) order per account (bank, account).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

CST = timezone(timedelta(hours=8))
REGISTRY_FILE = Path(__file__).resolve().parents[2] / "specs" / "registries.toml"


def instant(booked_at: str) -> datetime:
    """The instant of an RFC 3339 timestamp (with Z or an offset), in China time."""
    text = booked_at.replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text[19:]:
        head, rest = text[:19], text[20:]
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    return datetime.fromisoformat(text).astimezone(CST)


@dataclass(frozen=True)
class Txn:
    enterprise: str
    bank: str
    txn_id: str
    account: tuple[str, str]  # (bank, account)
    when: datetime  # China time
    inflow: bool
    amount: int
    balance: int
    channel: str
    currency: str
    cp: str
    cls: str
    subtype: str
    month: int  # ordinal of the China-time month: year * 12 + month - 1
    day: date  # China-time date
    individual: bool = False  # the counterparty is a person

    @property
    def cross_border(self) -> bool:
        return self.currency != "CNY" or self.channel == "fx"


def _registry() -> dict[str, dict[str, Any]]:
    with REGISTRY_FILE.open("rb") as handle:
        return {entry["id"]: entry for entry in tomllib.load(handle)["entries"]}


def classify(
    event: Mapping[str, Any], registry: Mapping[str, Mapping[str, Any]]
) -> tuple[str, str]:
    """(class, subtype) by the rules of DOMAIN.md as engine/products/classify.py documents them."""
    cp = event["counterparty"]["id"]
    channel = event["channel"]
    bank = event["bank"]
    if cp == event["enterprise_id"]:
        return "SELF", ""
    if channel == "cash":
        return "CASH", ""
    if channel == "payroll":
        return "PAYROLL", ""
    if channel == "judicial":
        return "JUDICIAL", ""
    if cp in registry:
        entry = registry[cp]
        if entry.get("bank_code") == bank:
            return "BANK_OWN", ""
        return entry["class"], entry.get("subtype", "")
    if cp == bank or (
        event["counterparty"].get("bank") == bank
        and channel in ("loan", "interest", "fee", "margin", "bill")
    ):
        return "BANK_OWN", ""
    if channel == "tax":
        return "TAX", ""
    if channel == "utility":
        return "UTILITY", "other"
    return "TRADE", ""


def is_person(counterparty: Mapping[str, Any]) -> bool:
    """The counterparty's kind as given, else by the id's shape: a resident identity number
    (GB 11643: a birth date at positions 7 to 14 and an ISO 7064 MOD 11-2 check character,
    computed here by the standard's recursive form)."""
    if "kind" in counterparty:
        return bool(counterparty["kind"] == "individual")
    text = counterparty["id"]
    if len(text) != 18 or not text[:17].isdigit() or text[17] not in "0123456789X":
        return False
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= 2099:
        return False
    carry = 0
    for digit in text[:17]:
        carry = (carry + int(digit)) * 2 % 11
    check = (12 - carry) % 11
    return text[17] == ("X" if check == 10 else str(check))


def counted_events(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events that count, from valid events in arrival order."""
    accepted: dict[tuple[str, str], Mapping[str, Any]] = {}
    order: list[tuple[str, str]] = []
    for event in events:
        key = (event["bank"], event["txn_id"])
        if key in accepted:
            continue  # a duplicate, or a conflict that is rejected: the first stays
        accepted[key] = event
        order.append(key)
    reversed_by: dict[tuple[str, str], tuple[str, str]] = {}
    for key in order:
        event = accepted[key]
        target_id = event.get("reversal_of")
        if target_id is None:
            continue
        target_key = (event["bank"], target_id)
        target = accepted.get(target_key)
        if target is not None and target.get("reversal_of") is not None:
            continue  # reverses a reversal: rejected
        if target_key in reversed_by:
            continue  # a second reversal of the same original: rejected
        reversed_by[target_key] = key
    return [
        accepted[key]
        for key in order
        if accepted[key].get("reversal_of") is None and key not in reversed_by
    ]


def transactions(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Txn]]:
    """Counted transactions by enterprise, classified."""
    registry = _registry()
    result: dict[str, list[Txn]] = {}
    for event in counted_events(events):
        cls, subtype = classify(event, registry)
        when = instant(event["booked_at"])
        result.setdefault(event["enterprise_id"], []).append(
            Txn(
                enterprise=event["enterprise_id"],
                bank=event["bank"],
                txn_id=event["txn_id"],
                account=(event["bank"], event["account"]),
                when=when,
                inflow=event["direction"] == "in",
                amount=event["amount_fen"],
                balance=event["balance_after_fen"],
                channel=event["channel"],
                currency=event.get("currency", "CNY"),
                cp=event["counterparty"]["id"],
                cls=cls,
                subtype=subtype,
                month=when.year * 12 + when.month - 1,
                day=when.date(),
                individual=is_person(event["counterparty"]),
            )
        )
    return result
