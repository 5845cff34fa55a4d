"""The realistic data set against the reference, item by item, with no broker and no Redis.

Fourteen months of generated flows (every class, channel and subtype the products read: see
loadtest/generator.py) go through the worker's own state path (validation, PartitionLedger,
month views as published) and the API's own rendering (engine/products/assemble.py); every
item of every month and quarter of every enterprise, to a pull in the middle of a quarter,
must equal the SQL reference (tests/reference_sql/: written from the definitions on another
computational model; over this data set it is also three times faster than the first
reference). The signal items count episodes given to both sides as input (_episodes). The
same data set must make every item say something somewhere: an item that is zero or null
for every enterprise is not tested by it.

Dates are fixed, the pull's instant too: nothing here checks an event's age against the
clock, so the data set reads the same in any year.
"""

from __future__ import annotations

import random
import tomllib
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from engine.periods import CST
from loadtest.generator import GeneratorConfig, generate
from tests import reference_sql
from tests.compare import differences
from tests.reference_sql._pipeline import SPECS
from tests.scenario_products import served
from tests.sql_scenarios import Episode

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
# Items that are zero or null for every enterprise by the design of the generator, each with
# the reason; any other item must be non-zero somewhere.
SILENT_BY_DESIGN: dict[str, str] = {}
_SIGNALS = SPECS / "signals.toml"


@cache
def _log() -> tuple[dict[str, Any], ...]:
    return tuple(generate(CONFIG))


@cache
def _episodes() -> dict[str, list[Episode]]:
    """Signal episodes for the data set's firms, the input of the signal items (which
    episodes the rules raise over such data is tests/reference/signals.py's to check): each
    rule in turn, some open at the pull, some closed, across months and quarters."""
    rules = sorted(
        r["id"] for r in tomllib.loads(_SIGNALS.read_text())["rules"] if r["status"] == "evaluated"
    )
    draw = random.Random(41)
    first, last = date(2025, 7, 1), AS_OF.date()
    episodes: dict[str, list[Episode]] = {}
    firms = sorted({e["enterprise_id"] for e in _log()})
    for n, firm in enumerate(firms):
        for k in range(n % 4):
            opened = first + timedelta(days=draw.randrange((last - first).days + 1))
            closed = None if draw.random() < 0.3 else opened + timedelta(days=draw.randint(1, 90))
            episodes.setdefault(firm, []).append((rules[(n + k) % len(rules)], opened, closed))
    return episodes


@cache
def _expected() -> dict[str, dict[str, dict[str, Any]]]:
    return reference_sql.products(_log(), AS_OF, episodes=_episodes())


def _engine(expected: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The engine's items of the periods of ``expected``, as the API renders them."""
    wanted = {e: list(periods) for e, periods in expected.items()}
    return served(_log(), AS_OF, 36, wanted, episodes=_episodes())


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
