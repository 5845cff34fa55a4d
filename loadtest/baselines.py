"""Baselines the benchmark compares creditflow with, run on the same broker in the same run.

    python -m loadtest.baselines noop  TOPIC EXPECTED    # a Faust agent that only counts
    python -m loadtest.baselines naive TOPIC EXPECTED    # the same items, table updates per event
    python -m loadtest.baselines sums  TOPIC EXPECTED    # four sums and a balance per event

Each reads single-event messages from TOPIC until it has seen EXPECTED events, then prints one
JSON line ``{"events": n, "first_at": t, "done_at": t}`` (Unix seconds) and exits.

The naive design is what a first Faust implementation of the same items would be: every
event validated on its own (the intake's own code), then applied by the ledger's own code,
whose state is a RocksDB-backed Faust table read and written per event (a store write and a
changelog message for each key it changes: the ledger record, the month aggregate, the
progress). Its products would equal creditflow's; what differs is the design: no batch
messages, no multi-get, no write batch per step, no month encoded once per commit window,
and a changelog where creditflow replays the routed log.

``sums`` is a lighter strawman, kept for comparison with earlier figures: it reads the
enterprise-month row, adds the event to four sums and counts and sets the balance, and writes
the row back. It computes a handful of the products' items, not the same items.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import faust

from agents.intake import route
from engine import codec
from engine.periods import history_start, month_start_us, now_us
from engine.products.classify import load_registry
from engine.pseudonym import Pseudonymizer
from engine.runtime.worker import faust_broker_urls
from engine.settings import Settings
from state.ledger import PartitionLedger

__all__ = ["NaiveLedger", "main"]


def _app(name: str, bootstrap: str, datadir: str, store: str) -> faust.App:
    return faust.App(
        name,
        broker=faust_broker_urls(bootstrap),
        store=store,
        datadir=datadir,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=60.0,
        web_enabled=False,
    )


class _TableStore:
    """One partition's ledger state in a Faust table: every put or delete is a table update
    (a RocksDB write and a changelog message). Keys carry the partition, so that the
    partitions' progress records stay apart in the one table."""

    def __init__(self, table: Any, partition: int) -> None:
        self._table = table
        self._prefix = f"{partition}|".encode()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._table.get(self._prefix + key)
        return value

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def scan_prefix(
        self, prefix: bytes, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        wanted, cut = self._prefix + prefix, len(self._prefix)
        found = sorted((k[cut:], v) for k, v in self._table.items() if k.startswith(wanted))
        return iter([(k, v) for k, v in found if start is None or k >= start])

    def write(self, changes: Mapping[bytes, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self._table.pop(self._prefix + key, None)
            else:
                self._table[self._prefix + key] = value

    def size_bytes(self) -> int:
        return 0

    def live_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass


class NaiveLedger:
    """The naive design's work for one single-event message, apart from Faust: validated by
    the intake's code, applied by the ledger's, committed at once to ``table`` (a Faust
    table in the baseline; anything with dict's get, items, pop and item assignment)."""

    def __init__(self, table: Any, settings: Settings) -> None:
        self._table = table
        self._registry = load_registry(settings.registry_path)
        self._pseudonym = Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())
        self._oldest_us = month_start_us(history_start(settings.history_months))
        self.ledgers: dict[int, PartitionLedger] = {}

    def apply(self, value: bytes, topic: str, partition: int, offset: int) -> None:
        ledger = self.ledgers.get(partition)
        if ledger is None:  # no month cached (limit 0): each event reads and writes its month
            registry = self._registry
            store = _TableStore(self._table, partition)
            ledger = self.ledgers[partition] = PartitionLedger(
                store, self._pseudonym, lambda: registry, 0
            )
        bank = codec.loads(value)["bank"]  # single-event messages on one topic for every bank
        rows, rejects = route(value, bank, topic, partition, offset, self._oldest_us, now_us())
        assert not rejects, rejects  # the bench publishes valid events only
        ledger.apply_rows(rows)
        ledger.commit(offset + 1)


def main(argv: list[str]) -> None:
    kind, topic_name, expected = argv[0], argv[1], int(argv[2])
    bootstrap = os.environ["CREDITFLOW_KAFKA_BOOTSTRAP"]
    nice = Settings().worker_nice
    if nice:
        os.nice(nice)  # the same CPU priority as the workers it is compared with
    datadir = os.environ.get("BASELINE_DATADIR", f"/tmp/creditflow-baseline-{os.getpid()}")
    store = "memory://" if kind == "noop" else "rocksdb://"
    app = _app(f"baseline-{kind}-{os.getpid()}", bootstrap, datadir, store)
    topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
    seen = {"events": 0, "first_at": 0.0}

    def say(line: bytes) -> None:
        os.write(1, line + b"\n")  # fd 1 itself: Faust redirects sys.stdout to its logger

    def finish() -> None:
        say(
            codec.dumps(
                {"events": seen["events"], "first_at": seen["first_at"], "done_at": time.time()}
            )
        )
        os._exit(0)  # no graceful Faust shutdown: the figure is taken

    @app.on_partitions_assigned.connect
    async def announce(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if args[0] and not seen.get("ready"):
            seen["ready"] = 1
            say(b"ready")

    if kind == "noop":

        @app.agent(topic)
        async def count(stream: Any) -> None:
            async for _ in stream:
                if not seen["events"]:
                    seen["first_at"] = time.time()
                seen["events"] += 1
                if seen["events"] >= expected:
                    finish()

    elif kind == "naive":
        state: Any = app.Table("state", key_type=bytes, value_type=bytes, partitions=None)
        state.key_serializer = state.value_serializer = "raw"
        naive = NaiveLedger(state, Settings())

        @app.agent(topic)
        async def apply(stream: Any) -> None:
            async for event in stream.events():
                if not seen["events"]:
                    seen["first_at"] = time.time()
                message = event.message
                naive.apply(message.value, topic_name, message.partition, message.offset)
                seen["events"] += 1
                if seen["events"] >= expected:
                    finish()

    elif kind == "sums":
        table = app.Table("months", default=dict, partitions=None)

        @app.agent(topic)
        async def aggregate(stream: Any) -> None:
            async for value in stream:
                if not seen["events"]:
                    seen["first_at"] = time.time()
                event = codec.loads(value)
                key = f"{event['enterprise_id']}|{event['booked_at'][:7]}"
                row = dict(table[key])
                direction = event["direction"]
                row[f"{direction}_amount"] = row.get(f"{direction}_amount", 0) + event["amount_fen"]
                row[f"{direction}_count"] = row.get(f"{direction}_count", 0) + 1
                row["balance"] = event["balance_after_fen"]
                table[key] = row
                seen["events"] += 1
                if seen["events"] >= expected:
                    finish()

    else:
        raise SystemExit(f"unknown baseline {kind!r}: noop, naive or sums")
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main(sys.argv[1:])
