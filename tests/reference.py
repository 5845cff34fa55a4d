"""A deliberately simple reference for the products, computed from raw events.

Plain Python over the events as published, in arrival order. It shares nothing with the
engine but the meaning of the contract: it does not import engine code, so a bug in the
engine's contract, periods or kernels cannot hide in it.

Semantics (the contract, restated):
- an event is identified by (bank, txn_id); the first to arrive stays, later ones with the
  same id are duplicates (same content) or rejected conflicts (other content);
- a reversal removes its original, whichever came first; a reversal of a reversal, and a
  second reversal of one original, are rejected; a reversal itself never counts;
- periods are calendar months and quarters in UTC+08:00;
- balances follow (booked_at, txn_id) order per account (bank, account).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

CST = timezone(timedelta(hours=8))

CONTENT_FIELDS = (
    "enterprise_id",
    "account",
    "booked_at",
    "direction",
    "amount_fen",
    "currency",
    "balance_after_fen",
    "channel",
    "counterparty",
    "reversal_of",
)


def instant(booked_at: str) -> datetime:
    """The instant of an RFC 3339 timestamp (with Z or an offset)."""
    text = booked_at.replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text[19:]:
        head, rest = text[:19], text[20:]
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    return datetime.fromisoformat(text)


def month_label(booked_at: str) -> str:
    local = instant(booked_at).astimezone(CST)
    return f"{local.year:04d}-{local.month:02d}"


def quarter_months(label: str) -> list[str]:
    year, q = int(label[:4]), int(label[-1])
    return [f"{year:04d}-{m:02d}" for m in range(3 * q - 2, 3 * q + 1)]


def _content(event: Mapping[str, Any]) -> tuple[Any, ...]:
    values = []
    for name in CONTENT_FIELDS:
        value = event.get(name)
        if name == "booked_at":
            value = instant(value)
        if name == "currency" and value is None:
            value = "CNY"
        if name == "counterparty":
            value = tuple(sorted((k, v) for k, v in value.items() if v is not None))
        values.append(value)
    return tuple(values)


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


def products(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """enterprise id -> period label ("YYYY-MM" or "YYYYQn") -> the pinned items.

    Periods are every month and quarter from the enterprise's first counted transaction
    to its last.
    """
    by_enterprise: dict[str, list[Mapping[str, Any]]] = {}
    for event in counted_events(events):
        by_enterprise.setdefault(event["enterprise_id"], []).append(event)
    result: dict[str, dict[str, dict[str, int]]] = {}
    for enterprise_id, txns in by_enterprise.items():
        months = sorted({month_label(t["booked_at"]) for t in txns})
        labels = _month_range(months[0], months[-1])
        periods: dict[str, dict[str, int]] = {}
        for label in labels:
            periods[label] = _items(enterprise_id, txns, [label])
        for quarter in sorted({f"{m[:4]}Q{(int(m[5:]) - 1) // 3 + 1}" for m in labels}):
            periods[quarter] = _items(enterprise_id, txns, quarter_months(quarter))
        result[enterprise_id] = periods
    return result


def _month_range(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:])
    labels = []
    while f"{year:04d}-{month:02d}" <= last:
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return labels


def _items(enterprise_id: str, txns: list[Mapping[str, Any]], months: list[str]) -> dict[str, int]:
    inside = [t for t in txns if month_label(t["booked_at"]) in months]
    inflow = [t for t in inside if t["direction"] == "in"]
    outflow = [t for t in inside if t["direction"] == "out"]
    end = _month_end(months[-1])
    last: dict[tuple[str, str], tuple[datetime, str, int]] = {}
    for t in txns:
        when = instant(t["booked_at"])
        if when > end:
            continue
        account = (t["bank"], t["account"])
        candidate = (when, t["txn_id"], t["balance_after_fen"])
        if account not in last or candidate[:2] > last[account][:2]:
            last[account] = candidate
    return {
        "inflow_amount_fen": sum(t["amount_fen"] for t in inflow),
        "inflow_count": len(inflow),
        "outflow_amount_fen": sum(t["amount_fen"] for t in outflow),
        "outflow_count": len(outflow),
        "net_flow_fen": sum(t["amount_fen"] for t in inflow)
        - sum(t["amount_fen"] for t in outflow),
        "distinct_counterparties": len(
            {t["counterparty"]["id"] for t in inside if t["counterparty"]["id"] != enterprise_id}
        ),
        "closing_balance_fen": sum(balance for _, _, balance in last.values()),
    }


def _month_end(label: str) -> datetime:
    year, month = int(label[:4]), int(label[5:])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=CST) - timedelta(microseconds=1)
