"""Where a firm's record starts (spec version 5): a young firm's months before its first
transaction, and months pruned from the kept history, are not months without flows.

The numbers are the cases of docs/reference-findings.md; the SQL reference agrees with every
item over the same logs (tests/unit/test_reference_sql.py). This test pins the readings a
credit officer would check first, and the response's ``coverage``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.errors import NotFoundError
from engine.periods import CST
from tests.scenario_products import render
from tests.sql_scenarios import SCENARIOS


def test_a_young_firm_shows_no_volatility_gap_or_trend_from_before_it_existed() -> None:
    # first transaction 20 November 2025: its first quarter has no base and one month of
    # W(6) (November: October is not on record), so no spread or slope
    q4 = render("young_firm", "2025Q4")
    assert q4["coverage"] == {
        "record_start": "2025-11",
        "kept_from": None,
        "window_months": {"6": 2, "12": 2, "36": 2},
        "previous_quarter": False,
        "same_quarter_last_year": False,
    }
    # from 20 November (a transfer from its own account) to its first sale: 65 when counted
    # from 1 October
    assert q4["longest_no_operating_inflow_days"] == 19
    assert q4["operating_inflow_qoq_growth"] is None and q4["net_flow_qoq_change_fen"] is None
    q1 = render("young_firm", "2026Q1")
    assert q1["coverage"]["window_months"] == {"6": 5, "12": 5, "36": 5}
    assert q1["coverage"]["previous_quarter"] is False  # 2025Q4 was lived from November
    assert q1["min_to_mean_operating_inflow_6m"] == 0.0  # November had no operating inflow
    assert q1["operating_inflow_cv_6m"] is not None  # a spread over the 5 months on record
    assert q1["months_covered_12m"] == 5
    # a month reads W(12) too (spec version 8: the public payments): its coverage says how
    # many months it has, and names no quarter to compare with
    january = render("young_firm", "2026-01")
    assert january["coverage"] == {
        "record_start": "2025-11",
        "kept_from": None,
        "window_months": {"12": 3},
    }
    assert january["power_months_12m"] == 2  # December and January: November paid none


def test_what_pruning_removed_still_counts_in_balances_and_the_first_transaction() -> None:
    # six months kept at a pull on 10 March 2026; a savings account last moved in June 2025
    q4 = render("pruned_history", "2025Q4")
    assert q4["coverage"]["kept_from"] == "2025-10"
    assert q4["coverage"]["previous_quarter"] is False
    assert q4["first_transaction_date"] == "2025-03-03"
    october = render("pruned_history", "2025-10")
    # every account's balance after its last booking before October, the dormant savings
    # account's (pruned: its last booking is in June) included
    (scenario,) = [s for s in SCENARIOS if s.name == "pruned_history"]
    last: dict[tuple[str, str], tuple[datetime, str, int]] = {}
    for event in scenario.log:
        booked = datetime.fromisoformat(event["booked_at"])
        key = (event["bank"], event["account"])
        if (
            booked < datetime(2025, 10, 1, tzinfo=CST)
            and (booked, event["txn_id"])
            > last.get(key, (datetime.min.replace(tzinfo=UTC), "", 0))[:2]
        ):
            last[key] = (booked, event["txn_id"], event["balance_after_fen"])
    assert last[("BOC00004", "SAVE-1")][2] == 1_500_000
    assert october["opening_balance_fen"] == sum(balance for _, _, balance in last.values())
    # the operating account is overdrawn while the savings cover it: judged per account
    assert october["negative_balance_days"] > 0 and october["min_daily_balance_fen"] > 0


def test_a_quarter_begun_before_the_kept_history_is_not_served() -> None:
    with pytest.raises(NotFoundError, match="before the kept history"):
        render("pruned_mid_quarter", "2025Q3")
    assert render("pruned_mid_quarter", "2025-09")["coverage"]["kept_from"] == "2025-09"
