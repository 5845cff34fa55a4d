"""Watch a running worker from outside: its counters and how far its views have got.

Used by the demo, the benchmark and the integration tests to know when every published
event has been applied and published, without sleeping for a guessed time.
"""

from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from engine.events import kafka_admin
from engine.events.topics import ROUTED_TOPIC

__all__ = ["wait_applied", "wait_views_published", "worker_samples"]


def worker_samples(
    worker_url: str, headers: dict[str, str] | None = None
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of a worker's (or, with an operator's ``headers``, the API's) /metrics:
    name -> {sorted labels: value}."""
    request = urllib.request.Request(f"{worker_url}/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def total(worker_url: str, name: str) -> float:
    try:
        return sum(worker_samples(worker_url).get(name, {}).values())
    except OSError:
        return 0.0


def wait_applied(worker_url: str, events: int, timeout: float = 120.0) -> None:
    """Until the ledger stage has handled ``events`` events (any outcome)."""
    deadline = time.monotonic() + timeout
    while total(worker_url, "creditflow_ledger_events_total") < events:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not apply {events} events in {timeout:.0f} s")
        time.sleep(0.2)


def wait_views_published(
    worker_url: str, bootstrap: str, partitions: int, timeout: float = 60.0
) -> None:
    """Until every routed partition's views are published up to the end of the topic."""
    ends = kafka_admin.high_watermarks(bootstrap, ROUTED_TOPIC, partitions)
    deadline = time.monotonic() + timeout
    while True:
        offsets = {
            dict(labels)["partition"]: value
            for labels, value in worker_samples(worker_url)
            .get("creditflow_partition_next_offset", {})
            .items()
        }
        if all(offsets.get(str(p), 0) >= end for p, end in enumerate(ends)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"views not published up to {ends} in {timeout:.0f} s")
        time.sleep(0.1)
