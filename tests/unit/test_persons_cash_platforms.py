"""Spec version 9's items: money from persons, and the days with a cash deposit or a
platform's settlement (state/month.py's from_person, cash_in and psp_in marks).

The numbers are read off the scenario ``persons_cash_platforms`` (tests/sql_scenarios.py),
which the SQL reference agrees with item by item (tests/unit/test_reference_sql.py); this
test pins what a credit officer would check.
"""

from __future__ import annotations

from tests.scenario_products import render


def test_individual_inflow_counts_persons_in_every_class_but_the_firms_own() -> None:
    october = render("persons_cash_platforms", "2025-10")
    # 50,000 of cash a person deposited, 70,000 from a person by kind, 100,000 lent by a
    # lender the bank says is a person; not the 40,000 from a resident id told to be an
    # organization, nor the 60,000 of the firm's own money marked individual
    assert october["individual_inflow_fen"] == 220_000
    # November: 9,000 of a person's cash; the 7,000 deposit was reversed
    assert render("persons_cash_platforms", "2025-11")["individual_inflow_fen"] == 9_000
    assert render("persons_cash_platforms", "2025Q4")["individual_inflow_fen"] == 229_000
    assert render("persons_cash_platforms", "2026Q1")["individual_inflow_fen"] == 4_000


def test_cash_deposit_days_count_days_not_deposits_nor_withdrawals() -> None:
    october = render("persons_cash_platforms", "2025-10")
    # the 3rd (two deposits, two accounts) and the 7th; not the 9th, a withdrawal only
    assert (october["cash_deposit_days"], october["cash_deposit_count"]) == (2, 3)
    assert render("persons_cash_platforms", "2025-11")["cash_deposit_days"] == 1  # reversed
    assert render("persons_cash_platforms", "2025Q4")["cash_deposit_days"] == 3
    assert render("persons_cash_platforms", "2026-01")["cash_deposit_days"] == 1


def test_psp_inflow_days_count_settlement_days_to_the_pull() -> None:
    october = render("persons_cash_platforms", "2025-10")
    # the 5th (two platforms); not the 6th's fee, nor the 20th's settlement, reversed
    assert october["psp_inflow_days"] == 1
    assert render("persons_cash_platforms", "2025-11")["psp_inflow_days"] == 3  # the 30th too
    assert render("persons_cash_platforms", "2025Q4")["psp_inflow_days"] == 5
    # the pull's own morning has begun: its settlement counts
    assert render("persons_cash_platforms", "2026-01")["psp_inflow_days"] == 1
    assert render("persons_cash_platforms", "2026Q1")["psp_inflow_days"] == 1
