"""Spec version 7's items where the generated logs do not reach: persons as counterparties
(by ``counterparty.kind``, by an id shaped like a resident identity number, and a kind that
overrides the shape), court deductions (by channel and by the registry, one reversed), new
and known customers, and inflow parked in a month's last five days.

The numbers are read off the scenario ``individuals_and_courts`` (tests/sql_scenarios.py),
which the SQL reference agrees with item by item (tests/unit/test_reference_sql.py); this
test pins what a credit officer would check.
"""

from __future__ import annotations

from tests.scenario_products import render


def test_company_to_individual_counts_persons_and_leaves_salary_courts_and_lenders_apart() -> None:
    october = render("individuals_and_courts", "2025-10")
    # 50,000 to a person by kind, 20,000 to a resident id, 12,000 in cash to one; not the
    # 30,000 to a resident id the bank says is an organization, the 90,000 of salary, the
    # 45,000 a court took, the 15,000 to a lender and the 25,000 of principal to the bank
    assert october["company_to_individual_fen"] == 82_000
    assert render("individuals_and_courts", "2025Q4")["company_to_individual_fen"] == 85_000


def test_judicial_deductions_by_channel_and_registry_and_a_reversed_one_is_none() -> None:
    october = render("individuals_and_courts", "2025-10")
    assert (october["judicial_deduction_fen"], october["judicial_deduction_days"]) == (78_000, 2)
    november = render("individuals_and_courts", "2025-11")  # its one deduction was reversed
    assert (november["judicial_deduction_fen"], november["judicial_deduction_days"]) == (0, 0)
    q4 = render("individuals_and_courts", "2025Q4")
    assert (q4["judicial_deduction_fen"], q4["judicial_deduction_days"]) == (101_000, 4)
    # W(12) ending December on record: August, October and December
    assert q4["judicial_months_12m"] == 3
    # the partial first quarter reads the 12 whole months before January
    q1 = render("individuals_and_courts", "2026Q1")
    assert (q1["judicial_months_12m"], q1["judicial_deduction_days"]) == (3, 1)


def test_new_customers_two_way_and_the_last_five_days() -> None:
    december = render("individuals_and_courts", "2025-12")
    # CUST-NEW is new; CUST-OLD was paid in August, so known within the 12 months before
    assert december["new_customers_inflow_fen"] == 1_200_000
    assert december["month_end_inflow_share"] == 900_000 / 2_000_000
    november = render("individuals_and_courts", "2025-11")
    assert november["two_way_counterparties"] == 1  # CUST-A, paid 5,000 back; not CUST-B
    assert november["new_customers_inflow_fen"] == 20_000  # CUST-B
    assert november["month_end_inflow_share"] == 40_000 / 670_000  # the 26th of 30
    assert november["operating_inflow_days"] == 3  # not the day of the firm's own money
    # January is not over at the pull: its last five days have not come
    assert render("individuals_and_courts", "2026-01")["month_end_inflow_share"] is None
