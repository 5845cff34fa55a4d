"""Spec version 12's items: power, water, gas, salaries and tax paid against the same
quarter a year earlier (state/month.py's *_paid marks for a partial quarter).

The numbers are read off the scenario ``public_payments_yoy`` (tests/sql_scenarios.py),
which the SQL reference agrees with item by item (tests/unit/test_reference_sql.py); this
test pins what a credit officer would check.
"""

from __future__ import annotations

import pytest

from tests import reference
from tests.compare import same
from tests.scenario_products import render
from tests.sql_scenarios import SCENARIOS

STREAMS = ("power", "water", "gas", "payroll", "tax")


def _growths(label: str) -> dict[str, float | None]:
    items = render("public_payments_yoy", label)
    return {s: items[f"{s}_paid_yoy_growth"] for s in STREAMS}


def test_a_whole_quarter_against_the_same_quarter_a_year_earlier() -> None:
    assert _growths("2025Q4") == pytest.approx(
        # power 150,000 against 100,000 (not the heating beside it, nor a utility known by
        # its channel only); no gas this time; tax 50,000 + 30,000 by channel against
        # 80,000 (the 5,000 paid in error was reversed)
        {"power": 0.5, "water": -0.5, "gas": -1.0, "payroll": 0.2, "tax": 0.0}
    )


def test_a_partial_quarter_against_as_many_first_days_of_that_quarter() -> None:
    # 14 May 2026 at noon: 44 days against 1 April to 14 May 2025. Power 60,000 against
    # 40,000 (the 9,999 of 1 May 2025 was reversed; 20 May is after the 44 days); water
    # 15,000 against what was paid late on 14 May 2025; salaries 550,000 against April's
    # 500,000; tax 45,000 against 30,000 (not the 45th day's)
    assert _growths("2026Q2") == pytest.approx(
        {"power": 0.5, "water": 0.5, "gas": None, "payroll": 0.1, "tax": 0.5}
    )
    # gas was paid only in June 2025: no base so far, though the whole quarter had one


def test_no_base_is_null_a_zero_base_too() -> None:
    # 2024Q3 to 2025Q2: the same quarter a year earlier is before the firm's first month;
    # 2025Q3: 2024Q3 was lived from August, and what it paid then is no base
    for label in ("2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3"):
        assert render("public_payments_yoy", label)["coverage"]["same_quarter_last_year"] is False
        assert _growths(label) == dict.fromkeys(STREAMS)
    # 2026Q1 against 2025Q1, on record, in which nothing of the five was paid
    assert render("public_payments_yoy", "2026Q1")["coverage"]["same_quarter_last_year"]
    assert _growths("2026Q1") == dict.fromkeys(STREAMS)


def test_the_first_reference_reads_the_same_from_the_definitions() -> None:
    """The SQL reference agrees through tests/unit/test_reference_sql.py; the first one
    (tests/reference/quarterly.py), which the generated logs of test_ledger.py rarely give a
    year-earlier base, is held to every quarter of the scenario here."""
    (scenario,) = [s for s in SCENARIOS if s.name == "public_payments_yoy"]
    ((firm, expected),) = reference.products(scenario.log, as_of=scenario.as_of).items()
    for label in scenario.labels:
        if "Q" in label:
            items = render(scenario.name, label)
            for stream in STREAMS:
                item = f"{stream}_paid_yoy_growth"
                assert same(expected[label][item], items[item]), (firm, label, item)
