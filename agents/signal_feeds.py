"""Stage 4: deliver the signals of ``credit.signals`` into the feeds of the institutions
allowed to see them.

An institution receives an enterprise's signal when, as the signal is read here, it holds an
active authorization of that enterprise with the purpose ``post_loan_monitoring``. The API
checks again when it delivers (engine/api/routes_signals.py), so a revocation stops delivery
at once even of signals already in a feed. The feeds carry the offsets to resume from, as
the query index does; a signal read twice is added once (state/signal_feeds.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

import msgspec

from agents.access import SeekPartition
from agents.intake import Message
from engine.access.model import Authorization, AuthorizationStatus, Purpose
from engine.metrics import WorkerMetrics
from state.access import AccessStore
from state.signal_feeds import SignalFeeds

__all__ = ["SignalFeedStage"]

log = logging.getLogger(__name__)


class SignalFeedStage:
    def __init__(
        self, feeds: SignalFeeds, access: AccessStore, seek: SeekPartition, metrics: WorkerMetrics
    ) -> None:
        self._feeds = feeds
        self._access = access
        self._seek = seek
        self._metrics = metrics
        self._next: dict[int, int] = {}  # partition -> next offset, for the assigned ones

    async def assigned(self, partitions: set[int]) -> None:
        stored = await self._feeds.offsets()
        self._next = {p: stored.get(p, 0) for p in partitions}
        for partition, offset in self._next.items():
            await self._seek(partition, offset)

    async def process(self, messages: Sequence[Message]) -> None:
        signals: list[tuple[_Signal, bytes]] = []
        advanced: dict[int, int] = {}
        for message in messages:
            start = self._next.get(message.partition)
            if start is None or message.offset < start:
                continue
            advanced[message.partition] = message.offset + 1
            raw = message.value or b""
            try:
                signals.append((_decode(raw), raw))
            except msgspec.DecodeError:
                log.error(
                    "signal at partition %d offset %d is unreadable; skipped",
                    message.partition,
                    message.offset,
                )
        if not advanced:
            return
        # The open episodes first, the authorizations read after: an institution granted
        # monitoring meanwhile is given the signal by one side or the other (granted()).
        await self._feeds.track_open(
            [(s.enterprise_id, s.rule, s.id, s.state, raw) for s, raw in signals]
        )
        now_us = time.time_ns() // 1000
        granted = await self._access.authorizations_of(s.enterprise_id for s, _ in signals)
        deliveries = []
        for signal, raw in signals:
            by_institution: dict[str, list[str]] = {}
            for authorization in granted[signal.enterprise_id]:
                if (
                    authorization.purpose == Purpose.POST_LOAN_MONITORING
                    and authorization.status_at(now_us) == AuthorizationStatus.ACTIVE
                ):
                    by_institution.setdefault(authorization.institution, []).append(
                        authorization.id
                    )
            for institution, ids in sorted(by_institution.items()):
                deliveries.append((institution, signal.id, signal.state, raw, tuple(ids)))
        added = await self._feeds.add(deliveries, advanced, now_us // 1000)
        self._next.update(advanced)
        self._metrics.signal_deliveries.inc(added)
        for signal, _ in signals:
            emitted = datetime.fromisoformat(signal.emitted_at).timestamp()
            self._metrics.signal_delivery_lag.observe(max(0.0, now_us / 1e6 - emitted))

    async def granted(self, authorizations: list[Authorization]) -> None:
        """Give institutions just granted monitoring the enterprise's open episodes (the
        access stage calls this once the grants are in Redis); a signal the feed already
        has is not added again."""
        deliveries = []
        for authorization in authorizations:
            for raw in await self._feeds.open_episodes(authorization.enterprise_id):
                signal = _decode(raw)
                deliveries.append(
                    (authorization.institution, signal.id, signal.state, raw, (authorization.id,))
                )
        added = await self._feeds.add(deliveries, {}, time.time_ns() // 1_000_000)
        self._metrics.signal_deliveries.inc(added)


class _Signal(msgspec.Struct):
    """What this stage reads of a signal record (engine/signals/evaluate.py writes it)."""

    id: str
    enterprise_id: str
    rule: str
    state: str
    emitted_at: str


_decode = msgspec.json.Decoder(_Signal).decode
