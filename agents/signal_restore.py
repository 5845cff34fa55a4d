"""Restoring a partition's signal state from its changelog, ``creditflow.signals.state.v1``.

A partition's state is rebuilt from the routed topic when it moves to a worker without its
RocksDB (there are no standby replicas) or when its state is lost. The months come back
exactly; the signal episodes do not: which episodes opened and when each closed depend on
when the data arrived and when the firm was judged, not on the events alone. Without them
the quarterly's ``signal_<rule>_days`` of earlier quarters read low after a move, and an
episode open before it was never cleared for subscribers.

So the judge writes each enterprise's episodes (the kept ones and the open ones, with their
ids and evidence) to a compacted topic, keyed by enterprise and partitioned as the routed
topic, whenever a judgement changes them, before it stores them (agents/signals.py): the
changelog is never behind the state. When a partition is given to a worker, the signal
stage reads the partition of the changelog from where the state's last restore ended (from
the start for a state rebuilt from nothing), applies each enterprise's last record and
marks it to be judged; the partition is not judged until then. Records this worker wrote
itself since are read again and change nothing (state/signals.py, SignalState.restore).
A restore that reads the changelog from its start also writes to it the episodes the state
keeps and the changelog lacks (kept by workers older than it): the first start after the
upgrade that brought the changelog seeds it.

Not in the changelog: an open episode's evidence refreshed without a transition (a restore
gives the evidence of its last transition until the next judgement), and episodes pruned
with the history (pruned again after a restore: the same horizon).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from engine.events import kafka_admin
from engine.events.topics import SIGNAL_STATE_TOPIC

__all__ = ["ChangelogReader", "kafka_changelog_reader"]

# (partition, start offset) -> (each enterprise's last record from there, None for a
# tombstone; the offset after the last message read)
ChangelogReader = Callable[[int, int], Awaitable[tuple[dict[str, bytes | None], int]]]


def kafka_changelog_reader(bootstrap: str) -> ChangelogReader:
    async def read(partition: int, start: int) -> tuple[dict[str, bytes | None], int]:
        return await asyncio.to_thread(_last_records, bootstrap, partition, start)

    return read


def _last_records(
    bootstrap: str, partition: int, start: int
) -> tuple[dict[str, bytes | None], int]:
    found: dict[str, bytes | None] = {}
    end = start
    for _, offset, key, value in kafka_admin.read_to_end(
        bootstrap, SIGNAL_STATE_TOPIC, {partition: start}
    ):
        if key is not None:
            found[key.decode()] = value
        end = offset + 1
    return found, end
