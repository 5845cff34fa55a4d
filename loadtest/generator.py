"""Synthetic SME transaction flows for the demo, tests and benchmarks (reproducible by seed).

Each enterprise has accounts at one or two banks, a size drawn from a heavy-tailed law, a
trend (stable, growing, shrinking, or stopping), seasonal sales from a power-law of
customers, supplier payments, monthly payroll, utilities (heating in the northern winter)
and social insurance, monthly or quarterly tax, export rebates and purchases abroad,
payment-platform receipts and refunds, shops paid mostly in cash, receivables sold to a
factor, equity rounds, fees to public bodies, loans with monthly repayments (some buying
back receivables from the factor within days, others paying a guarantor and the owner),
microlenders, bank fees and deposit interest, acceptance bills (a margin deposited, the bill
paid at maturity, the margin returned), cash, transfers between its own accounts, payments
to and from persons (by a resident identity number, or an account the bank says is a
person's; a person's cash deposit), refunds to customers, and court deductions for firms in
a lawsuit: every class, channel, subtype and counterparty kind the products read. Balances
follow each account's bookings. A few events are reversed, a few are published late (weeks
to months after booking), a few are delivered twice.

Events come month by month in roughly booking order, late ones when they are due, so memory
stays bounded by one month of events.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from engine.events import credit_code
from engine.periods import CST, format_month

__all__ = ["Enterprise", "GeneratorConfig", "generate", "make_enterprises"]

_TREND = ("stable", "stable", "stable", "growing", "shrinking", "stopping")
# Synthetic ids of public bodies; the registries in specs/ will classify them.
_UTILITIES = ("UTIL-POWER-0001", "UTIL-WATER-0001", "UTIL-TELECOM-0001", "UTIL-GAS-0001")
_HEATING = "UTIL-HEAT-0001"  # billed November to March, to firms in the north
_HEATING_MONTHS = (10, 11, 0, 1, 2)  # month % 12
_FACTOR = "FIN-FACTOR-0001"
_INVESTOR = "FIN-EQUITY-0001"
_MICROLENDER = "FIN-LOAN-0001"
_GUARANTOR = "FIN-GUAR-0001"
_GOV_FEES = "GOV-COURT-0001"
_TAX = "TAX-STA-0001"
_SOCIAL = "SOCIAL-SI-0001"
_PSP = "PSP-ALIPAY-0001"
_HOUSING_FUND = "SOCIAL-HF-0001"
_LESSOR = "FIN-LEASE-0001"
_SUBSIDY = "GOV-FIN-0001"
_COURT = "JUD-ENFORCE-0001"  # a court's enforcement account (the registry: JUDICIAL)
_SEASON = (0.8, 0.7, 1.0, 1.0, 1.05, 1.1, 1.0, 1.0, 1.05, 1.1, 1.15, 1.4)


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 7
    enterprises: int = 1000
    months: int = 13
    end_month: int | None = None  # month ordinal; default: the current month (CST)
    banks: tuple[str, ...] = ("ICBC0001", "CCB00002", "ABC00003")
    reversal_rate: float = 0.01
    late_rate: float = 0.01
    duplicate_rate: float = 0.005
    now: datetime | None = None  # nothing is booked after it; default: the time of the call


@dataclass
class Enterprise:
    id: str
    accounts: list[tuple[str, str]]  # (bank, account)
    scale: float
    trend: str
    stop_month: int | None
    customers: list[str]
    suppliers: list[str]
    weights: list[float]
    tax_quarterly: bool
    loan_month: int | None
    loan_fen: int
    lessee: bool  # pays a leasing company every month
    exporter: bool  # some receipts are in USD
    balances: dict[tuple[str, str], int] = field(default_factory=dict)


def make_enterprises(
    config: GeneratorConfig, rng: random.Random, first: int, last: int
) -> list[Enterprise]:
    enterprises = []
    for _ in range(config.enterprises):
        eid = credit_code.generate(rng)
        home = rng.choice(config.banks)
        accounts = [(home, f"{rng.randrange(10**15, 10**16)}")]
        if rng.random() < 0.3:
            other = rng.choice([b for b in config.banks if b != home] or [home])
            accounts.append((other, f"{rng.randrange(10**15, 10**16)}"))
        n_partners = max(3, int(rng.paretovariate(1.3) * 6))
        trend = rng.choice(_TREND)
        enterprises.append(
            Enterprise(
                id=eid,
                accounts=accounts,
                scale=rng.lognormvariate(0, 0.8),
                trend=trend,
                stop_month=rng.randint(min(first + 2, last), last) if trend == "stopping" else None,
                customers=[credit_code.generate(rng) for _ in range(n_partners)],
                suppliers=[credit_code.generate(rng) for _ in range(max(2, n_partners // 2))],
                weights=[1.0 / (i + 1) ** 1.1 for i in range(n_partners)],
                tax_quarterly=rng.random() < 0.5,
                loan_month=rng.randint(first, last) if rng.random() < 0.3 else None,
                loan_fen=rng.randrange(50, 500) * 1_000_000,
                lessee=rng.random() < 0.2,
                exporter=rng.random() < 0.15,
            )
        )
        for account in accounts:
            enterprises[-1].balances[account] = rng.randrange(1, 500) * 100_000
    return enterprises


class _Month:
    """Builds one enterprise-month of events."""

    def __init__(self, rng: random.Random, month: int, counters: dict[str, int], run: str) -> None:
        self.rng = rng
        self.run = run  # in every txn_id: ids stay unique within a bank across data sets
        self.month = month
        self.year, m0 = divmod(month, 12)
        self.days = (
            datetime(self.year + (m0 == 11), (m0 + 1) % 12 + 1, 1) - datetime(self.year, m0 + 1, 1)
        ).days
        self.counters = counters
        self.events: list[tuple[datetime, dict[str, Any]]] = []

    def at(self, day: int | None = None) -> datetime:
        rng = self.rng
        d = day if day is not None else rng.randint(1, self.days)
        return datetime(
            self.year,
            self.month % 12 + 1,
            min(d, self.days),
            rng.randint(8, 18),
            rng.randint(0, 59),
            rng.randint(0, 59),
            tzinfo=CST,
        )

    def book(
        self,
        ent: Enterprise,
        when: datetime,
        inflow: bool,
        amount: int,
        channel: str,
        cp: str,
        account: tuple[str, str] | None = None,
        cp_bank: str | None = None,
        currency: str = "CNY",
        kind: str | None = None,
    ) -> dict[str, Any]:
        bank, number = account or ent.accounts[0]
        counterparty = {"id": cp}
        if cp_bank is not None:
            counterparty["bank"] = cp_bank
        if kind is not None:  # a bank that knows who it paid says so
            counterparty["kind"] = kind
        self.counters[bank] = self.counters.get(bank, 0) + 1
        event = {
            "schema": 1,
            "txn_id": f"{bank}-{self.run}-{when:%Y%m%d}-{self.counters[bank]:09d}",
            "bank": bank,
            "enterprise_id": ent.id,
            "account": number,
            "booked_at": when.isoformat(),
            "direction": "in" if inflow else "out",
            "amount_fen": amount,
            "currency": currency,
            "balance_after_fen": 0,  # set when the account's month is ordered
            "channel": channel,
            "counterparty": counterparty,
        }
        self.events.append((when, event))
        return event


def _enterprise_month(ent: Enterprise, b: _Month, index: int, total: int) -> None:
    rng = b.rng
    if ent.stop_month is not None and b.month >= ent.stop_month:
        return
    drift = {"growing": 1.04**index, "shrinking": 0.96**index}.get(ent.trend, 1.0)
    level = ent.scale * drift * _SEASON[b.month % 12]
    n_sales = max(0, int(rng.gauss(18 * level, 3 * math.sqrt(level + 1))))  # sales receipts
    cash_shop = ent.id[-2] in "012"  # about one firm in ten takes most sales in cash
    for _ in range(n_sales):
        amount = int(rng.lognormvariate(12.0, 1.0) * level) + 100
        if cash_shop and rng.random() < 0.7:
            b.book(ent, b.at(), True, amount, "cash", "CASH")
            continue
        customer = rng.choices(ent.customers, ent.weights)[0]
        abroad = ent.exporter and rng.random() < 0.3
        b.book(
            ent,
            b.at(),
            True,
            amount,
            "fx" if abroad else rng.choice(("transfer", "transfer", "card")),
            customer,
            currency="USD" if abroad else "CNY",
        )
    for _ in range(max(1, n_sales // 2)):
        b.book(
            ent,
            b.at(),
            False,
            int(rng.lognormvariate(11.6, 0.9) * level) + 100,
            "transfer",
            rng.choice(ent.suppliers),
        )
    payroll = int(1_200_000 * ent.scale) + rng.randrange(0, 100_000)
    b.book(ent, b.at(10), False, payroll, "payroll", f"PAYROLL-{ent.id[-6:]}")
    heated = ent.id[-1] in "0123456789" and b.month % 12 in _HEATING_MONTHS  # about a third
    for utility in (*_UTILITIES[: 3 + (ent.scale > 1)], *((_HEATING,) if heated else ())):
        b.book(
            ent,
            b.at(rng.randint(15, 25)),
            False,
            int(rng.uniform(20_000, 200_000) * ent.scale),
            "utility",
            utility,
        )
    b.book(ent, b.at(15), False, int(payroll * 0.3), "transfer", _SOCIAL)
    if not ent.tax_quarterly or b.month % 3 == 0:
        b.book(ent, b.at(15), False, int(rng.uniform(50_000, 900_000) * level), "tax", _TAX)
    if rng.random() < 0.3:
        b.book(ent, b.at(), True, int(rng.uniform(10_000, 2_000_000) * level), "transfer", _PSP)
    if rng.random() < 0.15:  # refunds and fees to the payment platform
        b.book(ent, b.at(), False, int(rng.uniform(1_000, 200_000) * level), "transfer", _PSP)
    if ent.exporter and rng.random() < 0.3:  # parts bought abroad
        supplier = rng.choice(ent.suppliers)
        amount = int(rng.lognormvariate(11.0, 0.8) * level) + 100
        b.book(ent, b.at(), False, amount, "fx", supplier, currency="USD")
    if ent.exporter and b.month % 3 == 1 and rng.random() < 0.5:  # export tax rebate
        b.book(ent, b.at(), True, int(rng.uniform(20_000, 500_000) * level), "tax", _TAX)
    if ent.trend == "growing" and rng.random() < 0.03:  # an equity round: money, not debt
        b.book(ent, b.at(), True, rng.randrange(100, 2_000) * 100_000, "transfer", _INVESTOR)
    if ent.id[-6] in "012" and rng.random() < 0.1:  # a microlender's short loan, or repaid
        inflow = rng.random() < 0.5
        b.book(ent, b.at(), inflow, rng.randrange(5, 50) * 10_000, "transfer", _MICROLENDER)
    if rng.random() < 0.05:  # receivables sold to a factor
        b.book(ent, b.at(), True, int(rng.uniform(100_000, 3_000_000) * level), "transfer", _FACTOR)
    if rng.random() < 0.08:  # fees and fines to a public body
        b.book(ent, b.at(), False, rng.randrange(5_000, 300_000), "transfer", _GOV_FEES)
    if rng.random() < 0.2:
        b.book(ent, b.at(), rng.random() < 0.5, rng.randrange(1_000, 500_000), "cash", "CASH")
    if ent.scale > 0.7:
        b.book(ent, b.at(15), False, int(payroll * 0.1), "transfer", _HOUSING_FUND)
    if ent.lessee:
        b.book(ent, b.at(25), False, int(200_000 * ent.scale), "transfer", _LESSOR)
    if rng.random() < 0.05:
        b.book(ent, b.at(), True, rng.randrange(10, 200) * 10_000, "transfer", _SUBSIDY)
    bank = ent.accounts[0][0]
    if ent.loan_month is not None:
        if b.month == ent.loan_month:
            _spend_loan(ent, b, bank)
        elif b.month > ent.loan_month:
            b.book(ent, b.at(20), False, ent.loan_fen // 12, "loan", bank, cp_bank=bank)
            b.book(ent, b.at(20), False, ent.loan_fen // 200, "interest", bank, cp_bank=bank)
    b.book(ent, b.at(28), False, rng.randrange(500, 5_000), "fee", bank, cp_bank=bank)
    if b.month % 3 == 2:  # deposit interest, credited quarterly on the 21st
        b.book(ent, b.at(21), True, rng.randrange(100, 50_000), "interest", bank, cp_bank=bank)
    if ent.id[-4] in "0123" and rng.random() < 0.3:  # about one firm in eight pays by bill
        _acceptance_bill(ent, b, level, bank)
    _persons_and_courts(ent, b, level)
    if len(ent.accounts) > 1 and rng.random() < 0.5:  # same-name transfer between own accounts
        amount = rng.randrange(10_000, 1_000_000)
        when = b.at()
        b.book(ent, when, False, amount, "transfer", ent.id, ent.accounts[0])
        b.book(ent, when + timedelta(seconds=1), True, amount, "transfer", ent.id, ent.accounts[1])


def _spend_loan(ent: Enterprise, b: _Month, bank: str) -> None:
    """The bank's loan on the 5th, and where some of it goes within days: half of the firms
    buy back receivables from the factor (a new loan repaying an old one), the others pay
    the loan's guarantor and the owner; a firm with a second account moves some there."""
    b.book(ent, b.at(5), True, ent.loan_fen, "loan", bank, cp_bank=bank)
    if ent.id[-5] in "01234":
        b.book(ent, b.at(6), False, ent.loan_fen // 4, "transfer", _FACTOR)
    else:
        b.book(ent, b.at(5), False, ent.loan_fen // 100, "transfer", _GUARANTOR)
        b.book(ent, b.at(7), False, ent.loan_fen // 10, "transfer", resident_id(ent.id))
    if len(ent.accounts) > 1:
        amount, when = ent.loan_fen // 5, b.at(6)
        b.book(ent, when, False, amount, "transfer", ent.id, ent.accounts[0])
        b.book(ent, when + timedelta(seconds=1), True, amount, "transfer", ent.id, ent.accounts[1])


def _acceptance_bill(ent: Enterprise, b: _Month, level: float, bank: str) -> None:
    """A bank acceptance bill to pay a supplier: a margin deposited when it is issued, the
    bill paid at maturity (the bank debits the firm and pays the holder), the margin
    sometimes returned then (an inflow on channel margin)."""
    rng = b.rng
    face = int(rng.uniform(200_000, 5_000_000) * level) + 100
    margin = face * rng.choice((3, 5, 10)) // 10
    b.book(ent, b.at(), False, margin, "margin", bank, cp_bank=bank)
    if rng.random() < 0.7:  # a bill issued months ago falls due
        b.book(ent, b.at(), False, face, "bill", bank, cp_bank=bank)
        if rng.random() < 0.5:
            b.book(ent, b.at(), True, margin, "margin", bank, cp_bank=bank)


def resident_id(seed: str) -> str:
    """A synthetic resident identity number (GB 11643: a division code, a birth date, a
    sequence number and the ISO 7064 MOD 11-2 check character), the same for one seed."""
    rng = random.Random(seed)
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365))
    body = f"110105{born:%Y%m%d}{rng.randrange(1000):03d}"
    remainder = sum(int(digit) * pow(2, 17 - i, 11) for i, digit in enumerate(body)) % 11
    return body + "10X98765432"[remainder]


def _persons_and_courts(ent: Enterprise, b: _Month, level: float) -> None:
    """Money to and from persons (公转私, 私转公), refunds to customers, court deductions."""
    rng = b.rng
    if rng.random() < 0.15:  # to the owner's own card (by its id's shape) or a contractor's
        amount = int(rng.uniform(10_000, 800_000) * level) + 100
        if rng.random() < 0.5:
            b.book(ent, b.at(), False, amount, "transfer", resident_id(ent.id))
        else:  # an account number: the bank says it is a person's
            person = f"P-{ent.id[-6:]}"
            b.book(ent, b.at(), False, amount, "transfer", person, kind="individual")
    if rng.random() < 0.1:  # from persons (私转公): the owner tops up, or deposits cash
        amount = int(rng.uniform(10_000, 500_000) * level) + 100
        if rng.random() < 0.5:
            b.book(ent, b.at(), True, amount, "transfer", resident_id(ent.id))
        else:
            b.book(ent, b.at(), True, amount, "cash", f"P-{ent.id[-6:]}", kind="individual")
    if rng.random() < 0.1:  # a refund to a customer, who is then paid and paying
        refund = int(rng.uniform(1_000, 100_000) * level) + 100
        b.book(ent, b.at(), False, refund, "transfer", rng.choice(ent.customers))
    if ent.id[-3] in "0123" and rng.random() < 0.3:  # about one firm in eight is in a lawsuit
        cp, channel = (_COURT, "transfer") if rng.random() < 0.5 else ("COURT-DESK", "judicial")
        b.book(ent, b.at(), False, rng.randrange(10, 500) * 10_000, channel, cp)


def _order_and_balance(ent: Enterprise, events: list[tuple[datetime, dict[str, Any]]]) -> None:
    """Set balance_after_fen in booking order (ties by txn_id), per account."""
    events.sort(key=lambda pair: (pair[0], pair[1]["txn_id"]))
    for _, event in events:
        account = (event["bank"], event["account"])
        sign = 1 if event["direction"] == "in" else -1
        ent.balances[account] += sign * event["amount_fen"]
        event["balance_after_fen"] = ent.balances[account]


def generate(config: GeneratorConfig) -> Iterator[dict[str, Any]]:
    """Events to publish, in publishing order."""
    rng = random.Random(config.seed)
    now = (config.now or datetime.now(UTC)).astimezone(CST)
    last = config.end_month if config.end_month is not None else now.year * 12 + now.month - 1
    first = last - config.months + 1
    enterprises = make_enterprises(config, rng, first, last)
    counters: dict[str, int] = {}
    late: list[tuple[int, dict[str, Any]]] = []  # (month due, event)
    for index, month in enumerate(range(first, last + 1)):
        out: list[tuple[datetime, dict[str, Any]]] = []
        for ent in enterprises:
            b = _Month(rng, month, counters, f"S{config.seed}")
            _enterprise_month(ent, b, index, config.months)
            _order_and_balance(ent, b.events)
            for when, event in b.events:
                if month == last and when > now:
                    continue  # not booked yet
                out.append((when, event))
                if rng.random() < config.reversal_rate:
                    reversal = dict(
                        event,
                        txn_id=event["txn_id"] + "-R",
                        direction="out" if event["direction"] == "in" else "in",
                        reversal_of=event["txn_id"],
                        booked_at=(when + timedelta(minutes=5)).isoformat(),
                    )
                    out.append((when + timedelta(minutes=5), reversal))
        out.sort(key=lambda pair: pair[0])
        for _, event in out:
            if rng.random() < config.late_rate and month < last:
                late.append((rng.randint(month + 1, last), event))
                continue
            yield event
            if rng.random() < config.duplicate_rate:
                yield event
        due = [event for m, event in late if m == month]
        late = [(m, event) for m, event in late if m != month]
        yield from due
    yield from (event for _, event in late)


def describe(config: GeneratorConfig) -> str:
    last = config.end_month
    span = "" if last is None else f" ending {format_month(last)}"
    return f"{config.enterprises} enterprises x {config.months} months{span}, seed {config.seed}"
