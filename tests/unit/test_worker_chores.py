"""A periodic chore of the worker that fails waits for its next tick: an exception that left
a Faust timer would stop the whole worker (issue 17's faults)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from confluent_kafka import KafkaError, KafkaException

from engine.runtime.worker import _next_tick_on_failure


def test_a_failing_chore_is_logged_and_left_to_the_next_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def redis_away() -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    with caplog.at_level(logging.WARNING):
        asyncio.run(_next_tick_on_failure("count overdue disputes", redis_away))
    assert "could not count overdue disputes" in caplog.text
    assert "next tick" in caplog.text


def test_a_cancelled_chore_is_not_swallowed() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_next_tick_on_failure("prune history", cancelled))


def test_a_broker_that_does_not_answer_is_logged_by_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broker_away() -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    with caplog.at_level(logging.WARNING):
        asyncio.run(_next_tick_on_failure("list the bank topics", broker_away))
    assert "could not list the bank topics" in caplog.text
    assert "Failed to get metadata" in caplog.text
