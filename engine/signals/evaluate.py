"""One enterprise's evaluated rules on one day: the transitions of its episodes, and the
record each transition is published as on the ``credit.signals`` topic.

Pure: the worker (agents/signals.py) gives the months it keeps, the open episodes it stored
and the as-of day; it publishes what comes back and stores the episodes that stay open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from engine import codec
from engine.periods import CST
from engine.signals.episodes import Episode, State, Transition, transitions
from engine.signals.rules import RULES, finding
from engine.signals.spec import RuleSpec, SignalSpec
from engine.signals.timeline import MonthDays, Timeline, timeline_of

__all__ = ["Judged", "RuleSet", "evaluate", "signal_record"]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The evaluated rules of a spec with this deployment's parameters."""

    rules: tuple[tuple[RuleSpec, Mapping[str, float]], ...]

    @classmethod
    def of(cls, spec: SignalSpec) -> RuleSet:
        return cls(tuple((r, r.values()) for r in spec.rules.values() if r.evaluated))

    def severity(self, rule: str) -> str:
        return next(spec.severity.value for spec, _ in self.rules if spec.id == rule)


@dataclass(frozen=True, slots=True)
class Judged:
    transitions: list[Transition]
    open: dict[str, Episode]  # rule -> the episode open after them


def evaluate(
    enterprise_id: str,
    months: Mapping[int, MonthDays],
    as_of: date,
    open_episodes: Mapping[str, Episode],
    rules: RuleSet,
    carried: Mapping[str, int] | None = None,
) -> Judged:
    """Every rule judged on ``as_of`` against the open episodes: what changed, what is open.
    ``carried``: the balances of accounts whose last booking was pruned (state/horizon.py)."""
    t = timeline_of(months, as_of, carried)
    changes: list[Transition] = []
    still_open = dict(open_episodes)
    for spec, parameters in rules.rules:
        found = None if t is None else finding(spec.id, t, parameters)
        held_on = _held_on(spec.id, t, parameters)
        for change in transitions(enterprise_id, open_episodes.get(spec.id), found, held_on, as_of):
            changes.append(change)
            if change.state == State.RAISED:
                still_open[spec.id] = change.episode
            elif still_open.get(spec.id) == change.episode:
                del still_open[spec.id]
    return Judged(changes, still_open)


def _held_on(
    rule: str, t: Timeline | None, parameters: Mapping[str, float]
) -> Callable[[date], bool]:
    """Whether ``rule`` held on a day, judged with the data as they are now."""
    judge = RULES[rule]

    def held_on(day: date) -> bool:
        if t is None or not 0 <= t.index(day) <= t.last:
            return False
        return judge(t, t.index(day), parameters) is not None

    return held_on


def signal_record(
    enterprise_id: str,
    change: Transition,
    severity: str,
    as_of: date,
    emitted_at: datetime,
) -> bytes:
    """The JSON a transition is published as (docs/signals.md, "The signal record")."""
    episode = change.episode
    doc: dict[str, Any] = {
        "id": episode.id,
        "enterprise_id": enterprise_id,
        "rule": episode.rule,
        "severity": severity,
        "state": change.state.value,
        "date": episode.start.isoformat(),
        "evidence": episode.evidence,
        "raised_at": datetime.combine(episode.start, time(), CST).isoformat(),
        "emitted_at": emitted_at.isoformat(),
        "as_of": as_of.isoformat(),
    }
    return codec.dumps(doc)
