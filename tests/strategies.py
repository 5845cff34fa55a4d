"""Hypothesis strategies for transaction logs with everything the contract allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from engine.events import contract
from tests.factories import enterprise_ids

ENTERPRISES = enterprise_ids(3, seed=11)
BANKS = ("BANKA001", "BANKB002")
ACCOUNTS = ("ACC-1", "ACC-2")
# Trade partners, another enterprise, and registry ids of every class (specs/registries.toml);
# BANKA001 is one of the reporting banks (BANK_OWN when it reports, TRADE otherwise).
COUNTERPARTIES = (
    "CP-1",
    "CP-2",
    "CP-3",
    "CP-4",
    ENTERPRISES[1],
    "PAYROLL",
    "UTIL-POWER-0001",
    "UTIL-WATER-0001",
    "UTIL-GAS-0001",
    "PSP-ALIPAY-0001",
    "FIN-LEASE-0001",
    "SOCIAL-SI-0001",
    "SOCIAL-HF-0001",
    "TAX-STA-0001",
    "GOV-FIN-0001",
    "11010519491231002X",  # shaped like a resident identity number: an individual
    "BANKA001",
)
CHANNELS = ("transfer", "transfer", *sorted(contract.CHANNELS))  # transfers weigh three
_START = datetime(2024, 10, 1, tzinfo=timezone(timedelta(hours=8)))
# Oct 2024 to Feb 2026: year ends, empty months, and year-on-year bases (a firm whose first
# month is October 2024 has 2024Q4 wholly on record for 2025Q4; from November, only 2025Q1
# for 2026Q1)
_SPAN_DAYS = 517
# Month edges, where UTC and China time disagree: Nov 30, Dec 1, Dec 31 and Jan 1 of both
# years, Jan 31 and Feb 1 2026.
_EDGE_DAYS = (60, 61, 91, 92, 425, 426, 456, 457, 487, 488)


@st.composite
def base_event(draw: st.DrawFn, index: int) -> dict[str, Any]:
    enterprise = draw(st.sampled_from(ENTERPRISES))
    # Few distinct instants make ties on booked_at frequent (txn_id order decides), and the
    # days around month ends put UTC and China time in different months.
    day = draw(st.one_of(st.sampled_from(_EDGE_DAYS), st.integers(0, _SPAN_DAYS - 1)))
    when = _START + timedelta(days=day, seconds=draw(st.sampled_from((0, 57_600, 86_399))))
    utc = draw(st.booleans())
    booked_at = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if utc else when.isoformat()
    counterparty: dict[str, Any] = {
        "id": draw(st.sampled_from((*COUNTERPARTIES, enterprise))),
        "bank": draw(st.sampled_from((None, *BANKS))),
    }
    # the bank may say who the counterparty is, against the id's shape or with it
    kind = draw(st.sampled_from((None, None, "individual", "organization")))
    if kind is not None:
        counterparty["kind"] = kind
    return {
        "schema": 1,
        "txn_id": f"T{index:04d}",
        "bank": draw(st.sampled_from(BANKS)),
        "enterprise_id": enterprise,
        "account": draw(st.sampled_from(ACCOUNTS)),
        "booked_at": booked_at,
        "direction": draw(st.sampled_from(("in", "out"))),
        "amount_fen": draw(st.integers(1, 10**9)),
        "balance_after_fen": draw(st.integers(-(10**9), 10**10)),
        "channel": draw(st.sampled_from(CHANNELS)),
        "currency": draw(st.sampled_from(("CNY", "CNY", "CNY", "USD", "HKD"))),
        "counterparty": counterparty,
    }


def _reversal(original: dict[str, Any], suffix: str) -> dict[str, Any]:
    booked = datetime.fromisoformat(original["booked_at"].replace("Z", "+00:00"))
    return dict(
        original,
        txn_id=original["txn_id"] + suffix,
        direction="out" if original["direction"] == "in" else "in",
        booked_at=(booked + timedelta(hours=1)).isoformat(),
        reversal_of=original["txn_id"],
    )


@st.composite
def transaction_log(draw: st.DrawFn, max_events: int = 40) -> list[dict[str, Any]]:
    """Events in arrival order: duplicates, conflicts, reversals before and after their
    originals, reversals of reversals and second reversals, out of order and late."""
    n = draw(st.integers(1, max_events))
    originals = [draw(base_event(i)) for i in range(n)]
    events = list(originals)
    for original in originals:
        roll = draw(st.integers(0, 9))
        if roll <= 2:  # reversed (the arrival permutation puts some reversals first)
            reversal = _reversal(original, "-R")
            events.append(reversal)
            if roll == 0:  # and that reversal reversed again: rejected
                events.append(_reversal(reversal, "-RR"))
        elif roll == 3:  # two reversals of one original: the first to arrive wins
            events.append(_reversal(original, "-R1"))
            events.append(_reversal(original, "-R2"))
        elif roll == 4:  # a conflicting duplicate: other content, same (bank, txn_id)
            events.append(dict(original, amount_fen=original["amount_fen"] + 1))
    for event in draw(st.lists(st.sampled_from(events), max_size=5)):  # redeliveries
        events.append(dict(event))
    return draw(st.permutations(events))
