"""Spec version 10's items: margin deposits and acceptance bills paid, the account-holding
bank's channels margin and bill (engine/products/classify.py: BANK_OWN on them, as on loan).

The numbers are read off the scenario ``margins_and_bills`` (tests/sql_scenarios.py), which
the SQL reference agrees with item by item (tests/unit/test_reference_sql.py); this test pins
what a credit officer would check, the edges of the classification included.
"""

from __future__ import annotations

from tests.scenario_products import render


def test_margin_deposits_count_what_goes_to_the_bank_on_channel_margin() -> None:
    october = render("margins_and_bills", "2025-10")
    # to the bank by its code and to an account at it; not the guarantor's margin (a
    # financing partner by the registry) nor the margin booked under the firm's own id
    assert october["margin_deposit_fen"] == 700_000
    assert october["fin_partner_outflow_fen"] == 80_000
    assert october["self_transfer_out_fen"] == 60_000
    # November: a margin returned is an inflow, apart; the deposit was reversed
    assert render("margins_and_bills", "2025-11")["margin_deposit_fen"] == 0
    # December: at the second reporting bank, to that bank
    assert render("margins_and_bills", "2025-12")["margin_deposit_fen"] == 40_000
    assert render("margins_and_bills", "2025Q4")["margin_deposit_fen"] == 740_000
    assert render("margins_and_bills", "2026Q1")["margin_deposit_fen"] == 0


def test_acceptance_bills_paid_are_money_to_the_bank_not_operating_outflow() -> None:
    october = render("margins_and_bills", "2025-10")
    # booked at 23:30 China time on 31 October: October's, though 15:30 UTC
    assert october["acceptance_bill_paid_fen"] == 1_000_000
    assert october["operating_outflow_fen"] == 0
    november = render("margins_and_bills", "2025-11")
    # booked on channel bill to a holder at another bank: a supplier paid (TRADE), not the bank
    assert (november["acceptance_bill_paid_fen"], november["trade_outflow_fen"]) == (0, 400_000)
    assert render("margins_and_bills", "2025-12")["acceptance_bill_paid_fen"] == 600_000
    assert render("margins_and_bills", "2025Q4")["acceptance_bill_paid_fen"] == 1_600_000
    assert render("margins_and_bills", "2026-01")["acceptance_bill_paid_fen"] == 150_000
