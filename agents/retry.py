"""Run a processing step until it succeeds.

Faust acknowledges the events of a `take_events` batch when the agent moves on, even when the
agent's body raised. So a step must never give up: a failed step (broker unreachable, disk
error, a bug) is retried with backoff, and the stream waits, visibly (logs, the failures
metric, lag), rather than losing the batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine.metrics import WorkerMetrics

__all__ = ["until_done"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

_FIRST_DELAY_SECONDS = 0.2
_MAX_DELAY_SECONDS = 30.0


async def until_done(
    step: Callable[[T], Awaitable[R]], batch: T, stage: str, metrics: WorkerMetrics
) -> R:
    """``step(batch)``'s result, however many tries it takes."""
    delay = _FIRST_DELAY_SECONDS
    while True:
        try:
            return await step(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.step_failures.labels(stage).inc()
            log.exception("%s step failed; retrying the same batch in %.1f s", stage, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY_SECONDS)
