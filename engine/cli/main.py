"""The `creditflow` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

from pydantic import ValidationError

from engine.errors import CreditflowError
from engine.logs import configure_logging
from engine.settings import Settings

__all__ = ["main"]

log = logging.getLogger("creditflow")


def _bank_add(settings: Settings, args: argparse.Namespace) -> None:
    from engine.events import kafka_admin
    from engine.events.topics import bank_topic

    if settings.kafka_bootstrap is None:
        raise CreditflowError("`bank add` needs CREDITFLOW_KAFKA_BOOTSTRAP")
    topic = bank_topic(args.code)
    created = kafka_admin.ensure_topics(settings.kafka_bootstrap, {topic: settings.partitions})
    actual = kafka_admin.topic_partitions(settings.kafka_bootstrap)[topic]
    state = "created" if created else "already registered"
    print(f"bank {args.code}: topic {topic} {state} ({actual} partitions)")
    if actual != settings.partitions:
        print(
            f"warning: {topic} has {actual} partitions, CREDITFLOW_PARTITIONS is "
            f"{settings.partitions}",
            file=sys.stderr,
        )


def _bank_list(settings: Settings, args: argparse.Namespace) -> None:
    from engine.events import kafka_admin
    from engine.events.topics import bank_code_of

    if settings.kafka_bootstrap is None:
        raise CreditflowError("`bank list` needs CREDITFLOW_KAFKA_BOOTSTRAP")
    for topic in kafka_admin.list_bank_topics(settings.kafka_bootstrap):
        print(bank_code_of(topic))


def _rejects(settings: Settings, args: argparse.Namespace) -> None:
    from engine.events.rejects import replay_rejects, show_rejects

    if settings.kafka_bootstrap is None:
        raise CreditflowError("`rejects` needs CREDITFLOW_KAFKA_BOOTSTRAP")
    if not args.replay:
        show_rejects(settings.kafka_bootstrap, args.limit, args.reason)
        return
    if args.reason is None:
        raise CreditflowError("`rejects --replay` needs --reason: replay one reason's events")
    replayed, left = replay_rejects(settings.kafka_bootstrap, args.reason)
    print(f"published {replayed} rejected events ({args.reason}) again to their bank topics")
    for record in left:
        source = record["source"]
        print(
            f"- not replayed (no bank event): {source['topic']}[{source['partition']}]"
            f"@{source['offset']}#{source['index']}  {record['detail']}"
        )


def _up(settings: Settings, args: argparse.Namespace) -> None:
    from engine.runtime.runner import embedded_stack, wait_for_interrupt

    # The stages apart, as in production (docker-compose.yml): each gets a core of its own.
    with embedded_stack(settings, split_stages=True) as stack:
        print(
            f"creditflow is up. API {stack.api_url}  ledger worker {stack.worker_url}/metrics"
            f"  intake worker {stack.intake_url}/metrics"
        )
        print(f"  CREDITFLOW_KAFKA_BOOTSTRAP={stack.settings.kafka_bootstrap}")
        print("  register a bank:  CREDITFLOW_KAFKA_BOOTSTRAP=... creditflow bank add CODE")
        print("Ctrl-C stops everything.", flush=True)
        wait_for_interrupt(stack)
    print("stopped.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="creditflow",
        description="Live cash-flow credit products from bank transaction streams.",
        epilog="Configuration comes from CREDITFLOW_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a worker against CREDITFLOW_KAFKA_BOOTSTRAP and Redis")
    sub.add_parser("api", help="serve the HTTP API from Redis")
    sub.add_parser("up", help="run the embedded stack (broker, Redis, worker, API) until Ctrl-C")
    demo = sub.add_parser("demo", help="embedded stack + a minute of generated flows + products")
    demo.add_argument("--enterprises", type=int, default=1000)
    demo.add_argument("--months", type=int, default=13)
    demo.add_argument("--seconds", type=float, default=60.0, help="how long to stream")
    demo.add_argument("--stay", action="store_true", help="keep the stack up after printing")
    bank = sub.add_parser("bank", help="manage banks").add_subparsers(dest="action", required=True)
    add = bank.add_parser("add", help="register a bank and create its topic (idempotent)")
    add.add_argument("code", help="bank code, [A-Z0-9]{4,12}")
    bank.add_parser("list", help="list registered banks")
    sub.add_parser("docs", help="regenerate docs/products.md and docs/signals.md from their specs")
    bench = sub.add_parser("bench", help="benchmark the embedded stack (writes loadtest/results)")
    bench.add_argument("--smoke", action="store_true", help="a tiny run that only checks it works")
    bench.add_argument("--enterprises", type=int, default=1000)
    bench.add_argument("--pull-rate", type=float, default=2000.0)
    bench.add_argument("--pull-seconds", type=float, default=60.0)
    bench.add_argument(
        "--one-process",
        action="store_true",
        help="intake and ledger in one worker process (by default they run apart)",
    )
    from engine.cli.access import add_parsers

    add_parsers(sub)
    status = sub.add_parser(
        "status",
        help="per stage and partition: applied offset, lag, watermark; rejects in the last "
        "hour; whether Redis and the broker answer (exit code 1 when one does not)",
    )
    status.add_argument(
        "--json", action="store_true", help="one JSON object (docs/operations.md#status)"
    )
    rejects = sub.add_parser("rejects", help="show rejected events with their reasons")
    rejects.add_argument("--limit", type=int, default=20)
    rejects.add_argument("--reason", help="only this reason code")
    rejects.add_argument(
        "--replay",
        action="store_true",
        help="publish the original of every rejected event of --reason again to its bank "
        "topic, once its cause is fixed (apply_failed: docs/operations.md)",
    )
    return parser


def _raise_on_sigterm(signum: int, frame: object) -> None:
    # The default SIGTERM action skips `finally`; the embedded stack must stop its children.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("up", "demo", "bench"):
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"creditflow: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        if args.command == "worker":
            from engine.runtime.runner import run_worker

            run_worker(settings)
        elif args.command == "api":
            from engine.runtime.runner import run_api

            run_api(settings)
        elif args.command == "up":
            _up(settings, args)
        elif args.command == "demo":
            from engine.cli.demo import run_demo

            run_demo(settings, args.enterprises, args.months, args.seconds, args.stay)
        elif args.command == "bank":
            (_bank_add if args.action == "add" else _bank_list)(settings, args)
        elif args.command == "rejects":
            _rejects(settings, args)
        elif args.command == "status":
            from engine.cli.status import run_status

            return run_status(settings, args.json)
        elif args.command in ("institution", "enterprise"):
            from engine.cli.access import run

            run(settings, args)
        elif args.command == "bench":
            from loadtest.bench import BenchConfig, run_bench

            config = (
                replace(BenchConfig.for_smoke(), split_stages=not args.one_process)
                if args.smoke
                else BenchConfig(
                    enterprises=args.enterprises,
                    pull_rate=args.pull_rate,
                    pull_seconds=args.pull_seconds,
                    split_stages=not args.one_process,
                )
            )
            run_bench(settings, config)
        elif args.command == "docs":
            from engine.products.docs import write_products_doc
            from engine.signals.docs import write_signals_doc

            print(f"wrote {write_products_doc()} and {write_signals_doc()}")
    except CreditflowError as exc:
        print(f"creditflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
