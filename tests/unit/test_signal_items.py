"""The quarterly's signal items (spec version 13): days of the quarter so far that an episode
of each rule covers, from the episodes the workers keep (state/signals.py), as the engine
renders them from the views hash and as both references compute them from the episodes
given as input data (tests/reference/signals.py checks the rules that raise them)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import reference, reference_sql
from tests.reference import quarterly
from tests.scenario_products import render, served
from tests.sql_scenarios import SCENARIOS, Episode

(SCENARIO,) = [s for s in SCENARIOS if s.name == "signals_in_the_quarter"]
(ENTERPRISE,) = SCENARIO.episodes
RULES = quarterly.SIGNAL_RULES  # the evaluated rules, as the first reference lists them

# The days each episode of the scenario covers, counted by hand: from the day it opened to
# the day before it closed (an open one, to the pull's day: 14 February 2026).
EXPECTED = {
    "2025Q3": {
        "account_overdrawn": 3,  # 28 to 30 September
        "balance_cover_low": 1,  # opened in June, before the firm's first month; closed 2 July
        "fast_in_fast_out": 1,  # 1 August, closed the 2nd
    },
    "2025Q4": {
        "account_overdrawn": 4,  # 1 to 2 October, and the overlapping 2 to 4: once each
        "judicial_deduction": 42,  # 20 November to 31 December
        "loan_proceeds_diverted": 2,  # 30 and 31 December, still open
    },
    "2026Q1": {
        # judicial_deduction closed on 1 January: that day is not covered
        "operating_inflow_stopped": 14,  # 1 to 14 February, open at the pull
        "loan_proceeds_diverted": 45,  # 1 January to 14 February
    },
}


def _signal_items(items: dict[str, Any]) -> dict[str, int]:
    return {rule: items[f"signal_{rule}_days"] for rule in RULES if items[f"signal_{rule}_days"]}


def test_a_quarterly_report_shows_the_days_each_episode_covered() -> None:
    for label, expected in EXPECTED.items():
        assert _signal_items(render(SCENARIO.name, label)) == expected, label


def test_both_references_count_the_same_days_from_the_episodes() -> None:
    first = reference.products(SCENARIO.log, as_of=SCENARIO.as_of, episodes=SCENARIO.episodes)
    sql = reference_sql.products(
        SCENARIO.log, SCENARIO.as_of, SCENARIO.history_months, episodes=SCENARIO.episodes
    )
    for label, expected in EXPECTED.items():
        assert _signal_items(first[ENTERPRISE][label]) == expected, label
        assert _signal_items(sql[ENTERPRISE][label]) == expected, label


@st.composite
def _episodes(draw: st.DrawFn) -> list[Episode]:
    """Episodes around the scenario's quarters: some open, some closed the day after they
    opened, some across a quarter's edge, several of one rule that may overlap. Never two of
    one rule opened on one day: an episode's id is (enterprise, rule, start), so the workers
    keep one (state/signals.py), and the History holds them by it."""
    first, last = date(2025, 5, 1), date(2026, 2, 14)
    episodes: dict[tuple[str, date], date | None] = {}
    for _ in range(draw(st.integers(0, 8))):
        opened = first + timedelta(days=draw(st.integers(0, (last - first).days)))
        length = draw(st.one_of(st.none(), st.integers(1, 120)))
        closed = None if length is None else opened + timedelta(days=length)
        episodes.setdefault((draw(st.sampled_from(RULES[:4])), opened), closed)
    return [(rule, opened, closed) for (rule, opened), closed in episodes.items()]


_LABELS = ("2025Q3", "2025Q4", "2026Q1")


def _engine_and_first(episodes: list[Episode]) -> tuple[dict[str, Any], dict[str, Any]]:
    given_episodes = {ENTERPRISE: episodes}
    engine = served(
        SCENARIO.log, SCENARIO.as_of, 36, {ENTERPRISE: _LABELS}, episodes=given_episodes
    )[ENTERPRISE]
    first = reference.products(SCENARIO.log, as_of=SCENARIO.as_of, episodes=given_episodes)
    return engine, first[ENTERPRISE]


# The engine and the first reference are cheap (about 40 ms an example): many examples.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episodes=_episodes())
def test_the_engine_and_the_first_reference_agree_over_generated_episodes(
    episodes: list[Episode],
) -> None:
    engine, first = _engine_and_first(episodes)
    for label in _LABELS:
        assert _signal_items(engine[label]) == _signal_items(first[label]), (label, episodes)


# The SQL reference builds its database at each call (about 0.8 s): a few examples.
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episodes=_episodes())
def test_the_engine_and_the_sql_reference_agree_over_generated_episodes(
    episodes: list[Episode],
) -> None:
    engine, _ = _engine_and_first(episodes)
    sql = reference_sql.products(SCENARIO.log, SCENARIO.as_of, 36, episodes={ENTERPRISE: episodes})
    for label in _LABELS:
        assert _signal_items(engine[label]) == _signal_items(sql[ENTERPRISE][label]), label
