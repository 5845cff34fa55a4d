"""The bench's naive baseline computes what the worker computes, one event at a time."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.intake import route
from engine import codec
from engine.events.partitioner import partition_for
from engine.products.classify import load_registry
from engine.pseudonym import Pseudonymizer
from engine.settings import Settings
from loadtest.baselines import NaiveLedger
from loadtest.generator import GeneratorConfig, generate
from state.ledger import PartitionLedger
from state.memory import MemoryStore

PARTITIONS = 2


def test_the_naive_baseline_computes_the_months_the_ledger_does() -> None:
    settings = Settings()
    config = GeneratorConfig(seed=4, enterprises=8, months=3, now=datetime.now(UTC))
    events = list(generate(config))
    table: dict[bytes, bytes] = {}  # the baseline's Faust table, as a plain mapping
    naive = NaiveLedger(table, settings)
    for offset, event in enumerate(events):
        partition = partition_for(event["enterprise_id"], PARTITIONS)
        naive.apply(codec.dumps(event), "bench.naive.txns", partition, offset)

    # The worker's way: every event of a partition in one step, committed once.
    registry = load_registry(settings.registry_path)
    pseudonym = Pseudonymizer(settings.pseudonym_key.get_secret_value().encode())
    expected: dict[str, dict[int, object]] = {}
    for partition in range(PARTITIONS):
        ledger = PartitionLedger(MemoryStore(), pseudonym, lambda: registry)
        by_bank: dict[str, list[dict[str, object]]] = {}
        for e in events:
            if partition_for(e["enterprise_id"], PARTITIONS) == partition:
                by_bank.setdefault(e["bank"], []).append(e)
        for offset, (bank, group) in enumerate(by_bank.items()):
            rows, rejects = route(codec.dumps(group), bank, "t", 0, offset, None, 1 << 62)
            assert len(rows) == len(group) and not rejects
            ledger.apply_rows(rows)
        ledger.commit(len(by_bank))
        for enterprise_id, months in ledger.enterprises():
            expected[enterprise_id] = {m: agg.view() for m, agg in months.items()}

    computed: dict[str, dict[int, object]] = {}
    for ledger in naive.ledgers.values():
        for enterprise_id, months in ledger.enterprises():
            computed[enterprise_id] = {m: agg.view() for m, agg in months.items()}
    assert len(expected) == config.enterprises
    assert computed == expected
    # The state is the table's: a ledger record per transaction (redeliveries share one).
    transactions = {(e["bank"], e["txn_id"]) for e in events}
    assert sum(key.split(b"|")[1] == b"L" for key in table) == len(transactions)
