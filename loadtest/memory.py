"""The ledger worker's RSS through `make bench`'s load, phase by phase, without the rest.

    python -m loadtest.memory [--enterprises 1000] [--repeats 3] [--rate R] [--seconds 90]
                              [--sustained 30] [--trace] [--out FILE]

Runs the embedded stack (intake and ledger apart, as `make bench`) through the phases of
`make bench` that feed the ledger: ``repeats`` x (a burst of ENTERPRISES x 12 months in
batches, then a quarter of that as single-event messages), SECONDS at RATE events/s paced
(by default half the first burst's rate, as the bench's freshness and pull phases), the
drain, and SUSTAINED seconds at 2,000 events/s. The baselines, pulls and probes are left out:
they run in other processes. Every 0.5 s it samples the ledger worker's RSS, the events
intake has routed and the ledger has applied (the backlog between them) and the enterprises
waiting to be judged; prints the peak RSS of each phase and writes the series to FILE.

``--trace`` puts loadtest/memtrace/ on the children's path, a debug hook that only this
option turns on: every MEMTRACE_SECONDS (15) the ledger worker appends to FILE's
``.trace.jsonl`` its RSS, pymalloc's arenas (bytes in live blocks and free ones) and the
deep size of its caches (months, classifications, account pseudonyms, pending reversals,
the signal judge's digests and waiting sets, the pseudonym cache). With
MEMTRACE_MODE=allocations it traces allocations instead (tracemalloc: the largest sites,
by library line and by creditflow line); that slows the worker about twice, so read sizes
from such a run, not rates. Any MALLOC_* variable set for this command reaches the worker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from engine import codec
from engine.runtime.observe import total, wait_views_published
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.settings import Settings
from loadtest import bench

__all__ = ["main"]

_SAMPLE_SECONDS = 0.5
_HOOK = Path(__file__).resolve().parent / "memtrace"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Sampler(threading.Thread):
    def __init__(self, stack: EmbeddedStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.phase = "start"
        self.series: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._clock_start = time.monotonic()

    def enter(self, phase: str) -> None:
        """Start ``phase`` with a sample of its own: a phase shorter than the sampling
        interval still has its peak."""
        self.phase = phase
        self._sample()

    def run(self) -> None:
        while not self.done.is_set():
            self._sample()
            self.done.wait(_SAMPLE_SECONDS)

    def _sample(self) -> None:
        assert self.stack.intake_url is not None
        with contextlib.suppress(OSError):  # a child busy past the timeout
            self.series.append(
                {
                    "t": round(time.monotonic() - self._clock_start, 1),
                    "phase": self.phase,
                    "rss_mb": round(_rss_mb(self.stack.worker.process.pid), 1),
                    "routed": total(self.stack.intake_url, "creditflow_intake_events_total"),
                    "applied": total(self.stack.worker_url, "creditflow_ledger_events_total"),
                    "pending": total(
                        self.stack.worker_url, "creditflow_signals_pending_enterprises"
                    ),
                }
            )


def _paced(stack: EmbeddedStack, events: list[dict[str, Any]], rate: float, seconds: float) -> int:
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        return bench.paced(stack, iter(events), rate, stop)
    finally:
        timer.cancel()


def _drain(stack: EmbeddedStack) -> None:
    """Until every view is published and no enterprise waits to be judged."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    time.sleep(2)  # intake routes what is still in its hands
    wait_views_published(stack.worker_url, bootstrap, stack.settings.partitions, 600)
    deadline = time.monotonic() + 900
    while total(stack.worker_url, "creditflow_signals_pending_enterprises") > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the signal judge did not drain within 900 s")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.memory")
    parser.add_argument("--enterprises", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.0, help="0: half the first burst's")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--sustained", type=float, default=30.0)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("loadtest/results/memory.json"))
    args = parser.parse_args(argv)
    trace = args.out.with_suffix(".trace.jsonl")
    if args.trace:
        trace.unlink(missing_ok=True)
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(_HOOK) if not path else f"{_HOOK}:{path}"
        os.environ["MEMTRACE_FILE"] = str(trace.resolve())
    batch_sets = [bench.events_for(1 + 10 * k, args.enterprises, 12) for k in range(args.repeats)]
    single_sets = [
        bench.events_for(2 + 10 * k, max(args.enterprises // 4, 10), 12)[:40_000]
        for k in range(args.repeats)
    ]
    rates: list[float] = []
    with embedded_stack(Settings(), banks=bench.BANKS, split_stages=True) as stack:
        sampler = _Sampler(stack)
        sampler.start()
        for k in range(args.repeats):
            sampler.enter(f"burst {k + 1}")
            rates.append(bench.ingest_batches(stack, batch_sets[k]))
            sampler.enter(f"single {k + 1}")
            bench.ingest_single(stack, single_sets[k])
        rate = args.rate or rates[0] / 2
        per_enterprise = len(batch_sets[0]) / args.enterprises
        load = bench.events_for(7, int(1.1 * rate * args.seconds / per_enterprise) + 1, 12)
        sampler.enter("paced")
        paced = _paced(stack, load, rate, args.seconds)
        sampler.enter("drain")
        _drain(stack)
        sampler.enter("sustained")
        sustained = bench.events_for(8, int(1.2 * 2000 * args.sustained / per_enterprise) + 1, 12)
        _paced(stack, sustained, 2000.0, args.sustained)
        sampler.enter("end")
        time.sleep(5)
        sampler.done.set()
        sampler.join()
        judged = total(stack.worker_url, "creditflow_signal_evaluations_total")
        judging = total(stack.worker_url, "creditflow_signal_evaluation_seconds_sum")
    peaks: dict[str, float] = {}
    spans: dict[str, list[float]] = {}
    for sample in sampler.series:
        peaks[sample["phase"]] = max(peaks.get(sample["phase"], 0.0), sample["rss_mb"])
        spans.setdefault(sample["phase"], []).append(sample["t"])
    summary = {
        "worker_rss_peak_mb": max(peaks.values()),
        "peak_by_phase_mb": peaks,
        "burst_events_per_s": [round(r) for r in rates],
        "paced_rate": round(rate),
        "paced_published": paced,
        "phase_seconds": {phase: round(ts[-1] - ts[0], 1) for phase, ts in spans.items()},
        # The judge's own time per enterprise (its chunks' wall time under the ledger's lock).
        "judged_enterprises": judged,
        "judge_ms_per_enterprise": round(1000 * judging / judged, 2) if judged else None,
        "git_commit": bench.git_commit(),
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(codec.dumps_pretty({**summary, "series": sampler.series}))
    print(codec.dumps(summary).decode())


if __name__ == "__main__":
    main()
