"""The three places where creditflow reaches into Faust internals, and why.

Kept here, small and commented, so that a Faust upgrade has one file to check.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP

from engine.events.topics import BANK_TOPIC_RE

__all__ = ["resubscribe_bank_topics", "seek", "shorten_fetch_wait"]

_RESUBSCRIBE_DELAY_SECONDS = 0.5


async def seek(app: faust.App, topic: str, partition: int, offset: int) -> None:
    """Make the next message of ``topic``/``partition`` the one at ``offset``.

    Faust's ``Consumer.seek`` calls aiokafka from the event loop while aiokafka runs in
    Faust's consumer thread; racing its fetcher it crashed the worker with a KeyError in
    ``fetched_records`` (seen here; robinhood/aiokafka#19). So the seek runs in that thread.
    Faust also drops every message below its last read offset: reset it, as its own seek does.
    """
    consumer: Any = app.consumer
    tp = TP(topic, partition)
    await consumer._thread.call_thread(consumer._thread.seek, tp, offset)
    consumer._read_offset[tp] = offset if offset else None


def shorten_fetch_wait(app: faust.App, milliseconds: int) -> None:
    """Cap how long the broker may hold a fetch that finds no new data.

    Faust hard-codes aiokafka's ``fetch_max_wait_ms`` to 1,500. An event crosses two topics
    (bank, then routed), and a fetch that found nothing new when it was sent can sit out the
    whole wait even when data arrives meanwhile (seen with the embedded broker): events
    became visible 1.3 to 2 s after publishing even at low load. The fetcher reads the value
    for every request it builds, so setting it once the consumer exists is enough.
    """
    consumer: Any = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
    consumer._fetcher._fetch_max_wait_ms = milliseconds


def resubscribe_bank_topics(app: faust.App, names: list[str]) -> None:
    """Subscribe the intake agent to ``names`` while the worker runs.

    Faust has no working pattern subscription (its aiokafka driver drops patterns), and it
    subscribes the clone of a topic that an agent iterates, not the topic object we hold.
    So every subscribed channel that reads bank topics gets the new list, and the conductor
    is told to resubscribe (by default it waits 45 s first).
    """
    conductor: Any = app.topics
    for channel in list(conductor):
        if all(BANK_TOPIC_RE.match(name) for name in channel.topics):
            channel.topics = list(names)
    conductor._resubscribe_sleep_lock_seconds = _RESUBSCRIBE_DELAY_SECONDS
    conductor._flag_changes()
