"""Signal episodes: raised, then cleared when the condition ends, or retracted when the data
shows it never held (a late event, a reversal).

An episode's id is a hash of (enterprise, rule, start day), and its start is a fact of the
data (engine/signals/rules.py): a replay, a restart or a rebalance that evaluates the same
data finds the same episode, and :func:`transitions` then emits nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from engine.signals.rules import Finding

__all__ = ["Episode", "State", "Transition", "episode_id", "transitions"]


class State(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"
    RETRACTED = "retracted"


@dataclass(frozen=True, slots=True)
class Episode:
    """The open episode of one enterprise and rule."""

    id: str
    rule: str
    start: date
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Transition:
    state: State
    episode: Episode
    # CLEARED: the first day after its start on which the rule no longer held, judged with
    # the data as they are now (the day its run ended; at most the as-of day)
    closed: date | None = None


def episode_id(enterprise_id: str, rule: str, start: date) -> str:
    key = f"{enterprise_id}|{rule}|{start.isoformat()}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def transitions(
    enterprise_id: str,
    open_episode: Episode | None,
    found: Finding | None,
    held_on: Callable[[date], bool],
    as_of: date | None = None,
) -> list[Transition]:
    """What changed, given the open episode (None: none) and the finding on ``as_of``.

    ``held_on(day)`` judges the rule again on a past day with the data as it is now: an open
    episode that no longer matches today's finding ended (cleared) if its rule still held on
    its start day, and never was (retracted) if it did not. A cleared one closed on the
    first day after its start on which the rule no longer held (a firm judged late, or its
    data arriving late, still has the run the data show), ``as_of`` at the latest.
    """
    result: list[Transition] = []
    if open_episode is not None:
        if found is not None and found.start == open_episode.start:
            return []  # the same run goes on
        if held_on(open_episode.start):
            closed = None if as_of is None else _run_end(open_episode.start, as_of, held_on)
            result.append(Transition(State.CLEARED, open_episode, closed))
        else:
            result.append(Transition(State.RETRACTED, open_episode))
    if found is not None:
        episode = Episode(
            episode_id(enterprise_id, found.rule, found.start),
            found.rule,
            found.start,
            found.evidence,
        )
        result.append(Transition(State.RAISED, episode))
    return result


def _run_end(start: date, as_of: date, held_on: Callable[[date], bool]) -> date:
    day = start + timedelta(days=1)
    while day < as_of and held_on(day):
        day += timedelta(days=1)
    return min(day, as_of)
