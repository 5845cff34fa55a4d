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
from engine.api.products import history_from_fields
from engine.errors import NotFoundError
from engine.events.contract import Txn, validate
from engine.periods import Period, format_month, parse_month
from engine.products.assemble import render_items
from engine.products.classify import load_registry
from engine.products.specs import SPECS_DIR, load_products
from engine.pseudonym import Pseudonymizer
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from state.views import CARRY_FIELD, month_field
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


def engine_products(
    log: list[dict[str, Any]], as_of: datetime, history_months: int, wanted: Products
) -> Products:
    """The engine's value of every item of ``wanted``'s periods that it serves: the ledger
    over the log in arrival order, pruned as a worker at ``as_of`` prunes, then the
    products rendered from the views (months and carry) as the API renders them."""
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
    views: dict[str, dict[bytes, bytes]] = {}
    for enterprise_id, months in ledger.enterprises():  # as published (state/views.py)
        views[enterprise_id] = {
            month_field(format_month(m)).encode(): codec.dumps(agg.view())
            for m, agg in months.items()
        }
    for enterprise_id, carry in ledger.carries():
        views.setdefault(enterprise_id, {})[CARRY_FIELD.encode()] = carry.encode()
    result: Products = {}
    for enterprise_id, fields in views.items():
        history = history_from_fields(fields)
        result[enterprise_id] = {}
        for label in wanted.get(enterprise_id, {}):
            quarterly = "Q" in label
            period = Period.quarterly(label) if quarterly else Period.monthly(label)
            assert period is not None
            spec = _SPECS["quarterly" if quarterly else "monthly"]
            try:
                rendered = render_items(spec, period, history, pull_us)
            except NotFoundError:
                continue  # not served
            result[enterprise_id][label] = {
                item: value
                for segment in rendered["segments"]
                for item, value in segment["items"].items()
            }
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
    asked = {enterprise_id: dict.fromkeys(scenario.labels) for enterprise_id in sql}
    engine = engine_products(scenario.log, scenario.as_of, scenario.history_months, asked)
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
    engine = engine_products(log, as_of, 36, sql)
    assert not _disagreements(sql, engine)
