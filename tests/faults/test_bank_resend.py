"""A bank re-sends a whole day it already sent (the same txn_ids), with 1 % poison mixed into
its stream: the products end exactly as the reference computes them (the day counted once),
and every poison event is in the rejects topic with its reason, none dropped silently and
none counted (issue 17, fault 5)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from engine import codec
from engine.events.publisher import BankPublisher
from engine.events.rejects import read_rejects
from engine.events.topics import bank_topic
from engine.runtime.embedded import Child
from engine.runtime.observe import worker_samples
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests import reference
from tests.faults.conftest import FAULT_MARKS
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    assert_products,
    generated_log,
    module_settings,
    publish_by_bank,
    wait_until,
)

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(240)]

BANK, OTHER = BANKS
_BAD_ENTERPRISE = "91350100M000100Y44"  # a check character off


@pytest.fixture(scope="module")
def stack(own_redis: tuple[str, Child, Path]) -> Iterator[EmbeddedStack]:
    settings = module_settings("resend", redis_url=own_redis[0], batch_max_messages=20)
    with embedded_stack(settings, banks=BANKS) as running:
        yield running


def _poison(event: dict[str, Any], n: int, rng: random.Random) -> tuple[str, Any]:
    """(reason, what is published): a malformed message or a bad element of a batch, each
    with a txn_id of its own so that none can pass for a duplicate."""
    bad = dict(event, txn_id=f"POISON-{n}")
    kind = n % 7
    if kind == 0:
        return "malformed_json", codec.dumps(bad)[:-3]  # cut short: raw bytes, not JSON
    if kind == 1:
        return "bad_amount", dict(bad, amount_fen=rng.choice([0, -5, 10**16]))
    if kind == 2:
        return "bank_mismatch", dict(bad, bank=OTHER)
    if kind == 3:
        return "bad_timestamp", dict(bad, booked_at="2026-03-01")
    if kind == 4:
        return "missing_field", {k: v for k, v in bad.items() if k != "account"}
    if kind == 5:
        return "bad_enterprise_id", dict(bad, enterprise_id=_BAD_ENTERPRISE)
    return "bad_value", dict(bad, direction="sideways")


def _publish_poisoned(stack: EmbeddedStack, stream: list[Any]) -> None:
    """The bank's stream in order, in chunks: events as batch messages, malformed bytes as
    messages of their own between them."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    publisher = BankPublisher(bootstrap, BANK, PARTITIONS, max_batch=100)
    raw = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for start in range(0, len(stream), 250):
        chunk = stream[start : start + 250]
        publisher.publish_batch(e for e in chunk if isinstance(e, dict))
        publisher.flush()
        for element in chunk:
            if isinstance(element, bytes):
                raw.produce(bank_topic(BANK), element)
        assert raw.flush(30) == 0


def _rejected(stack: EmbeddedStack) -> list[dict[str, Any]]:
    """Each reject once per place it was published at (delivery is at least once)."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in read_rejects(bootstrap):
        unique[(record["reason"], *sorted(record["source"].items()))] = record
    return list(unique.values())


def test_a_day_sent_twice_counts_once_and_every_poison_event_is_rejected(
    stack: EmbeddedStack,
) -> None:
    log = generated_log(61, 40, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))
    mine = [e for e in log if e["bank"] == BANK]
    days = Counter(e["booked_at"][:10] for e in mine)
    day = days.most_common(1)[0][0]
    resent = [e for e in mine if e["booked_at"][:10] == day]  # every event of it, again
    valid = mine + resent
    rng = random.Random(61)
    poison = [_poison(rng.choice(mine), n, rng) for n in range(len(valid) // 100)]
    stream: list[Any] = list(valid)
    for _, element in poison:
        stream.insert(rng.randrange(len(stream) + 1), element)

    publish_by_bank(stack, [e for e in log if e["bank"] == OTHER])
    _publish_poisoned(stack, stream)
    expected = reference.products(log)
    assert reference.products(log + resent) == expected  # the reference counts a day once
    assert_products(stack, expected, timeout=120)

    # Every poison event is in the rejects topic with its reason, once, and no valid one.
    want = Counter(reason for reason, _ in poison)
    wait_until(lambda: len(_rejected(stack)) >= len(poison), 60, "every poison event rejected")
    records = _rejected(stack)
    assert Counter(r["reason"] for r in records) == want
    assert {r["source"]["topic"] for r in records} == {bank_topic(BANK)}
    published = Counter(
        (reason, element.decode() if isinstance(element, bytes) else codec.dumps(element).decode())
        for reason, element in poison
    )
    received = Counter(
        (
            r["reason"],
            r["original"]
            if r["reason"] == "malformed_json"
            else codec.dumps(codec.loads(r["original"])).decode(),
        )
        for r in records
    )
    assert received == published
    # The ledger saw the re-sent day, and the generator's own repeats, as duplicates.
    outcomes = {
        dict(labels)["outcome"]: value
        for labels, value in worker_samples(stack.worker_url)[
            "creditflow_ledger_events_total"
        ].items()
    }
    repeats = len(log) + len(resent) - len({(e["bank"], e["txn_id"]) for e in log})
    assert outcomes.get("duplicate") == repeats, (outcomes, repeats, len(resent))
    assert outcomes.get("rejected", 0) == 0, outcomes
