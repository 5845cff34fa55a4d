"""Worker state per enterprise-month, once compacted, by key family.

    python -m loadtest.state_size [ENTERPRISES] [MONTHS]

Applies the generator's events (300 enterprises x 12 months by default, a fixed seed and a
fixed "now", so the figure is reproducible) to one partition ledger on RocksDB with the
worker's options, commits every 2,000 events as a busy worker's step does, then flushes and
compacts everything and prints the live bytes (RocksDB's ``estimate-live-data-size``) per
enterprise-month: in total, and for each key family (``L`` ledger records, ``P`` pending
reversals, ``M`` month aggregates, ``_`` progress), each family copied on its own into a
fresh database with the same options and compacted. ``raw`` is the key and value bytes before
compression. An enterprise-month is one stored month aggregate.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import codec
from engine.events.contract import Txn, validate
from engine.products.classify import load_registry
from engine.pseudonym import Pseudonymizer
from engine.settings import Settings
from loadtest.generator import GeneratorConfig, generate
from state.ledger import PartitionLedger
from state.rocksdb import RocksDBStore, shared_block_cache

__all__ = ["family_live_bytes", "measure"]

_STEP_EVENTS = 2000
_FAMILIES = (b"L|", b"P|", b"M|", b"_")
_NOW = datetime(2026, 12, 1, tzinfo=UTC)  # a fixed "now": the same events on every run
_CACHE_BYTES = 16 * 1024 * 1024


def _rows(enterprises: int, months: int) -> Iterator[list[Any]]:
    config = GeneratorConfig(seed=9, enterprises=enterprises, months=months, now=_NOW)
    for offset, event in enumerate(generate(config)):
        txn = validate(event, event["bank"])
        assert isinstance(txn, Txn), txn
        yield [*txn, f"bank.{txn.bank}.txns", 0, offset, None]


def family_live_bytes(store: RocksDBStore, prefix: bytes, path: Path, cache: Any) -> int:
    """Bytes one key family (``prefix``) of ``store`` takes once copied alone and compacted."""
    copy = RocksDBStore(path, cache)
    try:
        batch: dict[bytes, bytes | None] = {}
        for key, value in store.scan_prefix(prefix):
            batch[key] = value
            if len(batch) >= 10_000:
                copy.write(batch)
                batch = {}
        copy.write(batch)
        copy.compact()
        return copy.live_bytes()
    finally:
        copy.close()


def measure(enterprises: int = 300, months: int = 12) -> dict[str, Any]:
    """Events, enterprise-months and bytes per enterprise-month (total, and per family)."""
    registry = load_registry(Settings().registry_path)
    cache = shared_block_cache(_CACHE_BYTES)
    with tempfile.TemporaryDirectory(prefix="state-size-") as tmp:
        store = RocksDBStore(Path(tmp) / "state", cache)
        try:
            ledger = PartitionLedger(store, Pseudonymizer(b"state-size"), lambda: registry)
            events = 0
            step: list[list[Any]] = []
            for row in _rows(enterprises, months):
                step.append(row)
                if len(step) == _STEP_EVENTS:
                    events += len(ledger.apply_rows(step))
                    ledger.commit(events)
                    step = []
            events += len(ledger.apply_rows(step))
            ledger.commit(events)
            store.compact()
            total = store.live_bytes()
            raw = {
                prefix: sum(len(k) + len(v) for k, v in store.scan_prefix(prefix))
                for prefix in _FAMILIES
            }
            counts = {prefix: sum(1 for _ in store.scan_prefix(prefix)) for prefix in _FAMILIES}
            live = {
                prefix: family_live_bytes(store, prefix, Path(tmp) / prefix.hex(), cache)
                for prefix in _FAMILIES
            }
        finally:
            store.close()
    per = max(counts[b"M|"], 1)
    return {
        "events": events,
        "enterprise_months": counts[b"M|"],
        "live_bytes_per_enterprise_month": round(total / per),
        "by_family": {
            prefix.decode().rstrip("|"): {
                "keys": counts[prefix],
                "live": round(live[prefix] / per),
                "raw": round(raw[prefix] / per),
            }
            for prefix in _FAMILIES
        },
    }


def main(argv: list[str]) -> None:
    enterprises = int(argv[0]) if argv else 300
    months = int(argv[1]) if len(argv) > 1 else 12
    print(codec.dumps(measure(enterprises, months)).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
