"""The engine's products against the SQL reference (tests/reference_sql/), item by item.

The SQL reference is written from the spec's definitions on another computational model,
so where the two differ one of them misreads a definition. Each known disagreement is in
``DISAGREEMENTS`` with what the definition says and which side it supports
(docs/reference-findings.md tells the story of each); every other item must agree. The
table is checked both ways: a disagreement that disappears (a kernel fixed) or a new one
fails the test, so the list stays true.

The engine side is what a worker publishes and the API renders: the partition ledger over
the log in arrival order, pruned to the kept history as the worker prunes, then the item
kernels over the month views (as tests/unit/test_ledger.py does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings

from engine import codec
from engine.events.contract import Txn, validate
from engine.periods import Period, parse_month
from engine.products.classify import load_registry
from engine.products.history import History, MonthView
from engine.products.kernels import KERNELS, Context
from engine.products.specs import SPECS_DIR, load_products
from engine.pseudonym import Pseudonymizer
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from tests import reference_sql
from tests.compare import same
from tests.sql_scenarios import SCENARIOS, Scenario
from tests.strategies import transaction_log

Products = dict[str, dict[str, dict[str, Any]]]
CST = timezone(timedelta(hours=8))
_REGISTRY = load_registry(SPECS_DIR / "registries.toml")
_SPECS = load_products()


@dataclass(frozen=True)
class Disagreement:
    """One item that the engine and the SQL reference compute differently in one case."""

    definition: str  # what the spec's definition says, for this case
    supports: Literal["sql", "engine"]  # the side the definition supports


# -- the known disagreements, by (case, item) ---------------------------------------------

_PRUNED_BALANCE = (
    "Balances sum 'every account with a transaction' at or before the day, the balance "
    "after its last one: an account whose last booking fell out of the kept history "
    "(CREDITFLOW_HISTORY_MONTHS) still holds its money, and the first kept month opens with "
    "the balance booked before it. The engine forgets pruned bookings: the dormant account "
    "drops out (the operating account alone is overdrawn: negative_balance_flag, "
    "flags_raised), the first kept month opens at 0 and has no balance before its first "
    "kept booking."
)
_PRUNED_WINDOW = (
    "W(n), M(1..n), Q-1 and Q-4 are calendar spans ('the 12 months ending with the "
    "quarter', 'the previous quarter'), and 'the first transaction on record' is the first "
    "the firm booked: bookings that arrived in time and were pruned later still happened. "
    "The engine reads only the kept months, so a shown quarter's windows lose the months "
    "before the horizon (a quarter has no previous quarter, every counterparty is new, the "
    "firm's first transaction moves to the horizon)."
)

_PRUNED_QUARTER = (
    "A quarter is its three calendar months. When the kept history starts in its middle "
    "(six months kept at a pull on 10 February 2026: from September 2025) the quarter can "
    "still be pulled, and the engine serves it from its kept month alone: its flows, days, "
    "balances and windows leave out July and August, which happened. (Or the quarter should "
    "not be shown at all; the definitions have no reading under which it holds one month.)"
)


def _rows(
    case: str, definition: str, supports: Literal["sql", "engine"], items: str
) -> dict[tuple[str, str], Disagreement]:
    return {(case, item): Disagreement(definition, supports) for item in items.split()}


def _merge(*tables: dict[tuple[str, str], Disagreement]) -> dict[tuple[str, str], Disagreement]:
    """One row per (case, item); an item with two causes in one case gets both."""
    merged: dict[tuple[str, str], Disagreement] = {}
    for table in tables:
        for key, row in table.items():
            if key in merged:
                assert merged[key].supports == row.supports, key
                row = Disagreement(f"{merged[key].definition} / {row.definition}", row.supports)
            merged[key] = row
    return merged


# (case, item) -> what the definition says, and the side it supports
DISAGREEMENTS: dict[tuple[str, str], Disagreement] = _merge(
    _rows(
        "pruned_history",
        _PRUNED_BALANCE,
        "sql",
        "opening_balance_fen closing_balance_fen balance_change_fen average_daily_balance_fen "
        "max_daily_balance_fen min_daily_balance_fen low_balance_days negative_balance_days "
        "balance_to_outflow_ratio cash_cover_months ttm_average_daily_balance_fen "
        "average_daily_balance_qoq_growth daily_balance_cv negative_balance_flag flags_raised",
    ),
    _rows(
        "pruned_history",
        _PRUNED_WINDOW,
        "sql",
        "first_transaction_date history_months transactions_36m ttm_operating_inflow_fen "
        "ttm_net_flow_fen ttm_operating_inflow_months cash_cover_months "
        "ttm_average_daily_balance_fen inflow_qoq_growth operating_inflow_qoq_growth "
        "outflow_qoq_growth net_flow_qoq_change_fen average_daily_balance_qoq_growth "
        "customers_qoq_change operating_inflow_slope_6m_fen operating_inflow_cv_6m "
        "operating_inflow_cv_12m largest_mom_drop_12m outflow_cv_6m "
        "negative_net_flow_months_12m min_to_mean_operating_inflow_6m months_with_data_12m "
        "top1_customer_share_change_qoq customer_hhi_change_qoq inflow_share_known_6m "
        "inflow_share_known_12m outflow_share_known_6m outflow_share_known_12m new_customers "
        "new_suppliers customer_retention_ratio customer_active_months_12m utility_months_6m "
        "utility_months_12m tax_months_12m power_months_12m tax_quarters_4q",
    ),
    _rows(
        "pruned_mid_quarter",
        _PRUNED_QUARTER,
        "sql",
        "active_days average_daily_balance_fen average_daily_balance_qoq_growth "
        "average_inflow_fen average_inflow_per_customer_fen avg_monthly_net_flow_fen "
        "avg_monthly_operating_inflow_fen balance_change_fen balance_to_outflow_ratio "
        "cash_cover_months customer_active_months_12m customer_hhi_change_qoq "
        "customer_retention_ratio customers_qoq_change daily_balance_cv dominant_customer_months "
        "first_transaction_date flags_raised history_months inflow_amount_fen inflow_count "
        "inflow_days inflow_qoq_growth inflow_share_known_12m inflow_share_known_6m "
        "interruption_flag largest_mom_drop_12m longest_no_operating_inflow_days "
        "min_daily_balance_fen min_to_mean_operating_inflow_6m months_with_data_12m "
        "months_with_transactions net_flow_fen net_flow_qoq_change_fen net_flow_yoy_change_fen "
        "new_customers new_suppliers opening_balance_fen operating_inflow_cv_12m "
        "operating_inflow_cv_6m operating_inflow_fen operating_inflow_qoq_growth "
        "operating_inflow_slope_6m_fen operating_net_flow_fen operating_outflow_fen "
        "outflow_amount_fen outflow_count outflow_cv_6m outflow_days outflow_qoq_growth "
        "outflow_share_known_12m outflow_share_known_6m power_months_12m power_paid_fen "
        "psp_inflow_count psp_inflow_fen psp_share_of_inflow tax_months_12m tax_paid_fen "
        "tax_payment_count tax_quarters_4q top1_customer_share_change_qoq trade_inflow_count "
        "trade_inflow_fen trade_net_flow_fen trade_outflow_count trade_outflow_fen "
        "transactions_36m ttm_average_daily_balance_fen ttm_net_flow_fen ttm_operating_inflow_fen "
        "ttm_operating_inflow_months utility_months_12m utility_months_6m utility_paid_fen "
        "utility_payment_count utility_payment_cv_12m",
    ),
)


# -- the two sides ----------------------------------------------------------------------


def engine_products(
    log: list[dict[str, Any]], as_of: datetime, history_months: int, wanted: Products
) -> Products:
    """The engine's value of every item of ``wanted``: the ledger over the log in arrival
    order, pruned as a worker at ``as_of`` prunes, then the kernels over the month views."""
    ledger = PartitionLedger(MemoryStore(), Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    for offset, element in enumerate(log):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        ledger.apply(txn, Source(f"bank.{element['bank']}.txns", 0, offset, None))
    ledger.commit(len(log))
    this_month = parse_month(as_of.astimezone(CST).strftime("%Y-%m"))
    assert this_month is not None
    ledger.prune(this_month - history_months + 1)
    pull_us = (as_of - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    result: Products = {}
    for enterprise_id, months in ledger.enterprises():
        history = History(
            {
                m: MonthView.from_json(codec.loads(codec.dumps(agg.view())))
                for m, agg in months.items()
            }
        )
        result[enterprise_id] = {}
        for label, items in wanted.get(enterprise_id, {}).items():
            quarterly = "Q" in label
            period = Period.quarterly(label) if quarterly else Period.monthly(label)
            assert period is not None
            spec = _SPECS["quarterly" if quarterly else "monthly"]
            ctx = Context(history, period, spec.parameters, as_of_us=pull_us)
            result[enterprise_id][label] = {item: KERNELS[item](ctx) for item in items}
    return result


def _disagreements(sql: Products, engine: Products) -> dict[str, list[str]]:
    """Item -> readable differences, over every period of ``sql``."""
    found: dict[str, list[str]] = {}
    for enterprise_id, periods in sql.items():
        for label, items in periods.items():
            served = engine.get(enterprise_id, {}).get(label)
            for item, want in items.items():
                got = "<nothing served>" if served is None else served[item]
                if not same(want, got):
                    found.setdefault(item, []).append(f"{label}: sql {want!r}, engine {got!r}")
    return found


def _compare(scenario: Scenario) -> dict[str, list[str]]:
    sql = reference_sql.products(scenario.log, scenario.as_of, scenario.history_months)
    sql = {
        enterprise_id: {label: v for label, v in periods.items() if label in scenario.labels}
        for enterprise_id, periods in sql.items()
    }
    assert all(set(periods) == set(scenario.labels) for periods in sql.values()), sql.keys()
    engine = engine_products(scenario.log, scenario.as_of, scenario.history_months, sql)
    return _disagreements(sql, engine)


# -- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_the_engine_and_the_sql_reference_differ_only_where_recorded(scenario: Scenario) -> None:
    found = _compare(scenario)
    expected = {item for case, item in DISAGREEMENTS if case == scenario.name}
    new = {item: found[item] for item in sorted(set(found) - expected)}
    gone = sorted(expected - set(found))
    assert not new and not gone, (
        f"new disagreements (decide from the definition which side is right): {new}; "
        f"recorded disagreements that no longer occur (remove them): {gone}"
    )


def test_every_recorded_disagreement_names_a_scenario_and_an_item() -> None:
    names = {s.name for s in SCENARIOS}
    items = {item for items in reference_sql.product_items().values() for item in items}
    for case, item in DISAGREEMENTS:
        assert case in names and item in items and item in reference_sql.ITEMS, (case, item)


def test_every_item_that_transactions_determine_is_covered() -> None:
    items = reference_sql.product_items()
    assert (len(items["monthly"]), len(items["quarterly"])) == (95, 176)
    assert reference_sql.NOT_COVERED == {"monthly": [], "quarterly": []}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(log=transaction_log())
def test_every_covered_item_agrees_over_generated_logs(log: list[dict[str, Any]]) -> None:
    """Logs with every class and channel, duplicates, conflicts, reversals before and after
    their originals, rejected reversals, late events and month edges where UTC and China time
    disagree; pulled after their last month, with nothing pruned."""
    as_of = datetime(2026, 3, 1, tzinfo=CST)  # every month of the log is over
    sql = reference_sql.products(log, as_of)
    sql = {
        e: {label: v for label, v in periods.items() if label not in ("2026-03", "2026Q1")}
        for e, periods in sql.items()
    }
    engine = engine_products(log, as_of, 36, sql)
    assert not _disagreements(sql, engine)
