"""Small, deterministic transaction logs, one per edge the products must read right.

Each scenario is a log in arrival order, the pull's clock (``as_of``), the kept history
(``history_months``, as CREDITFLOW_HISTORY_MONTHS) and the periods to compare. Balances are
each account's running balance in booking order, as a bank would report them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from loadtest.generator import GeneratorConfig, generate
from tests.factories import enterprise_ids

__all__ = ["SCENARIOS", "Episode", "Scenario"]

CST = timezone(timedelta(hours=8))
ENTERPRISES = enterprise_ids(8, seed=15)
BANK = "ICBC0001"  # listed in the registry with its bank_code: BANK_OWN when it reports
OTHER_BANK = "BOC00004"  # not listed: BANK_OWN only by its code or the counterparty's bank


# (rule, the day it opened, the day it closed or None while open): a signal episode as the
# workers keep it (state/signals.py), the input of the quarterly's signal items
Episode = tuple[str, date, date | None]


@dataclass(frozen=True)
class Scenario:
    name: str
    log: list[dict[str, Any]]
    as_of: datetime
    labels: tuple[str, ...]  # the periods compared
    history_months: int = 36
    # registry reloads: (the arrival index from which it classifies, the registries document
    # as specs/registries.toml holds it); before the first, specs/registries.toml's
    registries: tuple[tuple[int, dict[str, Any]], ...] = ()
    episodes: dict[str, list[Episode]] = field(default_factory=dict)  # by enterprise


@dataclass
class _Log:
    enterprise: str
    opening: dict[tuple[str, str], int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        when: str,
        direction: str,
        amount: int,
        cp: str,
        channel: str = "transfer",
        *,
        bank: str = BANK,
        account: str = "ACC-1",
        currency: str | None = None,
        cp_bank: str | None = None,
        utc: bool = False,
        kind: str | None = None,
    ) -> dict[str, Any]:
        """An original booked at ``when`` (China time, "YYYY-MM-DD HH:MM")."""
        instant = datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=CST)
        booked_at = (
            instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if utc else instant.isoformat()
        )
        counterparty: dict[str, Any] = {"id": cp}
        if cp_bank is not None:
            counterparty["bank"] = cp_bank
        if kind is not None:
            counterparty["kind"] = kind
        event: dict[str, Any] = {
            "schema": 1,
            "txn_id": f"{self.enterprise[-4:]}-{len(self.events):04d}",
            "bank": bank,
            "enterprise_id": self.enterprise,
            "account": account,
            "booked_at": booked_at,
            "direction": direction,
            "amount_fen": amount,
            "balance_after_fen": 0,
            "channel": channel,
            "counterparty": counterparty,
        }
        if currency is not None:
            event["currency"] = currency
        self.events.append(event)
        return event

    def balanced(self) -> list[dict[str, Any]]:
        """The events with each account's running balance, in booking order."""
        running: dict[tuple[str, str], int] = dict(self.opening)

        def order(e: dict[str, Any]) -> tuple[datetime, str]:
            return datetime.fromisoformat(e["booked_at"].replace("Z", "+00:00")), e["txn_id"]

        for e in sorted((e for e in self.events if "reversal_of" not in e), key=order):
            key = (e["bank"], e["account"])
            sign = 1 if e["direction"] == "in" else -1
            running[key] = running.get(key, 0) + sign * e["amount_fen"]
            e["balance_after_fen"] = running[key]
        return self.events


def reversal(original: dict[str, Any], suffix: str = "-R", hours: int = 2) -> dict[str, Any]:
    booked = datetime.fromisoformat(original["booked_at"].replace("Z", "+00:00"))
    return dict(
        original,
        txn_id=original["txn_id"] + suffix,
        direction="out" if original["direction"] == "in" else "in",
        booked_at=(booked + timedelta(hours=hours)).isoformat(),
        reversal_of=original["txn_id"],
    )


def _months(first: str, last: str) -> tuple[str, ...]:
    y, m = map(int, first.split("-"))
    labels = []
    while f"{y:04d}-{m:02d}" <= last:
        labels.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return tuple(labels)


def every_class_and_channel() -> Scenario:
    """Three full months with every class, subtype, channel and cross-border case."""
    ent = ENTERPRISES[0]
    log = _Log(ent, {(BANK, "ACC-1"): 5_000_000, (BANK, "ACC-2"): 200_000})
    for month, scale in ((10, 1), (11, 2), (12, 3)):
        d = f"2025-{month:02d}"
        for i, amount in enumerate((900, 700, 500, 300, 200, 100, 50)):  # seven customers
            log.add(f"{d}-0{i + 1} 10:00", "in", amount * 1000 * scale, f"CUST-{i}")
        log.add(f"{d}-03 11:00", "in", 40_000, "CUST-0", account="ACC-2")
        for i, amount in enumerate((600, 400, 100)):  # three suppliers
            log.add(f"{d}-1{i} 09:00", "out", amount * 1000 * scale, f"SUPP-{i}")
        log.add(f"{d}-12 09:30", "in", 50_000, "SUPP-2")  # a supplier that also pays a bit
        log.add(f"{d}-12 09:40", "out", 70_000, "CUST-6")  # pays more than it is paid
        log.add(f"{d}-13 10:00", "out", 30_000, "11010519491231002X")  # a person
        log.add(f"{d}-14 10:00", "in", 300_000, "PSP-ALIPAY-0001")
        log.add(f"{d}-14 11:00", "in", 120_000, "PSP-TENPAY-0001", channel="card")
        log.add(f"{d}-14 12:00", "out", 8_000, "PSP-TENPAY-0001")
        log.add(f"{d}-15 10:00", "in", 250_000, "CASH-COUNTER", channel="cash")
        log.add(f"{d}-15 15:00", "out", 90_000, "ATM", channel="cash", account="ACC-2")
        log.add(f"{d}-25 10:00", "out", 800_000, "PAYROLL-BATCH", channel="payroll")
        log.add(f"{d}-16 10:00", "out", 66_000, "JUD-ENFORCE-0001", channel="judicial")
        log.add(f"{d}-16 11:00", "out", 11_000, "JUD-ENFORCE-0001")  # registry: JUDICIAL
        log.add(f"{d}-17 10:00", "in", 700_000, ent, bank=OTHER_BANK, account="ACC-9")
        log.add(f"{d}-17 10:05", "out", 650_000, ent, channel="cash")  # SELF before CASH
        for i, util in enumerate(("POWER", "WATER", "GAS", "HEAT", "TELECOM")):
            log.add(f"{d}-18 0{i}:00", "out", (i + 1) * 10_000, f"UTIL-{util}-0001")
        log.add(f"{d}-18 08:00", "out", 7_000, "SOME-UTILITY", channel="utility")
        log.add(f"{d}-18 09:00", "in", 1_000, "UTIL-POWER-0001")  # a refund: not paid
        log.add(f"{d}-19 10:00", "out", 120_000, "TAX-STA-0001")
        log.add(f"{d}-19 11:00", "in", 20_000, "TREASURY-0001")
        log.add(f"{d}-19 12:00", "out", 5_000, "LOCAL-TAX-OFFICE", channel="tax")
        log.add(f"{d}-20 10:00", "out", 80_000, "SOCIAL-SI-0001")
        log.add(f"{d}-20 11:00", "out", 30_000, "SOCIAL-HF-0001")
        log.add(f"{d}-21 10:00", "in", 100_000, "GOV-FIN-0001")
        log.add(f"{d}-21 11:00", "out", 3_000, "GOV-COURT-0001")
        log.add(f"{d}-22 10:00", "out", 45_000, "FIN-LEASE-0001")
        log.add(f"{d}-22 11:00", "in", 500_000, "FIN-LOAN-0001", channel="loan")
        log.add(f"{d}-22 12:00", "in", 150_000, "FIN-FACTOR-0001")
        log.add(f"{d}-22 13:00", "out", 4_000, "FIN-GUAR-0001", channel="fee")
        log.add(f"{d}-22 15:00", "in", 2_000_000, "FIN-EQUITY-0001")  # equity, not debt
        log.add(f"{d}-22 16:00", "out", 60_000, "FIN-EQUITY-0001")  # a dividend
        log.add(f"{d}-22 14:00", "in", 300_000, "CCB00002", channel="loan")  # another bank
        log.add(f"{d}-23 10:00", "in", 1_000_000, BANK, channel="loan")
        log.add(f"{d}-23 11:00", "out", 200_000, BANK, channel="loan")
        log.add(f"{d}-23 12:00", "out", 9_000, BANK, channel="interest")
        log.add(f"{d}-23 13:00", "in", 300, BANK, channel="interest")
        log.add(f"{d}-23 14:00", "out", 1_500, BANK, channel="fee")
        log.add(f"{d}-23 15:00", "in", 2_000, BANK)  # BANK_OWN, channel transfer
        log.add(f"{d}-24 10:00", "out", 700, "BANK-DESK", channel="fee", cp_bank=BANK)
        log.add(f"{d}-24 11:00", "out", 12_000, "CP-AT-BANK", cp_bank=BANK)  # TRADE
        log.add(f"{d}-24 12:00", "in", 3_000, OTHER_BANK, bank=OTHER_BANK, account="ACC-9")
        log.add(f"{d}-24 13:00", "out", 800, "LOAN-SHOP", channel="interest", cp_bank="X")
        log.add(f"{d}-24 14:00", "out", 90_000, BANK, channel="margin")
        log.add(f"{d}-24 15:00", "out", 250_000, "BILL-DESK", channel="bill", cp_bank=BANK)
        log.add(f"{d}-26 10:00", "in", 400_000, "FOREIGN-BUYER", currency="USD")
        log.add(f"{d}-26 11:00", "out", 90_000, "HK-SUPPLIER", currency="HKD")
        log.add(f"{d}-26 12:00", "out", 60_000, "FX-DESK", channel="fx", currency="CNY")
        log.add(f"{d}-27 10:00", "in", 5_000, "OTHER-CP", channel="other")
        # month edges: 23:30 UTC on the last day is the next China-time day
        log.add(f"{d}-28 23:30", "in", 77_000, "CUST-1", utc=True)
        log.add(f"{d}-01 00:10", "out", 1_000, "CUST-2", utc=True)
    return Scenario(
        "every_class_and_channel",
        log.balanced(),
        datetime(2026, 1, 15, 12, tzinfo=CST),
        (*_months("2025-10", "2025-12"), "2025Q4"),
    )


def reversals_duplicates_late() -> Scenario:
    """Reversals before and after their originals, rejected reversals, redeliveries,
    conflicting duplicates and events months late, all in one quarter."""
    ent = ENTERPRISES[1]
    log = _Log(ent, {(BANK, "ACC-1"): 1_000_000})
    a = log.add("2025-10-05 10:00", "in", 300_000, "CUST-A")
    b = log.add("2025-10-05 18:00", "out", 120_000, "SUPP-A")  # last of its day, reversed
    c = log.add("2025-11-10 10:00", "in", 500_000, "CUST-B")
    d = log.add("2025-11-12 10:00", "out", 50_000, "UTIL-POWER-0001")
    e = log.add("2025-12-01 10:00", "in", 80_000, "CUST-A")
    f = log.add("2025-12-20 10:00", "out", 900_000, "SUPP-B")
    g = log.add("2025-12-21 10:00", "in", 40_000, "CUST-C")
    late = log.add("2025-10-20 10:00", "in", 60_000, "CUST-C")  # arrives in January
    events = log.balanced()
    rb, rc, rd = reversal(b), reversal(c), reversal(d, "-R1")
    arrival = [
        rc,  # a reversal before its original
        a,
        b,
        rb,  # after its original
        reversal(rb, "-RR"),  # a reversal of a reversal: rejected
        c,
        d,
        rd,
        reversal(d, "-R2"),  # a second reversal: rejected
        dict(a),  # redelivered
        e,
        dict(e, amount_fen=e["amount_fen"] + 1),  # conflicting duplicate: the first stays
        reversal(e, "-RX", hours=48),  # reversal booked later, in another period: both go
        f,
        g,
        dict(rb),
        late,  # months late
        dict(late),
    ]
    assert {x["txn_id"] for x in events} <= {x["txn_id"] for x in arrival}
    return Scenario(
        "reversals_duplicates_late",
        arrival,
        datetime(2026, 1, 15, 12, tzinfo=CST),
        (*_months("2025-10", "2025-12"), "2025Q4"),
    )


def _steady(log: _Log, first: str, last: str, account: str = "ACC-1", bank: str = BANK) -> None:
    """A small firm's usual month, every month from ``first`` to ``last``."""
    for n, label in enumerate(_months(first, last)):
        log.add(
            f"{label}-05 10:00", "in", 400_000 + n * 10_000, "CUST-A", bank=bank, account=account
        )
        log.add(f"{label}-12 10:00", "in", 150_000, "PSP-ALIPAY-0001", bank=bank, account=account)
        log.add(f"{label}-15 10:00", "out", 250_000, "SUPP-A", bank=bank, account=account)
        log.add(f"{label}-18 10:00", "out", 30_000, "UTIL-POWER-0001", bank=bank, account=account)
        log.add(f"{label}-20 10:00", "out", 40_000, "TAX-STA-0001", bank=bank, account=account)


def young_firm() -> Scenario:
    """A firm whose first transaction is on 20 November 2025."""
    log = _Log(ENTERPRISES[2])
    log.add("2025-11-20 10:00", "in", 1_000_000, ENTERPRISES[2], bank=OTHER_BANK)
    _steady(log, "2025-12", "2026-03")
    return Scenario(
        "young_firm",
        log.balanced(),
        datetime(2026, 4, 1, 0, 0, tzinfo=CST),
        (*_months("2025-11", "2026-03"), "2025Q4", "2026Q1"),
    )


def partial_periods() -> Scenario:
    """A pull on 14 February 2026 at noon: February and the first quarter are not over."""
    log = _Log(ENTERPRISES[3], {(BANK, "ACC-1"): 20_000})
    _steady(log, "2025-07", "2026-01")
    log.add("2026-02-03 10:00", "in", 90_000, "CUST-A")
    log.add("2026-02-10 10:00", "out", 2_500_000, "SUPP-A")  # overdrawn from the 10th
    log.add("2026-02-14 09:00", "in", 10_000, "PSP-ALIPAY-0001")
    return Scenario(
        "partial_periods",
        log.balanced(),
        datetime(2026, 2, 14, 12, 0, tzinfo=CST),
        ("2026-01", "2026-02", "2025Q4", "2026Q1"),
    )


def after_last_transaction() -> Scenario:
    """The last transaction in April 2025; a pull on 1 January 2026 names every later
    month and quarter."""
    log = _Log(ENTERPRISES[4], {(BANK, "ACC-1"): 3_000_000})
    _steady(log, "2025-01", "2025-04")
    return Scenario(
        "after_last_transaction",
        log.balanced(),
        datetime(2026, 1, 1, 0, 0, tzinfo=CST),
        (*_months("2025-05", "2025-12"), "2025Q2", "2025Q3", "2025Q4"),
    )


def dormant_account() -> Scenario:
    """Two accounts; the second's last transaction is in January 2025, its balance stays."""
    log = _Log(ENTERPRISES[5], {(BANK, "ACC-1"): 100_000, (OTHER_BANK, "SAVE-1"): 0})
    log.add("2025-01-08 10:00", "in", 8_000_000, ENTERPRISES[5], bank=OTHER_BANK, account="SAVE-1")
    _steady(log, "2025-01", "2025-12")
    return Scenario(
        "dormant_account",
        log.balanced(),
        datetime(2026, 1, 1, 0, 0, tzinfo=CST),
        (*_months("2025-01", "2025-12"), "2025Q1", "2025Q2", "2025Q3", "2025Q4"),
    )


def pruned_history() -> Scenario:
    """Six months kept (CREDITFLOW_HISTORY_MONTHS=6) at a pull on 10 March 2026: from
    October 2025. The firm began in March 2025; an account at another bank went dormant in
    June 2025 with money on it. Every event arrived in time and was pruned later."""
    ent = ENTERPRISES[6]
    log = _Log(ent, {(BANK, "ACC-1"): -2_200_000, (OTHER_BANK, "SAVE-1"): 0})
    log.add("2025-03-03 10:00", "in", 2_000_000, "CUST-A", bank=OTHER_BANK, account="SAVE-1")
    log.add("2025-06-30 10:00", "out", 500_000, ent, bank=OTHER_BANK, account="SAVE-1")
    _steady(log, "2025-03", "2026-02")
    return Scenario(
        "pruned_history",
        log.balanced(),
        datetime(2026, 3, 10, 12, 0, tzinfo=CST),
        (*_months("2025-10", "2026-02"), "2025Q4"),
        history_months=6,
    )


def pruned_mid_quarter() -> Scenario:
    """Six months kept at a pull on 10 February 2026: from September 2025, in the middle of
    the third quarter, which a lender can still pull."""
    log = _Log(ENTERPRISES[6], {(BANK, "ACC-1"): 5_000_000})
    _steady(log, "2025-03", "2026-01")
    return Scenario(
        "pruned_mid_quarter",
        log.balanced(),
        datetime(2026, 2, 10, 12, 0, tzinfo=CST),
        ("2025-09", "2025Q3"),
        history_months=6,
    )


def instants_and_ties() -> Scenario:
    """Bookings at one instant (txn_id decides, in string order: T10 before T9), fractional
    seconds, offsets other than +08:00 and Z at a month's edge, a counterparty that pays and
    is paid the same, and the order of the classification rules where two could apply."""
    ent = ENTERPRISES[3]

    def ev(
        txn_id: str, booked_at: str, direction: str = "in", cp: str = "CP-1", **more: Any
    ) -> dict[str, Any]:
        return {
            "schema": 1,
            "txn_id": txn_id,
            "bank": BANK,
            "enterprise_id": ent,
            "account": "ACC-1",
            "booked_at": booked_at,
            "direction": direction,
            "amount_fen": more.pop("amount", 1_000),
            "balance_after_fen": more.pop("balance", 0),
            "channel": more.pop("channel", "transfer"),
            "counterparty": {"id": cp, **more},
        }

    log = [
        ev("T9", "2025-10-05T10:00:00+08:00", balance=100),
        ev("T10", "2025-10-05T10:00:00+08:00", balance=200),
        ev("A2", "2025-10-06T10:00:00.5+08:00", balance=300),
        ev("A1", "2025-10-06T10:00:00.75+08:00", balance=400),
        ev("B1", "2025-10-31T20:00:00+05:30", balance=500),  # 22:30 on 31 October, China time
        ev("B2", "2025-10-31T18:00:00-08:00", balance=600),  # 10:00 on 1 November
        ev("C1", "2025-10-07T10:00:00+08:00", cp="CP-EVEN", amount=5_000),
        ev("C2", "2025-10-08T10:00:00+08:00", "out", cp="CP-EVEN", amount=5_000),
        ev("X1", "2025-10-09T10:00:00Z", cp="UTIL-WATER-0001", channel="loan", bank=BANK),
        ev("X2", "2025-10-09T11:00:00+08:00", "out", cp=ent, channel="judicial"),
        ev("X3", "2025-10-09T12:00:00+08:00", "out", cp=BANK, channel="cash"),
        ev("X4", "2025-10-09T13:00:00+08:00", "out", cp="PSP-ALIPAY-0001", channel="payroll"),
        ev("X5", "2025-10-09T14:00:00+08:00", "out", cp="UTIL-POWER-0001", channel="tax"),
    ]
    return Scenario(
        "instants_and_ties",
        log,
        datetime(2026, 1, 1, tzinfo=CST),
        ("2025-10", "2025-11", "2025Q4"),
    )


def quarters_of_trade() -> Scenario:
    """Six quarters in which customers, suppliers and financing partners come and go, a
    quarter's inflow spikes and the next one collapses, utilities and tax stop and resume,
    and money leaves the day it came in."""
    log = _Log(ENTERPRISES[7], {(BANK, "ACC-1"): 2_000_000})
    months = _months("2024-10", "2026-03")
    for n, label in enumerate(months):
        for i in range(4):  # a changing cast of customers and suppliers
            cust = f"CUST-{(n // 3 + i) % 7}"
            log.add(f"{label}-0{i + 2} 10:00", "in", (i + 1) * 100_000 + n * 7_000, cust)
            if (n + i) % 3:
                log.add(f"{label}-1{i} 10:00", "out", (i + 2) * 60_000, f"SUPP-{(n + i) % 5}")
        if n in (9, 10):  # a spike, then the money goes out the same day
            log.add(f"{label}-20 09:00", "in", 9_000_000, "CUST-BIG")
            log.add(f"{label}-20 15:00", "out", 9_000_000, "SUPP-BIG")
        if n in (12, 13, 14):  # a quarter with almost no operating inflow
            log.add(f"{label}-25 10:00", "in", 2_000, "PSP-TENPAY-0001")
        if n % 4 != 3 and n not in (6, 7):  # utilities with gaps
            log.add(f"{label}-18 10:00", "out", 20_000 + n * 500, "UTIL-GAS-0001")
        if n % 3 == 0 and n < 9:
            log.add(f"{label}-15 10:00", "out", 90_000, "TREASURY-0001")
        if n % 2 == 0:
            log.add(f"{label}-25 15:00", "out", 10_000, "SOCIAL-HF-0001")
            log.add(f"{label}-26 10:00", "out", 300_000, "PAYROLL", channel="payroll")
        if n == 4:
            log.add(f"{label}-08 10:00", "in", 2_000_000, BANK, channel="loan")
        if n > 4:
            log.add(f"{label}-08 10:00", "out", 180_000, BANK, channel="loan")
            log.add(f"{label}-08 10:05", "out", 9_000, BANK, channel="interest")
        if n in (8, 15):  # a new financing partner, and one seen again after a year
            log.add(f"{label}-11 10:00", "in", 700_000, "FIN-LOAN-0001", channel="loan")
        if n == 16:
            log.add(f"{label}-11 10:00", "in", 400_000, "FIN-FACTOR-0001")
        if n in (3, 11):
            log.add(f"{label}-09 10:00", "in", 250_000, ENTERPRISES[7], account="ACC-2")
    return Scenario(
        "quarters_of_trade",
        log.balanced(),
        datetime(2026, 4, 1, 0, 0, tzinfo=CST),
        (*months, "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4", "2026Q1"),
    )


PERSON = "11010519491231002X"  # a resident identity number: a person unless told otherwise


def individuals_and_courts() -> Scenario:
    """Persons as counterparties (by counterparty.kind, or by an id shaped like a resident
    identity number, and a kind that overrides the shape), paid as salary, by a court, as a
    lender or in cash; court deductions by channel and by the registry, one reversed; new
    and known customers, a customer that is also paid, inflow in a month's last five days;
    pulled on 10 January 2026, in a partial month."""
    ent = ENTERPRISES[4]
    log = _Log(ent, {(BANK, "ACC-1"): 3_000_000})
    log.add("2025-08-05 10:00", "in", 500_000, "CUST-A")
    log.add("2025-08-06 10:00", "out", 40_000, "CUST-OLD")  # known, as a supplier
    log.add("2025-08-07 10:00", "out", 66_000, "COURT-DESK", channel="judicial")
    for label in _months("2025-09", "2025-12"):
        log.add(f"{label}-05 10:00", "in", 600_000, "CUST-A")
        log.add(f"{label}-06 10:00", "out", 200_000, "SUPP-A")
    log.add("2025-10-08 10:00", "out", 50_000, "OWNER-0001", kind="individual")
    log.add("2025-10-09 10:00", "out", 20_000, PERSON)  # by the id's shape
    log.add("2025-10-10 10:00", "out", 30_000, PERSON, kind="organization")  # told otherwise
    log.add("2025-10-11 10:00", "out", 90_000, PERSON, channel="payroll")  # salary: apart
    log.add("2025-10-12 10:00", "out", 45_000, PERSON, channel="judicial")  # a court's
    log.add("2025-10-13 10:00", "out", 15_000, "FIN-LOAN-0001", kind="individual")  # a lender
    log.add("2025-10-14 10:00", "out", 25_000, BANK, channel="loan", kind="individual")
    log.add("2025-10-15 10:00", "out", 12_000, PERSON, channel="cash")  # cash to a person
    log.add("2025-10-16 10:00", "in", 70_000, "OWNER-0001", kind="individual")  # from one
    log.add("2025-10-20 10:00", "out", 33_000, "JUD-ENFORCE-0001")  # registry: JUDICIAL
    reversed_deduction = log.add(
        "2025-11-18 10:00", "out", 80_000, "COURT-DESK", channel="judicial"
    )
    log.add("2025-11-20 10:00", "out", 5_000, "CUST-A")  # a customer also paid: two-way
    log.add("2025-11-21 10:00", "in", 10_000, ent, bank=OTHER_BANK)  # own money: not operating
    log.add("2025-11-22 10:00", "in", 20_000, "CUST-B")  # pays and is not paid: one way
    log.add("2025-11-26 10:00", "in", 40_000, "CUST-A")  # the last five days of November
    log.add("2025-12-03 10:00", "in", 300_000, "CUST-NEW")
    log.add("2025-12-04 10:00", "in", 200_000, "CUST-OLD")
    log.add("2025-12-27 10:00", "in", 900_000, "CUST-NEW")  # parked before the month's end
    log.add("2025-12-30 10:00", "out", 11_000, "COURT-DESK", channel="judicial")
    log.add("2025-12-31 10:00", "out", 12_000, "COURT-DESK", channel="judicial")
    log.add("2025-12-31 11:00", "out", 3_000, PERSON, kind="individual")
    log.add("2026-01-05 10:00", "in", 100_000, "CUST-A")
    log.add("2026-01-06 10:00", "out", 7_000, "COURT-DESK", channel="judicial")
    events = log.balanced()
    return Scenario(
        "individuals_and_courts",
        [*events, reversal(reversed_deduction)],
        datetime(2026, 1, 10, 12, 0, tzinfo=CST),
        (*_months("2025-08", "2026-01"), "2025Q3", "2025Q4", "2026Q1"),
    )


def loan_proceeds() -> Scenario:
    """Loans and where their proceeds go within three days: on a month's second-to-last
    day (into the next month), on a quarter's last day (into the next quarter), two lenders
    on one day (paying either renews, paying a third repays it), a lender repaid with its own
    new loan, and a loan the day before the pull (10 January 2026, its days to come)."""
    log = _Log(ENTERPRISES[5], {(BANK, "ACC-1"): 1_000_000})
    log.add("2025-10-05 10:00", "in", 800_000, "CUST-A")
    log.add("2025-10-30 10:00", "in", 1_000_000, BANK, channel="loan")
    log.add("2025-10-30 15:00", "out", 300_000, "SUPP-A")
    log.add("2025-11-01 10:00", "out", 400_000, "FIN-LOAN-0001")  # another lender: repaid
    log.add("2025-11-02 10:00", "out", 200_000, "SUPP-B")  # the third day after: not within
    log.add("2025-11-10 09:00", "in", 500_000, "FIN-LOAN-0001")
    log.add("2025-11-10 09:30", "in", 200_000, "FIN-FACTOR-0001")
    log.add("2025-11-10 15:00", "out", 450_000, "FIN-LOAN-0001")  # renewed with the lender
    log.add("2025-11-11 10:00", "out", 100_000, BANK, channel="loan")  # repays the bank
    log.add("2025-11-12 10:00", "out", 50_000, "FIN-FACTOR-0001")  # lent that day: renewal
    log.add("2025-12-31 09:00", "in", 600_000, BANK, channel="loan")
    log.add("2026-01-01 10:00", "out", 600_000, "SUPP-A")
    log.add("2026-01-02 10:00", "out", 100_000, "FIN-LEASE-0001")  # a lessor lends too
    log.add("2026-01-09 10:00", "in", 300_000, BANK, channel="loan")
    log.add("2026-01-10 09:00", "out", 50_000, "SUPP-A")
    return Scenario(
        "loan_proceeds",
        log.balanced(),
        datetime(2026, 1, 10, 12, 0, tzinfo=CST),
        (*_months("2025-10", "2026-01"), "2025Q4", "2026Q1"),
    )


def persons_cash_platforms() -> Scenario:
    """Money from persons (by kind, by an id's shape, a kind that overrides the shape, cash
    a person deposits, a lender that is a person, the firm's own money apart), cash deposits
    and platform settlements by day (two on one day, withdrawals and fees on days of their
    own, a reversed one, a month's last day); pulled on 15 January 2026 at noon, in a
    partial month whose settlement that morning counts."""
    ent = ENTERPRISES[0]
    log = _Log(ent, {(BANK, "ACC-1"): 1_000_000, (BANK, "ACC-2"): 0})
    log.add("2025-10-03 10:00", "in", 50_000, PERSON, channel="cash")  # a person's cash
    log.add("2025-10-03 15:00", "in", 30_000, "CASH-DESK", channel="cash", account="ACC-2")
    log.add("2025-10-05 10:00", "in", 80_000, "PSP-ALIPAY-0001")
    log.add("2025-10-05 11:00", "in", 20_000, "PSP-TENPAY-0001")  # the same day: one
    log.add("2025-10-06 10:00", "out", 3_000, "PSP-ALIPAY-0001")  # a fee: no settlement
    log.add("2025-10-07 10:00", "in", 20_000, "CASH-DESK", channel="cash")
    log.add("2025-10-07 11:00", "out", 10_000, "CASH-DESK", channel="cash")
    log.add("2025-10-09 10:00", "out", 5_000, "CASH-DESK", channel="cash")  # withdrawn only
    log.add("2025-10-10 10:00", "in", 70_000, "OWNER-0001", kind="individual")
    log.add("2025-10-11 10:00", "in", 40_000, PERSON, kind="organization")  # told otherwise
    log.add("2025-10-12 10:00", "in", 60_000, ent, bank=OTHER_BANK, kind="individual")  # own
    log.add("2025-10-13 10:00", "in", 100_000, "FIN-LOAN-0001", kind="individual")  # lends
    settled = log.add("2025-10-20 10:00", "in", 15_000, "PSP-TENPAY-0001")
    for day in ("02", "15", "30"):
        log.add(f"2025-11-{day} 10:00", "in", 25_000, "PSP-ALIPAY-0001")
    deposit = log.add("2025-11-10 10:00", "in", 7_000, PERSON, channel="cash")
    log.add("2025-11-30 16:00", "in", 9_000, PERSON, channel="cash")  # the month's last day
    log.add("2025-12-31 10:00", "in", 11_000, "PSP-TENPAY-0001")
    log.add("2026-01-02 10:00", "in", 8_000, "CASH-DESK", channel="cash")
    log.add("2026-01-15 09:00", "in", 6_000, "PSP-ALIPAY-0001")  # the pull's day, begun
    log.add("2026-01-15 10:00", "in", 4_000, PERSON, kind="individual")
    events = log.balanced()
    return Scenario(
        "persons_cash_platforms",
        [*events, reversal(settled), reversal(deposit)],
        datetime(2026, 1, 15, 12, 0, tzinfo=CST),
        (*_months("2025-10", "2026-01"), "2025Q4", "2026Q1"),
    )


def registry_reload() -> Scenario:
    """The registries reloaded mid-log: a new version classifies events from then on, by
    arrival, not by booking; what was counted keeps its class. Version 4 lists a waterworks
    that was a supplier, and no longer lists the power company."""
    with (Path(__file__).resolve().parents[1] / "specs" / "registries.toml").open("rb") as f:
        current = tomllib.load(f)
    reloaded = {
        "version": current["version"] + 1,
        "entries": [e for e in current["entries"] if e["id"] != "UTIL-POWER-0001"]
        + [{"id": "CP-WATERWORKS-9", "class": "UTILITY", "subtype": "water", "name": "某水厂"}],
    }
    log = _Log(ENTERPRISES[7], {(BANK, "ACC-1"): 2_000_000})
    before = []
    for label in _months("2025-07", "2025-09"):
        before.append(log.add(f"{label}-05 10:00", "in", 600_000, "CUST-A"))
        before.append(log.add(f"{label}-10 10:00", "out", 45_000, "CP-WATERWORKS-9"))
        before.append(log.add(f"{label}-18 10:00", "out", 30_000, "UTIL-POWER-0001"))
    late = log.add("2025-09-25 10:00", "out", 20_000, "CP-WATERWORKS-9")  # arrives after
    after = []
    for label in _months("2025-10", "2025-12"):
        after.append(log.add(f"{label}-05 10:00", "in", 650_000, "CUST-A"))
        after.append(log.add(f"{label}-10 10:00", "out", 47_000, "CP-WATERWORKS-9"))
        after.append(log.add(f"{label}-18 10:00", "out", 31_000, "UTIL-POWER-0001"))
        after.append(log.add(f"{label}-20 10:00", "out", 9_000, "UTIL-POWER-0001", "utility"))
    log.balanced()
    arrival = [
        *before,
        # from here version 4 classifies
        late,  # booked in September, before the reload: the version at its arrival counts
        dict(before[1]),  # a redelivery of a supplier payment: changes nothing
        reversal(before[4]),  # removes a payment counted as trade, as trade
        *after,
    ]
    return Scenario(
        "registry_reload",
        arrival,
        datetime(2026, 1, 10, tzinfo=CST),
        (*_months("2025-07", "2025-12"), "2025Q3", "2025Q4"),
        registries=((len(before), reloaded),),
    )


def _after_the_pull(name: str, ent: str, pulled: str, later: str) -> Scenario:
    """A pull at ``pulled`` (China time) while the bank has booked up to ``later``: a bank's
    clock ahead of ours, which the contract accepts up to a day. Bookings of every kind on
    the pull's day after its instant, and at ``later``."""
    log = _Log(ent, {(BANK, "ACC-1"): 500_000})
    _steady(log, "2025-12", "2026-02")
    day = pulled[:10]
    log.add(f"{day} 08:00", "in", 120_000, "CUST-A")
    log.add(f"{day} 09:00", "in", 80_000, BANK, channel="loan")  # a loan, then out
    for when in (f"{day} 23:00", later):
        log.add(when, "in", 90_000, "CUST-B")
        log.add(when, "in", 30_000, "PSP-ALIPAY-0001")
        log.add(when, "in", 20_000, "CASH-DESK", channel="cash")
        log.add(when, "in", 15_000, PERSON, kind="individual")
        log.add(when, "out", 60_000, "SUPP-A")
        log.add(when, "out", 25_000, "COURT-DESK", channel="judicial")
        log.add(when, "out", 10_000, PERSON, kind="individual")
        log.add(when, "out", 5_000, "UTIL-POWER-0001")
    log.add(later, "in", 3_000_000, "CUST-C")  # the largest day's inflow, after the pull
    log.add(later, "out", 5_500_000, "SUPP-B")  # overdrawn, after the pull
    pull = datetime.strptime(pulled, "%Y-%m-%d %H:%M").replace(tzinfo=CST)
    return Scenario(
        name,
        log.balanced(),
        pull,
        (*_months("2025-12", pulled[:7]), "2025Q4", "2026Q1"),
    )


def bookings_after_the_pull() -> Scenario:
    """The next day's bookings arrive before a pull in the evening of 30 March 2026."""
    return _after_the_pull(
        "bookings_after_the_pull", ENTERPRISES[0], "2026-03-30 20:00", "2026-03-31 06:00"
    )


def bookings_in_the_next_period() -> Scenario:
    """A pull on the evening of 31 March 2026, the last day of a month and a quarter,
    while the bank has booked on 1 April."""
    return _after_the_pull(
        "bookings_in_the_next_period", ENTERPRISES[1], "2026-03-31 20:00", "2026-04-01 06:00"
    )


def margins_and_bills() -> Scenario:
    """Margin deposits and acceptance bills paid (channels margin and bill, spec version 10):
    to the bank by its code and to an account at it, at a second reporting bank, a margin
    returned (an inflow), a reversed deposit, a bill booked to a holder at another bank
    (TRADE), a margin with a guarantor (the registry: FIN_PARTNER) and one into an account
    the bank books under the firm's own id (SELF); pulled in a partial January."""
    ent = ENTERPRISES[6]
    log = _Log(ent, {(BANK, "ACC-1"): 9_000_000, (OTHER_BANK, "ACC-9"): 2_000_000})
    log.add("2025-10-08 10:00", "out", 500_000, BANK, channel="margin")
    log.add("2025-10-08 11:00", "out", 200_000, "MARGIN-ACCT-01", channel="margin", cp_bank=BANK)
    log.add("2025-10-09 10:00", "out", 80_000, "FIN-GUAR-0001", channel="margin")  # guarantor
    log.add("2025-10-10 10:00", "out", 60_000, ent, channel="margin")  # own id: SELF
    log.add("2025-10-31 23:30", "out", 1_000_000, BANK, channel="bill")  # the 31st, China time
    log.add("2025-11-05 10:00", "out", 400_000, "BILL-HOLDER-A", channel="bill", cp_bank="X")
    log.add("2025-11-06 10:00", "in", 300_000, BANK, channel="margin")  # returned: apart
    deposit = log.add("2025-11-07 10:00", "out", 70_000, BANK, channel="margin")
    log.add(
        "2025-12-15 10:00",
        "out",
        40_000,
        OTHER_BANK,
        channel="margin",
        bank=OTHER_BANK,
        account="ACC-9",
    )
    log.add(
        "2025-12-16 10:00",
        "out",
        600_000,
        "BILL-DESK",
        channel="bill",
        bank=OTHER_BANK,
        account="ACC-9",
        cp_bank=OTHER_BANK,
    )
    log.add("2026-01-05 10:00", "out", 150_000, BANK, channel="bill")
    events = log.balanced()
    return Scenario(
        "margins_and_bills",
        [*events, reversal(deposit)],
        datetime(2026, 1, 15, 12, 0, tzinfo=CST),
        (*_months("2025-10", "2026-01"), "2025Q4", "2026Q1"),
    )


def debt_by_kind() -> Scenario:
    """Financing partners by kind and where loan proceeds went (spec version 11): a bank
    loan followed within three days by money to a person, to the firm's own account, to a
    supplier and as wages (to a person, by payroll), a person paid on the third day after;
    a microlender's loan, a guarantor's fee, a lease rent, a factor's advance spent on a
    supplier, the bank's principal and interest, an investor's dividend, a lender repaid;
    a loan on the quarter's last day spent in the next quarter; pulled on 10 January 2026
    at noon, after a microlender's loan the day before."""
    ent = ENTERPRISES[7]
    log = _Log(ent, {(BANK, "ACC-1"): 500_000})
    log.add("2025-10-05 10:00", "in", 2_000_000, "CUST-A")
    log.add("2025-10-10 09:00", "in", 1_000_000, BANK, channel="loan")
    log.add("2025-10-10 14:00", "out", 200_000, PERSON)  # a person: 公转私
    log.add("2025-10-11 10:00", "out", 150_000, ent)  # to its own account elsewhere
    log.add("2025-10-12 10:00", "out", 300_000, "SUPP-A")
    log.add("2025-10-12 11:00", "out", 100_000, PERSON, channel="payroll")  # wages: operating
    log.add("2025-10-13 10:00", "out", 90_000, PERSON)  # the third day after: not within
    log.add("2025-10-20 10:00", "in", 500_000, "FIN-LOAN-0001")  # a microlender
    log.add("2025-10-21 10:00", "out", 20_000, "FIN-GUAR-0001")  # a guarantee fee: not debt
    log.add("2025-10-22 10:00", "out", 45_000, "FIN-LEASE-0001")  # a lease rent: debt
    log.add("2025-11-05 09:00", "in", 400_000, "FIN-FACTOR-0001")
    log.add("2025-11-05 15:00", "out", 500_000, "SUPP-B")
    log.add("2025-11-20 10:00", "out", 100_000, BANK, channel="loan")
    log.add("2025-11-20 10:05", "out", 8_000, BANK, channel="interest")
    log.add("2025-11-25 10:00", "out", 60_000, "FIN-EQUITY-0001")  # a dividend: not debt
    log.add("2025-11-26 10:00", "out", 30_000, "FIN-LOAN-0001")  # the microlender repaid
    log.add("2025-12-31 10:00", "in", 800_000, BANK, channel="loan")
    log.add("2026-01-01 10:00", "out", 250_000, "OWNER-0001", kind="individual")
    log.add("2026-01-02 10:00", "out", 100_000, ent)
    log.add("2026-01-09 10:00", "in", 300_000, "FIN-LOAN-0001")
    log.add("2026-01-10 10:00", "out", 120_000, "SUPP-A")  # the pull's morning
    return Scenario(
        "debt_by_kind",
        log.balanced(),
        datetime(2026, 1, 10, 12, 0, tzinfo=CST),
        (*_months("2025-10", "2026-01"), "2025Q4", "2026Q1"),
    )


def public_payments_yoy() -> Scenario:
    """Power, water, gas, salaries and tax against the same quarter a year earlier, for a
    firm from August 2024: 2025Q3 has no base (2024Q3 was lived in part, and paid all five),
    2025Q4 against 2024Q4 (heating, a utility known by its channel only and a reversed tax
    payment beside them), 2026Q1 against 2025Q1, which paid none of the five (a zero base),
    and 2026Q2 pulled on 14 May at noon: its 44 days against 1 April to 14 May 2025, where
    gas was paid only in June (no base so far) and the other streams paid again after the
    14th."""
    ent = ENTERPRISES[1]
    log = _Log(ent, {(BANK, "ACC-1"): 5_000_000})
    for label in _months("2024-08", "2026-05"):
        log.add(f"{label}-02 10:00", "in", 900_000, "CUST-A")
    paid = [
        # 2024Q3, from August: not wholly on record, so no base for 2025Q3
        ("2024-08-18 10:00", 80_000, "UTIL-POWER-0001", "transfer"),
        ("2024-08-19 10:00", 6_000, "UTIL-WATER-0001", "transfer"),
        ("2024-09-18 10:00", 9_000, "UTIL-GAS-0001", "transfer"),
        ("2024-08-25 10:00", 480_000, "PAYROLL", "payroll"),
        ("2024-09-15 10:00", 15_000, "TAX-STA-0001", "transfer"),
        # 2024Q4, the base of 2025Q4
        ("2024-10-18 10:00", 100_000, "UTIL-POWER-0001", "transfer"),
        ("2024-11-18 10:00", 20_000, "UTIL-WATER-0001", "transfer"),
        ("2024-12-18 10:00", 30_000, "UTIL-GAS-0001", "transfer"),
        ("2024-12-19 10:00", 50_000, "UTIL-HEAT-0001", "transfer"),
        ("2024-10-25 10:00", 500_000, "PAYROLL", "payroll"),
        ("2024-10-15 10:00", 80_000, "TAX-STA-0001", "transfer"),
        # 2025Q1 paid none of the five; 2025Q2: on its first 44 days, and after them
        ("2025-04-10 10:00", 40_000, "UTIL-POWER-0001", "transfer"),
        ("2025-05-20 10:00", 60_000, "UTIL-POWER-0001", "transfer"),
        ("2025-06-05 10:00", 10_000, "UTIL-WATER-0001", "transfer"),
        ("2025-06-10 10:00", 25_000, "UTIL-GAS-0001", "transfer"),
        ("2025-04-25 10:00", 500_000, "PAYROLL", "payroll"),
        ("2025-05-25 10:00", 500_000, "PAYROLL", "payroll"),
        ("2025-04-15 10:00", 30_000, "TREASURY-0001", "transfer"),
        ("2025-05-15 00:30", 30_000, "TAX-STA-0001", "transfer"),  # the 45th day
        # 2025Q3
        ("2025-07-18 10:00", 70_000, "UTIL-POWER-0001", "transfer"),
        ("2025-08-18 10:00", 5_000, "UTIL-WATER-0001", "transfer"),
        ("2025-09-18 10:00", 10_000, "UTIL-GAS-0001", "transfer"),
        ("2025-07-25 10:00", 400_000, "PAYROLL", "payroll"),
        ("2025-07-15 10:00", 20_000, "TAX-STA-0001", "transfer"),
        # 2025Q4: power up half, water down half, no gas, payroll up a fifth, tax flat
        ("2025-10-18 10:00", 150_000, "UTIL-POWER-0001", "transfer"),
        ("2025-11-18 10:00", 10_000, "UTIL-WATER-0001", "transfer"),
        ("2025-12-19 10:00", 90_000, "UTIL-HEAT-0001", "transfer"),
        ("2025-12-20 10:00", 7_000, "CITY-UTILITY-9", "utility"),  # no subtype: not power
        ("2025-10-25 10:00", 600_000, "PAYROLL", "payroll"),
        ("2025-10-15 10:00", 50_000, "TAX-STA-0001", "transfer"),
        ("2025-11-15 10:00", 30_000, "TAX-LOCAL-9", "tax"),  # tax by its channel
        # 2026Q1, against 2025Q1's nothing
        ("2026-01-18 10:00", 30_000, "UTIL-POWER-0001", "transfer"),
        ("2026-02-18 10:00", 5_000, "UTIL-WATER-0001", "transfer"),
        ("2026-03-18 10:00", 8_000, "UTIL-GAS-0001", "transfer"),
        ("2026-01-25 10:00", 520_000, "PAYROLL", "payroll"),
        ("2026-01-15 10:00", 25_000, "TAX-STA-0001", "transfer"),
        # 2026Q2 to the pull
        ("2026-04-10 10:00", 50_000, "UTIL-POWER-0001", "transfer"),
        ("2026-05-14 09:00", 10_000, "UTIL-POWER-0001", "transfer"),  # the pull's morning
        ("2026-04-20 10:00", 15_000, "UTIL-WATER-0001", "transfer"),
        ("2026-05-01 10:00", 20_000, "UTIL-GAS-0001", "transfer"),
        ("2026-04-25 10:00", 550_000, "PAYROLL", "payroll"),
        ("2026-04-15 10:00", 45_000, "TAX-STA-0001", "transfer"),
    ]
    for when, amount, cp, channel in paid:
        log.add(when, "out", amount, cp, channel)
    # the 44th day of 2025Q2, late in the evening: booked in UTC the same China day
    log.add("2025-05-14 23:30", "out", 10_000, "UTIL-WATER-0001", utc=True)
    refunded = log.add("2025-05-01 10:00", "out", 9_999, "UTIL-POWER-0001")
    wrong = log.add("2025-12-15 10:00", "out", 5_000, "TAX-STA-0001")
    quarters = ("2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4", "2026Q1", "2026Q2")
    return Scenario(
        "public_payments_yoy",
        [*log.balanced(), reversal(refunded), reversal(wrong)],
        datetime(2026, 5, 14, 12, 0, tzinfo=CST),
        (*quarters, "2026-05"),
    )


def generated_flows() -> Scenario:
    """Three firms of the load-test generator over 13 months: seasonal sales, loans,
    leasing, factoring, exports, heating in winter, reversals, late and repeated events."""
    config = GeneratorConfig(
        seed=16,
        enterprises=3,
        months=13,
        end_month=2025 * 12 + 11,
        reversal_rate=0.03,
        late_rate=0.03,
        duplicate_rate=0.02,
        now=datetime(2026, 1, 1, tzinfo=CST),
    )
    return Scenario(
        "generated_flows",
        list(generate(config)),
        datetime(2026, 1, 1, tzinfo=CST),
        (*_months("2024-12", "2025-12"), "2025Q1", "2025Q2", "2025Q3", "2025Q4"),
    )


def signals_in_the_quarter() -> Scenario:
    """Signal episodes across quarter edges, pulled on 14 February 2026 at noon: episodes
    open before a quarter and closed in it, one closed on a quarter's first day (which it
    does not cover), two of one rule that overlap (a day counts once), one still open in
    the partial quarter (up to the pull's day), and one opened before the firm's first
    month on record. tests/unit/test_signal_items.py gives the days each covers."""
    ent = ENTERPRISES[7]
    log = _Log(ent, {(BANK, "ACC-1"): 200_000})
    _steady(log, "2025-07", "2026-01")
    log.add("2026-02-03 10:00", "out", 90_000, "SUPP-A")
    episodes: list[Episode] = [
        ("account_overdrawn", date(2025, 9, 28), date(2025, 10, 3)),
        ("account_overdrawn", date(2025, 10, 2), date(2025, 10, 5)),
        ("judicial_deduction", date(2025, 11, 20), date(2026, 1, 1)),
        ("operating_inflow_stopped", date(2026, 2, 1), None),
        ("balance_cover_low", date(2025, 6, 1), date(2025, 7, 2)),
        ("loan_proceeds_diverted", date(2025, 12, 30), None),
        ("fast_in_fast_out", date(2025, 8, 1), date(2025, 8, 2)),
    ]
    return Scenario(
        "signals_in_the_quarter",
        log.balanced(),
        datetime(2026, 2, 14, 12, 0, tzinfo=CST),
        ("2025Q3", "2025Q4", "2026Q1"),
        episodes={ent: episodes},
    )


SCENARIOS = (
    every_class_and_channel(),
    reversals_duplicates_late(),
    young_firm(),
    partial_periods(),
    after_last_transaction(),
    dormant_account(),
    pruned_history(),
    pruned_mid_quarter(),
    instants_and_ties(),
    quarters_of_trade(),
    individuals_and_courts(),
    loan_proceeds(),
    persons_cash_platforms(),
    registry_reload(),
    bookings_after_the_pull(),
    bookings_in_the_next_period(),
    margins_and_bills(),
    debt_by_kind(),
    public_payments_yoy(),
    generated_flows(),
    signals_in_the_quarter(),
)
