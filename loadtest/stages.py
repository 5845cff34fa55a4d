"""The worker's own CPU cost per event, stage by stage, without Kafka or Redis.

    python -m loadtest.stages [ENTERPRISES] [MONTHS]

Runs the generator's events through the code the worker runs for them, in one process:
validation and routing (intake), ledger apply and commit on RocksDB (ledger), and encoding
the changed month views (publish). Prints microseconds per event per stage and the ceiling
they set. It is the profile target (``py-spy record -- python -m loadtest.stages``): the
end-to-end figure of `make bench` adds Faust, the broker and Redis on top of this.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.intake import route
from engine import codec
from engine.events.partitioner import partition_for
from engine.periods import format_month, history_start, month_start_us, now_us
from engine.products.classify import load_registry
from engine.pseudonym import Pseudonymizer
from engine.settings import Settings
from loadtest.generator import GeneratorConfig, generate
from state.ledger import PartitionLedger
from state.rocksdb import RocksDBStore, shared_block_cache
from state.views import month_field

__all__ = ["measure"]

_STEP_EVENTS = 2000  # events per ledger commit, as a busy worker's step
_PARTITIONS = 8


def _batches(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [codec.dumps(events[i : i + size]) for i in range(0, len(events), size)]


def _intake(messages: list[bytes], bank_of: list[str]) -> list[list[Any]]:
    oldest_us = month_start_us(history_start(36))
    now = now_us()
    rows: list[list[Any]] = []
    for offset, (value, bank) in enumerate(zip(messages, bank_of, strict=True)):
        # What Intake.process does per message, without Kafka.
        valid, rejects = route(value, bank, f"bank.{bank}.txns", 0, offset, oldest_us, now)
        assert not rejects, rejects
        for row in valid:
            partition_for(row[0], _PARTITIONS)
        rows.extend(valid)
    return rows


def _ledger(rows: list[list[Any]], path: Path) -> list[tuple[PartitionLedger, dict[str, set[int]]]]:
    settings = Settings()
    registry = load_registry(settings.registry_path)
    pseudonym = Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())
    store = RocksDBStore(path, shared_block_cache(64 << 20))
    ledger = PartitionLedger(store, pseudonym, lambda: registry)
    steps = []
    for start in range(0, len(rows), _STEP_EVENTS):
        # A step as the worker applies it: encoded rows, decoded and applied in one call.
        ledger.apply_messages([codec.dumps(rows[start : start + _STEP_EVENTS])])
        steps.append((ledger, ledger.commit(start + _STEP_EVENTS)))
    return steps


def _publish(steps: list[tuple[PartitionLedger, dict[str, set[int]]]]) -> int:
    encoded = 0
    for ledger, changed in steps:
        for enterprise_id, months in changed.items():
            for month in months:
                agg = ledger.month(enterprise_id, month)
                if agg is not None:
                    month_field(format_month(month))
                    encoded += len(codec.dumps(agg.view()))
    return encoded


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def measure(enterprises: int = 500, months: int = 12) -> dict[str, float]:
    config = GeneratorConfig(seed=3, enterprises=enterprises, months=months, now=datetime.now(UTC))
    events = list(generate(config))
    by_bank: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_bank.setdefault(event["bank"], []).append(event)
    messages: list[bytes] = []
    bank_of: list[str] = []
    for bank, group in by_bank.items():
        for message in _batches(group, 500):
            messages.append(message)
            bank_of.append(bank)
    with tempfile.TemporaryDirectory(prefix="stages-") as tmp:
        intake_s, rows = _timed(lambda: _intake(messages, bank_of))
        ledger_s, steps = _timed(lambda: _ledger(rows, Path(tmp) / "state"))
        publish_s, _ = _timed(lambda: _publish(steps))
    n = len(events)
    per_event = {
        "intake_us": intake_s / n * 1e6,
        "ledger_us": ledger_s / n * 1e6,
        "publish_us": publish_s / n * 1e6,
    }
    total_us = sum(per_event.values())
    return {"events": n, **per_event, "total_us": total_us, "ceiling_events_per_s": 1e6 / total_us}


def main(argv: list[str]) -> None:
    enterprises = int(argv[0]) if argv else 500
    months = int(argv[1]) if len(argv) > 1 else 12
    result = measure(enterprises, months)
    print(codec.dumps(result).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
