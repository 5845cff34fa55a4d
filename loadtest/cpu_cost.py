"""CPU time of the ledger stage and of the signal judge, in one process, without services.

    python -m loadtest.cpu_cost [--enterprises 300] [--months 12] [--step 500]
    python -m loadtest.cpu_cost --against REF [--to REF2] [--rounds 5]

Generates a load with loadtest's generator, routes it as intake does, and runs it through
the worker's own stages with a RocksDB store, Kafka and Redis left out (a sender that
confirms at once, views that take any write):

- ``ledger_cpu_s_per_10k_events``: ``LedgerStage.process`` over routed messages of
  ``--step`` rows, each step committed (the commit interval at 0), its views encoded; at
  2,000 events/s a 0.25 s commit holds about 500 events;
- ``evaluate_ms_per_firm``: ``engine.signals.evaluate`` alone, on each firm's month digests;
- ``judge_cold_ms_per_firm``: ``SignalStage`` judging every firm the load changed, none of
  them judged before (after a backfill: the judge's backlog);
- ``judge_warm_ms_per_firm``: the same firms judged again after one more event each (their
  digests kept, one month changed).

CPU is ``time.process_time`` (this process, its threads included: RocksDB's), not wall
time, so that other work on the machine counts less; memory and caches are shared, so
compare figures of one run. With ``--against REF`` the module runs, in turns, in a copy of
REF's tree and in this one, or REF2's (``--rounds`` each, in fresh processes, same load),
and prints the medians of each and their ratios (this tree's or REF2's / REF's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry

from agents import signals as signals_module
from agents.intake import route
from agents.ledger import LedgerStage
from agents.signals import SignalStage, today_in_china
from engine import codec
from engine.metrics import WorkerMetrics
from engine.periods import CST, history_start, month_start_us, now_us
from engine.products.classify import load_registry
from engine.pseudonym import Pseudonymizer
from engine.settings import Settings
from engine.signals.evaluate import RuleSet, evaluate
from engine.signals.spec import load_signals
from loadtest.generator import GeneratorConfig, generate
from state.rocksdb import RocksDBStore, shared_block_cache
from state.signals import SignalState
from state.views import ViewStore

__all__ = ["measure"]

_ROUTED = "credit.routed"
_FIGURES = (
    "ledger_cpu_s_per_10k_events",
    "evaluate_ms_per_firm",
    "judge_cold_ms_per_firm",
    "judge_warm_ms_per_firm",
)


class _Routed:
    __slots__ = ("offset", "partition", "topic", "value")

    def __init__(self, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset = _ROUTED, 0, offset
        self.value: bytes | None = value


class _Confirmed:
    """A sender whose every message the broker has at once."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Awaitable[Any]:
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Views:
    """Views that take every write (the JSON is encoded by the ledger all the same)."""

    async def publish(self, *args: Any, **kwargs: Any) -> bool:
        return True

    async def progress(self, partition: int) -> dict[str, Any] | None:
        return None

    async def progress_raw(self, partition: int) -> bytes | None:
        return None


def _routed_rows(events: list[dict[str, Any]]) -> list[list[Any]]:
    """The events as intake routes them, in the generator's order (a bank message for each
    run of one bank's events)."""
    oldest_us, now = month_start_us(history_start(36)), now_us()
    rows: list[list[Any]] = []
    run: list[dict[str, Any]] = []
    for event in [*events, None]:
        if run and (event is None or event["bank"] != run[0]["bank"] or len(run) == 500):
            bank = run[0]["bank"]
            valid, rejects = route(
                codec.dumps(run), bank, f"bank.{bank}.txns", 0, len(rows), oldest_us, now
            )
            assert not rejects, rejects
            rows.extend(valid)
            run = []
        if event is not None:
            run.append(event)
    return rows


def _one_more_each(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An event more for every firm: its last one again, an hour ago, under a new id."""
    last: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("reversal_of") is None:
            last[event["enterprise_id"]] = event
    at = (datetime.now(CST) - timedelta(hours=1)).isoformat()
    return [
        {**event, "txn_id": f"CPUCOST-{k}", "booked_at": at}
        for k, event in enumerate(last.values())
    ]


async def _process(ledger: LedgerStage, rows: list[list[Any]], step: int, offset: int) -> int:
    for start in range(0, len(rows), step):
        await ledger.process([_Routed(offset, codec.dumps(rows[start : start + step]))])
        offset += 1
    return offset


async def _judge_all(signals: SignalStage) -> int:
    judged = 0
    while done := await signals.evaluate_pending():
        judged += done
    return judged


async def _measure(enterprises: int, months: int, step: int) -> dict[str, Any]:
    settings = Settings()
    registry = load_registry(settings.registry_path)
    pseudonym = Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())
    config = GeneratorConfig(seed=3, enterprises=enterprises, months=months, now=datetime.now(UTC))
    events = list(generate(config))
    rows = _routed_rows(events)
    more = _routed_rows(_one_more_each(events))
    rules = RuleSet.of(load_signals(settings.signal_rules_path))
    today = today_in_china()
    hooks: list[SignalStage] = []

    def committed(partition: int, changed: dict[str, set[int]]) -> None:
        for hook in hooks:  # the judge, once there is one
            hook.committed(partition, changed)

    with tempfile.TemporaryDirectory(prefix="cpu-cost-") as tmp:
        cache = shared_block_cache(64 << 20)
        ledger = LedgerStage(
            lambda partition: RocksDBStore(Path(tmp) / str(partition), cache),
            pseudonym,
            lambda: registry,
            cast(ViewStore, _Views()),
            _Confirmed(),
            WorkerMetrics(CollectorRegistry()),
            on_commit=committed,
        )
        await ledger.open({0})
        await ledger.refresh_views({0})
        started = time.process_time()
        offset = await _process(ledger, rows, step, 0)
        ledger_s = time.process_time() - started
        await ledger.unstall([offset])  # the partition is live: its signals are judged
        store = ledger.store(0)
        assert store is not None
        state = SignalState(store)
        firms = list(state.marked())
        digests = {firm: (state.months(firm), state.carried(firm)) for firm in firms}
        started = time.process_time()
        for firm, (firm_months, carried) in digests.items():
            evaluate(firm, firm_months, today, {}, rules, carried)
        evaluate_s = time.process_time() - started
        signals = SignalStage(
            ledger, _Confirmed(), rules, WorkerMetrics(CollectorRegistry()), lambda: today
        )
        hooks.append(signals)
        signals.opened({0})
        started = time.process_time()
        cold = await _judge_all(signals)
        cold_s = time.process_time() - started
        offset = await _process(ledger, more, len(more), offset)
        await ledger.unstall([offset])
        signals.opened({0})  # what the commit marked, judged now rather than once it pauses
        started = time.process_time()
        warm = await _judge_all(signals)
        warm_s = time.process_time() - started
        await ledger.close()
    return {
        "code": str(Path(signals_module.__file__).resolve().parents[1]),
        "events": len(rows),
        "firms": len(firms),
        "ledger_cpu_s_per_10k_events": ledger_s / len(rows) * 1e4,
        "evaluate_ms_per_firm": evaluate_s / len(firms) * 1e3,
        "judge_cold_ms_per_firm": cold_s / cold * 1e3,
        "judge_warm_ms_per_firm": warm_s / warm * 1e3,
        "judged_cold": cold,
        "judged_warm": warm,
    }


def measure(enterprises: int = 300, months: int = 12, step: int = 500) -> dict[str, Any]:
    return asyncio.run(_measure(enterprises, months, step))


def _tree_of(ref: str, into: Path) -> Path:
    """REF's files (git archive), with this module copied in: the same measurement."""
    root = Path(__file__).resolve().parents[1]
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "tree.tar"
    subprocess.run(["git", "-C", str(root), "archive", "-o", str(archive), ref], check=True)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    shutil.copy(Path(__file__), tree / "loadtest" / "cpu_cost.py")
    return tree


def _run_in(tree: Path, options: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.cpu_cost", *options],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return cast(dict[str, float], codec.loads(out.strip().splitlines()[-1]))


def _compare(ref: str, to: str | None, rounds: int, options: list[str]) -> dict[str, Any]:
    after = to or "this tree"
    samples: dict[str, list[Mapping[str, float]]] = {ref: [], after: []}
    with tempfile.TemporaryDirectory(prefix="cpu-cost-ref-") as tmp:
        base = _tree_of(ref, Path(tmp) / "before")
        other = Path(__file__).resolve().parents[1] if to is None else _tree_of(to, Path(tmp))
        for _ in range(rounds):  # in turns, so that the machine's load falls on both
            samples[ref].append(_run_in(base, options))
            samples[after].append(_run_in(other, options))
    medians = {
        name: {figure: round(statistics.median(s[figure] for s in runs), 4) for figure in _FIGURES}
        for name, runs in samples.items()
    }
    return {
        "rounds": rounds,
        "options": options,
        "medians": medians,
        "ratio_after_to_before": {
            figure: round(medians[after][figure] / medians[ref][figure], 3) for figure in _FIGURES
        },
        "samples": {
            name: {figure: [round(s[figure], 4) for s in runs] for figure in _FIGURES}
            for name, runs in samples.items()
        },
    }


def _samples(argv: list[str]) -> Iterator[str]:
    parser = argparse.ArgumentParser(prog="python -m loadtest.cpu_cost")
    parser.add_argument("--enterprises", type=int, default=300)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--step", type=int, default=500, help="rows a commit holds")
    parser.add_argument("--against", help="a git ref whose code to measure as well")
    parser.add_argument("--to", help="with --against: the ref to compare (default: this tree)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    options = [f"--enterprises={args.enterprises}", f"--months={args.months}"]
    options.append(f"--step={args.step}")
    if args.against:
        yield codec.dumps(_compare(args.against, args.to, args.rounds, options)).decode()
    else:
        yield codec.dumps(measure(args.enterprises, args.months, args.step)).decode()


def main(argv: list[str]) -> None:
    for line in _samples(argv):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
