"""The evaluated signal rules against their naive reference, on generated firm histories, and
the episodes they make (raised, cleared, retracted) as events arrive late."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import codec
from engine.errors import SpecError
from engine.events.contract import Txn, validate
from engine.events.credit_code import generate as generate_code
from engine.products.classify import load_registry
from engine.products.history import History, MonthView
from engine.products.specs import SPECS_DIR
from engine.pseudonym import Pseudonymizer
from engine.signals.docs import SIGNALS_DOC, render_signals_doc
from engine.signals.episodes import Episode, State, episode_id, transitions
from engine.signals.rules import RULES, finding
from engine.signals.spec import load_signals
from engine.signals.timeline import MonthDays, Timeline, timeline, timeline_of
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from tests.factories import ENTERPRISE
from tests.reference import signals as reference
from tests.reference.events import transactions

CST = timezone(timedelta(hours=8))
START = date(2025, 1, 1)
SPEC = load_signals()
CUSTOMER = "91110000600037341L"  # a credit code: TRADE
_STREAMS = [  # paid every month: UTILITY power and water, TAX, SOCIAL
    ("UTIL-POWER-0001", "utility"),
    ("UTIL-WATER-0001", "utility"),
    ("TAX-STA-0001", "tax"),
    ("SOCIAL-SI-0001", "transfer"),
]
_REGISTRY = load_registry(SPECS_DIR / "registries.toml")
_OTHER_CUSTOMERS = [generate_code(random.Random(k)) for k in range(3)]
_PERSON = "6222020000000001"  # an individual's account: TRADE
_NEW_LENDERS = ("FIN-LOAN-0001", "FIN-FACTOR-0001", "FIN-LEASE-0001", "CCB00002")


def _event(
    n: int,
    day: date,
    direction: str,
    amount: int,
    balance: int,
    account: str,
    counterparty: str = CUSTOMER,
    channel: str = "transfer",
    kind: str | None = None,
) -> dict[str, Any]:
    event = {
        "schema": 1,
        "txn_id": f"T{n:05d}",
        "bank": "BANK0001",
        "enterprise_id": ENTERPRISE,
        "account": account,
        "booked_at": datetime(day.year, day.month, day.day, 10, tzinfo=CST).isoformat(),
        "direction": direction,
        "amount_fen": amount,
        "currency": "CNY",
        "balance_after_fen": balance,
        "channel": channel,
        "counterparty": {"id": counterparty, "bank": None},
    }
    if kind is not None:
        event["counterparty"]["kind"] = kind
    return event


def _divert(
    rng: random.Random, events: list[dict[str, Any]], balance: dict[str, int], day: date
) -> None:
    """A loan from a lender, and a random share of it paid within a few days to persons, the
    firm's own account or another lender (or, as often, to suppliers)."""
    loan = rng.choice((3_000_000, 5_000_000, 8_000_000))
    balance["ACC-1"] += loan
    events.append(_event(len(events), day, "in", loan, balance["ACC-1"], "ACC-1", "FIN-LOAN-0001"))
    for _ in range(rng.randint(1, 4)):
        amount = loan * rng.choice((10, 20, 30, 50)) // 100
        payee, kind, channel = rng.choice(
            (
                (_PERSON, "individual", "transfer"),
                ("11010519491231002X", None, "transfer"),  # a resident ID: a person
                (ENTERPRISE, None, "transfer"),
                ("FIN-FACTOR-0001", None, "transfer"),
                ("BANK0001", None, "loan"),
                (CUSTOMER, None, "transfer"),
                (_PERSON, "individual", "payroll"),
            )
        )
        when = day + timedelta(days=rng.randint(0, 5))
        balance["ACC-1"] -= amount
        events.append(
            _event(
                len(events), when, "out", amount, balance["ACC-1"], "ACC-1", payee, channel, kind
            )
        )


@st.composite
def firm(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A firm's days: inflows and outflows most days, then perhaps a stop or a collapse, and
    an account that may go overdrawn; a few inflows reversed."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    span = draw(st.sampled_from((45, 120, 400, 460)))
    trouble_at = draw(st.integers(0, span))
    troubles = (
        "stop",
        "collapse",
        "lapse",
        "stack",
        "customer",
        "conduit",
        "divert",
        "judicial",
        "none",
    )
    trouble = draw(st.sampled_from(troubles))
    # One customer pays about half the receipts; the customer trouble stops it.
    customers = [CUSTOMER, CUSTOMER, *_OTHER_CUSTOMERS[: rng.randint(1, 3)]]
    utilities = rng.sample(_STREAMS, k=rng.randint(0, len(_STREAMS)))
    events: list[dict[str, Any]] = []
    balance = {"ACC-1": 2_000_000, "ACC-2": 50_000}
    for k in range(span):
        day = START + timedelta(days=k)
        payer = rng.choice(customers)
        lost = trouble == "customer" and payer == CUSTOMER and k >= trouble_at
        if rng.random() < 0.7 and not (trouble == "stop" and k >= trouble_at) and not lost:
            amount = rng.randint(50_000, 300_000)
            if trouble == "collapse" and k >= trouble_at:
                amount //= 10
            account = rng.choice(("ACC-1", "ACC-2"))
            balance[account] += amount
            events.append(_event(len(events), day, "in", amount, balance[account], account, payer))
        if trouble == "conduit" and k >= trouble_at:  # most of what is held leaves daily
            for account in ("ACC-1", "ACC-2"):
                amount = max(balance[account], 0) * rng.choice((80, 95, 100)) // 100
                if amount > 0:
                    balance[account] -= amount
                    events.append(
                        _event(len(events), day, "out", amount, balance[account], account, _PERSON)
                    )
        if trouble == "divert" and k in (trouble_at, trouble_at + 40):
            _divert(rng, events, balance, day)
        if trouble == "judicial" and k == trouble_at:
            amount = rng.randint(10_000, 900_000)
            balance["ACC-2"] -= amount
            payee, channel = rng.choice(
                (("COURT-77", "judicial"), ("JUD-ENFORCE-0001", "transfer"))
            )
            events.append(
                _event(len(events), day, "out", amount, balance["ACC-2"], "ACC-2", payee, channel)
            )
        # A long-standing lender, repaid every month; new ones lend after the stack trouble,
        # some of them a few weeks apart.
        lenders = [(0, "ICBC0001")]
        if trouble == "stack":
            lenders += [(trouble_at + 25 * n, cp) for n, cp in enumerate(_NEW_LENDERS)]
        for lent_on, lender in lenders:
            repaid = k > lent_on and day.day == 20
            if k == lent_on or (repaid and rng.random() < 0.8):
                amount = 1_000_000 if k == lent_on else 90_000
                inflow = k == lent_on
                balance["ACC-1"] += amount if inflow else -amount
                events.append(
                    _event(
                        len(events),
                        day,
                        "in" if inflow else "out",
                        amount,
                        balance["ACC-1"],
                        "ACC-1",
                        lender,
                        "loan",
                    )
                )
        if rng.random() < 0.6:
            account = rng.choice(("ACC-1", "ACC-2"))
            amount = rng.randint(20_000, 250_000)
            balance[account] -= amount
            events.append(_event(len(events), day, "out", amount, balance[account], account))
        for k, (payee, channel) in enumerate(utilities):  # monthly, on a day of their own
            if (
                day.day == 5 + 7 * k
                and not (trouble == "lapse" and k == 0 and (day - START).days >= trouble_at)
                and rng.random() < 0.9
            ):  # now and then a month is missed
                balance["ACC-1"] -= 30_000
                events.append(
                    _event(
                        len(events),
                        day,
                        "out",
                        30_000,
                        balance["ACC-1"],
                        "ACC-1",
                        payee,
                        channel,
                    )
                )
    for original in rng.sample(events, k=min(3, len(events))):
        if original["direction"] == "in":
            events.append(
                dict(
                    original,
                    txn_id=original["txn_id"] + "-R",
                    direction="out",
                    reversal_of=original["txn_id"],
                )
            )
    return events


def _history(events: list[dict[str, Any]]) -> History:
    ledger = PartitionLedger(MemoryStore(), Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    for offset, element in enumerate(events):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        ledger.apply(txn, Source("bank.BANK0001.txns", 0, offset, None))
    ledger.commit(len(events))
    months = dict(ledger.enterprises()).get(ENTERPRISE, {})
    return History(
        {m: MonthView.from_json(codec.loads(codec.dumps(a.view()))) for m, a in months.items()}
    )


def _timeline(events: list[dict[str, Any]], as_of: date) -> Timeline:
    t = timeline(_history(events), as_of)
    assert t is not None
    return t


#: Shorter months for the month-level rules, so that the histories of a test (up to 15
#: months) reach them often; a deployment may tune them so.
_SHORT = {
    "financing_partner_stacking": {"months": 2, "lookback_months": 4},
    "largest_customer_stopped": {"months": 3, "paid_months": 2},
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(firm(), st.integers(0, 520), st.booleans())
def test_every_evaluated_rule_agrees_with_its_reference(
    events: list[dict[str, Any]], offset: int, short: bool
) -> None:
    txns = transactions(events)[ENTERPRISE]
    first = min(t.day for t in txns)
    as_of = first + timedelta(days=offset)
    t = _timeline(events, as_of)
    for rule, spec in SPEC.rules.items():
        if not spec.evaluated:
            continue
        parameters = spec.values(_SHORT.get(rule) if short else None)
        found = finding(rule, t, parameters)
        expected = reference.finding(rule, txns, as_of, parameters)
        got = None if found is None else (found.start, found.evidence)
        assert got == expected, (rule, as_of)
        assert found is None or list(found.evidence) == list(spec.evidence), rule


def test_the_signals_doc_is_current() -> None:
    assert SIGNALS_DOC.read_text(encoding="utf-8") == render_signals_doc(), (
        "docs/signals.md is out of date: run `creditflow docs`"
    )


def test_the_spec_and_the_rules_name_the_same_evaluated_rules() -> None:
    assert set(RULES) == {r.id for r in SPEC.rules.values() if r.evaluated}
    assert set(RULES) == set(reference.JUDGES)
    assert len(SPEC.rules) >= 9


def _daily(days: int, skip: range = range(0)) -> list[dict[str, Any]]:
    return [
        _event(k, START + timedelta(days=k), "in", 100_000, 1_000_000 + k, "ACC-1")
        for k in range(days)
        if k not in skip
    ]


def _open(rule: str, t: Timeline) -> Episode | None:
    found = finding(rule, t, SPEC.rules[rule].values())
    if found is None:
        return None
    return Episode(episode_id(ENTERPRISE, rule, found.start), rule, found.start, found.evidence)


def _step(rule: str, open_episode: Episode | None, t: Timeline) -> list[tuple[State, date]]:
    parameters = SPEC.rules[rule].values()
    changes = transitions(
        ENTERPRISE,
        open_episode,
        finding(rule, t, parameters),
        lambda day: RULES[rule](t, t.index(day), parameters) is not None,
    )
    return [(c.state, c.episode.start) for c in changes]


def test_stopped_inflows_raise_once_clear_when_inflows_return_and_retract_on_a_late_one() -> None:
    rule = "operating_inflow_stopped"
    quiet = _daily(100)  # inflows on days 0..99, then none
    as_of = START + timedelta(days=140)
    t = _timeline(quiet, as_of)
    raised = _open(rule, t)
    assert raised is not None and raised.start == START + timedelta(days=129)
    assert raised.evidence == {
        "last_operating_inflow_on": "2025-04-10",
        "days_without": 41,
        "days_required": 30,
    }
    assert _step(rule, raised, t) == []  # evaluated again: nothing new, the same id
    # An inflow on day 135: the run ended, it did hold on its first day: cleared.
    back = [*quiet, _event(900, START + timedelta(days=135), "in", 5, 1, "ACC-1")]
    assert _step(rule, raised, _timeline(back, as_of)) == [(State.CLEARED, raised.start)]
    # A late inflow on day 120 (booked then, arrived now): the rule never held on day 129, so
    # that episode is retracted. That inflow came 21 days after the one before: the firm's
    # longest gap, so the new quiet run must reach 32 days (1.5 x 21, rounded up): day 152.
    late = [*quiet, _event(901, START + timedelta(days=120), "in", 5, 1, "ACC-1")]
    assert _step(rule, raised, _timeline(late, as_of)) == [(State.RETRACTED, raised.start)]
    later = START + timedelta(days=160)
    assert _step(rule, None, _timeline(late, later)) == [
        (State.RAISED, START + timedelta(days=152))
    ]


def test_a_firm_paid_every_six_weeks_is_not_stopped_after_thirty_days() -> None:
    rule, spec = "operating_inflow_stopped", SPEC.rules["operating_inflow_stopped"]
    paid = [
        _event(k, START + timedelta(days=42 * k), "in", 900_000, 1_000_000, "ACC-1")
        for k in range(8)
    ]
    last = START + timedelta(days=42 * 7)
    assert finding(rule, _timeline(paid, last + timedelta(days=45)), spec.values()) is None
    found = finding(rule, _timeline(paid, last + timedelta(days=70)), spec.values())
    assert found is not None and found.start == last + timedelta(days=63)  # 1.5 x 42
    assert found.evidence["days_required"] == 63


def test_an_overdraft_is_judged_per_account() -> None:
    events = [
        _event(0, START, "in", 1_000, 5_000_000, "ACC-1"),
        _event(1, START + timedelta(days=1), "out", 1_000, -20_000, "ACC-2"),
    ]
    parameters = SPEC.rules["account_overdrawn"].values()  # three days overdrawn
    assert (
        finding("account_overdrawn", _timeline(events, START + timedelta(days=2)), parameters)
        is None
    )
    found = finding("account_overdrawn", _timeline(events, START + timedelta(days=3)), parameters)
    assert found is not None and found.start == START + timedelta(days=3)
    assert found.evidence == {"overdrawn_accounts": 1, "lowest_balance_fen": -20_000}


def test_an_account_whose_last_booking_was_pruned_still_counts() -> None:
    # ACC-2's last booking was pruned: overdrawn by CNY 200, it is still overdrawn (the carry,
    # state/horizon.py), until a kept booking of its own says otherwise
    kept = [_event(0, START, "in", 1_000, 5_000_000, "ACC-1")]
    later = [*kept, _event(1, START + timedelta(days=1), "in", 30_000, 10_000, "ACC-2")]
    before, after = (
        {m: MonthDays.of_view(v) for m, v in _history(events).months.items()}
        for events in (kept, later)
    )
    (acc_2,) = {a for d in after.values() for a in d.balances} - {
        a for d in before.values() for a in d.balances
    }  # its pseudonym, as the carry keeps it
    parameters = SPEC.rules["account_overdrawn"].values()  # three days overdrawn
    day = START + timedelta(days=3)
    assert finding("account_overdrawn", _of(before, day, None), parameters) is None
    found = finding("account_overdrawn", _of(before, day, {acc_2: -20_000}), parameters)
    assert found is not None and found.evidence["lowest_balance_fen"] == -20_000
    assert finding("account_overdrawn", _of(after, day, {acc_2: -20_000}), parameters) is None


def _of(months: dict[int, MonthDays], day: date, carried: dict[str, int] | None) -> Timeline:
    t = timeline_of(months, day, carried)
    assert t is not None
    return t


def test_a_young_firm_is_not_judged_on_days_before_it_existed() -> None:
    events = _daily(10)
    t = _timeline(events, START + timedelta(days=25))
    assert (
        finding("operating_inflow_stopped", t, SPEC.rules["operating_inflow_stopped"].values())
        is None
    )
    assert (
        finding("operating_inflow_collapse", t, SPEC.rules["operating_inflow_collapse"].values())
        is None
    )


_RULE = """
[[rules]]
id = "some_rule"
name_zh = "规则"
name_en = "A rule"
severity = "warning"
status = "evaluated"
definition = "Holds when `days` days pass."
evidence = ["days"]
clears = "Never."
parameters = { days = { default = 3, unit = "days", description = "Days." } }
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = 1\n" + _RULE + _RULE, "declared twice"),
        ("version = 1\n" + _RULE.replace('"warning"', '"loud"'), "severity"),
        ("version = 1\n" + _RULE.replace("`days` days", "`weeks` weeks"), "`weeks`"),
        ("version = 1\n" + _RULE.replace('evidence = ["days"]', "evidence = []"), "evidence"),
        ("version = 1\n" + _RULE.replace('"evaluated"', '"maybe"'), "status"),
        ("version = 0\n" + _RULE, "version"),
    ],
)
def test_a_broken_signals_spec_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "signals.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=message):
        load_signals(path)


def test_a_deployment_tunes_parameters_it_has() -> None:
    rule = SPEC.rules["operating_inflow_stopped"]
    assert rule.values({"days": 14}) == {"days": 14, "gap_factor": 1.5}
    with pytest.raises(SpecError, match="no parameter"):
        rule.values({"weeks": 2})


def test_a_monthly_bill_that_stops_lapses_and_a_quarterly_one_never_does() -> None:
    rule, parameters = "recurring_payment_lapsed", SPEC.rules["recurring_payment_lapsed"].values()
    months = [date(2025, m, 5) for m in range(1, 6)]  # power paid January to May
    power = [
        _event(k, d, "out", 30_000, 1_000_000, "ACC-1", "UTIL-POWER-0001", "utility")
        for k, d in enumerate(months)
    ]
    quarterly_tax = [
        _event(10 + k, date(2025, m, 15), "out", 90_000, 1_000_000, "ACC-1", "TAX-STA-0001", "tax")
        for k, m in enumerate((1, 4, 7))
    ]
    receipts = [_event(20 + k, START + timedelta(days=k), "in", 1, 1, "ACC-1") for k in range(3)]
    history = [*receipts, *power, *quarterly_tax]
    # June went by without the power bill: lapsed on 10 July (grace_days), not on the 9th.
    assert finding(rule, _timeline(history, date(2025, 7, 9)), parameters) is None
    found = finding(rule, _timeline(history, date(2025, 9, 30)), parameters)
    assert found is not None and found.start == date(2025, 7, 10)
    assert found.evidence == {
        "streams": [{"class": "UTILITY", "subtype": "power", "last_paid_month": "2025-05"}]
    }
    # Paid again on 3 October: the rule reads complete months, so it clears on 1 November.
    paid = [
        *history,
        _event(30, date(2025, 10, 3), "out", 30_000, 1, "ACC-1", "UTIL-POWER-0001", "utility"),
    ]
    assert finding(rule, _timeline(paid, date(2025, 10, 31)), parameters) is not None
    assert finding(rule, _timeline(paid, date(2025, 11, 1)), parameters) is None


def _receipts(until: date, payers: list[tuple[str, int]], n: int = 0) -> list[dict[str, Any]]:
    """A receipt from each payer (counterparty, amount) on the 3rd of every month from START
    to ``until``."""
    events, day = [], START.replace(day=3)
    while day <= until:
        for payer, amount in payers:
            events.append(_event(n + len(events), day, "in", amount, 1_000_000, "ACC-1", payer))
        day = (day + timedelta(days=31)).replace(day=3)
    return events


def _loan(n: int, day: date, lender: str, inflow: bool = True) -> dict[str, Any]:
    direction = "in" if inflow else "out"
    return _event(n, day, direction, 500_000, 1_000_000, "ACC-1", lender, "loan")


def test_three_new_lenders_in_a_quarter_stack_and_an_old_one_is_not_new() -> None:
    rule, parameters = (
        "financing_partner_stacking",
        SPEC.rules["financing_partner_stacking"].values(),
    )
    history = [
        *_receipts(date(2026, 6, 30), [(CUSTOMER, 100_000)]),
        _loan(900, date(2025, 1, 10), "ICBC0001"),  # the firm's bank, repaid every month
        *(_loan(910 + m, date(2025, m, 25), "ICBC0001", inflow=False) for m in range(2, 13)),
        _loan(901, date(2026, 2, 12), "FIN-LOAN-0001"),
        _loan(902, date(2026, 3, 2), "FIN-FACTOR-0001"),
        _loan(903, date(2026, 3, 20), "ICBC0001"),  # lent again: not a new partner
        _loan(904, date(2026, 4, 8), "FIN-LEASE-0001"),
    ]
    # The window is the three complete months before D's: February to April from 1 May.
    assert finding(rule, _timeline(history, date(2026, 4, 30)), parameters) is None
    found = finding(rule, _timeline(history, date(2026, 5, 20)), parameters)
    assert found is not None and found.start == date(2026, 5, 1)
    assert found.evidence == {"new_partners": 3, "inflow_fen": 1_500_000}
    # In June the window (March to May) holds two: it clears.
    assert finding(rule, _timeline(history, date(2026, 6, 1)), parameters) is None
    # A lessor repaid 11 months before its loan (within the year before) was a partner.
    known = [*history, _loan(905, date(2025, 5, 20), "FIN-LEASE-0001", inflow=False)]
    assert finding(rule, _timeline(known, date(2026, 5, 20)), parameters) is None
    for events in (history, known):
        txns = transactions(events)[ENTERPRISE]
        for as_of in (date(2026, 4, 30), date(2026, 5, 20), date(2026, 6, 1)):
            found = finding(rule, _timeline(events, as_of), parameters)
            got = None if found is None else (found.start, found.evidence)
            assert got == reference.finding(rule, txns, as_of, parameters)


def test_the_largest_customer_stopping_is_a_signal_and_a_small_one_is_not() -> None:
    rule, parameters = "largest_customer_stopped", SPEC.rules["largest_customer_stopped"].values()
    small = _OTHER_CUSTOMERS[0]
    largest = _receipts(date(2025, 8, 31), [(CUSTOMER, 600_000)])  # January to August
    others = _receipts(date(2025, 12, 31), [(small, 300_000)], n=100)
    history = [*largest, *others]
    # September went by without it: stopped from 10 October (grace_days), not the 9th.
    assert finding(rule, _timeline(history, date(2025, 10, 9)), parameters) is None
    found = finding(rule, _timeline(history, date(2025, 12, 1)), parameters)
    assert found is not None and found.start == date(2025, 10, 10)
    assert found.evidence == {"customer_share": round(6 / 9, 4), "last_paid_month": "2025-08"}
    # It pays again on 5 December: seen once December is complete.
    back = [*history, _event(999, date(2025, 12, 5), "in", 600_000, 1, "ACC-1", CUSTOMER)]
    assert finding(rule, _timeline(back, date(2025, 12, 31)), parameters) is not None
    assert finding(rule, _timeline(back, date(2026, 1, 1)), parameters) is None
    # The smaller customer stopping instead says nothing.
    swapped = [*_receipts(date(2025, 12, 31), [(CUSTOMER, 600_000)]), *others[:8]]
    assert finding(rule, _timeline(swapped, date(2025, 12, 1)), parameters) is None
    for events in (history, back, swapped):
        txns = transactions(events)[ENTERPRISE]
        for as_of in (date(2025, 10, 9), date(2025, 12, 1), date(2026, 1, 1)):
            found = finding(rule, _timeline(events, as_of), parameters)
            got = None if found is None else (found.start, found.evidence)
            assert got == reference.finding(rule, txns, as_of, parameters)


def test_money_that_passes_through_day_after_day_is_fast_in_fast_out() -> None:
    rule, parameters = "fast_in_fast_out", SPEC.rules["fast_in_fast_out"].values()
    events, balance = [], 20_000
    for k in range(60):
        day = START + timedelta(days=k)
        balance += 500_000
        events.append(_event(len(events), day, "in", 500_000, balance, "ACC-1"))
        # From day 30 it all leaves the same day (to an individual); before, a tenth stays.
        out = balance if k >= 30 else 450_000
        balance -= out
        events.append(_event(len(events), day, "out", out, balance, "ACC-1", _PERSON))
    # Day 31 is the first to come into an empty account and leave it empty: the tenth such
    # day, 40, is judged once its next day is over, on day 41.
    assert finding(rule, _timeline(events, START + timedelta(days=40)), parameters) is None
    found = finding(rule, _timeline(events, START + timedelta(days=41)), parameters)
    assert found is not None and found.start == START + timedelta(days=41)
    assert found.evidence == {"pass_through_days": 10, "inflow_fen": 5_000_000}
    # The same flows with a day's receipts kept, or overdrawn by as much: never (an
    # overdraft is account_overdrawn's to say).
    for shift in (500_000, -500_000):
        moved = [dict(e, balance_after_fen=e["balance_after_fen"] + shift) for e in events]
        assert finding(rule, _timeline(moved, START + timedelta(days=59)), parameters) is None
    txns = transactions(events)[ENTERPRISE]
    for k in (40, 41, 59):
        as_of = START + timedelta(days=k)
        found = finding(rule, _timeline(events, as_of), parameters)
        got = None if found is None else (found.start, found.evidence)
        assert got == reference.finding(rule, txns, as_of, parameters)


def _trading(days: int) -> list[dict[str, Any]]:
    """A firm paid by its customer and paying a supplier every day, into one account."""
    events: list[dict[str, Any]] = []
    balance = 1_000_000
    for k in range(days):
        day = START + timedelta(days=k)
        balance += 200_000
        events.append(_event(len(events), day, "in", 200_000, balance, "ACC-1"))
        balance -= 150_000
        events.append(
            _event(len(events), day, "out", 150_000, balance, "ACC-1", _OTHER_CUSTOMERS[0])
        )
    return events


def _agrees_with_reference(rule: str, events: list[dict[str, Any]], days: range) -> None:
    parameters = SPEC.rules[rule].values()
    txns = transactions(events)[ENTERPRISE]
    for k in days:
        as_of = START + timedelta(days=k)
        found = finding(rule, _timeline(events, as_of), parameters)
        got = None if found is None else (found.start, found.evidence)
        assert got == reference.finding(rule, txns, as_of, parameters), as_of


def _with_outflows(
    events: list[dict[str, Any]], payments: list[tuple[int, int, str, str, str | None]]
) -> list[dict[str, Any]]:
    """``events`` and, on day 30, a loan of CNY 50,000 from a lender, then ``payments``:
    (day, amount, counterparty, channel, kind)."""
    events = [
        *events,
        _event(
            len(events), START + timedelta(days=30), "in", 5_000_000, 0, "ACC-1", "FIN-LOAN-0001"
        ),
    ]
    for day, amount, payee, channel, kind in payments:
        when = START + timedelta(days=day)
        events.append(_event(len(events), when, "out", amount, 0, "ACC-2", payee, channel, kind))
    return events


def test_loan_proceeds_that_leave_at_once_are_diverted_and_spent_ones_are_not() -> None:
    rule, parameters = "loan_proceeds_diverted", SPEC.rules["loan_proceeds_diverted"].values()
    base = _trading(75)
    diverted = _with_outflows(
        base,
        [
            (31, 2_000_000, _PERSON, "transfer", "individual"),
            (33, 1_000_000, ENTERPRISE, "transfer", None),  # to its own account elsewhere
        ],
    )
    # 40 % had left by day 31, 60 % by day 33: raised on day 33, for 30 days from the loan.
    assert finding(rule, _timeline(diverted, START + timedelta(days=32)), parameters) is None
    found = finding(rule, _timeline(diverted, START + timedelta(days=59)), parameters)
    assert found is not None and found.start == START + timedelta(days=33)
    assert found.evidence == {
        "disbursed_on": "2025-01-31",
        "disbursed_fen": 5_000_000,
        "left_fen": 3_000_000,
        "to": {"lenders": 0, "own_accounts": 1_000_000, "individuals": 2_000_000},
    }
    assert finding(rule, _timeline(diverted, START + timedelta(days=60)), parameters) is None
    _agrees_with_reference(rule, diverted, range(28, 64))
    # A new loan repaying an old lender (the account-holding bank, channel loan) is diverted;
    # the same money to a supplier, to staff, after the third day, or back to the lender
    # that lent it (a renewal) is not.
    rolled = _with_outflows(base, [(30, 4_000_000, "BANK0001", "loan", None)])
    assert finding(rule, _timeline(rolled, START + timedelta(days=30)), parameters) is not None
    _agrees_with_reference(rule, rolled, range(29, 62))
    for payments in (
        [(31, 3_000_000, CUSTOMER, "transfer", None)],
        [(31, 3_000_000, _PERSON, "payroll", "individual")],
        [(34, 3_000_000, _PERSON, "transfer", "individual")],
        [(31, 3_000_000, _PERSON, "transfer", None)],  # an account number: an organization
        [(30, 4_000_000, "FIN-LOAN-0001", "transfer", None)],  # the lender renews its loan
    ):
        spent = _with_outflows(base, payments)
        assert finding(rule, _timeline(spent, START + timedelta(days=40)), parameters) is None
        _agrees_with_reference(rule, spent, range(29, 36))


def test_a_judicial_deduction_is_a_signal_for_ninety_days_and_a_court_fee_is_not() -> None:
    rule, parameters = "judicial_deduction", SPEC.rules["judicial_deduction"].values()
    base = _trading(120)
    deducted = [
        *base,
        _event(
            len(base), START + timedelta(days=10), "out", 700_000, 0, "ACC-1", "COURT-9", "judicial"
        ),
        _event(
            len(base) + 1, START + timedelta(days=12), "out", 50_000, 0, "ACC-1", "JUD-ENFORCE-0001"
        ),
    ]
    found = finding(rule, _timeline(deducted, START + timedelta(days=99)), parameters)
    assert found is not None and found.start == START + timedelta(days=10)
    assert found.evidence == {"booked_on": "2025-01-13", "amount_fen": 750_000}
    found = finding(rule, _timeline(deducted, START + timedelta(days=100)), parameters)
    assert found is not None and found.evidence == {"booked_on": "2025-01-13", "amount_fen": 50_000}
    assert finding(rule, _timeline(deducted, START + timedelta(days=102)), parameters) is None
    _agrees_with_reference(rule, deducted, range(8, 104, 3))
    fee = [
        *base,
        _event(len(base), START + timedelta(days=10), "out", 700_000, 0, "ACC-1", "GOV-COURT-0001"),
    ]
    assert finding(rule, _timeline(fee, START + timedelta(days=20)), parameters) is None
    # Reversed, it never happened.
    reversed_ = [
        *deducted[:-1],
        dict(deducted[-2], txn_id="REV", direction="in", reversal_of=deducted[-2]["txn_id"]),
    ]
    assert finding(rule, _timeline(reversed_, START + timedelta(days=20)), parameters) is None
