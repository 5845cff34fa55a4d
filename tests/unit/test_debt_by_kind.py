"""Spec version 11: debt service that counts only debt, financing partners by kind, and
where loan proceeds went within three days (the quarterly's obligations segment).

The numbers are read off the scenario ``debt_by_kind`` (tests/sql_scenarios.py), which the
SQL reference agrees with item by item (tests/unit/test_reference_sql.py); this test pins
what a credit officer would check.
"""

from __future__ import annotations

from tests.scenario_products import render


def test_debt_service_counts_only_debt() -> None:
    quarter = render("debt_by_kind", "2025Q4")
    # the bank's 100,000 and 8,000, the lessor's 45,000, the microlender's 30,000; not the
    # guarantor's fee (20,000) nor the investor's dividend (60,000)
    assert quarter["debt_service_fen"] == 183_000
    assert quarter["debt_service_ttm_fen"] == 183_000
    assert quarter["debt_service_coverage"] == 2_000_000 / 183_000
    assert render("debt_by_kind", "2026Q1")["debt_service_fen"] == 0


def test_financing_partners_by_kind() -> None:
    quarter = render("debt_by_kind", "2025Q4")
    assert quarter["online_lender_inflow_fen"] == 500_000
    assert quarter["leasing_paid_fen"] == 45_000
    assert quarter["factoring_inflow_fen"] == 400_000
    assert quarter["guarantee_fees_paid_fen"] == 20_000
    # the pull's quarter: the microlender lent again on the 9th
    assert render("debt_by_kind", "2026Q1")["online_lender_inflow_fen"] == 300_000


def test_loan_proceeds_by_destination_within_three_days() -> None:
    quarter = render("debt_by_kind", "2025Q4")
    # 10 October: 200,000 to a person (wages by payroll apart, the 13th's too late); 31
    # December: 250,000 to a person on 1 January, in the next quarter
    assert quarter["loan_proceeds_to_individuals_3d_fen"] == 450_000
    # 150,000 on 11 October and 100,000 on 2 January to the firm's own account
    assert quarter["loan_proceeds_to_self_3d_fen"] == 250_000
    # 10 October: the person's 200,000 (paid as a supplier, an operating outflow too), the
    # supplier's 300,000 and 100,000 of wages; 5 November: the factor's 400,000 of the
    # supplier's 500,000; 31 December: the person's 250,000; 20 October's loan went to a
    # guarantor and a lessor
    assert quarter["loan_proceeds_to_operations_3d_fen"] == 600_000 + 400_000 + 250_000
    q1 = render("debt_by_kind", "2026Q1")
    # the 9th's loan, and the supplier paid on the pull's morning; the days to come have none
    assert q1["loan_proceeds_to_operations_3d_fen"] == 120_000
    assert (q1["loan_proceeds_to_individuals_3d_fen"], q1["loan_proceeds_to_self_3d_fen"]) == (0, 0)
