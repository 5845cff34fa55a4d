"""Query records, written to Kafka by the API: every product request, served or refused.

A request that is answered with the enterprise's information (or with its absence) waits
until the broker has acknowledged its record: if it cannot be written, the request gets 503
and no data. A refused request's record is sent without waiting (nothing leaves with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from engine.access.records import QueryRecord, encode_record
from engine.api.errors import ApiError
from engine.api.producer import AsyncProducer, DeliveryError
from engine.events.topics import QUERY_RECORDS_TOPIC
from engine.metrics import ApiMetrics

__all__ = ["QueryRecorder"]

log = logging.getLogger(__name__)


class QueryRecorder:
    def __init__(self, producer: AsyncProducer, metrics: ApiMetrics) -> None:
        self._producer = producer
        self._confirmed = metrics.query_records.labels("confirmed")
        self._failed = metrics.query_records.labels("failed")
        self._pending: set[asyncio.Task[None]] = set()

    async def confirm(self, record: QueryRecord) -> None:
        """Returns once the broker has the record; ApiError 503 when it does not."""
        key = (record.enterprise_id or "-").encode()
        try:
            await self._producer.send(QUERY_RECORDS_TOPIC, key, encode_record(record))
        except DeliveryError as exc:
            self._failed.inc()
            log.warning("a query record was not written (%s): the request got 503", exc)
            raise ApiError(
                503, "query_record_unavailable", "the query could not be recorded; no data sent"
            ) from exc
        self._confirmed.inc()

    def later(self, record: QueryRecord) -> None:
        """Send a refused request's record in the background."""
        task = asyncio.ensure_future(self._quietly(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _quietly(self, record: QueryRecord) -> None:
        with contextlib.suppress(ApiError):  # counted and logged by confirm
            await self.confirm(record)
