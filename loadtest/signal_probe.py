"""Signal latency: from a bank publishing an event to a lender receiving the signal it raises.

Every PROBE_INTERVAL_SECONDS a probe enterprise of its own (monitored by the bench's lender
under a ``post_loan_monitoring`` authorization) gets one event: an outflow that leaves its
account overdrawn for the third day running, which raises ``account_overdrawn``. Before the
phase each probe enterprise is given its history: overdrawn three days ago, back above zero
at midnight today (published in one message per partition, so that it is applied at once).
The lender polls ``GET /v1/signals`` over one keep-alive connection; a probe's latency runs
from just before its publish to the poll that first returns its signal. Open loop, like the
freshness probes (loadtest/bench.py): a probe is published on time whether or not the last
one arrived.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from datetime import datetime, timedelta
from typing import Any

from engine.access.model import Purpose
from engine.events.publisher import BankPublisher
from engine.periods import CST
from engine.runtime.provision import Lender, authorize, provision_lender
from engine.runtime.runner import EmbeddedStack
from loadtest.keepalive import KeepAlive

__all__ = ["SignalProbes"]

PROBE_INTERVAL_SECONDS = 0.5
_POLL_SECONDS = 0.01
_LOST_SECONDS = 60.0


class SignalProbes:
    """Probe enterprises and their monitoring lender, set up before a phase."""

    def __init__(
        self, stack: EmbeddedStack, enterprises: list[str], bank: str, lender: str = "BENCHSIG"
    ) -> None:
        self.stack = stack
        self.enterprises = enterprises
        self.bank = bank
        self.lender: Lender = provision_lender(stack.settings, lender)
        # Per probe that arrived: (publish to the signal's emitted_at, emitted_at to the poll
        # that saw it), in seconds: judging against delivery (loadtest/attribution.py).
        self.stages: list[tuple[float, float]] = []
        authorize(stack.settings, self.lender, enterprises, Purpose.POST_LOAN_MONITORING)
        bootstrap = stack.settings.kafka_bootstrap
        assert bootstrap is not None
        publisher = BankPublisher(bootstrap, bank, stack.settings.partitions)
        today = datetime.now(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        publisher.publish_batch(
            event
            for enterprise in enterprises
            for event in (
                _booking(enterprise, bank, 1, today - timedelta(days=3), "out", 100, -100),
                _booking(enterprise, bank, 2, today, "in", 200, 100),
            )
        )
        publisher.flush(30)

    def run(self, stop: threading.Event) -> list[float]:
        """Publish probes until ``stop`` (or the enterprises run out), wait for each; returns
        every probe's latency in seconds."""
        bootstrap = self.stack.settings.kafka_bootstrap
        assert bootstrap is not None
        publisher = BankPublisher(bootstrap, self.bank, self.stack.settings.partitions)
        api = KeepAlive(self.stack.api_url, self.lender.headers)
        published: dict[str, float] = {}  # enterprise -> when its probe was published
        published_wall: dict[str, float] = {}  # the same, as the epoch's seconds
        latencies: dict[str, float] = {}  # enterprise -> its probe's latency
        cursor: str | None = None
        next_publish = time.perf_counter()
        pending = iter(self.enterprises)
        while True:
            now = time.perf_counter()
            if not stop.is_set() and now >= next_publish:
                enterprise = next(pending, None)
                if enterprise is None:
                    next_publish = float("inf")  # every probe enterprise is used
                else:
                    published[enterprise] = now  # the publish itself counts
                    published_wall[enterprise] = time.time()
                    now_cst = datetime.now(CST).replace(microsecond=0)
                    publisher.publish(_booking(enterprise, self.bank, 3, now_cst, "out", 200, -100))
                    publisher.flush(30)
                    next_publish += PROBE_INTERVAL_SECONDS
            waiting = [published[e] for e in published.keys() - latencies.keys()]
            done = stop.is_set() or next_publish == float("inf")
            if done and (not waiting or now - min(waiting) > _LOST_SECONDS):
                break
            query = "" if cursor is None else "?" + urllib.parse.urlencode({"since": cursor})
            body = api.get("/v1/signals" + query)
            seen_at = time.perf_counter()
            if body is not None:
                cursor = body["next"]
                for signal in body["signals"]:
                    enterprise = signal["enterprise_id"]
                    if (
                        signal["state"] == "raised"
                        and enterprise in published
                        and enterprise not in latencies
                    ):
                        latencies[enterprise] = seen_at - published[enterprise]
                        emitted = datetime.fromisoformat(signal["emitted_at"]).timestamp()
                        seen_wall = time.time()
                        self.stages.append(
                            (emitted - published_wall[enterprise], seen_wall - emitted)
                        )
            time.sleep(_POLL_SECONDS)
        api.close()
        if len(latencies) < len(published):
            lost = len(published) - len(latencies)
            print(f"  signals: {lost} probes never arrived", flush=True)
        return list(latencies.values())


def _booking(
    enterprise: str, bank: str, n: int, at: datetime, direction: str, amount: int, balance: int
) -> dict[str, Any]:
    return {
        "schema": 1,
        "txn_id": f"SIGPROBE-{enterprise}-{n}",
        "bank": bank,
        "enterprise_id": enterprise,
        "account": "SIGPROBE",
        "booked_at": at.isoformat(),
        "direction": direction,
        "amount_fen": amount,
        "balance_after_fen": balance,
        "channel": "transfer",
        "counterparty": {"id": "SIGPROBE-CP"},
    }
