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
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings

from tests import reference_sql
from tests.compare import same
from tests.scenario_products import Products, render, served
from tests.sql_scenarios import SCENARIOS, Scenario
from tests.strategies import transaction_log

CST = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Disagreement:
    """One item that the engine and the SQL reference compute differently in one case."""

    definition: str  # what the spec's definition says, for this case
    supports: Literal["sql", "engine"]  # the side the definition supports


# -- the known disagreements, by (case, item) ---------------------------------------------

# None open: docs/reference-findings.md tells the four this table held and how each was
# settled (spec versions 4 and 5). A new one is added here, with the definition's reading.


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
DISAGREEMENTS: dict[tuple[str, str], Disagreement] = _merge()


# -- the two sides ----------------------------------------------------------------------


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
    sql = reference_sql.products(
        scenario.log,
        scenario.as_of,
        scenario.history_months,
        scenario.registries,
        episodes=scenario.episodes,
    )
    sql = {
        enterprise_id: {label: v for label, v in periods.items() if label in scenario.labels}
        for enterprise_id, periods in sql.items()
    }
    asked = {enterprise_id: scenario.labels for enterprise_id in sql}
    engine = served(
        scenario.log,
        scenario.as_of,
        scenario.history_months,
        asked,
        scenario.registries,
        episodes=scenario.episodes,
    )
    # a period is shown by both or by neither (a quarter begun before the kept history)
    assert {e: sorted(p) for e, p in sql.items()} == {e: sorted(p) for e, p in engine.items()}
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
    assert (len(items["monthly"]), len(items["quarterly"])) == (95, 171)
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
    engine = served(log, as_of, 36, sql)
    assert not _disagreements(sql, engine)


def test_a_registry_reload_classifies_what_arrives_from_then_on() -> None:
    """The registry_reload scenario read by hand: version 4 lists the waterworks (a supplier
    under version 3) and drops the power company; both sides agree with this reading in
    test_the_engine_and_the_sql_reference_differ_only_where_recorded."""
    # August: the waterworks payment, counted as trade, is reversed after the reload: gone
    assert render("registry_reload", "2025-08")["trade_outflow_fen"] == 0
    # September: one payment as trade (arrived before), the late one as water (after)
    september = render("registry_reload", "2025-09")
    assert (september["trade_outflow_fen"], september["water_paid_fen"]) == (45_000, 20_000)
    # October: the waterworks is water; the power company is a supplier on a transfer, and
    # an unlisted utility (not power) on the utility channel
    october = render("registry_reload", "2025-10")
    assert (october["water_paid_fen"], october["power_paid_fen"]) == (47_000, 0)
    assert (october["trade_outflow_fen"], october["utility_paid_fen"]) == (31_000, 56_000)
