"""A scenario of tests/sql_scenarios.py as the API renders it: the ledger over its log in
arrival order, pruned as a worker at the pull prunes, then the products over the published
months, carry and signal episodes, at the pull's instant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from engine import codec
from engine.api.products import history_from_fields
from engine.errors import NotFoundError
from engine.events.contract import Txn, validate
from engine.periods import CST, Period, format_month, parse_month
from engine.products.assemble import render_items
from engine.products.classify import load_registry, parse_registry
from engine.products.history import History
from engine.products.specs import SPECS_DIR, load_products
from engine.pseudonym import Pseudonymizer
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from state.signals import encode_kept
from state.views import CARRY_FIELD, EPISODES_FIELD, month_field
from tests.sql_scenarios import SCENARIOS, Episode

__all__ = ["Products", "published", "render", "served"]

_SPECS = load_products()
_REGISTRY = load_registry(SPECS_DIR / "registries.toml")


Products = dict[str, dict[str, dict[str, Any]]]


def published(
    log: Iterable[Mapping[str, Any]],
    as_of: datetime,
    history_months: int,
    registries: Sequence[tuple[int, Mapping[str, Any]]] = (),
    episodes: Mapping[str, Iterable[Episode]] | None = None,
) -> dict[str, History]:
    """Each firm of ``log`` as the API reads it: the ledger over the log in arrival order,
    pruned as a worker at ``as_of`` prunes, then its published months and carry, and the
    signal episodes ``episodes`` gives it as the signal stage publishes them.
    ``registries``: reloads, each (the offset from which it is current, its document)."""
    reloads = {offset: parse_registry(doc) for offset, doc in registries}
    current = [_REGISTRY]
    ledger = PartitionLedger(MemoryStore(), Pseudonymizer(b"test-key"), lambda: current[0])
    count = 0
    for offset, element in enumerate(log):
        current[0] = reloads.get(offset, current[0])  # as a worker's RegistryWatcher
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn), txn
        ledger.apply(txn, Source(f"bank.{element['bank']}.txns", 0, offset, None))
        count = offset + 1
    ledger.commit(count)
    this_month = parse_month(as_of.astimezone(CST).strftime("%Y-%m"))
    assert this_month is not None
    ledger.prune(this_month - history_months + 1)
    views: dict[str, dict[bytes, bytes]] = {}
    for enterprise_id, months in ledger.enterprises():  # as state/views.py holds them
        views[enterprise_id] = {
            month_field(format_month(m)).encode(): codec.dumps(agg.view())
            for m, agg in months.items()
        }
    for enterprise_id, carry in ledger.carries():
        views.setdefault(enterprise_id, {})[CARRY_FIELD.encode()] = carry.encode()
    for enterprise_id, kept in (episodes or {}).items():
        if enterprise_id in views:
            views[enterprise_id][EPISODES_FIELD.encode()] = encode_kept(
                {(rule, opened): closed for rule, opened, closed in kept}
            )
    return {e: history_from_fields(fields) for e, fields in views.items()}


def served(
    log: Iterable[Mapping[str, Any]],
    as_of: datetime,
    history_months: int,
    wanted: Mapping[str, Iterable[str]],
    registries: Sequence[tuple[int, Mapping[str, Any]]] = (),
    episodes: Mapping[str, Iterable[Episode]] | None = None,
) -> Products:
    """The periods of ``wanted`` that the engine serves at ``as_of``: every item by id, and
    the response's ``coverage``; a period it does not serve (NotFound) is left out."""
    now_us = (as_of - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    result: Products = {}
    for enterprise_id, history in published(
        log, as_of, history_months, registries, episodes
    ).items():
        result[enterprise_id] = {}
        for label in wanted.get(enterprise_id, ()):
            period = Period.quarterly(label) if "Q" in label else Period.monthly(label)
            assert period is not None
            spec = _SPECS["quarterly" if "Q" in label else "monthly"]
            try:
                rendered = render_items(spec, period, history, now_us)
            except NotFoundError:
                continue
            items = {k: v for seg in rendered["segments"] for k, v in seg["items"].items()}
            result[enterprise_id][label] = {"coverage": rendered["coverage"], **items}
    return result


@cache
def _scenario_history(name: str) -> tuple[str, History]:
    (scenario,) = [s for s in SCENARIOS if s.name == name]
    ((enterprise_id, history),) = published(
        scenario.log,
        scenario.as_of,
        scenario.history_months,
        scenario.registries,
        scenario.episodes,
    ).items()
    return enterprise_id, history


def render(name: str, label: str) -> dict[str, Any]:
    """Scenario ``name``'s period ``label`` as served at its pull: every item by id, and the
    response's ``coverage`` (raises NotFoundError for a period not served)."""
    (scenario,) = [s for s in SCENARIOS if s.name == name]
    period = Period.quarterly(label) if "Q" in label else Period.monthly(label)
    assert period is not None
    spec = _SPECS["quarterly" if "Q" in label else "monthly"]
    now_us = (scenario.as_of - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    _, history = _scenario_history(name)
    rendered = render_items(spec, period, history, now_us)
    items = {k: v for segment in rendered["segments"] for k, v in segment["items"].items()}
    return {"coverage": rendered["coverage"], **items}
