"""Where an event's seconds go at a paced rate: a time series of the pipeline's queues.

    python -m loadtest.attribution RATE [SECONDS [ENTERPRISES [BACKFILL]]]  # e.g. 22000 20 4600

With BACKFILL, that many enterprises' 12 months of history are ingested in a burst first and
the phase starts as soon as they are applied: their firms are judged about 10 s later, during
the phase, as after `make bench`'s ingest phases (a backlog for the signal judge).

Runs the embedded stack (intake and ledger apart, as `make bench`), ingests at RATE events/s
as `make bench` paces it, with its freshness and signal probes, and every 0.5 s samples:
events published, read by intake, applied by the ledger; the ledger's marked enterprises
waiting to be judged; each process's CPU (/proc). Prints one JSON line: the queue ahead of
each stage in seconds of ingest (median and max over the phase), each process's share of a
core, the time the ledger spent in steps, commits and judging, and the probes' figures.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine import codec
from engine.events.credit_code import generate as generate_code
from engine.runtime.observe import worker_samples
from engine.runtime.provision import provision_lender
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.settings import Settings
from loadtest import bench
from loadtest.signal_probe import PROBE_INTERVAL_SECONDS as SIGNAL_PROBE_SECONDS
from loadtest.signal_probe import SignalProbes

__all__ = ["main"]

_SAMPLE_SECONDS = 0.5
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pgid: int) -> float:
    """CPU seconds of every process in the process group ``pgid`` (a child and its own)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def _sum(samples: dict[str, Any], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return float(sum(v for k, v in samples.get(name, {}).items() if wanted <= set(k)))


def _snapshot(stack: EmbeddedStack, published: list[int]) -> dict[str, float]:
    assert stack.intake_url is not None
    worker = worker_samples(stack.worker_url)
    intake = worker_samples(stack.intake_url)
    snap = {
        "t": time.monotonic(),
        "published": float(published[0]),
        "intake": _sum(intake, "creditflow_intake_events_total"),
        "ledger": _sum(worker, "creditflow_ledger_events_total"),
        "pending": _sum(worker, "creditflow_signals_pending_enterprises"),
        "step_s": _sum(worker, "creditflow_step_seconds_sum", stage="ledger"),
        "steps": _sum(worker, "creditflow_step_seconds_count", stage="ledger"),
        "commit_s": _sum(worker, "creditflow_commit_seconds_sum"),
        "commits": _sum(worker, "creditflow_commit_seconds_count"),
        "judge_s": _sum(worker, "creditflow_signal_evaluation_seconds_sum"),
        "judged": _sum(worker, "creditflow_signal_evaluations_total"),
        # Routed messages behind the log end as last looked up (every 5 s), worst partition:
        # above 500 a partition counts as replaying and judges no signal (agents/ledger.py).
        "routed_lag": max(worker.get("creditflow_partition_lag_messages", {0: 0.0}).values()),
    }
    for child in stack.stack.children:
        snap[f"cpu_{child.name}"] = _cpu_seconds(child.process.pid)
        # The main thread's time on a core and waiting for one (kernel schedstat, ns).
        try:
            run_ns, wait_ns, _ = Path(f"/proc/{child.process.pid}/schedstat").read_text().split()
        except OSError:
            continue
        snap[f"oncpu_{child.name}"] = int(run_ns) / 1e9
        snap[f"runqueue_{child.name}"] = int(wait_ns) / 1e9
    snap["cpu_bench"] = time.process_time()
    return snap


def main(argv: list[str]) -> None:
    rate = float(argv[0]) if argv else 16_000.0
    seconds = float(argv[1]) if len(argv) > 1 else 20.0
    # `make bench` paces over its whole load's enterprises (about 4,600 at 22,000 events/s),
    # each active every month: how many enterprises change per commit is what commits cost.
    enterprises = int(argv[2]) if len(argv) > 2 else max(100, int(rate * seconds * 1.2) // 230)
    load = bench.events_for(7, enterprises, 12)
    published = [0]
    original = bench.paced

    def counting(stack: Any, events: Any, rate: float, stop: threading.Event) -> int:
        def counted() -> Any:
            for event in events:
                published[0] += 1
                yield event

        return original(stack, counted(), rate, stop)

    bench.paced = counting  # paced_phase looks it up in the module at each call
    with embedded_stack(Settings(), banks=bench.BANKS, split_stages=True) as stack:
        probe = bench.probe_enterprise(10)
        lender = provision_lender(stack.settings, "ATTRLND", [probe])
        signal_probes = SignalProbes(
            stack,
            [
                generate_code(random_state(k))
                for k in range(int(seconds / SIGNAL_PROBE_SECONDS) + 1)
            ],
            bench.BANKS[0],
            "ATTRSIG",
        )
        time.sleep(3)  # the probes' histories applied and judged
        if len(argv) > 3:
            bench.ingest_batches(stack, bench.events_for(1, int(argv[3]), 12))
        series: list[dict[str, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                with contextlib.suppress(OSError):  # a child busy past the timeout
                    series.append(_snapshot(stack, published))
                done.wait(_SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies: list[float] = []
        _, fresh, sent = bench.paced_phase(
            stack, lender, load, rate, seconds, 10, signals=(signal_probes, latencies)
        )
        done.set()
        sampler.join()
        if keep := os.environ.get("ATTRIBUTION_KEEP_LOGS"):  # a directory for the stack's logs
            shutil.copytree(stack.stack.run_dir / "logs", Path(keep) / str(os.getpid()))
    summary = _summary(series, rate, seconds, sent, fresh, latencies)
    if signal_probes.stages:
        judged, delivered = zip(*signal_probes.stages, strict=True)
        summary["signal_publish_to_emitted_p50_s"] = round(statistics.median(judged), 2)
        summary["signal_emitted_to_seen_p50_s"] = round(statistics.median(delivered), 2)
    print(codec.dumps(summary).decode())


def random_state(k: int) -> random.Random:
    return random.Random(f"attribution-probe-{k}")


def _summary(
    series: list[dict[str, float]],
    rate: float,
    seconds: float,
    sent: int,
    fresh: list[float],
    latencies: list[float],
) -> dict[str, Any]:
    # The phase itself: from the first sample to the last one while publishing went on.
    during = [s for s in series if s["published"] < sent] or series
    first, last = during[0], during[-1]
    span = last["t"] - first["t"]
    published_rate = (last["published"] - first["published"]) / span

    def queue(ahead: str, behind: str) -> dict[str, float]:
        waits = [(s[ahead] - s[behind]) / published_rate for s in during]
        return {"median_s": round(statistics.median(waits), 2), "max_s": round(max(waits), 2)}

    def per_second(key: str) -> float:
        return round((last[key] - first[key]) / span, 3)

    def pct(values: list[float], q: float) -> float | None:
        return bench.percentile(values, q)

    return {
        "rate": rate,
        "published_per_s": round(published_rate),
        "intake_per_s": round(per_second("intake")),
        "ledger_per_s": round(per_second("ledger")),
        "queue_before_intake": queue("published", "intake"),
        "queue_before_ledger": queue("intake", "ledger"),
        "pending_enterprises_median": statistics.median(s["pending"] for s in during),
        "routed_lag_messages_median": statistics.median(s["routed_lag"] for s in during),
        "ledger_core_share": {
            "steps": per_second("step_s"),
            "commits": per_second("commit_s"),
            "judging": per_second("judge_s"),
        },
        "ledger_steps_per_s": per_second("steps"),
        "commits_per_s": per_second("commits"),
        "judged_per_s": per_second("judged"),
        "cpu_core_share": {k[4:]: per_second(k) for k in first if k.startswith("cpu_")},
        # Of each main thread's wall time: on a core, and runnable but waiting for one.
        "main_thread_on_cpu": {k[6:]: per_second(k) for k in first if k.startswith("oncpu_")},
        "main_thread_runqueue": {k[9:]: per_second(k) for k in first if k.startswith("runqueue_")},
        "freshness_p50_s": pct(fresh, 0.5),
        "freshness_p99_s": pct(fresh, 0.99),
        "signal_p50_s": pct(latencies, 0.5),
        "signal_p99_s": pct(latencies, 0.99),
        "signals": len(latencies),
        "seconds": seconds,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
