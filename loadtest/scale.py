"""Worker memory and state size at scale: N enterprises x M months of state on one worker.

    python -m loadtest.scale [--enterprises N] [--months M] [--data-dir DIR] [--keep]
                             [--rate EVENTS_PER_S] [--seconds S] [--result PATH]

Issue 4 asks for a worker RSS of at most 1 GB and at most 2 KB of state per enterprise-month
with 100,000 enterprises x 12 months of state (the defaults here). Publishing the 44 million
events that takes through the in-memory broker would exhaust memory, so the state is built
offline with the code the worker runs, then the real worker runs on it:

1. build: the generator's events (in blocks of enterprises, so that the builder holds one
   block-month of events at a time) are grouped into the publisher's messages, routed as
   intake routes them, and applied per partition by PartitionLedger on RocksDB opened as the
   worker opens it (same paths, block cache setting, pseudonym key and registry), one commit
   every ~2,000 rows. The month after the built ones is held back: its first events of each
   enterprise are the traffic of step 3;
2. state: every partition flushed and fully compacted; bytes per enterprise-month, and on
   one partition the split into ledger (L|, P|) and months (M|) (loadtest.state_size);
3. worker: the embedded stack (broker, intake and ledger workers, API) on that state; it
   republishes every view to Redis (the fresh key prefix has none), then the held-back
   events are published at a steady rate. The RSS of each process is sampled, and its peak
   (VmHWM, start-up included) read at the end; Redis memory of the views is measured;
4. one JSON line printed and written to loadtest/results/scale.json (--result).

At full scale the build takes tens of minutes and a few GB of disk; run it niced. Without
--keep the data directory is removed at exit.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from agents.intake import ROUTED_CHUNK_EVENTS, route
from engine import codec
from engine.events.partitioner import partition_for
from engine.events.topics import bank_topic
from engine.periods import current_month, format_month, history_start, month_start_us, now_us
from engine.products.classify import RegistryWatcher
from engine.pseudonym import Pseudonymizer
from engine.runtime.embedded import free_port, start_broker
from engine.runtime.observe import total, wait_applied, wait_views_published
from engine.runtime.runner import delete_views, embedded_stack
from engine.runtime.worker import state_dir
from engine.settings import Settings
from loadtest.bench import (
    BANKS,
    RESULTS,
    RssSampler,
    compacted_bytes,
    git_commit,
    machine_info,
    paced,
)
from loadtest.generator import GeneratorConfig, generate
from loadtest.state_size import family_live_bytes
from state.ledger import PartitionLedger
from state.rocksdb import RocksDBStore, shared_block_cache

__all__ = ["ScaleConfig", "run_scale"]

_SEED = 40  # block k uses seed _SEED + k: reproducible, and txn_ids unique per block
_BLOCK_ENTERPRISES = 2_000  # the builder holds one block-month: ~90,000 events
_MESSAGE_EVENTS = 500  # BankPublisher's max_batch: events of one bank and partition a message
_STEP_ROWS = 2_000  # rows per ledger commit, as a busy worker's step
_PROGRESS_SECONDS = 30.0
_TRAFFIC_FILE = "traffic.jsonl"
_REDIS_SAMPLE = 1_000  # enterprise hashes whose MEMORY USAGE is measured
_READY_SECONDS = 1800.0  # the worker republishes every view first: ~120 us a month here


@dataclass(frozen=True)
class ScaleConfig:
    enterprises: int = 100_000
    months: int = 12
    rate: float = 3_000.0  # traffic, events/s
    seconds: float = 90.0  # of traffic
    data_dir: Path | None = None  # default: a temporary directory
    keep: bool = False
    result: Path = RESULTS / "scale.json"


# -- 1. build ---------------------------------------------------------------------------------


class _Builder:
    """Routes events as intake does and applies them per partition as the ledger does."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The worker's objects, built as engine.runtime.worker.build_worker builds them.
        cache = shared_block_cache(settings.rocksdb_block_cache_bytes)
        registry = RegistryWatcher(settings.registry_path).current
        pseudonym = Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())
        cache_months = max(1, settings.view_cache_months // settings.partitions)
        self.stores = [
            RocksDBStore(state_dir(settings, p), cache) for p in range(settings.partitions)
        ]
        self.ledgers = [
            PartitionLedger(store, pseudonym, lambda: registry, cache_months)
            for store in self.stores
        ]
        self._messages: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._offsets: Counter[tuple[str, int]] = Counter()  # bank topic offsets, invented
        self._steps: list[list[list[Any]]] = [[] for _ in self.stores]
        self._oldest_us = month_start_us(history_start(settings.history_months))
        self.applied = 0
        self.rejected = 0

    def add(self, event: dict[str, Any]) -> None:
        """One event, into the message the project's publisher would put it in."""
        key = (event["bank"], partition_for(event["enterprise_id"], self.settings.partitions))
        message = self._messages.setdefault(key, [])
        message.append(event)
        if len(message) == _MESSAGE_EVENTS:
            self._route(key, self._messages.pop(key))

    def _route(self, key: tuple[str, int], events: list[dict[str, Any]]) -> None:
        bank, source_partition = key
        offset = self._offsets[key]
        self._offsets[key] += 1
        rows, rejects = route(
            codec.dumps(events),
            bank,
            bank_topic(bank),
            source_partition,
            offset,
            self._oldest_us,
            now_us(),
        )
        self.rejected += len(rejects)
        for row in rows:
            partition = partition_for(row[0], self.settings.partitions)
            step = self._steps[partition]
            step.append(row)
            if len(step) >= _STEP_ROWS:
                self._apply(partition)

    def _apply(self, partition: int) -> None:
        rows, self._steps[partition] = self._steps[partition], []
        ledger = self.ledgers[partition]
        # Routed messages as intake sends them, applied in one call as the worker does.
        messages = [
            codec.dumps(rows[i : i + ROUTED_CHUNK_EVENTS])
            for i in range(0, len(rows), ROUTED_CHUNK_EVENTS)
        ]
        ledger.apply_messages(messages)
        self.rejected += len(ledger.rejections)
        # There is no routed log for this state. A worker refuses state whose next offset is
        # ahead of the routed topic, and the stack's fresh broker has an empty one: offset 0
        # lets the worker start here and apply that topic's messages from its first one.
        ledger.commit(0)
        self.applied += len(rows)

    def close(self) -> None:
        for key in list(self._messages):
            self._route(key, self._messages.pop(key))
        for partition in range(len(self._steps)):
            if self._steps[partition]:
                self._apply(partition)
        for store in self.stores:
            store.close()


def _blocks(config: ScaleConfig, now: datetime) -> Iterator[GeneratorConfig]:
    """Generator configs of the enterprise blocks: months + 1 months ending last month (the
    last complete one), so that the held-back month is wholly booked before now."""
    for k, first in enumerate(range(0, config.enterprises, _BLOCK_ENTERPRISES)):
        yield GeneratorConfig(
            seed=_SEED + k,
            enterprises=min(_BLOCK_ENTERPRISES, config.enterprises - first),
            months=config.months + 1,
            end_month=current_month() - 1,
            now=now,
        )


def build(settings: Settings, config: ScaleConfig, traffic_path: Path) -> dict[str, Any]:
    """Build the state; write the traffic (the first events of each enterprise in the month
    after the built ones) to ``traffic_path``. Returns the build's figures."""
    now = datetime.now(UTC)
    per_enterprise = max(1, math.ceil(config.rate * config.seconds / config.enterprises))
    builder = _Builder(settings)
    own_rss = RssSampler(os.getpid())
    own_rss.start()
    enterprise_months = traffic = 0
    started = last_report = time.monotonic()
    with traffic_path.open("wb") as out:
        for block in _blocks(config, now):
            assert block.end_month is not None
            held_month = format_month(block.end_month)
            months: set[tuple[str, str]] = set()  # block by block: enterprises differ
            held: Counter[str] = Counter()
            for event in generate(block):
                month = event["booked_at"][:7]  # booked_at is in CST, as the periods are
                if month == held_month:
                    if held[event["enterprise_id"]] < per_enterprise:
                        held[event["enterprise_id"]] += 1
                        out.write(codec.dumps(event) + b"\n")
                        traffic += 1
                    continue
                months.add((event["enterprise_id"], month))
                builder.add(event)
                if time.monotonic() - last_report > _PROGRESS_SECONDS:
                    last_report = time.monotonic()
                    _report_build(builder, started, block, config, own_rss)
            enterprise_months += len(months)
        builder.close()
    seconds = time.monotonic() - started
    own_rss.stop.set()
    return {
        "events": builder.applied,
        "enterprise_months": enterprise_months,
        "events_per_enterprise_month": round(builder.applied / max(enterprise_months, 1), 1),
        "rejected": builder.rejected,
        "build_seconds": round(seconds, 1),
        "build_events_per_s": round(builder.applied / seconds, 1),
        "builder_rss_mb": round(own_rss.max_kb / 1024, 1),
        "traffic_events_written": traffic,
    }


def _report_build(
    builder: _Builder, started: float, block: GeneratorConfig, config: ScaleConfig, rss: Any
) -> None:
    elapsed = time.monotonic() - started
    done = (block.seed - _SEED) * _BLOCK_ENTERPRISES
    print(
        f"scale: {builder.applied:,} events applied in {elapsed:,.0f} s "
        f"({builder.applied / elapsed:,.0f} events/s), enterprises {done:,} to "
        f"{done + block.enterprises:,} of {config.enterprises:,}, builder RSS "
        f"{rss.max_kb / 1024:,.0f} MB",
        flush=True,
    )


# -- 2. state ---------------------------------------------------------------------------------


def measure_state(settings: Settings, enterprise_months: int) -> dict[str, Any]:
    """Bytes per enterprise-month once every partition is flushed and fully compacted
    (bench.compacted_bytes), and the ledger / months split measured on partition 0."""
    started = time.monotonic()
    total_bytes = compacted_bytes(settings.data_dir)
    cache = shared_block_cache(settings.rocksdb_block_cache_bytes)
    store = RocksDBStore(state_dir(settings, 0), cache)
    try:
        split = _split(store, settings.data_dir / "split", cache)
    finally:
        store.close()
    per = max(enterprise_months, 1)
    return {
        "state_bytes": total_bytes,
        "state_bytes_per_enterprise_month": round(total_bytes / per, 1),
        "state_split_partition_0_bytes_per_enterprise_month": split,
        "state_compact_seconds": round(time.monotonic() - started, 1),
    }


def _split(store: RocksDBStore, scratch: Path, cache: Any) -> dict[str, int]:
    """Live bytes per enterprise-month of each key family of one partition, each family
    copied apart and compacted (loadtest.state_size's measurement)."""
    months = sum(1 for _ in store.scan_prefix(b"M|"))
    try:
        live = {
            prefix: family_live_bytes(store, prefix, scratch / prefix.hex(), cache)
            for prefix in (b"L|", b"P|", b"M|")
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    per = max(months, 1)
    return {
        "enterprise_months": months,
        "ledger": round((live[b"L|"] + live[b"P|"]) / per),
        "months": round(live[b"M|"] / per),
    }


# -- 3. the worker ----------------------------------------------------------------------------


def _traffic(path: Path, events: int) -> list[bytes]:
    """The first ``events`` held-back events in booking order, encoded (decoded when sent)."""
    lines = path.read_bytes().splitlines()
    # booked_at is RFC 3339 in CST for every generated event: its text sorts as its time.
    lines.sort(key=lambda line: codec.loads(line)["booked_at"])
    return lines[:events]


def _status_mb(pid: int, field: str) -> float | None:
    """A process's VmRSS (now) or VmHWM (the kernel's high-water mark of its RSS: its whole
    life so far, start-up included), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _redis_memory(settings: Settings) -> dict[str, Any]:
    """The views' Redis memory: MEMORY USAGE of a sample of enterprise hashes."""
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        pattern = f"{settings.redis_prefix}:v1:ent:*"
        keys = list(client.scan_iter(match=pattern, count=1000))
        sample = keys[:: max(1, len(keys) // _REDIS_SAMPLE)][:_REDIS_SAMPLE]
        usage = [int(client.memory_usage(key, samples=0) or 0) for key in sample]
        fields = [int(client.hlen(key)) for key in sample]
        used = int(client.info("memory")["used_memory"])
    finally:
        client.close()
    per_key = sum(usage) / max(len(usage), 1)
    return {
        "redis_view_keys": len(keys),
        "redis_bytes_per_enterprise": round(per_key),
        "redis_bytes_per_enterprise_month": round(sum(usage) / max(sum(fields), 1)),
        "redis_view_mb_estimated": round(per_key * len(keys) / 2**20, 1),
        "redis_used_memory_mb": round(used / 2**20, 1),
    }


def measure_worker(settings: Settings, config: ScaleConfig, traffic_path: Path) -> dict[str, Any]:
    """The stack on the built state, under paced traffic of the held-back month."""
    events = _traffic(traffic_path, int(config.rate * config.seconds))
    token = secrets.token_hex(3)
    run_dir = Path(tempfile.mkdtemp(prefix="scale-broker-"))
    # A broker of our own: with CREDITFLOW_KAFKA_BOOTSTRAP set, embedded_stack runs the
    # workers on settings.data_dir (the built state) and settings.redis_prefix as given.
    bootstrap, broker = start_broker(run_dir / "broker.log")
    stack_settings = settings.model_copy(
        update={
            "kafka_bootstrap": bootstrap,
            "group_id": f"cf-scale-{token}",
            "redis_prefix": f"cfscale-{token}",
            "api_port": free_port(),
            "worker_web_port": free_port(),
        }
    )
    started = time.monotonic()
    try:
        with embedded_stack(
            stack_settings, banks=BANKS, split_stages=True, ready_timeout=_READY_SECONDS
        ) as stack:
            ready_s = time.monotonic() - started  # views republished from state
            assert stack.intake is not None
            pids = {
                "ledger_worker": stack.worker.process.pid,
                "intake_worker": stack.intake.process.pid,
                "api": stack.api.process.pid,
            }
            samplers = {name: RssSampler(pid) for name, pid in pids.items()}
            for sampler in samplers.values():
                sampler.start()
            rss_at_ready = _status_mb(pids["ledger_worker"], "VmRSS")
            before = int(total(stack.worker_url, "creditflow_ledger_events_total"))
            published_at = time.monotonic()
            sent = paced(stack, (codec.loads(e) for e in events), config.rate, threading.Event())
            publish_s = time.monotonic() - published_at
            wait_applied(stack.worker_url, before + sent, timeout=3600)
            wait_views_published(stack.worker_url, bootstrap, settings.partitions, timeout=600)
            applied_s = time.monotonic() - published_at
            for sampler in samplers.values():
                sampler.stop.set()
            result: dict[str, Any] = {
                "worker_ready_seconds": round(ready_s, 1),
                "ledger_worker_rss_at_ready_mb": rss_at_ready,
                "traffic_events": sent,
                "traffic_enterprises": len({codec.loads(e)["enterprise_id"] for e in events}),
                "traffic_events_per_s": round(sent / publish_s, 1),
                "traffic_applied_seconds": round(applied_s, 1),
            }
            result.update(_redis_memory(stack.settings))
            for name, pid in pids.items():  # the peak as late as possible: the stack still runs
                result[f"{name}_rss_mb"] = round(samplers[name].max_kb / 1024, 1)
                result[f"{name}_peak_rss_mb"] = _status_mb(pid, "VmHWM")
    finally:
        delete_views(stack_settings)
        broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


# -- the run ----------------------------------------------------------------------------------


def _limits(settings: Settings) -> dict[str, Any]:
    """The cache sizes and bounds in force (what sets a worker's memory)."""
    return {
        "partitions": settings.partitions,
        "rocksdb_block_cache_bytes": settings.rocksdb_block_cache_bytes,
        "view_cache_months": settings.view_cache_months,
        "api_cache_products": settings.api_cache_products,
        "batch_max_messages": settings.batch_max_messages,
    }


def run_scale(config: ScaleConfig) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat()
    commit = git_commit()  # the code that builds (a long run may outlive a commit)
    data_dir = config.data_dir or Path(tempfile.mkdtemp(prefix="scale-"))
    if (data_dir / "state").exists():
        raise SystemExit(f"{data_dir} already holds state; give an empty --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings().model_copy(update={"data_dir": data_dir})
    traffic_path = data_dir / _TRAFFIC_FILE
    try:
        built = build(settings, config, traffic_path)
        print(f"scale: built {codec.dumps(built).decode()}", flush=True)
        state = measure_state(settings, built["enterprise_months"])
        print(f"scale: state {codec.dumps(state).decode()}", flush=True)
        worker = measure_worker(settings, config, traffic_path)
    finally:
        if config.keep:
            print(f"scale: state kept in {data_dir}", flush=True)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    result = {
        "enterprises": config.enterprises,
        "months": config.months,
        **built,
        **state,
        **worker,
        "limits": _limits(settings),
        "traffic_target_events_per_s": config.rate,
        "machine": machine_info(),
        "git_commit": commit,
        "started_at": started_at,
    }
    config.result.parent.mkdir(parents=True, exist_ok=True)
    config.result.write_bytes(codec.dumps_pretty(result))
    print(codec.dumps(result).decode(), flush=True)
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.scale", description=__doc__)
    defaults = ScaleConfig()
    parser.add_argument("--enterprises", type=int, default=defaults.enterprises)
    parser.add_argument("--months", type=int, default=defaults.months)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="traffic, events/s")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="of traffic")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--result", type=Path, default=defaults.result)
    args = parser.parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if v is not None}
    run_scale(ScaleConfig(**fields))


if __name__ == "__main__":
    main(sys.argv[1:])
