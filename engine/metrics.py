"""Every Prometheus metric of creditflow, declared against an injected registry.

Names carry base units; no label ever holds an enterprise, account or counterparty id.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sized
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ApiMetrics", "WorkerMetrics", "observe_gc_pauses"]

_STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_API_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.bank_messages = Counter(
            "creditflow_intake_messages_total",
            "Messages read from bank topics.",
            registry=registry,
        )
        self.intake_events = Counter(
            "creditflow_intake_events_total",
            "Events read from bank topics, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.rejected = Counter(
            "creditflow_rejected_events_total",
            "Events sent to the rejected topic, by reason and stage.",
            ["reason", "stage"],
            registry=registry,
        )
        self.ledger_events = Counter(
            "creditflow_ledger_events_total",
            "Events applied to worker state, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "creditflow_step_seconds",
            "Duration of one processing step, by stage.",
            ["stage"],
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self.step_failures = Counter(
            "creditflow_step_failures_total",
            "Processing steps that failed and were retried, by stage.",
            ["stage"],
            registry=registry,
        )
        self.set_aside = Counter(
            "creditflow_ledger_set_aside_total",
            "Routed rows the ledger set aside to the rejected topic (apply_failed): applying "
            "them raised again and again.",
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "creditflow_commit_seconds",
            "Duration of committing a partition's applied events and publishing its views.",
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "creditflow_view_publish_seconds",
            "Duration of publishing views to Redis.",
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self.publish_errors = Counter(
            "creditflow_view_publish_errors_total",
            "Failed attempts to publish views to Redis (retried).",
            registry=registry,
        )
        self.republished_enterprises = Counter(
            "creditflow_view_republished_enterprises_total",
            "Enterprises whose views were rebuilt in Redis from worker state.",
            registry=registry,
        )
        self.watermark = Gauge(
            "creditflow_partition_watermark_seconds",
            "Latest booked_at applied in a routed partition (Unix seconds).",
            ["partition"],
            registry=registry,
        )
        self.next_offset = Gauge(
            "creditflow_partition_next_offset",
            "Next routed-topic offset a partition will apply.",
            ["partition"],
            registry=registry,
        )
        self.lag = Gauge(
            "creditflow_partition_lag_messages",
            "Routed-topic messages of a partition not applied yet: the end of the log, as the "
            "ledger last looked it up (every 5 s), minus the next offset it will apply.",
            ["partition"],
            registry=registry,
        )
        self.state_bytes = Gauge(
            "creditflow_state_bytes",
            "Bytes of a partition's state on disk.",
            ["partition"],
            registry=registry,
        )
        self.reversals_waiting = Gauge(
            "creditflow_reversals_waiting",
            "Reversals of a partition waiting for their original. One whose original never "
            "comes goes to the rejects topic (bad_reversal) when its own booking leaves the "
            "kept history.",
            ["partition"],
            registry=registry,
        )
        self.access_commands = Counter(
            "creditflow_access_commands_total",
            "Commands of the access log applied, by outcome (applied, refused, unreadable).",
            ["outcome"],
            registry=registry,
        )
        self.access_steps_superseded = Counter(
            "creditflow_access_steps_superseded_total",
            "Steps of the access log not written because Redis was no longer at the offset "
            "they were read at: another worker had applied past them (this one stalled or "
            "was cut off), or Redis went back.",
            registry=registry,
        )
        self.query_records_indexed = Counter(
            "creditflow_query_records_indexed_total",
            "Query records indexed in Redis for the enterprise and institution to read.",
            registry=registry,
        )
        self.query_records_expired = Counter(
            "creditflow_query_records_expired_total",
            "Query records removed from the Redis index by the daily sweep: older than "
            "CREDITFLOW_QUERY_RECORD_RETENTION_DAYS.",
            registry=registry,
        )
        self.disputes_overdue = Gauge(
            "creditflow_disputes_overdue",
            "Disputes not answered by their due date (20 days after they were filed).",
            registry=registry,
        )
        self.registry_version = Gauge(
            "creditflow_registry_version",
            "Version of the counterparty registries this worker classifies new events with.",
            registry=registry,
        )
        self.signals = Counter(
            "creditflow_signals_total",
            "Signal transitions published to credit.signals, by rule, severity and state "
            "(raised, cleared, retracted).",
            ["rule", "severity", "state"],
            registry=registry,
        )
        self.signal_evaluations = Counter(
            "creditflow_signal_evaluations_total",
            "Enterprises whose rules were judged (after a change, or on a new day).",
            registry=registry,
        )
        self.signals_pending = Gauge(
            "creditflow_signals_pending_enterprises",
            "Enterprises whose committed state changed and whose rules are not judged yet "
            "(they wait while a partition replays its log).",
            registry=registry,
        )
        self.signal_digest_months = Gauge(
            "creditflow_signal_digest_months",
            "Month digests the signal judge keeps in memory (CREDITFLOW_SIGNAL_DIGEST_MONTHS "
            "bounds them).",
            registry=registry,
        )
        self.signal_evaluation_seconds = Histogram(
            "creditflow_signal_evaluation_seconds",
            "Time to judge one chunk of enterprises and publish its signals.",
            buckets=_STEP_BUCKETS,
            registry=registry,
        )
        self.signal_deliveries = Counter(
            "creditflow_signal_deliveries_total",
            "Signals added to institutions' feeds (one per institution authorized to receive "
            "it); a repeat of a signal already in a feed is not counted.",
            registry=registry,
        )
        self.signal_delivery_lag = Histogram(
            "creditflow_signal_delivery_lag_seconds",
            "From a signal's emission by the evaluating worker to its place in the feeds.",
            buckets=_STEP_BUCKETS,
            registry=registry,
        )


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "creditflow_api_requests_total",
            "API requests, by route and status.",
            ["route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "creditflow_api_request_seconds",
            "API request duration, by route.",
            ["route"],
            buckets=_API_BUCKETS,
            registry=registry,
        )
        self.render_cache = Counter(
            "creditflow_api_render_cache_lookups_total",
            "Product pulls served from an earlier rendering of the same views (hit) or not.",
            ["result"],
            registry=registry,
        )
        self.render_cache_entries = Gauge(
            "creditflow_api_render_cache_entries",
            "Rendered products the API holds.",
            registry=registry,
        )
        self.query_records = Counter(
            "creditflow_api_query_records_total",
            "Query records written to the API's journal, by result (journaled; failed: the "
            "request got 503 and no data).",
            ["result"],
            registry=registry,
        )
        self.query_records_shipped = Counter(
            "creditflow_api_query_records_shipped_total",
            "Query records the broker has acknowledged (shipped from the API's journal).",
            registry=registry,
        )
        self.query_journal_backlog_seconds = Gauge(
            "creditflow_api_query_journal_backlog_seconds",
            "How long the oldest query record not yet shipped to the broker has waited in the "
            "API's journal (0 when none); past api_record_timeout_seconds pulls get 503.",
            registry=registry,
        )
        self.refusals = Counter(
            "creditflow_api_refusals_total",
            "Requests refused by the access layer, by machine-readable code (401, 403, 429).",
            ["code"],
            registry=registry,
        )
        self.cache_live = Gauge(
            "creditflow_api_cache_live",
            "1 while Redis announces changed views to this API (cached pulls need no Redis);"
            " 0 while every pull reads Redis.",
            registry=registry,
        )
        self.signal_streams = Gauge(
            "creditflow_api_signal_streams",
            "Server-sent event streams of signals open on this API.",
            registry=registry,
        )
        self.signals_delivered = Counter(
            "creditflow_api_signals_delivered_total",
            "Signals delivered to institutions (polled or streamed).",
            ["via"],
            registry=registry,
        )

    def watch_cache(self, cache: Sized, live: Callable[[], bool]) -> None:
        self.render_cache_entries.set_function(lambda: len(cache))
        self.cache_live.set_function(lambda: 1.0 if live() else 0.0)


def observe_gc_pauses(registry: CollectorRegistry) -> Histogram:
    """Time every cyclic garbage collection of this process, by generation.

    A collection stops the whole process: every step, commit and pull waits behind it. In
    the ledger worker a collection walks the month aggregates decoded since the last one
    (lists the collector tracks): during batch ingest single collections took up to 0.19 s
    (generation 0) and 0.59 s (generation 1). ``gc.callbacks`` is process-wide: call this
    once per process, from its entry point.
    """
    pauses = Histogram(
        "creditflow_gc_pause_seconds",
        "Cyclic garbage collection pauses of this process, by generation.",
        ["generation"],
        buckets=_STEP_BUCKETS,  # a pause holds up a step: the same scale
        registry=registry,
    )
    by_generation = [pauses.labels(str(generation)) for generation in range(3)]
    started = 0.0

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            by_generation[info["generation"]].observe(time.perf_counter() - started)

    gc.callbacks.append(on_collection)
    return pauses
