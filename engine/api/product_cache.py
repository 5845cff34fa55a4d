"""Rendered products and partition progress, kept in the API until Redis says they changed.

Rendering a product decodes every published month of an enterprise and runs ~100 item
kernels (one to five milliseconds), and even reading a views token costs a Redis round
trip, the larger part of a cached pull. So the API keeps, per (product, enterprise,
period, and the pull's day while the period is not over: its items count the days lived),
the rendered product already encoded as JSON, and per partition the progress
(``as_of``) as Redis holds it, and drops each the moment Redis announces that its key
changed (state/tracking.py). A pull that hits needs no Redis at all.

Exactness:
- A fill (a read of Redis to be cached) registers before it reads; an announcement for
  its key that arrives before the fill ends marks it dirty, and a dirty fill is not kept.
  An announcement that arrives later drops the kept entry. Either way nothing older than
  Redis is kept once Redis has announced the change.
- A product is only ever served with a progress read at or before the views it was
  rendered from (progress first, then views, as in state/views.py): a new progress is used
  only after the listener's barrier, so every change of views it covers has been
  announced, and has dropped its cached rendering, by then.
- A partition's progress is a promise of "at least": once announced as changed it is still
  served, marked stale, while one read in the background fetches the new one (ingest
  rewrites it with every step; no pull waits for that). Only a partition's first progress
  is waited for.
- When announcements may have been missed (the listener is down), everything is dropped
  and the API reads Redis on every pull until it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from engine.products.subject import Subject

__all__ = ["Fill", "NotFound", "ProductCache", "ProductKey", "Rendered", "shared_read"]

# (product, enterprise, period label): "2026Q1", or "2026Q1@45" while the period is not over
# (its items depend on the pull's day: assemble.clock_day)
ProductKey = tuple[str, str, str]
T = TypeVar("T")
K = TypeVar("K")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NotFound:
    """A cached 404: the enterprise has no data for the period (yet)."""

    message: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered product as the cache keeps it: the encoded part that depends on the views
    (``head``: registry versions and segments, left open, the segments from ``opens_at`` on;
    ``tail``: closes the segments and holds the disputes), and the subject's facts the views
    hash held (disputes, statements), from which the subject segments are computed at each
    pull."""

    head: bytes
    opens_at: int
    tail: bytes
    has_segments: bool
    subject: Subject  # its disputes and statements; queries and time come at the pull


@dataclass(eq=False, slots=True)
class Fill(Generic[T]):
    """One read of Redis whose result may be kept; concurrent pulls of the key share it."""

    result: asyncio.Future[T]
    dirty: bool = False


class ProductCache:
    """Bounded LRU of encoded products (``capacity`` 0 keeps none) and partition progress."""

    def __init__(self, capacity: int, prefix: str) -> None:
        self._capacity = capacity
        self._enterprise_prefix = f"{prefix}:v1:ent:".encode()
        self._partition_prefix = f"{prefix}:v1:part:".encode()
        self._products: OrderedDict[ProductKey, Rendered | NotFound] = OrderedDict()
        self._keys_of: dict[str, set[ProductKey]] = {}  # enterprise -> its cached products
        self._progress: dict[int, bytes | None] = {}  # the last progress read, per partition
        self._stale: set[int] = set()  # partitions whose progress was announced since
        self._refreshes: set[asyncio.Task[bytes | None]] = set()
        self._product_fills: dict[ProductKey, Fill[Rendered | NotFound]] = {}
        self._progress_fills: dict[int, Fill[bytes | None]] = {}
        self.live = False  # announcements are flowing: caching is allowed

    def __len__(self) -> int:
        return len(self._products)

    # -- announcements ----------------------------------------------------------------

    def changed(self, keys: list[bytes] | None) -> None:
        """Redis announced these keys changed (None: possibly all of them)."""
        if keys is None:
            self.clear()
            return
        for key in keys:
            if key.startswith(self._enterprise_prefix):
                # <prefix>:v1:ent:{<enterprise>}
                self._drop_enterprise(key[len(self._enterprise_prefix) + 1 : -1].decode())
            elif key.startswith(self._partition_prefix):
                tail = key[len(self._partition_prefix) :]
                if tail.isdigit():
                    self._drop_partition(int(tail))

    def set_live(self, live: bool) -> None:
        self.clear()  # whatever was kept may have missed an announcement
        self.live = live

    def clear(self) -> None:
        self._products.clear()
        self._keys_of.clear()
        self._progress.clear()
        self._stale.clear()
        for product_fill in self._product_fills.values():
            product_fill.dirty = True
        for progress_fill in self._progress_fills.values():
            progress_fill.dirty = True

    def _drop_enterprise(self, enterprise_id: str) -> None:
        for key in self._keys_of.pop(enterprise_id, ()):
            self._products.pop(key, None)
            product_fill = self._product_fills.get(key)
            if product_fill is not None:
                product_fill.dirty = True
        for key, product_fill in self._product_fills.items():
            if key[1] == enterprise_id:
                product_fill.dirty = True

    def _drop_partition(self, partition: int) -> None:
        self._stale.add(partition)
        progress_fill = self._progress_fills.get(partition)
        if progress_fill is not None:
            progress_fill.dirty = True

    # -- reads --------------------------------------------------------------------------

    def product(self, key: ProductKey) -> Rendered | NotFound | None:
        entry = self._products.get(key)
        if entry is not None:
            self._products.move_to_end(key)
        return entry

    def progress(self, partition: int) -> tuple[bool, bytes | None, bool]:
        """(known, progress JSON as Redis held it, None when it had none; stale: Redis has
        announced a newer one since)."""
        if partition not in self._progress:
            return False, None, False
        return True, self._progress[partition], partition in self._stale

    def refresh_progress(self, partition: int, read: Callable[[], Awaitable[bytes | None]]) -> None:
        """Fetch a stale progress in the background (one read at a time per partition)."""
        current = self._progress_fills.get(partition)
        if current is not None and not current.dirty:
            return
        task = asyncio.ensure_future(self.fill_progress(partition, read))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[bytes | None]) -> None:
        self._refreshes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not refresh a partition's progress: %s", task.exception())

    async def fill_product(
        self, key: ProductKey, read: Callable[[], Awaitable[Rendered | NotFound]]
    ) -> Rendered | NotFound:
        """``read()``'s result, kept unless an announcement for the enterprise came first."""
        value, fill = await shared_read(self._product_fills, key, read)
        if fill is not None and self.live and not fill.dirty and self._capacity > 0:
            self._keep(key, value)
        return value

    async def fill_progress(
        self, partition: int, read: Callable[[], Awaitable[bytes | None]]
    ) -> bytes | None:
        value, fill = await shared_read(self._progress_fills, partition, read)
        if fill is not None and self.live:
            # Kept even when overtaken by an announcement (often that of the very write it
            # read): it is still a true "at least"; stale, it is fetched again when next used.
            self._progress[partition] = value
            if fill.dirty:
                self._stale.add(partition)
            else:
                self._stale.discard(partition)
        return value

    def _keep(self, key: ProductKey, value: Rendered | NotFound) -> None:
        self._products[key] = value
        self._products.move_to_end(key)
        self._keys_of.setdefault(key[1], set()).add(key)
        while len(self._products) > self._capacity:
            old, _ = self._products.popitem(last=False)
            keys = self._keys_of.get(old[1])
            if keys is not None:
                keys.discard(old)
                if not keys:
                    del self._keys_of[old[1]]


async def shared_read(
    fills: dict[K, Fill[T]], key: K, read: Callable[[], Awaitable[T]]
) -> tuple[T, Fill[T] | None]:
    """``read()``'s result, shared with concurrent readers of ``key`` as long as no
    announcement has overtaken the read; returns the value and the fill this call ran
    (None when it shared another's: that one decides what is kept)."""
    current = fills.get(key)
    if current is not None and not current.dirty:
        return await asyncio.shield(current.result), None
    fill: Fill[T] = Fill(asyncio.get_running_loop().create_future())
    fills[key] = fill
    try:
        value = await read()
    except BaseException as exc:
        fill.result.set_exception(exc)
        fill.result.exception()  # retrieved: sharers re-raise it, nobody else must
        raise
    finally:
        if fills.get(key) is fill:
            del fills[key]
    fill.result.set_result(value)
    return value, fill
