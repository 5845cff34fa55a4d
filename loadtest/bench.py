"""`make bench`: the real embedded stack under load, against Faust baselines in the same run.

Phases, on one machine, each measured from the first publish until the last event is applied
and published, repeated (3 times by default, new enterprises each time; medians reported):
1. batch ingest: partition-aligned batch messages (the project's publisher), as fast as possible;
2. single ingest: one event per message;
3. Faust baselines on the same broker (loadtest/baselines.py): an agent that only counts
   (the per-message ceiling), the naive design (the same items, by the same validation and
   ledger code, with its state a RocksDB-backed Faust table written per event), and the
   lighter "sums" strawman (four sums and a balance per event, as earlier figures used);
then once:
4. paced: ingest at half the batch rate while freshness probes publish-and-poll one
   enterprise, first alone, then while pulls run at a target rate with a Zipf skew (a
   separate process);
5. signals at a sustained rate: once the pipeline (views, then the signal judge) has
   drained, paced ingest at a stated rate
   these two shared cores keep up with (``sustained_rate``), with the signal and freshness
   probes again (at half the batch rate the ledger falls behind: docs/performance.md).
Writes loadtest/results/latest.json (latest-one-process.json with both stages in one worker
process) and prints a table.
"""

from __future__ import annotations

import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import codec
from engine.access.model import Role
from engine.events import kafka_admin
from engine.events.credit_code import generate as generate_code
from engine.events.publisher import BankPublisher
from engine.periods import CST
from engine.runtime.observe import total, wait_applied, wait_views_published, worker_samples
from engine.runtime.provision import Lender, authorize, provision_lender
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.settings import Settings
from loadtest.generator import GeneratorConfig, generate
from loadtest.keepalive import KeepAlive
from loadtest.signal_probe import PROBE_INTERVAL_SECONDS as SIGNAL_PROBE_SECONDS
from loadtest.signal_probe import SignalProbes
from state.rocksdb import RocksDBStore, shared_block_cache

__all__ = [
    "BANKS",
    "BenchConfig",
    "RssSampler",
    "compacted_bytes",
    "events_for",
    "git_commit",
    "ingest_batches",
    "ingest_single",
    "machine_info",
    "paced",
    "paced_phase",
    "percentile",
    "probe_enterprise",
    "run_bench",
    "run_pull_client",
]

RESULTS = Path(__file__).resolve().parent / "results"
BANKS = ("ICBC0001", "CCB00002", "ABC00003")
# How often paced ingest publishes: each time, one batch message per bank and partition.
PACED_PUBLISHES_PER_SECOND = 20
PROBE_INTERVAL_SECONDS = 0.25  # freshness probes, published open loop


@dataclass(frozen=True)
class BenchConfig:
    enterprises: int = 1000
    months: int = 12
    single_events: int = 40_000
    naive_events: int = 10_000  # each of the naive and sums baselines, per repeat
    pull_rate: float = 2000.0
    pull_seconds: float = 60.0
    freshness_seconds: float = 30.0
    # Signal latency also at a rate the machine sustains (docs/performance.md, "Signal
    # latency"): at half the batch rate the ledger falls behind and signals take seconds.
    sustained_rate: float = 2000.0
    sustained_seconds: float = 30.0
    repeats: int = 3  # ingest phases and baselines; medians are reported
    split_stages: bool = True  # intake and ledger as two worker processes, as in production
    # The API at real-time priority (CREDITFLOW_API_REALTIME_PRIORITY): on these two cores it
    # shares with ingest, a pull otherwise waits for a core (engine/runtime/priority.py).
    api_realtime_priority: int = 10
    smoke: bool = False

    @classmethod
    def for_smoke(cls) -> BenchConfig:
        return cls(
            enterprises=30,
            months=3,
            single_events=1500,
            naive_events=300,
            pull_rate=100.0,
            pull_seconds=3.0,
            freshness_seconds=3.0,
            sustained_rate=100.0,
            sustained_seconds=3.0,
            repeats=1,
            smoke=True,
        )


def events_for(seed: int, enterprises: int, months: int) -> list[dict[str, Any]]:
    config = GeneratorConfig(
        seed=seed, enterprises=enterprises, months=months, banks=BANKS, now=datetime.now(UTC)
    )
    return list(generate(config))


def _ledger_total(stack: EmbeddedStack) -> int:
    return int(total(stack.worker_url, "creditflow_ledger_events_total"))


def _wait_done(stack: EmbeddedStack, target: int, timeout: float = 900.0) -> float:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    wait_applied(stack.worker_url, target, timeout)
    wait_views_published(stack.worker_url, bootstrap, stack.settings.partitions, timeout)
    return time.time()


def ingest_batches(stack: EmbeddedStack, events: list[dict[str, Any]]) -> float:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    before = _ledger_total(stack)
    by_bank: dict[str, list[dict[str, Any]]] = {bank: [] for bank in BANKS}
    for event in events:
        by_bank[event["bank"]].append(event)
    publishers = {bank: BankPublisher(bootstrap, bank, stack.settings.partitions) for bank in BANKS}
    started = time.time()
    for bank, group in by_bank.items():
        publishers[bank].publish_batch(group)
    for publisher in publishers.values():
        publisher.flush(300)
    done = _wait_done(stack, before + len(events))
    return len(events) / (done - started)


def ingest_single(stack: EmbeddedStack, events: list[dict[str, Any]]) -> float:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    before = _ledger_total(stack)
    publishers = {bank: BankPublisher(bootstrap, bank, stack.settings.partitions) for bank in BANKS}
    started = time.time()
    for event in events:
        publishers[event["bank"]].publish(event)
    for publisher in publishers.values():
        publisher.flush(300)
    done = _wait_done(stack, before + len(events))
    return len(events) / (done - started)


def _baseline(stack: EmbeddedStack, kind: str, topic: str, events: list[dict[str, Any]]) -> float:
    """Events/s of a baseline Faust app consuming ``events`` as single-event messages."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    kafka_admin.ensure_topics(bootstrap, {topic: stack.settings.partitions})
    env = {**stack.env, "BASELINE_DATADIR": tempfile.mkdtemp(prefix=f"baseline-{kind}-")}
    process = subprocess.Popen(
        [sys.executable, "-m", "loadtest.baselines", kind, topic, str(len(events))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = _Lines(process)
        lines.first(lambda line: line.endswith("ready"))  # its consumer group has formed
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        started = time.time()
        for event in events:
            while True:
                try:
                    producer.produce(topic, codec.dumps(event), event["enterprise_id"].encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(300)
        line = lines.first(lambda line: "{" in line)
        result = codec.loads(line[line.index("{") :])
        return float(result["events"]) / (float(result["done_at"]) - started)
    finally:
        process.kill()
        process.wait(10)


class _Lines:
    """A child's output lines, read in a thread, waited for with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.strip())
        self._lines.put(None)

    def first(self, wanted: Any, timeout: float = 300.0) -> str:
        """The first line ``wanted`` accepts.

        Faust prints a banner before ours, and its spinner's escape codes share our lines.
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"the baseline exited with code {self.process.wait()}")
            if wanted(line):
                return line
        raise RuntimeError(f"the baseline did not report within {timeout:.0f} s")


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.max_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.max_kb = max(self.max_kb, int(line.split()[1]))
            except OSError:
                pass
            self.stop.wait(0.5)


def paced(
    stack: EmbeddedStack, events: Iterator[dict[str, Any]], rate: float, stop: threading.Event
) -> int:
    """Publish batches at ``rate`` events/s until ``stop`` or the events run out; returns
    the events published."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    publishers = {bank: BankPublisher(bootstrap, bank, stack.settings.partitions) for bank in BANKS}
    chunk = max(1, int(rate / PACED_PUBLISHES_PER_SECOND))
    sent = 0
    started = time.monotonic()
    exhausted = False
    while not stop.is_set() and not exhausted:
        batch: dict[str, list[dict[str, Any]]] = {bank: [] for bank in BANKS}
        for _ in range(chunk):
            event = next(events, None)
            if event is None:
                exhausted = True
                break
            batch[event["bank"]].append(event)
        for bank, group in batch.items():
            if group:
                publishers[bank].publish_batch(group)
                sent += len(group)
        ahead = started + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    for publisher in publishers.values():
        publisher.flush(120)
    return sent


def probe_enterprise(seed: int) -> str:
    """The freshness probe's enterprise, one that no generated data set has.

    A generator seeded with the same integer draws the same first enterprise, whose
    transactions would count as the probe's (the ingest phases use seeds 1, 2, 11, ...:
    probes seeded 1 and 2 once passed at once for their first ~30 events).
    """
    return generate_code(random.Random(f"freshness-probe-{seed}"))


def _freshness(
    stack: EmbeddedStack, lender: Lender, stop: threading.Event, probe_seed: int
) -> list[float]:
    """Publish one event for a probe enterprise of its own every PROBE_INTERVAL_SECONDS,
    and poll the API until each shows; returns every probe's latency.

    Open loop: a probe is published on time whether or not the previous one shows yet (one
    that waited for the previous would take fewer samples exactly while the ledger is
    behind). The probe enterprise's inflow count says how many probes show. After ``stop``
    the probes already published are still waited for (up to 30 s each), none is dropped.
    Polls go over one keep-alive connection: a new connection per poll (urllib) cost this
    process about a millisecond of CPU each, taken from the very cores whose lag it measures.
    """
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    probe = probe_enterprise(probe_seed)
    publisher = BankPublisher(bootstrap, BANKS[0], stack.settings.partitions)
    month = datetime.now(CST).strftime("%Y-%m")
    api = KeepAlive(stack.api_url, lender.headers)
    path = lender.path(probe, "monthly", month)
    published: list[float] = []  # when probe k + 1 was published
    latencies: list[float] = []
    next_publish = time.perf_counter()
    while True:
        now = time.perf_counter()
        if not stop.is_set() and now >= next_publish:
            k = len(published) + 1
            published.append(now)  # the publish itself counts
            publisher.publish(_probe_event(probe, k))
            publisher.flush(30)
            next_publish += PROBE_INTERVAL_SECONDS
        if len(latencies) == len(published):
            if stop.is_set():
                break
        elif time.perf_counter() - published[len(latencies)] > 30:
            break  # lost: the phase's figures would be meaningless, and the bench says so
        else:
            body = api.get(path)
            shown = 0 if body is None else body["segments"][0]["items"]["inflow_count"]
            seen_at = time.perf_counter()
            while len(latencies) < min(shown, len(published)):
                latencies.append(seen_at - published[len(latencies)])
        time.sleep(0.005)
    api.close()
    if len(latencies) < len(published):
        print(f"  freshness: {len(published) - len(latencies)} probes never showed", flush=True)
    return latencies


def _probe_event(probe: str, k: int) -> dict[str, Any]:
    return {
        "schema": 1,
        "txn_id": f"PROBE-{k}",
        "bank": BANKS[0],
        "enterprise_id": probe,
        "account": "PROBE",
        "booked_at": datetime.now(CST).replace(microsecond=0).isoformat(),
        "direction": "in",
        "amount_fen": 1,
        "balance_after_fen": k,
        "channel": "transfer",
        "counterparty": {"id": "PROBE-CP"},
    }


def paced_phase(
    stack: EmbeddedStack,
    lender: Lender,
    load: list[dict[str, Any]],
    rate: float,
    seconds: float,
    probe_seed: int,
    pulls: tuple[list[str], float] | None = None,
    signals: tuple[SignalProbes, list[float]] | None = None,
) -> tuple[dict[str, float] | None, list[float], int]:
    """Ingest ``load`` at ``rate`` while freshness probes run, for ``seconds``; with
    ``pulls`` (URLs, rate) the pull client runs meanwhile, with ``signals`` (probes, a list
    their latencies are added to) the signal probes. Returns (pull figures, freshness
    samples, events published)."""
    stop = threading.Event()
    published = [0]
    events = iter(load)
    ingest_thread = threading.Thread(
        target=lambda: published.__setitem__(0, paced(stack, events, rate, stop)), daemon=True
    )
    ingest_thread.start()
    fresh: list[float] = []
    probe_thread = threading.Thread(
        target=lambda: fresh.extend(_freshness(stack, lender, stop, probe_seed)), daemon=True
    )
    probe_thread.start()
    signal_thread = None
    if signals is not None:
        probes, latencies = signals
        signal_thread = threading.Thread(
            target=lambda: latencies.extend(probes.run(stop)), daemon=True
        )
        signal_thread.start()
    figures = None
    if pulls is None:
        stop.wait(seconds)
    else:
        figures = run_pull_client(*pulls, seconds, lender.headers)
    stop.set()
    ingest_thread.join(120)
    probe_thread.join(60)
    if signal_thread is not None:
        signal_thread.join(90)  # the probes already published are waited for
    return figures, fresh, published[0]


def run_pull_client(
    urls: list[str], rate: float, seconds: float, headers: dict[str, str]
) -> dict[str, float]:
    """The pull client, in its own process (it must not share our interpreter lock)."""
    urls_file = Path(tempfile.mkstemp(prefix="bench-urls-", suffix=".txt")[1])
    lines = [f"header {name}: {value}" for name, value in headers.items()] + urls
    urls_file.write_text("\n".join(lines))
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "loadtest.pulls",
                str(urls_file),
                str(rate),
                str(seconds),
                "32",
                "--warm",  # each product pulled once first: the run measures pulling again
                "--realtime",  # lenders pull from machines of their own (loadtest/pulls.py)
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 300,
            check=True,
        )
    finally:
        urls_file.unlink()
    figures: dict[str, float] = codec.loads(run.stdout.strip().splitlines()[-1])
    return figures


def _cache_lookups(stack: EmbeddedStack, operator: Lender) -> tuple[float, float]:
    """(hits, misses) of the API's render cache so far (its metrics are an operator's)."""
    samples = worker_samples(stack.api_url, operator.headers).get(
        "creditflow_api_render_cache_lookups_total", {}
    )
    by_result = {dict(labels)["result"]: value for labels, value in samples.items()}
    return by_result.get("hit", 0.0), by_result.get("miss", 0.0)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=RESULTS.parent.parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_bench(settings: Settings, config: BenchConfig) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat()
    # Every repeat has enterprises of its own: a repeat of the same events would measure
    # the ledger's duplicate path instead.
    batch_sets = [
        events_for(1 + 10 * k, config.enterprises, config.months) for k in range(config.repeats)
    ]
    single_sets = [
        events_for(2 + 10 * k, max(config.enterprises // 4, 10), config.months)[
            : config.single_events
        ]
        for k in range(config.repeats)
    ]
    print(
        f"bench: {config.repeats} x ({len(batch_sets[0]):,} batch events, "
        f"{len(single_sets[0]):,} single events)",
        flush=True,
    )
    rates: dict[str, list[float]] = {
        name: [] for name in ("batch", "single", "noop", "naive", "sums")
    }
    settings = settings.model_copy(
        update={
            "api_realtime_priority": config.api_realtime_priority,
            # One lender pulls at 2,000/s: the per-institution limit must not be what is measured.
            "api_institution_rate_limit": "1000000/second",
        }
    )
    with embedded_stack(settings, banks=BANKS, split_stages=config.split_stages) as stack:
        # Every pull is authorized and recorded, as in production: a lender authorized for
        # the probes now, and for the pulled enterprises before the pulls.
        lender = provision_lender(
            stack.settings, "BENCHLND", [probe_enterprise(seed) for seed in (1, 2, 3)]
        )
        sampler = RssSampler(stack.worker.process.pid)
        sampler.start()
        intake_sampler = None if stack.intake is None else RssSampler(stack.intake.process.pid)
        if intake_sampler is not None:
            intake_sampler.start()
        for k, (batch_k, single_k) in enumerate(zip(batch_sets, single_sets, strict=True)):
            rates["batch"].append(ingest_batches(stack, batch_k))
            rates["single"].append(ingest_single(stack, single_k))
            # The baselines on the same broker, each on topics of its own.
            rates["noop"].append(_baseline(stack, "noop", f"bench.noop.{k}.txns", single_k))
            naive_k = batch_k[: config.naive_events]
            rates["naive"].append(_baseline(stack, "naive", f"bench.naive.{k}.txns", naive_k))
            rates["sums"].append(_baseline(stack, "sums", f"bench.sums.{k}.txns", naive_k))
            print(
                f"  repeat {k + 1}: batch {rates['batch'][-1]:,.0f}, single "
                f"{rates['single'][-1]:,.0f}, Faust no-op {rates['noop'][-1]:,.0f}, naive "
                f"{rates['naive'][-1]:,.0f}, sums {rates['sums'][-1]:,.0f} events/s",
                flush=True,
            )
        batch_rate, single_rate, noop_rate, naive_rate, sums_rate = (
            statistics.median(rates[name]) for name in ("batch", "single", "noop", "naive", "sums")
        )
        # State on disk (RocksDB files and write-ahead log) of what was ingested so far.
        disk_bytes = _dir_bytes(stack.settings.data_dir)
        disk_enterprise_months = _enterprise_months(batch_sets + single_sets)
        batch_events = batch_sets[0]
        enterprises = sorted({e["enterprise_id"] for e in batch_events})
        random.Random(5).shuffle(enterprises)  # popularity order for the Zipf skew
        month = batch_events[-1]["booked_at"][:7]
        authorize(stack.settings, lender, enterprises)
        urls = [stack.api_url + lender.path(e, "monthly", month) for e in enterprises]
        # Half the batch rate, on enterprises not seen yet: first alone (freshness), then
        # with product pulls.
        rate = batch_rate / 2
        # Enough events for both phases at that rate (and a tenth more): the pulls must run
        # during ingest to the end. (Before 2026-12-05 the load was 2 x the batch
        # enterprises, which ran out a few seconds into the pulls.)
        wanted = 1.1 * rate * (config.freshness_seconds + config.pull_seconds)
        per_enterprise = len(batch_events) / config.enterprises
        load = events_for(
            7, max(2 * config.enterprises, int(wanted / per_enterprise) + 1), config.months
        )
        split = int(rate * config.freshness_seconds)
        signal_probes = SignalProbes(
            stack,
            [
                generate_code(random.Random(f"signal-probe-{k}"))
                for k in range(int(config.freshness_seconds / SIGNAL_PROBE_SECONDS) + 1)
            ],
            BANKS[0],
        )
        signal_latencies: list[float] = []
        paced_started = time.monotonic()
        _, fresh, paced_alone = paced_phase(
            stack,
            lender,
            load[:split],
            rate,
            config.freshness_seconds,
            1,
            signals=(signal_probes, signal_latencies),
        )
        # What the publisher managed: below the target when the machine could not keep up.
        paced_rate = paced_alone / (time.monotonic() - paced_started)
        print(
            f"  freshness at {rate:,.0f} events/s: p50 {_ms(percentile(fresh, 0.5))} ms, "
            f"p99 {_ms(percentile(fresh, 0.99))} ms; signals p50 "
            f"{_ms(percentile(signal_latencies, 0.5))} ms, "
            f"p99 {_ms(percentile(signal_latencies, 0.99))} ms",
            flush=True,
        )
        operator = provision_lender(stack.settings, "BENCHOPS", roles=(Role.OPERATOR,))
        lookups_before = _cache_lookups(stack, operator)
        pulls, fresh_pulling, paced = paced_phase(
            stack, lender, load[split:], rate, config.pull_seconds, 2, (urls, config.pull_rate)
        )
        assert pulls is not None
        hits, misses = (
            a - b for a, b in zip(_cache_lookups(stack, operator), lookups_before, strict=True)
        )
        print(
            f"  pulls: {pulls['qps']:,.0f}/s p50 {pulls['p50_ms']:.2f} ms "
            f"p99 {pulls['p99_ms']:.2f} ms",
            flush=True,
        )
        sustained = _sustained(stack, lender, config, per_enterprise)
        sampler.stop.set()
        if intake_sampler is not None:
            intake_sampler.stop.set()
        # What the state settles to: the ledger worker stops (its state is then closed),
        # and each partition is flushed and fully compacted with the worker's own options.
        stack.worker.stop()
        state_bytes = compacted_bytes(stack.settings.data_dir)
        enterprise_months = _enterprise_months(
            [*batch_sets, *single_sets, load[:paced_alone], load[split : split + paced]]
        )
    result = {
        "ingest_batch_events_per_s": round(batch_rate, 1),
        "ingest_single_events_per_s": round(single_rate, 1),
        "faust_noop_events_per_s": round(noop_rate, 1),
        "naive_faust_events_per_s": round(naive_rate, 1),
        "batch_vs_naive": round(batch_rate / naive_rate, 2) if naive_rate else None,
        # The lighter strawman earlier figures compared with (not the same items).
        "sums_faust_events_per_s": round(sums_rate, 1),
        "batch_vs_sums": round(batch_rate / sums_rate, 2) if sums_rate else None,
        "single_vs_noop": round(single_rate / noop_rate, 3) if noop_rate else None,
        "pull_qps": round(pulls["qps"], 1),
        "pull_p50_ms": round(pulls["p50_ms"], 3),
        "pull_p99_ms": round(pulls["p99_ms"], 3),
        "pull_errors": int(pulls["errors"]),
        "pull_max_ms": round(pulls["max_ms"], 3),
        "pull_send_lag_p99_ms": round(pulls["send_lag_p99_ms"], 3),  # the client's own tick
        "pull_client_realtime": bool(pulls["client_realtime"]),
        "api_realtime_priority": config.api_realtime_priority,
        "pull_target_qps": config.pull_rate,
        "pull_render_cache_hit_ratio": round(hits / (hits + misses), 3) if hits + misses else None,
        "pull_seconds": config.pull_seconds,
        "ingest_during_pulls_events": paced,
        "freshness_p50_ms": _ms(percentile(fresh, 0.5)),
        "freshness_p99_ms": _ms(percentile(fresh, 0.99)),
        "freshness_samples": len(fresh),
        "freshness_ingest_events_per_s": round(rate, 1),
        "freshness_published_events_per_s": round(paced_rate, 1),
        # From publishing an event to a lender polling the signal it raised (same phase).
        "signal_latency_p50_ms": _ms(percentile(signal_latencies, 0.5)),
        "signal_latency_p99_ms": _ms(percentile(signal_latencies, 0.99)),
        "signal_samples": len(signal_latencies),
        "signal_sustained_events_per_s": config.sustained_rate,
        "signal_latency_sustained_p50_ms": _ms(percentile(sustained.signals, 0.5)),
        "signal_latency_sustained_p99_ms": _ms(percentile(sustained.signals, 0.99)),
        "signal_sustained_samples": len(sustained.signals),
        "freshness_sustained_p50_ms": _ms(percentile(sustained.fresh, 0.5)),
        "freshness_sustained_p99_ms": _ms(percentile(sustained.fresh, 0.99)),
        # Before that phase: how long the views, then the signal judge, took to catch up.
        "drain_views_seconds": round(sustained.drained.views_seconds, 1),
        "drain_signal_judge_seconds": round(sustained.drained.judge_seconds, 1),
        "freshness_during_pulls_p50_ms": _ms(percentile(fresh_pulling, 0.5)),
        "freshness_during_pulls_p99_ms": _ms(percentile(fresh_pulling, 0.99)),
        "worker_rss_mb": round(sampler.max_kb / 1024, 1),
        "intake_worker_rss_mb": None
        if intake_sampler is None
        else round(intake_sampler.max_kb / 1024, 1),
        "split_stages": config.split_stages,
        "state_bytes_per_enterprise_month": round(state_bytes / max(enterprise_months, 1), 1),
        "enterprise_months": enterprise_months,
        # During the run: write-ahead logs, memtables and versions not compacted yet.
        "state_disk_bytes_per_enterprise_month": round(
            disk_bytes / max(disk_enterprise_months, 1), 1
        ),
        "samples_events_per_s": {name: [round(r, 1) for r in rs] for name, rs in rates.items()},
        "events": {
            "batch": len(batch_events),
            "single": len(single_sets[0]),
            "naive": min(config.naive_events, len(batch_events)),
        },
        "config": asdict(config),
        "machine": machine_info(),
        "git_commit": git_commit(),
        "started_at": started_at,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "smoke" if config.smoke else "latest" if config.split_stages else "latest-one-process"
    (RESULTS / f"{name}.json").write_bytes(codec.dumps_pretty(result))
    print_table(result)
    return result


@dataclass
class _Drained:
    views_seconds: float  # after the phases before, until every view was published
    judge_seconds: float  # then until no enterprise waited to be judged


@dataclass
class _Sustained:
    fresh: list[float]
    signals: list[float]
    drained: _Drained


def _sustained(
    stack: EmbeddedStack, lender: Lender, config: BenchConfig, per_enterprise: float
) -> _Sustained:
    """Freshness and signal latency at ``config.sustained_rate``, after the pipeline has
    drained what the phases before left behind (or they would measure that backlog): the
    views, then the enterprises waiting to be judged (thousands after the phases before,
    judged about a hundred a second: docs/performance.md)."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    started = time.monotonic()
    time.sleep(2)  # intake routes what is still in its hands
    wait_views_published(stack.worker_url, bootstrap, stack.settings.partitions, 600)
    views_at = time.monotonic()
    deadline = views_at + 900
    while total(stack.worker_url, "creditflow_signals_pending_enterprises") > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the signal judge did not drain within 900 s")
        time.sleep(0.5)
    drained = _Drained(views_at - started, time.monotonic() - views_at)
    print(
        f"  drained: views {drained.views_seconds:,.1f} s, then the judge "
        f"{drained.judge_seconds:,.1f} s",
        flush=True,
    )
    events = config.sustained_rate * config.sustained_seconds * 1.2
    load = events_for(8, max(10, int(events / per_enterprise) + 1), config.months)
    probes = SignalProbes(
        stack,
        [
            generate_code(random.Random(f"signal-probe-sustained-{k}"))
            for k in range(int(config.sustained_seconds / SIGNAL_PROBE_SECONDS) + 1)
        ],
        BANKS[0],
        "BENCHSUS",
    )
    signals: list[float] = []
    _, fresh, _ = paced_phase(
        stack,
        lender,
        load,
        config.sustained_rate,
        config.sustained_seconds,
        3,
        signals=(probes, signals),
    )
    print(
        f"  at {config.sustained_rate:,.0f} events/s: freshness p50 "
        f"{_ms(percentile(fresh, 0.5))} ms, p99 {_ms(percentile(fresh, 0.99))} ms; signals "
        f"p50 {_ms(percentile(signals, 0.5))} ms, p99 {_ms(percentile(signals, 0.99))} ms",
        flush=True,
    )
    return _Sustained(fresh, signals, drained)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _enterprise_months(event_sets: list[list[dict[str, Any]]]) -> int:
    return len({(e["enterprise_id"], e["booked_at"][:7]) for events in event_sets for e in events})


def compacted_bytes(data_dir: Path) -> int:
    """Bytes of every partition's state once flushed and compacted (its worker stopped)."""
    total = 0
    cache = shared_block_cache(16 << 20)
    for path in sorted((data_dir / "state").iterdir()):
        store = RocksDBStore(path, cache)
        try:
            store.compact()
            total += store.size_bytes()
        finally:
            store.close()
    return total


def print_table(result: dict[str, Any]) -> None:
    rows = [
        ("ingest, batch messages", f"{result['ingest_batch_events_per_s']:,.0f} events/s"),
        ("ingest, single-event messages", f"{result['ingest_single_events_per_s']:,.0f} events/s"),
        ("Faust no-op agent (ceiling)", f"{result['faust_noop_events_per_s']:,.0f} events/s"),
        (
            "naive Faust (same items, table per event)",
            f"{result['naive_faust_events_per_s']:,.0f} events/s",
        ),
        (
            "sums Faust (4 sums + balance per event)",
            f"{result['sums_faust_events_per_s']:,.0f} events/s",
        ),
        (
            "batch / naive, batch / sums",
            f"{result['batch_vs_naive']}x, {result['batch_vs_sums']}x",
        ),
        ("single / no-op", f"{result['single_vs_noop']}"),
        (
            "pulls during ingest",
            f"{result['pull_qps']:,.0f}/s (target "
            f"{result['pull_target_qps']:,.0f}), p50 {result['pull_p50_ms']} ms,"
            f" p99 {result['pull_p99_ms']} ms, errors {result['pull_errors']}",
        ),
        ("pulls served from the render cache", f"{result['pull_render_cache_hit_ratio']}"),
        (
            "real-time priority",
            f"API {result['api_realtime_priority'] or 'off'}, pull client "
            f"{'on' if result['pull_client_realtime'] else 'off'} (client send lag p99 "
            f"{result['pull_send_lag_p99_ms']} ms)",
        ),
        (
            "freshness p50 / p99",
            f"{result['freshness_p50_ms']} / {result['freshness_p99_ms']} ms at "
            f"{result['freshness_ingest_events_per_s']:,.0f} events/s (published "
            f"{result['freshness_published_events_per_s']:,.0f}); during pulls "
            f"{result['freshness_during_pulls_p50_ms']} / "
            f"{result['freshness_during_pulls_p99_ms']} ms",
        ),
        (
            "signal latency p50 / p99",
            f"{result['signal_latency_p50_ms']} / {result['signal_latency_p99_ms']} ms at "
            f"{result['freshness_ingest_events_per_s']:,.0f} events/s; "
            f"{result['signal_latency_sustained_p50_ms']} / "
            f"{result['signal_latency_sustained_p99_ms']} ms at "
            f"{result['signal_sustained_events_per_s']:,.0f} (freshness "
            f"{result['freshness_sustained_p50_ms']} / {result['freshness_sustained_p99_ms']} ms)",
        ),
        ("worker RSS (max)", f"{result['worker_rss_mb']} MB"),
        (
            "state per enterprise-month",
            f"{result['state_bytes_per_enterprise_month']} bytes compacted, "
            f"{result['state_disk_bytes_per_enterprise_month']} on disk during the run",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    machine = result["machine"]
    print(
        f"\ncreditflow benchmark, {machine['cores']} cores, {machine['memory_gb']} GB, "
        f"Python {machine['python']}, commit {result['git_commit'][:10]}"
    )
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
