"""Spec version 8's loan-proceeds items where the generated logs rarely reach: a loan on a
month's or a quarter's last days (its three days run into the next period), two lenders on
one day, a lender repaid with its own new loan (a renewal, apart), another lender repaid
(new loans repaying old), and a loan the day before the pull.

The numbers are read off the scenario ``loan_proceeds`` (tests/sql_scenarios.py), which the
SQL reference agrees with item by item (tests/unit/test_reference_sql.py).
"""

from __future__ import annotations

from tests.scenario_products import render


def test_proceeds_of_a_loan_on_a_months_last_days_are_followed_into_the_next() -> None:
    october = render("loan_proceeds", "2025-10")
    # 1,000,000 on the 30th: 300,000 that day, 400,000 on 1 November; 2 November is too late
    assert october["loan_proceeds_out_3d_share"] == 0.7
    assert october["loan_proceeds_to_lenders_3d_fen"] == 400_000
    assert october["lenders_disbursing"] == 1
    december = render("loan_proceeds", "2025-12")  # 31 December, followed into January
    assert december["loan_proceeds_out_3d_share"] == 1.0
    assert december["loan_proceeds_to_lenders_3d_fen"] == 100_000  # the lessor


def test_repaying_the_lender_that_lent_that_day_renews_and_is_apart() -> None:
    november = render("loan_proceeds", "2025-11")
    # 700,000 from two lenders on the 10th; 450,000 back to one and 50,000 to the other are
    # renewals; the 100,000 to the bank repays another lender
    assert november["lenders_disbursing"] == 2
    assert november["loan_proceeds_to_lenders_3d_fen"] == 100_000
    assert november["loan_proceeds_out_3d_share"] == 600_000 / 700_000
    assert november["lender_inflow_fen"] == 700_000
    q4 = render("loan_proceeds", "2025Q4")
    assert q4["lenders_disbursing"] == 3
    assert q4["loan_proceeds_to_lenders_3d_fen"] == 600_000


def test_a_loan_the_day_before_the_pull_reads_what_has_left_so_far() -> None:
    january = render("loan_proceeds", "2026-01")
    assert january["loan_proceeds_out_3d_share"] == 50_000 / 300_000
    assert render("loan_proceeds", "2026-01")["loan_proceeds_to_lenders_3d_fen"] == 0
    assert render("young_firm", "2026-01")["loan_proceeds_out_3d_share"] is None  # no loan
