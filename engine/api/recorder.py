"""Query records, by the API: every product request, served or refused.

A request answered with the enterprise's information (or with its absence) waits until its
record is in the API's journal (engine/api/journal.py); if it cannot be written, the request
gets 503 and no data. A refused request's record goes the same way without waiting (nothing
leaves with it). Records are appended by group commit: those of the requests the event loop
handled in one pass go together, in one transaction.

A shipper sends what the journal holds to the query records topic, up to 500 records to a
message (a JSON array), every 50 ms, forgets it once the broker has acknowledged it
(acks=all), and checkpoints the journal (the log starts over). The topic stays the
system of record; the journal holds what is on its way, normally a tenth of a second of
records. While the broker is away the journal keeps records for ``max_unshipped_seconds``
(the api_record_timeout_seconds setting); once its oldest record has waited longer, pulls
get 503 and no data until the broker has them all, so no API serves for long what the
system of record has not seen.

Shipping is at least once: a crash between the broker's acknowledgement and the journal's
delete ships those records again, and the query index keeps each record once (it indexes a
record's canonical bytes, engine/access/records.py).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from engine.access.records import QueryRecord, encode_record
from engine.api.errors import ApiError
from engine.api.journal import Journal, JournalError
from engine.api.producer import AsyncProducer, DeliveryError
from engine.events.topics import QUERY_RECORDS_TOPIC
from engine.metrics import ApiMetrics

__all__ = ["QueryRecorder"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_BATCH = 500  # records in one message (about 150 KB)
_SHIP_INTERVAL_SECONDS = 0.05  # how often the shipper looks at the journal
_RETRY_SECONDS = 1.0  # after the broker refused a message
_UNAVAILABLE = "query_record_unavailable"


class QueryRecorder:
    def __init__(
        self,
        directory: Path,
        producer: AsyncProducer,
        metrics: ApiMetrics,
        max_unshipped_seconds: float,
        fsync: bool = False,
    ) -> None:
        self._directory = directory
        self._fsync = fsync
        self._producer = producer
        self._metrics = metrics
        self._max_unshipped = max_unshipped_seconds
        self._journaled = metrics.query_records.labels("journaled")
        self._failed = metrics.query_records.labels("failed")
        # For the checkpoints, which wait for the disk (SQLite releases the interpreter lock).
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "query-journal")
        self._journal: Journal | None = None
        self._waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self._writing = False
        # [records, monotonic time journaled] of each group not yet shipped, oldest first:
        # in step with the journal's rows (both change only between awaits).
        self._unshipped: collections.deque[list[float]] = collections.deque()
        self._pending: set[asyncio.Task[None]] = set()
        self._shipper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        journal = self._journal = Journal(self._directory, self._fsync)
        adopted = journal.adopt_orphans()
        held = journal.count()
        if held:  # what this slot's last process (or an adopted one) did not ship
            self._unshipped.append([held, time.monotonic()])
            log.info("query journal %s holds unshipped records (%d adopted)", journal.path, adopted)
        self._shipper = asyncio.create_task(self._ship_forever())

    async def stop(self) -> None:
        """Ship what is left, if the broker takes it in a few seconds; close the journal."""
        if self._shipper is not None:
            self._shipper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._shipper
        with contextlib.suppress(DeliveryError, TimeoutError):
            async with asyncio.timeout(5):
                while await self._ship_once():
                    pass
        if self._journal is not None:
            await self._run(self._journal.checkpoint)
            self._journal.close()
        self._thread.shutdown()

    async def confirm(self, record: QueryRecord) -> None:
        """Returns once the record is durable; ApiError 503 when it cannot be, or while the
        broker has been away longer than the journal may cover (a refusal is recorded)."""
        if self._unshipped and time.monotonic() - self._unshipped[0][1] > self._max_unshipped:
            self._failed.inc()
            self.later(msgspec.structs.replace(record, outcome=_UNAVAILABLE, status=503))
            raise ApiError(
                503, _UNAVAILABLE, "query records cannot reach the system of record; no data sent"
            )
        try:
            await self._append(record)
        except JournalError as exc:
            self._failed.inc()
            log.error("a query record was not journaled (%s): the request got 503", exc)
            raise ApiError(
                503, _UNAVAILABLE, "the query could not be recorded; no data sent"
            ) from exc
        self._journaled.inc()

    def later(self, record: QueryRecord) -> None:
        """Journal a refused request's record in the background (whatever the backlog:
        nothing leaves with it)."""
        self._start(self._quietly(record))

    def _append(self, record: QueryRecord) -> asyncio.Future[None]:
        """Done once ``record`` is in the journal (with the group it joins)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((encode_record(record), future))
        if not self._writing:
            self._writing = True
            loop.call_soon(self._write_all)  # after the requests of this pass have joined
        return future

    def backlog_seconds(self) -> float:
        """How long the oldest record not yet shipped has waited (0 when none)."""
        return time.monotonic() - self._unshipped[0][1] if self._unshipped else 0.0

    def _write_all(self) -> None:
        journal = self._journal
        assert journal is not None, "start() the recorder first"
        batch, self._waiting = self._waiting, []
        self._writing = False
        try:
            journal.append([body for body, _ in batch])
        except JournalError as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self._unshipped.append([len(batch), time.monotonic()])
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _ship_forever(self) -> None:
        while True:
            await asyncio.sleep(_SHIP_INTERVAL_SECONDS)
            try:
                while await self._ship_once():
                    pass
            except DeliveryError as exc:
                log.warning("query records wait in the journal: the broker refused (%s)", exc)
                await asyncio.sleep(_RETRY_SECONDS)
            except Exception:  # the shipper must outlive any one failure
                log.exception("query record shipper failed; retrying")
                await asyncio.sleep(_RETRY_SECONDS)

    async def _ship_once(self) -> bool:
        """Ship one message of records; False when there was nothing to ship."""
        journal = self._journal
        if journal is None or not self._unshipped:
            return False
        rows = journal.oldest(_MAX_BATCH)
        if not rows:  # out of step (a failed delete left rows that were then shipped again)
            self._unshipped.clear()
            return False
        value = b"[" + b",".join(body for _, body in rows) + b"]"
        await self._producer.send(QUERY_RECORDS_TOPIC, None, value)
        journal.remove_through(rows[-1][0])
        shipped = len(rows)
        while shipped and self._unshipped:
            group = self._unshipped[0]
            taken = min(shipped, int(group[0]))
            group[0] -= taken
            shipped -= taken
            if not group[0]:
                self._unshipped.popleft()
        self._metrics.query_records_shipped.inc(len(rows))
        await self._run(journal.checkpoint)
        return True

    async def _quietly(self, record: QueryRecord) -> None:
        try:
            await self._append(record)
        except JournalError as exc:
            self._failed.inc()
            log.error("a refused request's query record was not journaled (%s)", exc)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)
