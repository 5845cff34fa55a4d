"""Read the rejected-events topic: what an operator inspects before fixing and replaying, and
the replay of a reason's events once their cause is fixed."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Producer

from engine import codec
from engine.errors import CreditflowError
from engine.events.kafka_admin import read_to_end, topic_partitions
from engine.events.kafka_clients import client_config
from engine.events.topics import REJECTED_TOPIC, bank_code_of

__all__ = ["read_rejects", "recent_rejects", "replay_rejects", "show_rejects"]


def read_rejects(
    bootstrap: str, topic: str = REJECTED_TOPIC, timeout: float = 30.0, idle: float = 1.0
) -> Iterator[dict[str, Any]]:
    """Every record of the rejected topic, as far as it goes when the call starts
    (kafka_admin.read_to_end: ``TimeoutError`` when reading stalls ``timeout`` seconds)."""
    partitions = topic_partitions(bootstrap).get(topic, 0)
    if partitions == 0:
        return
    starts = dict.fromkeys(range(partitions), 0)
    for _, _, _, value in read_to_end(bootstrap, topic, starts, idle, timeout):
        assert value is not None
        yield codec.loads(value)


def recent_rejects(
    bootstrap: str, limit: int, reason: str | None, timeout: float = 30.0
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """(rejects by reason, the last ``limit`` rejects of ``reason`` or of any), reading the
    whole topic: an operator's occasional question, not a hot path."""
    shown: deque[dict[str, Any]] = deque(maxlen=limit)
    counts: dict[str, int] = {}
    for record in read_rejects(bootstrap, timeout=timeout):
        counts[record["reason"]] = counts.get(record["reason"], 0) + 1
        if reason is None or record["reason"] == reason:
            shown.append(record)
    return dict(sorted(counts.items())), list(shown)


def show_rejects(bootstrap: str, limit: int, reason: str | None) -> None:
    counts, shown = recent_rejects(bootstrap, limit, reason)
    print(
        "rejected events by reason: "
        + (", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none")
    )
    for record in shown:
        source = record["source"]
        where = f"{source['topic']}[{source['partition']}]@{source['offset']}"
        if source["index"] is not None:
            where += f"#{source['index']}"
        original = record["original"]
        print(f"- {record['reason']:<22} {where}  {record['detail']}")
        print(
            f"    original ({record['original_encoding']}): "
            f"{original[:160]}{'...' if len(original) > 160 else ''}"
        )


def replay_rejects(
    bootstrap: str, reason: str, timeout: float = 30.0
) -> tuple[int, list[dict[str, Any]]]:
    """Publish the original of every rejected event of ``reason`` again, as it is, to the bank
    topic it came from, each place once (a reject can be recorded twice: delivery is at least
    once). Returns how many were published, and the records that cannot be replayed as they
    are: from no bank topic (a routed row that reads as no event), or not UTF-8.

    For a reason whose cause was fixed in creditflow (``apply_failed`` once the bug is), not
    in the bank's events: those the bank must fix and send again. The ledger is idempotent,
    so an event replayed twice, or one already applied, counts once.
    """
    seen: set[tuple[Any, ...]] = set()
    replayed = 0
    left: list[dict[str, Any]] = []
    producer = Producer(client_config(bootstrap, {"acks": "all"}))
    for record in read_rejects(bootstrap, timeout=timeout):
        source = record["source"]
        place = (source["topic"], source["partition"], source["offset"], source["index"])
        if record["reason"] != reason or place in seen:
            continue
        seen.add(place)
        if bank_code_of(source["topic"]) is None or record["original_encoding"] != "utf-8":
            left.append(record)
            continue
        producer.produce(source["topic"], record["original"].encode())
        producer.poll(0)
        replayed += 1
    undelivered = producer.flush(timeout)
    if undelivered:
        raise CreditflowError(
            f"{undelivered} of {replayed} replayed events were not delivered within "
            f"{timeout} s; replaying again is safe (an event applied twice counts once)"
        )
    return replayed, left
