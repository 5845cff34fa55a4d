"""Does a signal warn, and does it cry wolf? The evaluated rules over labelled histories.

    make backtest            # python -m loadtest.backtest [FIRMS_PER_SCENARIO]

Generates two years of daily flows for firms of each scenario below, runs them through the
worker's own path (events -> PartitionLedger -> month digests -> timeline -> rules ->
episodes) judging every day of the second year as the workers would on that day (no data
after it), and scores each evaluated rule:

- a *true* warning is an episode raised on a failing firm from the day its trouble starts
  to the day it fails; any other episode (a healthy firm, or a failing one before its
  trouble) is a false alarm. precision = true / all episodes raised;
- recall, on the rule's own scenarios: the share of those failing firms warned before
  they fail; lead time: days from the first true warning to the failure (median).

Writes loadtest/results/backtest.json; `creditflow docs` puts its table in docs/signals.md.
Only the evaluated rules are scored: the planned ones raise nothing yet.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.events.contract import Txn, validate
from engine.events.credit_code import generate as generate_code
from engine.periods import CST
from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from engine.signals.episodes import State
from engine.signals.evaluate import RuleSet, evaluate
from engine.signals.spec import load_signals
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from state.signals import SignalState

__all__ = ["SCENARIOS", "main", "run"]

RESULT = Path(__file__).resolve().parent / "results" / "backtest.json"
START = date(2024, 1, 1)  # two years: 2024 builds history, 2025 is judged day by day
JUDGED_FROM = date(2025, 1, 1)
END = date(2025, 12, 31)
BANK = "BANK0001"
_SUPPLIER = "91310000MA1FL5LX3X"
_UTILITY = "UTIL-POWER-0001"
_TAX = "TAX-STA-0001"


@dataclass(frozen=True)
class Firm:
    """One generated firm: its daily receipts (operating inflow) and payments are drawn from
    ``level(day)``; failing firms have a trouble day and a failure day."""

    id: str
    scenario: str
    first: date
    level: Callable[[date], float]  # mean receipts per day, fen
    spend: Callable[[date], float]  # payments as a share of the level
    trouble: date | None = None
    failure: date | None = None
    lumpy: bool = False
    quarterly_tax: bool = False  # tax in January, April, July and October only
    stops_paying: bool = False  # from its trouble day no utility or tax payment
    one_off: date | None = None  # a one-off payment of 70 % of the balance (equipment)
    anchor: float = 0.0  # share of the receipts one customer pays (0: six customers alike)
    anchor_stops: bool = False  # from its trouble day that customer pays nothing
    new_lenders: tuple[date, ...] = ()  # days on which a new financing partner lends
    conduit: bool = False  # from its trouble day most of what it holds leaves for a person
    diverts: bool = False  # on its trouble day a loan comes, and most of it leaves at once
    enforced: bool = False  # from its trouble day a court deducts from it every month
    invests: bool = False  # on its trouble day a loan comes, renews one and buys equipment


def _spring_dip(day: date) -> float:
    """Receipts around the Spring Festival (late January to February), every year."""
    return {1: 0.6, 2: 0.25}.get(day.month, 1.0)


def _scenarios(rng: random.Random) -> dict[str, Callable[[str], Firm]]:
    def trouble_day() -> date:
        return JUDGED_FROM + timedelta(days=rng.randint(60, 240))

    def stops(eid: str) -> Firm:
        s = trouble_day()
        return Firm(
            eid,
            "inflows_stop",
            START,
            lambda d: 0.0 if d >= s else 1.0,
            _flat,
            s,
            s + timedelta(days=60),
        )

    def collapses(eid: str) -> Firm:
        s = trouble_day()
        return Firm(
            eid,
            "revenue_collapse",
            START,
            lambda d: 0.15 if d >= s else 1.0,
            _flat,
            s,
            s + timedelta(days=120),
        )

    def squeezed(eid: str) -> Firm:
        s = trouble_day()

        # From the trouble day the firm pays out more than it takes in, half a day's
        # receipts more every month: its cash runs out within about four months.
        def spend(d: date) -> float:
            return 0.9 if d < s else 0.9 + 0.5 * (d - s).days / 30

        return Firm(eid, "cash_squeeze", START, _steady, spend, s, s + timedelta(days=120))

    def lapses(eid: str) -> Firm:
        s = trouble_day()
        return Firm(
            eid,
            "payments_lapse",
            START,
            _steady,
            _flat,
            s,
            s + timedelta(days=120),
            stops_paying=True,
        )

    def quarterly(eid: str) -> Firm:
        return Firm(eid, "quarterly_tax", START, _steady, _flat, quarterly_tax=True)

    def seasonal(eid: str) -> Firm:
        return Firm(eid, "seasonal", START, _spring_dip, _flat)

    def young_seasonal(eid: str) -> Firm:
        first = date(2024, 6, 1) + timedelta(days=rng.randint(0, 120))
        return Firm(eid, "young_seasonal", first, _spring_dip, _flat)

    def growing(eid: str) -> Firm:
        return Firm(eid, "growing", START, lambda d: 1.05 ** ((d - START).days / 30), _flat)

    def lumpy(eid: str) -> Firm:
        return Firm(eid, "lumpy_contracts", START, _steady, _flat, lumpy=True)

    def one_off(eid: str) -> Firm:
        return Firm(eid, "one_off_payment", START, _steady, _flat, one_off=trouble_day())

    def stable(eid: str) -> Firm:
        return Firm(eid, "stable", START, _steady, _flat)

    def anchor_lost(eid: str) -> Firm:
        s = trouble_day()
        failure = s + timedelta(days=120)
        return Firm(
            eid, "anchor_lost", START, _steady, _flat, s, failure, anchor=0.5, anchor_stops=True
        )

    def stacking(eid: str) -> Firm:
        s = trouble_day()
        lent = tuple(s + timedelta(days=d) for d in (0, 20, 45, 70))
        return Firm(
            eid,
            "lender_stacking",
            START,
            _steady,
            _flat,
            s,
            s + timedelta(days=150),
            new_lenders=lent,
        )

    def anchored(eid: str) -> Firm:
        return Firm(eid, "anchor_customer", START, _steady, _flat, anchor=0.5)

    def one_new_lender(eid: str) -> Firm:
        lent = (trouble_day(), trouble_day() + timedelta(days=100))  # a lease, a bank loan
        return Firm(eid, "new_lenders_apart", START, _steady, _flat, new_lenders=lent)

    def diverted(eid: str) -> Firm:
        s = trouble_day()
        return Firm(
            eid, "proceeds_diverted", START, _steady, _flat, s, s + timedelta(120), diverts=True
        )

    def enforced(eid: str) -> Firm:
        s = trouble_day()
        return Firm(
            eid, "judicial_enforcement", START, _steady, _flat, s, s + timedelta(90), enforced=True
        )

    def invests(eid: str) -> Firm:
        return Firm(eid, "loan_invested", START, _steady, _flat, trouble_day(), invests=True)

    def conduit(eid: str) -> Firm:
        s = trouble_day()
        # From the trouble day its receipts go to a person at the end of each day instead of
        # paying its suppliers: the owner takes the money out before the firm defaults.
        return Firm(
            eid,
            "pass_through",
            START,
            _steady,
            lambda d: 0.0 if d >= s else 0.9,
            s,
            s + timedelta(days=90),
            conduit=True,
        )

    return {
        "inflows_stop": stops,
        "revenue_collapse": collapses,
        "cash_squeeze": squeezed,
        "payments_lapse": lapses,
        "seasonal": seasonal,
        "young_seasonal": young_seasonal,
        "growing": growing,
        "lumpy_contracts": lumpy,
        "one_off_payment": one_off,
        "quarterly_tax": quarterly,
        "stable": stable,
        # Appended: the firms above draw the same numbers as before these existed.
        "anchor_lost": anchor_lost,
        "lender_stacking": stacking,
        "anchor_customer": anchored,
        "new_lenders_apart": one_new_lender,
        "pass_through": conduit,
        "proceeds_diverted": diverted,
        "judicial_enforcement": enforced,
        "loan_invested": invests,
    }


SCENARIOS = tuple(_scenarios(random.Random(0)))
#: The failing scenarios each rule is meant to warn of (its recall is measured on them).
RULE_SCENARIOS = {
    "operating_inflow_stopped": ("inflows_stop",),
    "operating_inflow_collapse": ("revenue_collapse", "inflows_stop"),
    "account_overdrawn": ("cash_squeeze",),
    "balance_cover_low": ("cash_squeeze",),
    "recurring_payment_lapsed": ("payments_lapse",),
    "financing_partner_stacking": ("lender_stacking",),
    "largest_customer_stopped": ("anchor_lost",),
    "fast_in_fast_out": ("pass_through",),
    "loan_proceeds_diverted": ("proceeds_diverted",),
    "judicial_deduction": ("judicial_enforcement",),
}
#: Financing partners of the registry (specs/registries.toml) that lend to a firm: its own
#: bank for years, then the new ones, in order.
_PERSON = "6222020000000001"  # an individual's account (TRADE): where a conduit's money goes
_HOUSE_BANK = "ICBC0001"
_NEW_LENDERS = ("FIN-LOAN-0001", "FIN-FACTOR-0001", "FIN-LEASE-0001", "CCB00002", "ABC00003")


def _steady(day: date) -> float:
    return 1.0


def _flat(day: date) -> float:
    return 0.9


def _events(firm: Firm, rng: random.Random) -> list[dict[str, Any]]:
    """The firm's bookings, day by day, with the balance after each."""
    scale = rng.lognormvariate(math.log(300_000), 0.6)  # receipts per day, fen
    balance = int(scale * rng.uniform(30, 90))  # one to three months of receipts in the bank
    events: list[dict[str, Any]] = []

    def book(
        day: date,
        inflow: bool,
        amount: float,
        cp: str,
        channel: str = "transfer",
        kind: str | None = None,
    ) -> None:
        nonlocal balance
        fen = max(1, int(amount))
        balance += fen if inflow else -fen
        at = datetime(day.year, day.month, day.day, 9 + len(events) % 9, tzinfo=CST)
        events.append(
            {
                "schema": 1,
                "txn_id": f"{firm.id[-8:]}-{len(events):06d}",
                "bank": BANK,
                "enterprise_id": firm.id,
                "account": "6222000000000001",
                "booked_at": at.isoformat(),
                "direction": "in" if inflow else "out",
                "amount_fen": fen,
                "currency": "CNY",
                "balance_after_fen": balance,
                "channel": channel,
                "counterparty": {"id": cp} if kind is None else {"id": cp, "kind": kind},
            }
        )

    customers = [generate_code(rng) for _ in range(6)]
    next_contract = firm.first + timedelta(days=rng.randint(5, 30))
    day = firm.first
    while day <= END:
        level = firm.level(day) * scale
        if firm.lumpy:
            if day >= next_contract:  # a project paid in one sum every 20 to 45 days
                book(day, True, level * rng.uniform(25, 45), rng.choice(customers))
                next_contract = day + timedelta(days=rng.randint(20, 45))
        elif level > 0 and rng.random() < 0.8:
            amount = level / 0.8 * rng.lognormvariate(0, 0.4)  # drawn before the payer
            if not firm.anchor:
                payer = rng.choice(customers)
            else:
                payer = customers[0] if rng.random() < firm.anchor else rng.choice(customers[1:])
            lost = firm.anchor_stops and firm.trouble is not None and day >= firm.trouble
            if not (lost and payer == customers[0]):
                book(day, True, amount, payer)
        if firm.new_lenders:
            _lend(firm, day, scale, book)
        if rng.random() < 0.6:
            # Half of what a firm pays is fixed, half follows its sales (suppliers).
            variable = 0.5 + 0.5 * firm.level(day)
            amount = firm.spend(day) * variable * scale / 0.6 * rng.lognormvariate(0, 0.4)
            book(day, False, amount, _SUPPLIER)
        stopped = firm.stops_paying and firm.trouble is not None and day >= firm.trouble
        if day.day == 15 and not stopped:
            book(day, False, scale * 0.5, _UTILITY, "utility")
            if not firm.quarterly_tax or day.month % 3 == 1:
                book(day, False, scale * (2.4 if firm.quarterly_tax else 0.8), _TAX, "tax")
        if firm.one_off == day:
            book(day, False, max(balance, 0) * 0.7, _SUPPLIER)
        if firm.conduit and firm.trouble is not None and day >= firm.trouble and balance > 0:
            book(day, False, balance * rng.uniform(0.85, 1.0), _PERSON)
        if firm.trouble is not None and (firm.diverts or firm.enforced or firm.invests):
            _borrow_or_be_enforced(firm, day, scale, rng, book)
        day += timedelta(days=1)
    return events


def _lend(firm: Firm, day: date, scale: float, book: Callable[..., None]) -> None:
    """A firm that borrows: its house bank lends every January and is repaid monthly; each
    new lender lends once and is repaid in ten monthly parts."""
    loans = [(date(day.year, 1, 10), _HOUSE_BANK)]
    loans += [(lent, lender) for lent, lender in zip(firm.new_lenders, _NEW_LENDERS, strict=False)]
    for lent, lender in loans:
        months = (day.year - lent.year) * 12 + day.month - lent.month
        if day == lent:
            book(day, True, scale * 20, lender, "loan")
        elif day.day == 20 and 1 <= months <= 10 and day > lent:
            book(day, False, scale * 2, lender, "loan")


_OWNER = "11010519491231002X"  # the owner: a resident identity number, an individual
_COURT = "JUD-ENFORCE-0001"


def _borrow_or_be_enforced(
    firm: Firm, day: date, scale: float, rng: random.Random, book: Callable[..., None]
) -> None:
    """The loans and deductions of the last three scenarios. A firm that diverts a loan
    sends most of it the same day to its owner, to its own account elsewhere or to
    another lender; a firm under enforcement has a court deduct from it every month; a
    healthy one renews a loan with its lender, buys equipment with the rest, pays its owner
    a monthly dividend and a court fee for a suit of its own."""
    assert firm.trouble is not None
    since = (day - firm.trouble).days
    loan = scale * 20
    if firm.diverts and since == 0:
        book(day, True, loan, "FIN-LOAN-0001", "loan")
        destinations = [
            (_OWNER, None),
            (firm.id, None),
            ("FIN-FACTOR-0001", None),
            (_PERSON, "individual"),
        ]
        for payee, kind in rng.sample(destinations, 2):
            book(day, False, loan * rng.uniform(0.3, 0.45), payee, "transfer", kind)
    if firm.enforced and since >= 0 and since % 30 == 0:
        book(day, False, scale * rng.uniform(3, 10), _COURT, rng.choice(("judicial", "transfer")))
    if firm.invests:
        if since == 0:
            book(day, True, loan, "FIN-LOAN-0001", "loan")
            book(day, False, loan * 0.5, "FIN-LOAN-0001", "loan")  # last year's, renewed
            book(day, False, loan * 0.45, _SUPPLIER)  # equipment
            book(day, False, scale * 2, "GOV-COURT-0001")  # a court fee: its own suit
        if day.day == 25:
            book(day, False, scale * 1.5, _OWNER)  # a monthly dividend


@dataclass
class Outcome:
    firm: Firm
    raised: dict[str, list[date]]  # rule -> the start days of its episodes raised


def _judge(firms: list[Firm], seed: int) -> list[Outcome]:
    rng = random.Random(seed)
    registry = load_registry(SPECS_DIR / "registries.toml")
    store = MemoryStore()
    ledger = PartitionLedger(store, Pseudonymizer(b"backtest"), lambda: registry)
    offset = 0
    for firm in firms:
        for element in _events(firm, rng):
            txn = validate(element, BANK)
            assert isinstance(txn, Txn), txn
            ledger.apply(txn, Source(f"bank.{BANK}.txns", 0, offset, None))
            offset += 1
        ledger.commit(offset)
    state = SignalState(store)
    rules = RuleSet.of(load_signals())
    outcomes = []
    for firm in firms:
        months = state.months(firm.id)
        open_episodes: dict[str, Any] = {}
        raised: dict[str, list[date]] = {spec.id: [] for spec, _ in rules.rules}
        day = JUDGED_FROM
        while day <= END and (firm.failure is None or day <= firm.failure):
            judged = evaluate(firm.id, months, day, open_episodes, rules)
            for change in judged.transitions:
                if change.state == State.RAISED:
                    raised[change.episode.rule].append(change.episode.start)
            open_episodes = judged.open
            day += timedelta(days=1)
        outcomes.append(Outcome(firm, raised))
    return outcomes


def _score(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    scores: dict[str, dict[str, Any]] = {}
    for rule, scenarios in RULE_SCENARIOS.items():
        true = false = 0
        false_by: dict[str, int] = {}
        warned = own = 0
        leads: list[int] = []
        for outcome in outcomes:
            firm = outcome.firm
            starts = outcome.raised[rule]
            good = [
                s
                for s in starts
                if firm.trouble is not None
                and firm.failure is not None
                and firm.trouble <= s <= firm.failure
            ]
            true += len(good)
            false += len(starts) - len(good)
            if len(starts) > len(good):
                false_by[firm.scenario] = false_by.get(firm.scenario, 0) + len(starts) - len(good)
            if firm.scenario in scenarios:
                own += 1
                if good:
                    warned += 1
                    assert firm.failure is not None
                    leads.append((firm.failure - min(good)).days)
        scores[rule] = {
            "precision": round(true / (true + false), 3) if true + false else None,
            "recall": round(warned / own, 3) if own else None,
            "median_lead_days": statistics.median(leads) if leads else None,
            "episodes_raised": true + false,
            "false_alarms_by_scenario": dict(sorted(false_by.items())),
            "scenarios": list(scenarios),
        }
    return scores


def run(per_scenario: int = 50, seed: int = 16) -> dict[str, Any]:
    rng = random.Random(seed)
    makers = _scenarios(rng)
    firms = [make(generate_code(rng)) for make in makers.values() for _ in range(per_scenario)]
    started = time.monotonic()
    outcomes = _judge(firms, seed)
    return {
        "rules": _score(outcomes),
        "firms_per_scenario": per_scenario,
        "scenarios": list(makers),
        "judged": f"every day of {JUDGED_FROM.year}, after a year of history",
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str]) -> None:
    per_scenario = int(argv[0]) if argv else 50
    result = run(per_scenario)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"{'rule':<28} {'precision':>9} {'recall':>7} {'lead (days)':>11}  false alarms")
    for rule, s in result["rules"].items():
        alarms = ", ".join(f"{k} {v}" for k, v in s["false_alarms_by_scenario"].items()) or "-"
        print(
            f"{rule:<28} {_fmt(s['precision']):>9} {_fmt(s['recall']):>7} "
            f"{_fmt(s['median_lead_days']):>11}  {alarms}"
        )
    print(f"wrote {RESULT} ({result['seconds']} s)")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


if __name__ == "__main__":
    main(sys.argv[1:])
