"""Baselines the benchmark compares creditflow with, run on the same broker in the same run.

    python -m loadtest.baselines noop  TOPIC EXPECTED    # a Faust agent that only counts
    python -m loadtest.baselines naive TOPIC EXPECTED    # a Faust table update per event

Each reads single-event messages from TOPIC until it has seen EXPECTED events, then prints one
JSON line ``{"events": n, "first_at": t, "done_at": t}`` (Unix seconds) and exits.

The naive design is what a first Faust implementation would write: for every event, read the
enterprise-month row of a RocksDB-backed table, add the event to its sums and counts, write
the row back (a store write and a changelog message per event).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import faust

from engine import codec
from engine.app import faust_broker_urls
from engine.settings import Settings

__all__ = ["main"]


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


def main(argv: list[str]) -> None:
    kind, topic_name, expected = argv[0], argv[1], int(argv[2])
    bootstrap = os.environ["CREDITFLOW_KAFKA_BOOTSTRAP"]
    nice = Settings().worker_nice
    if nice:
        os.nice(nice)  # the same CPU priority as the workers it is compared with
    datadir = os.environ.get("BASELINE_DATADIR", f"/tmp/creditflow-baseline-{os.getpid()}")
    store = "rocksdb://" if kind == "naive" else "memory://"
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
        raise SystemExit(f"unknown baseline {kind!r}: noop or naive")
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main(sys.argv[1:])
