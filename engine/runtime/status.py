"""How far every stage has got, per partition: what `creditflow status` reports.

Each figure comes from where the engine itself keeps it, so the report tells the same truth
the workers act on:

- the end of each log: the broker's high watermark of the partition;
- the ledger (the routed topic): the progress each partition publishes to Redis with its
  views (``<prefix>:v1:part:<n>``, state/views.py): the offset the state resumes from, the
  latest booking applied, when it was published. The state's offsets win over the consumer
  group's committed ones (a worker seeks to its state whenever it gets a partition,
  ``LedgerStage.seek_to_state``); the group's are shown only for a partition without
  published progress;
- the access stage (the access log, query records, signals): the offsets it keeps in Redis
  beside its state (state/access.py, state/queries.py, state/signal_feeds.py);
- the intake (the bank topics), which keeps no state: its consumer group's committed offsets;
- rejects: the records of ``txns.rejected`` whose ``rejected_at`` is within the last hour.

Every probe has a short timeout: a broker or Redis that does not answer is reported (the
exception's type and message, never the Redis URL, which may carry a password), and the
rest still is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from engine import codec
from engine.events.kafka_clients import client_config
from engine.events.topics import (
    ACCESS_LOG_TOPIC,
    BANK_TOPIC_RE,
    QUERY_RECORDS_TOPIC,
    REJECTED_TOPIC,
    ROUTED_TOPIC,
    SIGNALS_TOPIC,
)
from engine.settings import Settings
from state.access import AccessStore
from state.queries import QueryIndex
from state.redis_client import connect
from state.signal_feeds import SignalFeeds
from state.views import ViewStore

__all__ = ["STATUS_SCHEMA", "PartitionStatus", "Status", "collect_status"]

#: Version of the JSON of `creditflow status --json`: a key renamed or removed is a new one.
STATUS_SCHEMA = 1
REJECT_WINDOW = timedelta(hours=1)
_BROKER_TIMEOUT_S = 3.0
_REDIS_TIMEOUT_S = 2.0
_REJECTS_READ_S = 10.0  # reading the last hour of rejects, at most
_REJECTS_IDLE_S = 0.5  # past the high watermarks (Tansu's can be low), nothing new for this long

Source = Literal["state", "group"]
_STAGES = ("intake", "ledger", "access")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionStatus:
    """One partition of one stage's input topic."""

    stage: str
    topic: str
    partition: int
    end_offset: int | None
    applied_offset: int | None  # the next offset the stage will apply (all before it: done)
    source: Source | None  # where applied_offset comes from
    watermark: str | None = None  # ledger: latest booked_at applied (China Standard Time)
    published_at: str | None = None  # ledger: when the views of this progress were published

    @property
    def lag(self) -> int | None:
        """Messages not applied yet; never below 0 (the end is looked up before the
        offsets, which may have passed it since)."""
        if self.end_offset is None or self.applied_offset is None:
            return None
        return max(0, self.end_offset - self.applied_offset)

    def freshness_seconds(self, now: datetime) -> float | None:
        """How old the latest applied booking is (the alerts' freshness)."""
        if self.watermark is None:
            return None
        return round((now - datetime.fromisoformat(self.watermark)).total_seconds(), 3)

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "applied_offset": self.applied_offset,
            "end_offset": self.end_offset,
            "lag": self.lag,
            "source": self.source,
            "watermark": self.watermark,
            "freshness_seconds": self.freshness_seconds(now),
            "published_at": self.published_at,
        }


@dataclass
class Status:
    """What `creditflow status` found; :meth:`as_json` is the documented, stable shape."""

    checked_at: datetime
    broker_error: str | None = None
    redis_error: str | None = None
    partitions: list[PartitionStatus] = field(default_factory=list)
    rejects: dict[str, int] | None = None  # by reason, within REJECT_WINDOW; None: unknown

    @property
    def ok(self) -> bool:
        """Whether the broker and Redis both answered."""
        return self.broker_error is None and self.redis_error is None

    def stage(self, name: str) -> list[PartitionStatus]:
        return [p for p in self.partitions if p.stage == name]

    def as_json(self) -> dict[str, Any]:
        now = self.checked_at
        return {
            "schema": STATUS_SCHEMA,
            "checked_at": now.isoformat(),
            "ok": self.ok,
            "broker": {"ok": self.broker_error is None, "error": self.broker_error},
            "redis": {"ok": self.redis_error is None, "error": self.redis_error},
            "stages": {name: [p.as_json(now) for p in self.stage(name)] for name in _STAGES},
            "rejects_last_hour": None if self.rejects is None else self._rejects_json(),
        }

    def _rejects_json(self) -> dict[str, Any]:
        rejects = self.rejects or {}
        found: dict[str, Any] = {
            "window_seconds": int(REJECT_WINDOW.total_seconds()),
            "total": sum(rejects.values()),
            "by_reason": dict(sorted(rejects.items())),
        }
        return found


def collect_status(settings: Settings) -> Status:
    """Ask the broker and Redis how far every stage has got (a few seconds at most)."""
    status = Status(checked_at=datetime.now(UTC))
    redis_offsets = _redis_offsets(settings, status)
    bootstrap = settings.kafka_bootstrap
    if bootstrap is None:
        status.broker_error = "CREDITFLOW_KAFKA_BOOTSTRAP is not set"
        return status
    try:
        topics = _topics(bootstrap)
        ends = _end_offsets(bootstrap, topics)
    except KafkaException as exc:
        status.broker_error = _describe(exc)
        return status
    group = settings.group_id
    intake = _committed(bootstrap, (group, f"{group}-intake"), _banks(topics))
    ledger_group = _committed(
        bootstrap, (group, f"{group}-ledger"), {ROUTED_TOPIC: topics.get(ROUTED_TOPIC, 0)}
    )
    for (topic, partition), end in sorted(ends.items()):
        if BANK_TOPIC_RE.match(topic):
            offset = intake.get((topic, partition))
            status.partitions.append(
                PartitionStatus(
                    "intake", topic, partition, end, offset, None if offset is None else "group"
                )
            )
        elif topic == ROUTED_TOPIC:
            status.partitions.append(_ledger_partition(partition, end, redis_offsets, ledger_group))
        elif topic in (ACCESS_LOG_TOPIC, QUERY_RECORDS_TOPIC, SIGNALS_TOPIC):
            offset = redis_offsets.get((topic, partition))
            status.partitions.append(
                PartitionStatus(
                    "access",
                    topic,
                    partition,
                    end,
                    # Nothing recorded for an empty log: nothing to apply either.
                    offset if isinstance(offset, int) else 0 if end == 0 else None,
                    "state" if isinstance(offset, int) else None,
                )
            )
    status.partitions.sort(key=lambda p: (_STAGES.index(p.stage), p.topic, p.partition))
    try:
        status.rejects = _rejects_since(bootstrap, topics, status.checked_at - REJECT_WINDOW)
    except KafkaException as exc:
        status.broker_error = _describe(exc)
    return status


def _ledger_partition(
    partition: int,
    end: int,
    redis_offsets: Mapping[tuple[str, int], Any],
    group_offsets: Mapping[tuple[str, int], int],
) -> PartitionStatus:
    progress = redis_offsets.get((ROUTED_TOPIC, partition))
    if isinstance(progress, dict):
        return PartitionStatus(
            "ledger",
            ROUTED_TOPIC,
            partition,
            end,
            int(progress["routed_offset"]),
            "state",
            progress.get("watermark"),
            progress.get("published_at"),
        )
    offset = group_offsets.get((ROUTED_TOPIC, partition))
    return PartitionStatus(
        "ledger", ROUTED_TOPIC, partition, end, offset, None if offset is None else "group"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return type(exc).__name__ + (f": {text}" if text else "")


# -- Redis ----------------------------------------------------------------------------------


def _redis_offsets(settings: Settings, status: Status) -> dict[tuple[str, int], Any]:
    """(topic, partition) -> the ledger's published progress (a dict) or the access stage's
    next offset (an int), as Redis holds them; empty, with ``status.redis_error`` set, when
    Redis does not answer."""
    url = settings.redis_url.get_secret_value()
    try:
        return asyncio.run(_read_redis(url, settings))
    except Exception as exc:
        # redis-py names host and port in its errors, not the password; remove it anyway.
        text = _describe(exc)
        password = _password(url)
        status.redis_error = text.replace(password, "***") if password else text
        return {}


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).password


async def _read_redis(url: str, settings: Settings) -> dict[tuple[str, int], Any]:
    redis = connect(
        url,
        settings.redis_cluster,
        socket_connect_timeout=_REDIS_TIMEOUT_S,
        socket_timeout=_REDIS_TIMEOUT_S,
        retry_on_timeout=False,
    )
    try:
        await redis.ping()
        found: dict[tuple[str, int], Any] = {}
        views = ViewStore(redis, settings.redis_prefix)
        for partition in range(settings.partitions):
            progress = await views.progress(partition)
            if progress is not None:
                found[(ROUTED_TOPIC, partition)] = progress
        applied = await AccessStore(redis, settings.redis_prefix).applied()
        if applied is not None:
            found[(ACCESS_LOG_TOPIC, 0)] = applied
        queries = await QueryIndex(redis, settings.redis_prefix, 0).offsets()
        found.update({(QUERY_RECORDS_TOPIC, p): o for p, o in queries.items()})
        signals = await SignalFeeds(redis, settings.redis_prefix, 1).offsets()
        found.update({(SIGNALS_TOPIC, p): o for p, o in signals.items()})
        return found
    finally:
        await redis.aclose()


# -- Kafka ----------------------------------------------------------------------------------


def _client_config(bootstrap: str, group: str = "creditflow-status") -> dict[str, Any]:
    return client_config(
        bootstrap,
        {
            "group.id": group,  # never joined and never committed: only to read its offsets
            "enable.auto.commit": False,
            "socket.connection.setup.timeout.ms": int(_BROKER_TIMEOUT_S * 1000),
        },
    )


def _topics(bootstrap: str) -> dict[str, int]:
    """The topics the stages read, with their partition counts."""
    admin = AdminClient(_client_config(bootstrap))
    metadata = admin.list_topics(timeout=_BROKER_TIMEOUT_S)
    wanted = (ROUTED_TOPIC, ACCESS_LOG_TOPIC, QUERY_RECORDS_TOPIC, SIGNALS_TOPIC, REJECTED_TOPIC)
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if name in wanted or BANK_TOPIC_RE.match(name)
    }


def _banks(topics: Mapping[str, int]) -> dict[str, int]:
    return {name: count for name, count in topics.items() if BANK_TOPIC_RE.match(name)}


def _end_offsets(bootstrap: str, topics: Mapping[str, int]) -> dict[tuple[str, int], int]:
    consumer = Consumer(_client_config(bootstrap))
    try:
        return {
            (topic, p): consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=_BROKER_TIMEOUT_S
            )[1]
            for topic, count in topics.items()
            if topic != REJECTED_TOPIC
            for p in range(count)
        }
    finally:
        consumer.close()


def _committed(
    bootstrap: str, groups: Iterable[str], topics: Mapping[str, int]
) -> dict[tuple[str, int], int]:
    """The greatest offset any of ``groups`` committed, per partition of ``topics``.

    A stage's group is ``<group_id>`` when a worker runs every stage and
    ``<group_id>-<stage>`` when the stages run apart; which one a deployment uses is the
    workers' setting, not this command's, so both are asked.
    """
    wanted = [TopicPartition(t, p) for t, count in topics.items() for p in range(count)]
    found: dict[tuple[str, int], int] = {}
    if not wanted:
        return found
    for group in groups:
        consumer = Consumer(_client_config(bootstrap, group))
        try:
            for tp in consumer.committed(wanted, timeout=_BROKER_TIMEOUT_S):
                if tp.error is None and tp.offset != OFFSET_INVALID and tp.offset >= 0:
                    key = (tp.topic, tp.partition)
                    found[key] = max(found.get(key, 0), tp.offset)
        finally:
            consumer.close()
    return found


def _rejects_since(bootstrap: str, topics: Mapping[str, int], since: datetime) -> dict[str, int]:
    """Rejected events by reason whose ``rejected_at`` is at or after ``since``.

    Reading starts at the offsets the broker gives for ``since`` (the messages' timestamps);
    a broker that cannot say gives the start of the log. Either way each record's own
    ``rejected_at`` decides.
    """
    partitions = topics.get(REJECTED_TOPIC, 0)
    # Each rejected event once: delivery is at least once, so a retried step may have sent
    # its rejections twice.
    seen: set[tuple[str, str, int, int, int | None]] = set()
    if partitions == 0:
        return {}
    consumer = Consumer({**_client_config(bootstrap), "auto.offset.reset": "earliest"})
    try:
        since_ms = int(since.timestamp() * 1000)
        try:
            starts = consumer.offsets_for_times(
                [TopicPartition(REJECTED_TOPIC, p, since_ms) for p in range(partitions)],
                timeout=_BROKER_TIMEOUT_S,
            )
        except KafkaException:  # a broker without timestamp look-ups: from the start
            starts = [
                TopicPartition(REJECTED_TOPIC, p, OFFSET_BEGINNING) for p in range(partitions)
            ]
        positions: dict[int, int] = {}
        ends: dict[int, int] = {}
        for tp in starts:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(REJECTED_TOPIC, tp.partition), timeout=_BROKER_TIMEOUT_S
            )
            # -1: nothing at or after since (start at the end); an error: start at the log's.
            start = high if tp.offset == -1 else low if tp.error or tp.offset < 0 else tp.offset
            positions[tp.partition], ends[tp.partition] = start, high
        consumer.assign([TopicPartition(REJECTED_TOPIC, p, o) for p, o in positions.items()])
        deadline = time.monotonic() + _REJECTS_READ_S
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None or message.error():
                caught_up = all(positions[p] >= ends[p] for p in positions)
                if caught_up and time.monotonic() - quiet_since > _REJECTS_IDLE_S:
                    break
                continue
            quiet_since = time.monotonic()
            partition, offset, value = message.partition(), message.offset(), message.value()
            if partition is None or offset is None or value is None:
                continue
            positions[partition] = offset + 1
            record = codec.loads(value)
            if datetime.fromisoformat(record["rejected_at"]) >= since:
                source = record["source"]
                seen.add(
                    (
                        record["reason"],
                        source["topic"],
                        source["partition"],
                        source["offset"],
                        source["index"],
                    )
                )
        return dict(Counter(reason for reason, *_ in seen))
    finally:
        consumer.close()
