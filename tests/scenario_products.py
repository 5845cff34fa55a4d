"""A scenario of tests/sql_scenarios.py as the API renders it: the ledger over its log in
arrival order, pruned as a worker at the pull prunes, then the products over the published
months and carry, at the pull's instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine import codec
from engine.api.products import history_from_fields
from engine.events.contract import Txn, validate
from engine.periods import CST, Period, format_month, parse_month
from engine.products.assemble import render_items
from engine.products.classify import load_registry
from engine.products.history import History
from engine.products.specs import SPECS_DIR, load_products
from engine.pseudonym import Pseudonymizer
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from state.views import CARRY_FIELD, month_field
from tests.sql_scenarios import SCENARIOS, Scenario

__all__ = ["render"]

_SPECS = load_products()
_REGISTRY = load_registry(SPECS_DIR / "registries.toml")


def _history(scenario: Scenario) -> History:
    """The scenario's one firm as the API reads it: months and carry, pruned at the pull."""
    ledger = PartitionLedger(MemoryStore(), Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    for offset, element in enumerate(scenario.log):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn)
        ledger.apply(txn, Source("bank.x.txns", 0, offset, None))
    ledger.commit(len(scenario.log))
    this_month = parse_month(scenario.as_of.astimezone(CST).strftime("%Y-%m"))
    assert this_month is not None
    ledger.prune(this_month - scenario.history_months + 1)
    fields: dict[bytes, bytes] = {}
    for _, months in ledger.enterprises():
        for month, agg in months.items():
            fields[month_field(format_month(month)).encode()] = codec.dumps(agg.view())
    for _, carry in ledger.carries():
        fields[CARRY_FIELD.encode()] = carry.encode()
    return history_from_fields(fields)


def render(name: str, label: str) -> dict[str, Any]:
    """Scenario ``name``'s period ``label`` as served at its pull: every item by id, and the
    response's ``coverage``."""
    (scenario,) = [s for s in SCENARIOS if s.name == name]
    period = Period.quarterly(label) if "Q" in label else Period.monthly(label)
    assert period is not None
    spec = _SPECS["quarterly" if "Q" in label else "monthly"]
    now_us = (scenario.as_of - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    rendered = render_items(spec, period, _history(scenario), now_us)
    items = {k: v for segment in rendered["segments"] for k, v in segment["items"].items()}
    return {"coverage": rendered["coverage"], **items}
