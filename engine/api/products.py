"""Products served on demand from the views workers publish in Redis.

A pull whose product and partition progress the cache holds needs no Redis round trip; the
rest is read once and kept (engine/api/product_cache.py says why that is exact). What the
cache keeps is the rendering of an enterprise's views hash: its months, its carry, its signal
episodes (an episode that opens or closes is a write of the hash, so it drops the rendering)
and the disputes and statements copied into it (state/access.py), so the marks of disputed
items change with the hash. The subject segments of the quarterly report depend on the moment
of the pull and on the query records, and are computed at each pull.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine import codec
from engine.access.model import Dispute, Statement
from engine.access.records import QueryRecord
from engine.api.errors import ApiError
from engine.api.product_cache import NotFound, ProductCache, ProductKey, Rendered
from engine.errors import NotFoundError
from engine.events.partitioner import partition_for
from engine.metrics import ApiMetrics
from engine.periods import Period, parse_month
from engine.products.assemble import clock_day, render_items, subject_segments
from engine.products.history import (
    Carried,
    History,
    MonthView,
    SignalEpisode,
    episodes_from_json,
)
from engine.products.specs import ProductSpec
from engine.products.subject import (
    OPENING_SEGMENTS,
    SUBJECT_SEGMENTS,
    DisputeFact,
    Pull,
    QueryFact,
    StatementFact,
    Subject,
)
from state.access import decode_entity
from state.queries import QueryIndex
from state.tracking import InvalidationListener
from state.views import CARRY_FIELD, EPISODES_FIELD, ViewStore

__all__ = [
    "ProductService",
    "dispute_fact",
    "encode_rendered",
    "history_from_fields",
    "product_body",
    "providers_of",
    "subject_from_fields",
]

_DAY_US = 86_400_000_000
_CARRY = CARRY_FIELD.encode()
_EPISODES = EPISODES_FIELD.encode()
_QUERY_WINDOW_US = 90 * _DAY_US
_NO_PULL = Pull()  # a body rendered for no request in particular: the header's ids are null


def history_from_fields(fields: dict[bytes, bytes]) -> History:
    """An enterprise's months from its Redis hash (empty values are months without data),
    with its carry and its signal episodes."""
    months: dict[int, MonthView] = {}
    carried = None
    episodes: tuple[SignalEpisode, ...] = ()
    for name, value in fields.items():
        if name == _CARRY and value:
            carried = Carried.from_json(codec.loads(value))
        if name == _EPISODES and value:
            episodes = episodes_from_json(codec.loads(value))
        if not value or not name.startswith(b"m:"):
            continue
        month = parse_month(name[2:].decode())
        if month is not None:
            months[month] = MonthView.from_json(codec.loads(value))
    return History(months, carried, episodes)


def dispute_fact(dispute: Dispute) -> DisputeFact:
    return DisputeFact(
        dispute.id,
        dispute.product,
        dispute.period,
        dispute.items,
        dispute.statement,
        dispute.status,
        dispute.filed_at_us,
        dispute.due_at_us,
        dispute.answered_at_us,
    )


def subject_from_fields(fields: dict[bytes, bytes]) -> Subject:
    """The disputes and statements copied into an enterprise's views hash."""
    disputes: list[DisputeFact] = []
    statements: list[StatementFact] = []
    for name, value in fields.items():
        if name.startswith(b"d:"):
            dispute = decode_entity("dispute", value)
            assert isinstance(dispute, Dispute)
            disputes.append(dispute_fact(dispute))
        elif name.startswith(b"s:"):
            statement = decode_entity("statement", value)
            assert isinstance(statement, Statement)
            statements.append(StatementFact(statement.id, statement.text, statement.filed_at_us))
    return Subject(disputes=tuple(disputes), statements=tuple(statements))


def providers_of(history: History) -> set[str]:
    """The banks whose accounts appear in an enterprise's history, pruned months included."""
    banks = {bank for month in history.months.values() for bank, _ in month.accounts.values()}
    if history.carried is not None:
        banks.update(bank for bank, _ in history.carried.accounts.values())
    return banks


def _rendered(
    spec: ProductSpec, period: Period, fields: dict[bytes, bytes], now: int
) -> Rendered | NotFound:
    if not fields:
        return NotFound("no data for this enterprise")
    subject = subject_from_fields(fields)
    try:
        items = render_items(spec, period, history_from_fields(fields), now, subject.disputes)
    except NotFoundError as exc:
        return NotFound(str(exc))
    return encode_rendered(items, subject)


def encode_rendered(items: dict[str, Any], subject: Subject) -> Rendered:
    """What the cache keeps of :func:`engine.products.assemble.render_items`' result."""
    encoded = codec.dumps(
        {
            "registry_versions": items["registry_versions"],
            "coverage": items["coverage"],
            "segments": items["segments"],
        }
    )
    # {"registry_versions":[...],"coverage":{...},"segments":[...]}  ->  head: up to the
    # last segment, and where the first begins (the header goes in before it)
    head = encoded[: -len(b"]}")]
    opens_at = (
        len(
            codec.dumps(
                {"registry_versions": items["registry_versions"], "coverage": items["coverage"]}
            )
        )
        - 1
    )
    opens_at += len(b',"segments":[')
    tail = b'],"disputes":' + codec.dumps(items["disputes"]) + b"}"
    return Rendered(head, opens_at, tail, bool(items["segments"]), subject)


def product_body(
    spec: ProductSpec,
    enterprise_id: str,
    period: Period,
    as_of: bytes | None,
    rendered: Rendered,
    subject: list[dict[str, Any]],
    now: int,
) -> bytes:
    """The response body, spliced from encoded parts: the same JSON as
    :func:`engine.products.assemble.assemble`, without decoding and encoding again what is
    cached (``rendered``) or what Redis holds (``as_of``)."""
    top = codec.dumps(
        {
            "enterprise_id": enterprise_id,
            "product": spec.id,
            "spec_version": spec.version,
            "period": period.label,
            "partial": period.is_partial(now),
        }
    )
    head, at = rendered.head, rendered.opens_at
    parts = [top[:-1], b',"as_of":', as_of or b"{}", b",", head[1:at]]
    opening = [codec.dumps(s) for s in subject if s["id"] in OPENING_SEGMENTS]
    closing = [codec.dumps(s) for s in subject if s["id"] not in OPENING_SEGMENTS]
    segments = [*opening, head[at:]] if rendered.has_segments else opening
    parts.append(b",".join([*segments, *closing]))
    parts.append(rendered.tail)
    return b"".join(parts)


class ProductService:
    def __init__(
        self,
        partitions: int,
        views: ViewStore,
        queries: QueryIndex,
        products: dict[str, ProductSpec],
        cache: ProductCache,
        listener: InvalidationListener,
        metrics: ApiMetrics,
    ) -> None:
        self._partitions = partitions
        self._views = views
        self._queries = queries
        self.products = products
        self._cache = cache
        self._listener = listener
        self._hits = metrics.render_cache.labels("hit")
        self._misses = metrics.render_cache.labels("miss")
        self._has_subject = {
            name: any(s.id in SUBJECT_SEGMENTS for s in spec.segments)
            for name, spec in products.items()
        }

    async def body(
        self, product: str, enterprise_id: str, period: Period, now: int, pull: Pull = _NO_PULL
    ) -> bytes:
        """A product's body for ``pull`` (what the report's header says of the request);
        NotFoundError when the enterprise has no data for it, ApiError 503 while its
        partition has no views in Redis."""
        spec = self.products[product]
        progress, rendered = await self._read(spec, enterprise_id, period, now)
        if progress is None:
            # Workers write a partition's progress after all its views, and publish it for
            # every partition they are given, even one without data: without it, Redis has
            # lost the views (restarted empty) and the worker is rebuilding them. An
            # enterprise missing from the views then says nothing: it is not "no data".
            raise ApiError(
                503,
                "views_unavailable",
                "the products of this enterprise are being rebuilt; retry shortly",
                {"Retry-After": "1"},
            )
        if isinstance(rendered, NotFound):
            raise NotFoundError(rendered.message)
        subject: list[dict[str, Any]] = []
        if self._has_subject[product]:
            facts = await self._subject(enterprise_id, rendered.subject, now, pull, progress)
            subject = subject_segments(spec, period, facts)
        return product_body(spec, enterprise_id, period, progress, rendered, subject, now)

    async def fields(self, enterprise_id: str) -> dict[bytes, bytes]:
        return await self._views.fields(enterprise_id)

    async def _subject(
        self, enterprise_id: str, held: Subject, now: int, pull: Pull, progress: bytes
    ) -> Subject:
        window, last = await self._queries.answered(enterprise_id, now - _QUERY_WINDOW_US, now)
        records: dict[str, QueryRecord] = {r.request_id: r for r in window}
        if last is not None:
            records[last.request_id] = last
        queries = tuple(
            QueryFact(r.at_us, r.institution, r.purpose) for r in records.values() if r.institution
        )
        watermark = codec.loads(progress).get("watermark")
        pull = replace(pull, data_as_of=watermark if isinstance(watermark, str) else None)
        return Subject(now, queries, held.disputes, held.statements, pull)

    async def _read(
        self, spec: ProductSpec, enterprise_id: str, period: Period, now: int
    ) -> tuple[bytes | None, Rendered | NotFound]:
        """(the partition's progress, the rendering), from the cache when it holds them.
        Progress first, then views: see engine/api/product_cache.py for why this is exact."""
        partition = partition_for(enterprise_id, self._partitions)
        if not self._cache.live:  # announcements are not flowing: read Redis every time
            self._misses.inc()
            progress, fields = await self._views.read(enterprise_id, partition)
            return progress, _rendered(spec, period, fields, now)
        # A partial period's items change with the pull's day, not only with its views.
        day = clock_day(period, now)
        label = period.label if day is None else f"{period.label}@{day}"
        key: ProductKey = (spec.id, enterprise_id, label)
        known, progress, stale = self._cache.progress(partition)
        if stale:  # served as it is, a true "at least"; the new one comes in the background
            self._cache.refresh_progress(partition, lambda: self._read_progress(partition))
        if not known:
            progress = await self._cache.fill_progress(
                partition, lambda: self._read_progress(partition)
            )
        rendered = self._cache.product(key)
        if rendered is not None:
            self._hits.inc()
            return progress, rendered
        self._misses.inc()
        rendered = await self._cache.fill_product(
            key, lambda: self._read_and_render(spec, enterprise_id, period, now)
        )
        return progress, rendered

    async def _read_progress(self, partition: int) -> bytes | None:
        progress = await self._views.progress_raw(partition)
        # Every change of views this progress covers must be announced, and its cached
        # rendering dropped, before the progress is served with one.
        if not await self._listener.barrier():
            self._cache.clear()
        return progress

    async def _read_and_render(
        self, spec: ProductSpec, enterprise_id: str, period: Period, now: int
    ) -> Rendered | NotFound:
        return _rendered(spec, period, await self._views.fields(enterprise_id), now)
