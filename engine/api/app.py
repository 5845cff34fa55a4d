"""The HTTP API: products pulled on demand, served from the views workers publish in Redis.

GET /v1/enterprises/{enterprise_id}/monthly/{YYYY-MM}
GET /v1/enterprises/{enterprise_id}/quarterly/{YYYY}Q{n}
GET /metrics   GET /healthz   GET /readyz

Served by engine/api/http.py. A pull whose product and partition progress the cache holds is
answered without a task or a Redis round trip; everything else is answered by a coroutine.

Authorization, consent and query logging belong in ``_authorize`` (a later issue): every
product request passes through it before any data is read.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import Redis

from engine import codec
from engine.api.http import HttpServer, Response
from engine.api.product_cache import NotFound, ProductCache, ProductKey
from engine.errors import BadRequestError, NotFoundError
from engine.events import credit_code
from engine.events.partitioner import partition_for
from engine.metrics import ApiMetrics, observe_gc_pauses
from engine.periods import Period, now_us, parse_month
from engine.products.assemble import check_kernels, render_items
from engine.products.history import History, MonthView
from engine.products.specs import ProductSpec, load_products
from engine.settings import Settings
from state.tracking import InvalidationListener
from state.views import ViewStore

__all__ = ["Api", "build_api", "history_from_fields", "product_body", "serve_api"]

log = logging.getLogger(__name__)
_PRODUCT_ROUTES = {
    "monthly": "/v1/enterprises/{enterprise_id}/monthly/{period}",
    "quarterly": "/v1/enterprises/{enterprise_id}/quarterly/{period}",
}
_UNMATCHED = "unmatched"


def history_from_fields(fields: dict[bytes, bytes]) -> History:
    """An enterprise's months from its Redis hash (empty values are months without data)."""
    months: dict[int, MonthView] = {}
    for name, value in fields.items():
        if not value or not name.startswith(b"m:"):
            continue
        month = parse_month(name[2:].decode())
        if month is not None:
            months[month] = MonthView.from_json(codec.loads(value))
    return History(months)


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, codec.dumps({"error": {"code": code, "message": message}}))


def product_body(
    spec: ProductSpec,
    enterprise_id: str,
    period: Period,
    as_of: bytes | None,
    items: bytes,
    now: int,
) -> bytes:
    """The response body, spliced from encoded parts: the same JSON as
    :func:`engine.products.assemble.assemble`, without decoding and encoding again what is cached
    (``items``) or what Redis holds (``as_of``)."""
    head = codec.dumps(
        {
            "enterprise_id": enterprise_id,
            "product": spec.id,
            "spec_version": spec.version,
            "period": period.label,
            "partial": period.is_partial(now),
        }
    )
    return b"".join((head[:-1], b',"as_of":', as_of or b"{}", b",", items[1:]))


class ProductHandler:
    def __init__(
        self,
        settings: Settings,
        views: ViewStore,
        products: dict[str, ProductSpec],
        cache: ProductCache,
        listener: InvalidationListener,
        metrics: ApiMetrics,
    ):
        self._partitions = settings.partitions
        self._views = views
        self._products = products
        self._cache = cache
        self._listener = listener
        self._hits = metrics.render_cache.labels("hit")
        self._misses = metrics.render_cache.labels("miss")

    def serve(
        self, product: str, enterprise_id: str, period_text: str
    ) -> Response | Awaitable[Response]:
        """A product, at once when the cache holds it and its partition's progress."""
        if not credit_code.is_valid_cached(enterprise_id):
            raise BadRequestError(
                "enterprise_id must be an 18-character unified social credit code"
            )
        period = (Period.monthly if product == "monthly" else Period.quarterly)(period_text)
        if period is None:
            expected = "YYYY-MM" if product == "monthly" else "YYYYQn"
            raise BadRequestError(f"period must look like {expected}")
        self._authorize(enterprise_id, product)
        partition = partition_for(enterprise_id, self._partitions)
        spec = self._products[product]
        if not self._cache.live:
            return self._serve_uncached(spec, enterprise_id, period, partition)
        # Progress first, then views (see engine/api/product_cache.py for why this is exact).
        key = (spec.id, enterprise_id, period.label)
        known, progress, stale = self._cache.progress(partition)
        if stale:  # served as it is, a true "at least"; the new one comes in the background
            self._cache.refresh_progress(partition, lambda: self._read_progress(partition))
        items = self._cache.product(key) if known else None
        if items is not None:
            self._hits.inc()
            return self._respond(spec, enterprise_id, period, progress, items)
        return self._serve_filled(spec, enterprise_id, period, partition, key, known, progress)

    async def _serve_filled(
        self,
        spec: ProductSpec,
        enterprise_id: str,
        period: Period,
        partition: int,
        key: ProductKey,
        known: bool,
        progress: bytes | None,
    ) -> Response:
        """What :meth:`serve` could not answer from the cache: the partition's first
        progress, then the product, each read once and kept."""
        items = None
        if not known:
            progress = await self._cache.fill_progress(
                partition, lambda: self._read_progress(partition)
            )
            items = self._cache.product(key)
        (self._misses if items is None else self._hits).inc()
        if items is None:
            items = await self._cache.fill_product(
                key, lambda: self._read_and_render(spec, enterprise_id, period)
            )
        return self._respond(spec, enterprise_id, period, progress, items)

    async def _serve_uncached(
        self, spec: ProductSpec, enterprise_id: str, period: Period, partition: int
    ) -> Response:
        """Announcements are not flowing: read Redis every time."""
        self._misses.inc()
        progress, fields = await self._views.read(enterprise_id, partition)
        return self._respond(
            spec, enterprise_id, period, progress, self._render(spec, period, fields)
        )

    @staticmethod
    def _respond(
        spec: ProductSpec,
        enterprise_id: str,
        period: Period,
        progress: bytes | None,
        items: bytes | NotFound,
    ) -> Response:
        if isinstance(items, NotFound):
            raise NotFoundError(items.message)
        return Response(200, product_body(spec, enterprise_id, period, progress, items, now_us()))

    async def _read_progress(self, partition: int) -> bytes | None:
        progress = await self._views.progress_raw(partition)
        # Every change of views this progress covers must be announced, and its cached
        # rendering dropped, before the progress is served with one.
        if not await self._listener.barrier():
            self._cache.clear()
        return progress

    async def _read_and_render(
        self, spec: ProductSpec, enterprise_id: str, period: Period
    ) -> bytes | NotFound:
        return self._render(spec, period, await self._views.fields(enterprise_id))

    @staticmethod
    def _render(spec: ProductSpec, period: Period, fields: dict[bytes, bytes]) -> bytes | NotFound:
        if not fields:
            return NotFound("no data for this enterprise")
        try:
            return codec.dumps(render_items(spec, period, history_from_fields(fields)))
        except NotFoundError as exc:
            return NotFound(str(exc))

    def _authorize(self, enterprise_id: str, product: str) -> None:
        """Where consent checks and the query log go (not yet: every request is allowed)."""


class Api:
    """Routes, errors and request metrics around the product handler (``dispatch`` is the
    HTTP server's application)."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        views: ViewStore,
        handler: ProductHandler,
        listener: InvalidationListener,
        metrics: ApiMetrics,
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._views = views
        self._handler = handler
        self._listener = listener
        self._metrics = metrics
        # A metric child looked up by labels costs more than the rest of a cached pull's
        # own work; routes and statuses are few, so each pair is looked up once.
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    @property
    def metrics(self) -> ApiMetrics:
        return self._metrics

    async def start(self) -> None:
        await self._listener.start()
        await self._listener.wait_live(2.0)  # until then every pull reads Redis: slower, as exact

    async def stop(self) -> None:
        await self._listener.stop()
        await self._redis.aclose()

    def dispatch(self, method: str, path: str) -> Response | Awaitable[Response]:
        started = time.perf_counter()
        route, answer = self._route(path)
        if answer is None:
            response = _error(404, "not_found", "Not Found")
        elif method not in ("GET", "HEAD"):
            response = _error(405, "method_not_allowed", "Method Not Allowed")
        else:
            try:
                result = answer()
            except Exception as exc:
                response = self._failure(exc)
            else:
                if not isinstance(result, Response):
                    return self._finish(route, started, result)
                response = result
        self._observe(route, response.status, started)
        return response

    def _route(self, path: str) -> tuple[str, Callable[[], Response | Awaitable[Response]] | None]:
        parts = path.split("/")
        # ["", "v1", "enterprises", <enterprise>, "monthly" | "quarterly", <period>]
        if len(parts) == 6 and parts[1] == "v1" and parts[2] == "enterprises":
            product = parts[4]
            if product in _PRODUCT_ROUTES and parts[3] and parts[5]:
                enterprise_id, period = parts[3], parts[5]
                return _PRODUCT_ROUTES[product], lambda: self._handler.serve(
                    product, enterprise_id, period
                )
        elif path == "/healthz":
            return path, lambda: Response(200, b'{"status":"alive"}')
        elif path == "/readyz":
            return path, self._readyz
        elif path == "/metrics":
            return path, lambda: Response(
                200, generate_latest(self._metrics.registry), CONTENT_TYPE_LATEST
            )
        return _UNMATCHED, None

    async def _finish(self, route: str, started: float, pending: Awaitable[Response]) -> Response:
        try:
            response = await pending
        except Exception as exc:
            response = self._failure(exc)
        self._observe(route, response.status, started)
        return response

    @staticmethod
    def _failure(exc: Exception) -> Response:
        if isinstance(exc, BadRequestError):
            return _error(400, "bad_request", str(exc))
        if isinstance(exc, NotFoundError):
            return _error(404, "not_found", str(exc))
        log.error("request failed", exc_info=exc)
        return _error(500, "internal", "internal error; see the API log")

    def _observe(self, route: str, status: int, started: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = self._children[(route, status)] = (
                self._metrics.requests.labels(route, str(status)),
                self._metrics.seconds.labels(route),
            )
        children[0].inc()
        children[1].observe(time.perf_counter() - started)

    async def _readyz(self) -> Response:
        missing: list[int] = []
        try:
            for partition in range(self._settings.partitions):
                if await self._views.progress(partition) is None:
                    missing.append(partition)
            redis_ok = True
        except Exception:
            redis_ok = False
        ready = redis_ok and not missing
        body: dict[str, Any] = {
            "ready": ready,
            "redis": redis_ok,
            "partitions_without_views": missing,
        }
        return Response(200 if ready else 503, codec.dumps(body))


def build_api(settings: Settings, redis: Redis | None = None) -> Api:
    products = load_products()
    check_kernels(products)
    redis_url = settings.redis_url.get_secret_value()
    redis = redis or Redis.from_url(redis_url)
    views = ViewStore(redis, settings.redis_prefix)
    metrics = ApiMetrics(CollectorRegistry())
    cache = ProductCache(settings.api_cache_products, settings.redis_prefix)
    listener = InvalidationListener(redis_url, views.key_prefix, cache.changed, cache.set_live)
    metrics.watch_cache(cache, lambda: cache.live)
    handler = ProductHandler(settings, views, products, cache, listener, metrics)
    return Api(settings, redis, views, handler, listener, metrics)


async def serve_api(settings: Settings) -> None:
    """Run the API until SIGTERM or SIGINT, then finish the answers in progress and stop."""
    api = build_api(settings)
    observe_gc_pauses(api.metrics.registry)
    server = HttpServer(api.dispatch)
    await api.start()
    await server.start(settings.api_host, settings.api_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await api.stop()
