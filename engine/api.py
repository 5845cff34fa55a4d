"""The HTTP API: products pulled on demand, served from the views workers publish in Redis.

GET /v1/enterprises/{enterprise_id}/monthly/{YYYY-MM}
GET /v1/enterprises/{enterprise_id}/quarterly/{YYYY}Q{n}
GET /metrics   GET /healthz   GET /readyz

Authorization, consent and query logging belong in ``_authorize`` (a later issue): every
product request passes through it before any data is read.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import Redis

from engine import codec, credit_code
from engine.errors import BadRequestError, NotFoundError
from engine.history import History, MonthView
from engine.metrics import ApiMetrics
from engine.partitioner import partition_for
from engine.periods import Period, now_us, parse_month
from engine.product_cache import NotFound, ProductCache
from engine.products import check_kernels, render_items
from engine.settings import Settings
from engine.specs import ProductSpec, load_products
from state.tracking import InvalidationListener
from state.views import ViewStore

__all__ = ["build_api", "history_from_fields", "product_body"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_JSON = "application/json"


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


def _error(status: int, code: str, message: str) -> web.Response:
    body = codec.dumps({"error": {"code": code, "message": message}})
    return web.Response(body=body, status=status, content_type=_JSON)


def product_body(
    spec: ProductSpec,
    enterprise_id: str,
    period: Period,
    as_of: bytes | None,
    items: bytes,
    now: int,
) -> bytes:
    """The response body, spliced from encoded parts: the same JSON as
    :func:`engine.products.assemble`, without decoding and encoding again what is cached
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

    async def monthly(self, request: web.Request) -> web.Response:
        return await self._serve(request, "monthly", Period.monthly)

    async def quarterly(self, request: web.Request) -> web.Response:
        return await self._serve(request, "quarterly", Period.quarterly)

    async def _serve(
        self, request: web.Request, product: str, parse: Callable[[str], Period | None]
    ) -> web.Response:
        enterprise_id = request.match_info["enterprise_id"]
        if not credit_code.is_valid_cached(enterprise_id):
            raise BadRequestError(
                "enterprise_id must be an 18-character unified social credit code"
            )
        period = parse(request.match_info["period"])
        if period is None:
            expected = "YYYY-MM" if product == "monthly" else "YYYYQn"
            raise BadRequestError(f"period must look like {expected}")
        self._authorize(request, enterprise_id, product)
        partition = partition_for(enterprise_id, self._partitions)
        spec = self._products[product]
        if self._cache.live:
            progress, items = await self._cached(spec, enterprise_id, period, partition)
        else:  # announcements are not flowing: read Redis every time
            self._misses.inc()
            progress, fields = await self._views.read(enterprise_id, partition)
            items = self._render(spec, period, fields)
        if isinstance(items, NotFound):
            raise NotFoundError(items.message)
        body = product_body(spec, enterprise_id, period, progress, items, now_us())
        return web.Response(body=body, content_type=_JSON)

    async def _cached(
        self, spec: ProductSpec, enterprise_id: str, period: Period, partition: int
    ) -> tuple[bytes | None, bytes | NotFound]:
        # Progress first, then views (see engine/product_cache.py for why this is exact).
        known, progress, stale = self._cache.progress(partition)
        if not known:
            progress = await self._cache.fill_progress(
                partition, lambda: self._read_progress(partition)
            )
        elif stale:  # served as it is, a true "at least"; the new one comes in the background
            self._cache.refresh_progress(partition, lambda: self._read_progress(partition))
        key = (spec.id, enterprise_id, period.label)
        items = self._cache.product(key)
        (self._misses if items is None else self._hits).inc()
        if items is None:
            items = await self._cache.fill_product(
                key, lambda: self._read_and_render(spec, enterprise_id, period)
            )
        return progress, items

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

    def _authorize(self, request: web.Request, enterprise_id: str, product: str) -> None:
        """Where consent checks and the query log go (not yet: every request is allowed)."""


def build_api(settings: Settings, redis: Redis | None = None) -> web.Application:
    products = load_products()
    check_kernels(products)
    redis_url = settings.redis_url.get_secret_value()
    redis = redis or Redis.from_url(redis_url)
    views = ViewStore(redis, settings.redis_prefix)
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    cache = ProductCache(settings.api_cache_products, settings.redis_prefix)
    listener = InvalidationListener(redis_url, views.key_prefix, cache.changed, cache.set_live)
    metrics.watch_cache(cache, lambda: cache.live)
    handler = ProductHandler(settings, views, products, cache, listener, metrics)

    @web.middleware
    async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        started = time.perf_counter()
        try:
            response = await handler(request)
        except BadRequestError as exc:
            response = _error(400, "bad_request", str(exc))
        except NotFoundError as exc:
            response = _error(404, "not_found", str(exc))
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        except Exception:
            response = _error(500, "internal", "internal error; see the API log")
            request.app.logger.exception("request failed")
        request_count, seconds = children(name, response.status)
        request_count.inc()
        seconds.observe(time.perf_counter() - started)
        return response

    # A metric child looked up by labels costs more than the rest of a cached pull's own
    # work; routes and statuses are few, so each pair is looked up once.
    known_children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def children(route: str, status: int) -> tuple[Any, Any]:
        found = known_children.get((route, status))
        if found is None:
            found = known_children[(route, status)] = (
                metrics.requests.labels(route, str(status)),
                metrics.seconds.labels(route),
            )
        return found

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"alive"}', content_type=_JSON)

    async def readyz(request: web.Request) -> web.Response:
        missing: list[int] = []
        try:
            for partition in range(settings.partitions):
                if await views.progress(partition) is None:
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
        return web.Response(
            body=codec.dumps(body), status=200 if ready else 503, content_type=_JSON
        )

    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def start_listener(app: web.Application) -> None:
        await listener.start()
        await listener.wait_live(2.0)  # until then every pull reads Redis: slower, as exact

    async def close_redis(app: web.Application) -> None:
        await listener.stop()
        await redis.aclose()

    app = web.Application(middlewares=[errors_and_metrics])
    app.router.add_get("/v1/enterprises/{enterprise_id}/monthly/{period}", handler.monthly)
    app.router.add_get("/v1/enterprises/{enterprise_id}/quarterly/{period}", handler.quarterly)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.on_startup.append(start_listener)
    app.on_cleanup.append(close_redis)
    return app
