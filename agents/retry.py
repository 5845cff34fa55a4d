"""Run a processing step until it succeeds.

Faust acknowledges the events of a `take_events` batch when the agent moves on, even when the
agent's body raised. So a step must never give up: a failed step (broker unreachable, disk
error, a bug) is retried with backoff, and the stream waits, visibly (logs, the failures
metric, lag), rather than losing the batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from agents.intake import Message
from engine.metrics import WorkerMetrics

__all__ = ["coordinates", "until_done"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

_FIRST_DELAY_SECONDS = 0.2
_MAX_DELAY_SECONDS = 30.0


def coordinates(messages: Sequence[Message]) -> dict[str, Any]:
    """Where a batch of messages comes from, as log fields: its topic (when it has one), its
    partition (when it has one) and each partition's first and last offset. Offsets only:
    never a key or a value, which carry enterprise ids."""
    ranges: dict[str, list[int]] = {}
    topics: set[str] = set()
    for message in messages:
        topics.add(message.topic)
        span = ranges.setdefault(str(message.partition), [message.offset, message.offset])
        span[0], span[1] = min(span[0], message.offset), max(span[1], message.offset)
    fields: dict[str, Any] = {"offsets": ranges}
    if len(topics) == 1:
        fields["topic"] = next(iter(topics))
    if len(ranges) == 1:
        fields["partition"] = int(next(iter(ranges)))
    return fields


async def until_done(
    step: Callable[[T], Awaitable[R]],
    batch: T,
    stage: str,
    metrics: WorkerMetrics,
    where: Callable[[T], Mapping[str, Any]] | None = None,
) -> R:
    """``step(batch)``'s result, however many tries it takes. ``where(batch)``: the batch's
    coordinates (:func:`coordinates`), logged with each failure."""
    delay = _FIRST_DELAY_SECONDS
    while True:
        try:
            return await step(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.step_failures.labels(stage).inc()
            fields = {"stage": stage, **(where(batch) if where is not None else {})}
            log.exception(
                "%s step failed; retrying the same batch in %.1f s", stage, delay, extra=fields
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY_SECONDS)
