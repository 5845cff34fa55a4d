"""The realistic data set against the reference, item by item, with no broker and no Redis.

Fourteen months of generated flows (every class, channel and subtype the products read: see
loadtest/generator.py) go through the worker's own state path (validation, PartitionLedger,
month views as published) and the API's own rendering (engine/products/assemble.py); every
item of every month and quarter of every enterprise, to a pull in the middle of a quarter,
must equal the SQL reference (tests/reference_sql/: written from the definitions on another
computational model; over this data set it is also three times faster than the first
reference). The same data set must make every item say something somewhere: an item that is
zero or null for every enterprise is not tested by it.

Dates are fixed, the pull's instant too: nothing here checks an event's age against the
clock, so the data set reads the same in any year.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from engine import codec
from engine.events.contract import Txn, validate
from engine.periods import CST, Period
from engine.products.assemble import render_items
from engine.products.classify import load_registry
from engine.products.history import History, MonthView
from engine.products.specs import SPECS_DIR, load_products
from engine.pseudonym import Pseudonymizer
from loadtest.generator import GeneratorConfig, generate
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from tests import reference_sql
from tests.compare import differences

CONFIG = GeneratorConfig(
    seed=41,
    enterprises=60,
    months=14,
    end_month=2026 * 12 + 7,  # 2025-07 to 2026-08
    banks=("ICBC0001", "CCB00002", "ABC00003"),
    reversal_rate=0.02,
    late_rate=0.02,
    duplicate_rate=0.01,
    now=datetime(2026, 9, 1, tzinfo=UTC),
)
# The pull: October 2026 and its quarter are partial, the months after the data's last empty.
AS_OF = datetime(2026, 10, 15, 12, 0, tzinfo=CST)
AS_OF_US = (AS_OF - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
# Items that are zero or null for every enterprise by the design of the generator, each with
# the reason; any other item must be non-zero somewhere.
SILENT_BY_DESIGN: dict[str, str] = {}


@cache
def _log() -> tuple[dict[str, Any], ...]:
    return tuple(generate(CONFIG))


@cache
def _expected() -> dict[str, dict[str, dict[str, Any]]]:
    return reference_sql.products(_log(), AS_OF)


def _engine(expected: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    registry = load_registry(SPECS_DIR / "registries.toml")
    ledger = PartitionLedger(MemoryStore(), Pseudonymizer(b"realistic"), lambda: registry)
    for offset, event in enumerate(_log()):
        txn = validate(event, event["bank"])
        if isinstance(txn, Txn):
            ledger.apply(txn, Source(f"bank.{event['bank']}.txns", 0, offset, None))
    ledger.commit(len(_log()))
    specs = load_products()
    served: dict[str, dict[str, Any]] = {}
    for enterprise_id, months in ledger.enterprises():
        history = History(
            {m: MonthView.from_json(codec.loads(codec.dumps(a.view()))) for m, a in months.items()}
        )
        served[enterprise_id] = {}
        for label in expected.get(enterprise_id, {}):
            product = "quarterly" if "Q" in label else "monthly"
            period = (Period.quarterly if product == "quarterly" else Period.monthly)(label)
            assert period is not None
            rendered = render_items(specs[product], period, history, AS_OF_US)
            served[enterprise_id][label] = {
                item: value
                for segment in rendered["segments"]
                for item, value in segment["items"].items()
            }
    return served


def test_every_item_of_the_realistic_data_set_equals_the_reference() -> None:
    expected = _expected()
    assert len(expected) == CONFIG.enterprises
    problems = differences(expected, _engine(expected))
    assert not problems, f"{len(problems)} values differ, e.g.\n" + "\n".join(problems[:10])


def test_every_item_says_something_somewhere() -> None:
    expected = _expected()
    seen: dict[str, bool] = {}
    for periods in expected.values():
        for items in periods.values():
            for item, value in items.items():
                seen[item] = seen.get(item, False) or value not in (None, 0, 0.0, False, [], {})
    silent = sorted(item for item, said in seen.items() if not said)
    assert silent == sorted(SILENT_BY_DESIGN), silent
