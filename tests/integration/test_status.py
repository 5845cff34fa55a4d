"""`creditflow status` against the real stack: the offsets it reports are the ends of the logs
once every event is applied, its reject counts are the poison published, and a Redis or a
broker that does not answer is reported with exit code 1, not a traceback. The stack logs
as JSON (CREDITFLOW_LOG_FORMAT=json): every line of the worker's and the API's logs is one
JSON object."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from engine import codec
from engine.events.topics import REJECTED_TOPIC, ROUTED_TOPIC, bank_topic
from engine.periods import current_month
from engine.runtime.embedded import free_port
from engine.runtime.observe import wait_applied, wait_views_published, worker_samples
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.settings import ENV_PREFIX
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    generated_log,
    module_settings,
    publish_by_bank,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_SECRET = "status-test-password"


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    settings = module_settings("status", log_level="info", log_format="json")
    with embedded_stack(settings, banks=BANKS) as running:
        yield running


def status(stack: EmbeddedStack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`creditflow status` as an operator runs it, with the stack's settings and ``env``."""
    overrides = {ENV_PREFIX + name.upper(): value for name, value in env.items()}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "status", *args],
        env={**stack.env, **overrides},
        capture_output=True,
        text=True,
        timeout=60,
    )


def true_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's last offset + 1, read from the log itself (Tansu's high watermarks
    can be low after a multi-record batch: engine/events/kafka_admin.py)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "status-test", "enable.auto.commit": False}
    )
    ends = dict.fromkeys(range(PARTITIONS), 0)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 2.0:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            quiet_since = time.monotonic()
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            ends[partition] = max(ends[partition], offset + 1)
        return ends
    finally:
        consumer.close()


def _poison(bank: str, enterprise_id: str) -> tuple[list[bytes], dict[str, int]]:
    """Messages the intake rejects, and how many of each reason."""
    good = {
        "schema": 1,
        "txn_id": "P-0",
        "bank": bank,
        "enterprise_id": enterprise_id,
        "account": "acct-1",
        "booked_at": "2026-03-01T10:00:00+08:00",
        "direction": "in",
        "amount_fen": 100,
        "balance_after_fen": 100,
        "channel": "transfer",
        "counterparty": {"id": "cp-1"},
    }
    messages = [
        codec.dumps({**good, "txn_id": "P-1", "amount_fen": 0}),
        codec.dumps([{**good, "txn_id": "P-2", "amount_fen": -5}, {**good, "txn_id": "P-3"}]),
        codec.dumps({**good, "txn_id": "P-4", "amount_fen": 10**16}),
        b"{not json",
        b"\xff\xfe",
        codec.dumps({**good, "txn_id": "P-5", "bank": "OTHERBANK"}),
    ]
    return messages, {"bad_amount": 3, "malformed_json": 2, "bank_mismatch": 1}


def test_status_reports_every_offset_applied_and_the_rejects_of_the_hour(
    stack: EmbeddedStack,
) -> None:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    events = generated_log(31, 40, current_month() - 1, datetime.now(UTC))[:3000]
    publish_by_bank(stack, events)
    poison, want_rejects = _poison(BANKS[0], events[0]["enterprise_id"])
    producer = Producer({"bootstrap.servers": bootstrap})
    for message in poison:
        producer.produce(bank_topic(BANKS[0]), message, b"poison")
    # A reject of two hours ago (the record's own time): outside the hour, never counted.
    producer.produce(
        REJECTED_TOPIC,
        codec.dumps(
            {
                "reason": "too_old",
                "detail": "an old rejection",
                "stage": "intake",
                "source": {"topic": bank_topic(BANKS[1]), "partition": 0, "offset": 0, "index": 0},
                "original": "{}",
                "original_encoding": "utf-8",
                "rejected_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
            }
        ),
        b"old",
    )
    assert producer.flush(30) == 0

    wait_applied(stack.worker_url, len(events) + 1)  # + P-3, the good element beside poison
    wait_views_published(stack.worker_url, bootstrap, PARTITIONS)

    def rejected_by_worker() -> float:
        return sum(worker_samples(stack.worker_url)["creditflow_rejected_events_total"].values())

    wait_until(lambda: rejected_by_worker() >= sum(want_rejects.values()), what="the rejects")
    routed = true_ends(bootstrap, ROUTED_TOPIC)
    banks = {bank: true_ends(bootstrap, bank_topic(bank)) for bank in BANKS}

    def report() -> dict[str, Any]:
        done = status(stack, "--json")
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = codec.loads(done.stdout)
        return found

    # The intake's offsets are its group's commits, which Faust makes every few seconds.
    wait_until(
        lambda: all(row["lag"] == 0 for row in report()["stages"]["intake"]),
        what="the intake's group to commit",
    )
    started = time.monotonic()
    body = report()
    took = time.monotonic() - started

    assert took < 15, f"status took {took:.1f} s"
    assert body["schema"] == 1 and body["ok"] is True
    assert body["broker"] == {"ok": True, "error": None}
    assert body["redis"] == {"ok": True, "error": None}
    ledger = {row["partition"]: row for row in body["stages"]["ledger"]}
    assert sorted(ledger) == list(range(PARTITIONS))
    for partition, row in ledger.items():
        assert row["topic"] == ROUTED_TOPIC
        assert row["source"] == "state"  # the ledger's own offsets, as published to Redis
        assert row["applied_offset"] == routed[partition] == row["end_offset"], row
        assert row["lag"] == 0
        watermark = datetime.fromisoformat(row["watermark"])
        assert row["freshness_seconds"] == pytest.approx(
            (datetime.fromisoformat(body["checked_at"]) - watermark).total_seconds(), abs=0.01
        )
    assert sum(routed.values()) > 0
    intake = {(row["topic"], row["partition"]): row for row in body["stages"]["intake"]}
    for bank, ends in banks.items():
        for partition, end in ends.items():
            row = intake[(bank_topic(bank), partition)]
            assert (row["applied_offset"], row["lag"], row["source"]) == (end, 0, "group"), row
    assert body["rejects_last_hour"] == {
        "window_seconds": 3600,
        "total": sum(want_rejects.values()),
        "by_reason": dict(sorted(want_rejects.items())),
    }
    # No id of an enterprise, account or counterparty, no secret.
    text = status(stack)
    assert text.returncode == 0, text.stderr
    for output in (text.stdout, codec.dumps(body).decode()):
        assert not any(e["enterprise_id"] in output for e in events[:200])
        assert "redis://" not in output
    assert "rejects in the last hour: bad_amount=3, bank_mismatch=1, malformed_json=2" in (
        text.stdout
    )
    assert f"ledger  {ROUTED_TOPIC}" in text.stdout


def test_an_unreachable_redis_is_reported_with_exit_code_1(stack: EmbeddedStack) -> None:
    closed = free_port()  # bound and released: nothing listens there
    started = time.monotonic()
    done = status(stack, "--json", redis_url=f"redis://:{_SECRET}@127.0.0.1:{closed}/0")
    took = time.monotonic() - started

    assert done.returncode == 1, done.stdout + done.stderr
    assert took < 20, f"status took {took:.1f} s"
    body = codec.loads(done.stdout)
    assert body["ok"] is False
    assert body["redis"]["ok"] is False and "Connection" in body["redis"]["error"]
    assert body["broker"] == {"ok": True, "error": None}
    # What the broker knows is still reported; the ledger's own offsets are in Redis.
    assert body["stages"]["intake"] and body["rejects_last_hour"] is not None
    assert "creditflow status: Redis does not answer" in done.stderr
    assert "Traceback" not in done.stderr
    assert _SECRET not in done.stdout + done.stderr

    text = status(stack, redis_url=f"redis://:{_SECRET}@127.0.0.1:{closed}/0")
    assert text.returncode == 1
    assert "redis   DOES NOT ANSWER" in text.stdout
    assert "Traceback" not in text.stderr and _SECRET not in text.stdout + text.stderr


def test_an_unreachable_broker_is_reported_with_exit_code_1(stack: EmbeddedStack) -> None:
    started = time.monotonic()
    done = status(stack, "--json", kafka_bootstrap=f"127.0.0.1:{free_port()}")
    took = time.monotonic() - started

    assert done.returncode == 1, done.stdout + done.stderr
    assert took < 20, f"status took {took:.1f} s"
    body = codec.loads(done.stdout)
    assert body["broker"]["ok"] is False and body["redis"] == {"ok": True, "error": None}
    assert body["rejects_last_hour"] is None
    assert "creditflow status: the broker does not answer" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_process_logs_one_json_object_a_line(stack: EmbeddedStack) -> None:
    for child in (stack.worker, stack.api):
        assert child.log_path is not None
        lines = child.log_path.read_text().splitlines()
        assert lines, child.name
        for line in lines:
            record = codec.loads(line)  # fails on a line that is not JSON
            assert {"time", "level", "component", "event"} <= set(record), line
