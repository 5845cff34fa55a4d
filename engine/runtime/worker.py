"""Wire a worker: the Faust app, its two agents, rebalance hooks and web pages.

Nothing here decides anything about transactions: it connects Kafka, the stages in
agents/, the stores in state/ and Redis.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from confluent_kafka import KafkaException
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agents.access import AccessLogStage, QueryIndexStage
from agents.inflight import InFlight
from agents.intake import Intake, RoutedStep
from agents.ledger import LedgerStage
from agents.retry import coordinates, until_done
from agents.signal_feeds import SignalFeedStage
from agents.signal_restore import kafka_changelog_reader
from agents.signals import SignalStage
from engine.events import kafka_admin
from engine.events.topics import (
    ACCESS_LOG_TOPIC,
    QUERY_RECORDS_TOPIC,
    ROUTED_TOPIC,
    SIGNALS_TOPIC,
)
from engine.metrics import WorkerMetrics
from engine.periods import history_start
from engine.products.classify import RegistryWatcher
from engine.pseudonym import Pseudonymizer
from engine.runtime import faust_compat
from engine.settings import Settings
from engine.signals.evaluate import RuleSet
from engine.signals.spec import load_signals
from state.access import AccessStore
from state.queries import QueryIndex
from state.redis_client import RedisClient, connect_settings
from state.rocksdb import RocksDBStore, shared_block_cache
from state.signal_feeds import SignalFeeds
from state.views import ViewStore

__all__ = ["Worker", "build_worker", "faust_broker_urls", "state_dir"]

log = logging.getLogger(__name__)

_PRUNE_EVERY_SECONDS = 3600.0  # history moves by months: hourly is plenty
_QUERY_SWEEP_EVERY_SECONDS = 86_400.0  # a scan of every query key in Redis: daily
_FETCH_MAX_WAIT_MS = 50  # an idle fetch returns within this (Faust's 1,500 ms made events late)
_INTAKE_STEPS_IN_FLIGHT = 4  # steps sent but not yet confirmed by the broker
_DAY_US = 86_400_000_000
_SIGNALS_EVERY_SECONDS = 0.05  # how often marked enterprises are judged (signal latency)
_CHECK_VIEWS_EVERY_SECONDS = 2.0  # how soon views lost in Redis are rebuilt with no event


async def _next_tick_on_failure(what: str, body: Callable[[], Awaitable[object]]) -> None:
    """Run one tick of a periodic chore; if it fails (a broker that does not answer, Redis
    away, a state directory just removed), log what could not be done and leave it to the
    next tick.

    An exception that leaves a Faust timer stops the whole worker (the app stops, exit code
    1): a broker paused for 15 s (the probes' timeout), or Redis away over a tick, took
    down every worker with it, although the agents wait and lose nothing (issue 17's faults).
    """
    try:
        await body()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # A KafkaException's text is its KafkaError's repr; its first argument reads better.
        detail = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
        log.warning("could not %s (%s); trying again at the next tick", what, detail)


def _chore(
    app: faust.App, interval: float, what: str
) -> Callable[[Callable[[], Awaitable[None]]], Any]:
    """Register the decorated function as a timer of ``app`` whose failures wait for the
    next tick (:func:`_next_tick_on_failure`): every timer of the worker is one."""

    def register(body: Callable[[], Awaitable[None]]) -> Any:
        @functools.wraps(body)
        async def tick() -> None:
            await _next_tick_on_failure(what, body)

        return app.timer(interval=interval)(tick)

    return register


def faust_broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def state_dir(settings: Settings, partition: int) -> Any:
    return settings.data_dir / "state" / f"partition-{partition:04d}"


class FaustSender:
    """Sends through the worker's own producer (aiokafka), returning delivery futures."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Awaitable[Any]:
        future: Awaitable[Any] = await self._app.producer.send(
            topic, key, value, partition=partition, timestamp=None, headers=None
        )
        return future


class Worker:
    """The parts of one worker process, reachable for hooks, web pages and tests."""

    def __init__(
        self,
        settings: Settings,
        app: faust.App,
        intake: Intake,
        ledger: LedgerStage,
        access: AccessLogStage,
        queries: QueryIndexStage,
        signals: SignalStage,
        feeds: SignalFeedStage,
        redis: RedisClient,
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.app = app
        self.intake = intake
        self.ledger = ledger
        self.access = access
        self.queries = queries
        self.signals = signals
        self.feeds = feeds
        self.redis = redis
        self.registry = registry
        self.bank_topics: list[str] = []
        self.background: set[asyncio.Future[None]] = set()
        self.assigned = False  # the group has given this worker its partitions


def build_worker(settings: Settings) -> Worker:
    if settings.kafka_bootstrap is None:
        raise ValueError("a worker needs CREDITFLOW_KAFKA_BOOTSTRAP")
    bootstrap = settings.kafka_bootstrap
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runs_intake = settings.worker_stages in ("all", "intake")
    runs_ledger = settings.worker_stages in ("all", "ledger")
    runs_access = settings.worker_stages in ("all", "access")
    if runs_access:
        kafka_admin.ensure_access_topics(
            bootstrap, settings.partitions, settings.query_record_retention_days
        )
    app = faust.App(
        # One consumer group per stage when they run apart: a member of a Faust group is
        # expected to read every topic of the group.
        settings.group_id
        if settings.worker_stages == "all"
        else f"{settings.group_id}-{settings.worker_stages}",
        broker=faust_broker_urls(bootstrap),
        store="memory://",  # no Faust tables: state is ours, batch-written (state/)
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Measured against Tansu: defaults made the first group join take ~30 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=60.0,
        producer_acks=-1,
        # Bounded prefetch: Faust buffers up to this many messages per stream (default 4096).
        # A bank batch message is ~200 KB and a routed one ~90 KB: 512 keeps both buffers
        # near 150 MB and still fills a step of CREDITFLOW_BATCH_MAX_MESSAGES.
        stream_buffer_maxsize=512,
        web_enabled=True,
        web_port=settings.worker_web_port,
        web_bind=settings.api_host,
        web_host=settings.api_host,
    )
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    redis = connect_settings(settings)
    views = ViewStore(redis, settings.redis_prefix)
    sender = FaustSender(app)
    cache = shared_block_cache(settings.rocksdb_block_cache_bytes)
    registries = RegistryWatcher(settings.registry_path)
    metrics.registry_version.set_function(lambda: registries.current.version)

    async def seek(partition: int, offset: int) -> None:
        await faust_compat.seek(app, ROUTED_TOPIC, partition, offset)

    async def log_start(partition: int) -> int:
        return await asyncio.to_thread(
            kafka_admin.low_watermark, bootstrap, ROUTED_TOPIC, partition
        )

    ledger = LedgerStage(
        open_store=lambda p: RocksDBStore(state_dir(settings, p), cache),
        pseudonym=Pseudonymizer(settings.pseudonym_key.get_secret_value().encode()),
        registry=lambda: registries.current,
        views=views,
        sender=sender,
        metrics=metrics,
        seek=seek,
        # Per partition: the setting bounds the worker that holds every partition.
        cache_months=max(1, settings.view_cache_months // settings.partitions),
        log_start=log_start,
        commit_interval=settings.commit_interval_seconds,
        set_aside_after=settings.ledger_set_aside_after_failures,
        on_commit=lambda partition, changed: signals.committed(partition, changed),
    )
    signals = SignalStage(
        ledger,
        sender,
        RuleSet.of(load_signals(settings.signal_rules_path)),
        metrics,
        digest_months=settings.signal_digest_months,
        changelog=kafka_changelog_reader(bootstrap),
    )
    intake = Intake(sender, settings.partitions, metrics, settings.history_months)

    async def seek_access_log(offset: int) -> None:
        await faust_compat.seek(app, ACCESS_LOG_TOPIC, 0, offset)

    async def seek_queries(partition: int, offset: int) -> None:
        await faust_compat.seek(app, QUERY_RECORDS_TOPIC, partition, offset)

    access_store = AccessStore(redis, settings.redis_prefix)
    query_index = QueryIndex(
        redis, settings.redis_prefix, settings.query_record_retention_days * _DAY_US
    )
    queries = QueryIndexStage(query_index, seek_queries, metrics)

    async def seek_signals(partition: int, offset: int) -> None:
        await faust_compat.seek(app, SIGNALS_TOPIC, partition, offset)

    feeds = SignalFeedStage(
        SignalFeeds(redis, settings.redis_prefix, settings.signal_retention_days),
        access_store,
        seek_signals,
        metrics,
    )
    access = AccessLogStage(access_store, sender, seek_access_log, metrics, feeds.granted)
    worker = Worker(settings, app, intake, ledger, access, queries, signals, feeds, redis, registry)
    worker.bank_topics = kafka_admin.list_bank_topics(bootstrap)
    while settings.worker_stages == "intake" and not worker.bank_topics:
        # A Faust app with no topic at all crashes at start; an intake worker alone has
        # nothing to read until the first bank is registered.
        log.info("no bank topic yet; waiting for `creditflow bank add` or `institution add`")
        time.sleep(settings.bank_refresh_seconds)
        worker.bank_topics = kafka_admin.list_bank_topics(bootstrap)

    bank_topics = app.topic(*worker.bank_topics, value_serializer="raw", key_serializer="raw")
    routed = app.topic(ROUTED_TOPIC, value_serializer="raw", key_serializer="raw")
    take_max, within = settings.batch_max_messages, settings.batch_within_seconds

    async def prepare(messages: list[Any]) -> RoutedStep:
        return intake.prepare(messages)

    async def intake_agent(stream: Any) -> None:  # a faust.Stream: StreamT lacks noack_take
        # Events are acknowledged by hand, once the broker has confirmed what their step
        # sent; meanwhile the next steps are prepared (agents/inflight.py).
        confirming = InFlight(_INTAKE_STEPS_IN_FLIGHT)

        async def confirm(step: RoutedStep, events: list[Any]) -> None:
            await until_done(intake.deliver, step, "intake", metrics)
            for event in events:
                await stream.ack(event)

        async for events in stream.noack_take(take_max, within=within):
            step = await until_done(
                prepare, [event.message for event in events], "intake", metrics, coordinates
            )
            await confirming.start(confirm(step, events))

    async def ledger_agent(stream: Any) -> None:
        # Faust acknowledges a take's events once the agent moves on, before their state is
        # committed (up to the commit interval later): the state carries its own offset, and
        # a worker seeks there whenever it is given a partition (after_assignment below), so
        # a crash replays whatever was not committed.
        async for events in stream.take_events(take_max, within=within):
            await until_done(
                ledger.process, [event.message for event in events], "ledger", metrics, coordinates
            )

    async def commit_due(_: None) -> None:
        await ledger.commit_due()

    access_log = app.topic(
        ACCESS_LOG_TOPIC, value_serializer="raw", key_serializer="raw", partitions=1
    )
    query_records = app.topic(QUERY_RECORDS_TOPIC, value_serializer="raw", key_serializer="raw")
    signal_topic = app.topic(SIGNALS_TOPIC, value_serializer="raw", key_serializer="raw")

    async def access_agent(stream: Any) -> None:
        # As the ledger: the state in Redis carries the offset to resume from.
        async for events in stream.take_events(take_max, within=within):
            await until_done(
                access.process, [e.message for e in events], "access", metrics, coordinates
            )

    async def query_index_agent(stream: Any) -> None:
        async for events in stream.take_events(take_max, within=within):
            await until_done(
                queries.process, [e.message for e in events], "queries", metrics, coordinates
            )

    async def signal_feed_agent(stream: Any) -> None:
        # As the query index: the feeds in Redis carry the offsets to resume from.
        async for events in stream.take_events(take_max, within=within):
            await until_done(
                feeds.process, [e.message for e in events], "feeds", metrics, coordinates
            )

    if runs_intake:
        app.agent(bank_topics, name="intake")(intake_agent)
    if runs_ledger:
        app.agent(routed, name="ledger")(ledger_agent)
    if runs_access:
        app.agent(access_log, name="access")(access_agent)
        app.agent(query_records, name="queries")(query_index_agent)
        app.agent(signal_topic, name="signal-feeds")(signal_feed_agent)

    async def after_access_assignment(
        log_assigned: bool, query_partitions: set[int], signal_partitions: set[int]
    ) -> None:
        while app.rebalancing:
            await asyncio.sleep(0.05)
        if log_assigned:
            await access.assigned()
        await queries.assigned(query_partitions)
        await feeds.assigned(signal_partitions)

    async def after_assignment(mine: set[int]) -> None:
        # Faust seeks to the group's committed offsets when the rebalance ends; the state's
        # own offsets win, so seek again once it has.
        while app.rebalancing:
            await asyncio.sleep(0.05)
        await ledger.seek_to_state(mine)
        # the episodes a rebuild from the routed topic cannot give, before the views are
        # republished (they carry them) and the history pruned (it prunes them too)
        await signals.restore(mine)
        await ledger.refresh_views(mine)  # republishing may take a while
        if await ledger.prune_history(history_start(settings.history_months)):
            signals.forget()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0]
        faust_compat.shorten_fetch_wait(app, _FETCH_MAX_WAIT_MS)
        worker.assigned = True
        if runs_access:
            log_assigned = any(tp.topic == ACCESS_LOG_TOPIC for tp in assigned)
            if not log_assigned:
                access.revoked()
            mine_q = {tp.partition for tp in assigned if tp.topic == QUERY_RECORDS_TOPIC}
            mine_s = {tp.partition for tp in assigned if tp.topic == SIGNALS_TOPIC}
            worker.background.add(
                task := asyncio.ensure_future(after_access_assignment(log_assigned, mine_q, mine_s))
            )
            task.add_done_callback(worker.background.discard)
        if not runs_ledger:
            return
        mine = {tp.partition for tp in assigned if tp.topic == ROUTED_TOPIC}
        gone = set(ledger.partitions) - mine
        await ledger.revoke(gone)
        signals.revoked(gone)
        await ledger.open(mine)
        signals.opened(mine)
        worker.background.add(task := asyncio.ensure_future(after_assignment(mine)))
        task.add_done_callback(worker.background.discard)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0]
        if any(tp.topic == ACCESS_LOG_TOPIC for tp in revoked):
            access.revoked()
        gone = {tp.partition for tp in revoked if tp.topic == ROUTED_TOPIC}
        await ledger.revoke(gone)
        signals.revoked(gone)

    @app.on_before_shutdown.connect
    async def on_shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # SIGTERM: Faust stops the consumer without revoking its partitions, so nothing
        # committed what the ledger had applied since its last commit (up to
        # commit_interval_seconds of events, which the next owner applied again). The step in
        # progress ends first (the ledger's lock), then every partition commits and closes.
        if runs_ledger:
            await ledger.close()

    @_chore(app, settings.bank_refresh_seconds, "list the bank topics")
    async def refresh_bank_topics() -> None:
        if not runs_intake:
            return
        names = await asyncio.to_thread(kafka_admin.list_bank_topics, bootstrap)
        if names == worker.bank_topics:
            return
        log.info("bank topics changed: %s; resubscribing", ", ".join(names))
        worker.bank_topics = names
        faust_compat.resubscribe_bank_topics(app, names)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        try:
            redis_ok = bool(await redis.ping())
        except Exception:
            redis_ok = False
        ready = (ledger.ready if runs_ledger else worker.assigned) and redis_ok
        body = {"ready": ready, "partitions": ledger.partitions, "redis": redis_ok}
        return web.json(body, status=200 if ready else 503)

    @_chore(app, 5.0, "look up the routed topic's end offsets")
    async def unstall_partitions() -> None:
        if app.rebalancing or not ledger.partitions:
            return
        ends = await asyncio.to_thread(
            kafka_admin.high_watermarks, bootstrap, ROUTED_TOPIC, settings.partitions
        )
        await ledger.unstall(ends)

    @_chore(app, _CHECK_VIEWS_EVERY_SECONDS, "check the views in Redis")
    async def check_views() -> None:
        # A Redis that lost the views is refilled without waiting for the next event.
        if runs_ledger and not app.rebalancing:
            await ledger.check_views()

    # The steps of the next three retry until they succeed (agents/retry.py): their guard
    # is only a net.
    @_chore(app, max(settings.commit_interval_seconds / 4, 0.01), "commit the ledger")
    async def commit_ledger() -> None:
        if runs_ledger:
            await until_done(commit_due, None, "ledger", metrics)

    @_chore(app, settings.registry_refresh_seconds, "reload the registries")
    async def refresh_registry() -> None:
        registries.refresh()

    async def prune() -> None:
        if await ledger.prune_history(history_start(settings.history_months)):
            signals.forget()

    @_chore(app, _PRUNE_EVERY_SECONDS, "prune history")
    async def prune_history() -> None:
        await prune()

    async def judge_signals(_: None) -> None:
        await signals.evaluate_pending()

    @_chore(app, _SIGNALS_EVERY_SECONDS, "judge the signal rules")
    async def evaluate_signals() -> None:
        # After each commit and on each new day (China time): agents/signals.py.
        if runs_ledger and settings.signals_enabled and not app.rebalancing:
            await until_done(judge_signals, None, "signals", metrics)

    @_chore(app, 2.0, "check access state in Redis")
    async def check_access_state() -> None:
        # A Redis that lost access state is refilled without waiting for the next command.
        if runs_access and not app.rebalancing:
            await until_done(lambda _: access.check(), None, "access", metrics)
            await until_done(lambda _: queries.check(), None, "queries", metrics)

    @_chore(app, _QUERY_SWEEP_EVERY_SECONDS, "expire query records")
    async def expire_query_records() -> None:
        # Trimming on write misses the keys nobody writes any more: records are kept for the
        # retention, not longer.
        if runs_access and not app.rebalancing:
            now_us = int(time.time() * 1_000_000)
            metrics.query_records_expired.inc(await query_index.sweep(now_us))

    @_chore(app, 30.0, "count overdue disputes")
    async def count_overdue_disputes() -> None:
        if runs_access and access.next_offset is not None:
            now_us = int(time.time() * 1_000_000)
            metrics.disputes_overdue.set(await access_store.overdue_disputes(now_us))
        else:  # the access log's owner counts them; a count left here would go stale
            metrics.disputes_overdue.set(0)

    @_chore(app, 30.0, "measure the state's size")
    async def measure_state() -> None:
        for partition in ledger.partitions:
            metrics.state_bytes.labels(str(partition)).set(
                sum(f.stat().st_size for f in state_dir(settings, partition).iterdir())
            )
            metrics.reversals_waiting.labels(str(partition)).set(
                ledger.ledger(partition).reversals_waiting
            )

    return worker
