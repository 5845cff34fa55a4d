"""Run the pieces: a worker, the API, or the whole embedded stack (for `up` and `demo`)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from engine.errors import ConfigurationError, EmbeddedServiceError, StateError
from engine.events import kafka_admin
from engine.events.topics import (
    REJECTED_TOPIC,
    ROUTED_TOPIC,
    SIGNAL_STATE_TOPIC,
    SIGNALS_TOPIC,
    bank_topic,
)
from engine.logs import logging_config
from engine.metrics import observe_gc_pauses
from engine.runtime.embedded import (
    Child,
    Stack,
    creditflow_argv,
    free_port,
    redis_reachable,
    spawn,
    start_broker,
    start_redis,
    wait_http,
)
from engine.runtime.priority import realtime_priority
from engine.settings import ENV_PREFIX, Settings

__all__ = [
    "EmbeddedStack",
    "delete_views",
    "embedded_stack",
    "prepare_worker",
    "run_api",
    "run_worker",
    "wait_for_interrupt",
]

log = logging.getLogger(__name__)


def prepare_worker(settings: Settings) -> None:
    """Create the worker's topics and refuse state that is ahead of its log."""
    bootstrap = settings.kafka_bootstrap
    if bootstrap is None:
        raise ConfigurationError(
            "`creditflow worker` needs CREDITFLOW_KAFKA_BOOTSTRAP (host:port of Kafka); "
            "`creditflow up` starts an embedded broker instead"
        )
    kafka_admin.ensure_topics(
        bootstrap,
        {
            ROUTED_TOPIC: settings.partitions,
            REJECTED_TOPIC: settings.partitions,
            SIGNALS_TOPIC: settings.partitions,
            SIGNAL_STATE_TOPIC: settings.partitions,
        },
        {
            SIGNALS_TOPIC: {"retention.ms": str(settings.signal_retention_days * 86_400_000)},
            # one record per enterprise is all a restore needs (agents/signal_restore.py)
            SIGNAL_STATE_TOPIC: {"cleanup.policy": "compact", "retention.ms": "-1"},
        },
    )
    actual = kafka_admin.topic_partitions(bootstrap)[ROUTED_TOPIC]
    if actual != settings.partitions:
        raise ConfigurationError(
            f"{ROUTED_TOPIC} has {actual} partitions but CREDITFLOW_PARTITIONS is "
            f"{settings.partitions}; they must agree"
        )
    _check_state_against_log(settings, bootstrap)


def _check_state_against_log(settings: Settings, bootstrap: str) -> None:
    from engine.runtime.worker import state_dir
    from state.ledger_types import META_KEY, Progress
    from state.rocksdb import read_key

    ends = kafka_admin.high_watermarks(bootstrap, ROUTED_TOPIC, settings.partitions)
    for partition, end in enumerate(ends):
        path = state_dir(settings, partition)
        if not path.exists():
            continue
        # Read-only: another worker of this machine may hold the partition right now.
        next_offset = Progress.decode(read_key(path, META_KEY)).next_offset
        if next_offset > end and not kafka_admin.offset_exists(
            bootstrap, ROUTED_TOPIC, partition, next_offset - 1
        ):
            raise StateError(
                f"state of partition {partition} resumes at offset {next_offset} but "
                f"{ROUTED_TOPIC} ends at {end}: the topic was recreated or truncated. "
                f"Delete {path} to rebuild that partition from the log."
            )


def run_worker(settings: Settings) -> None:
    import faust

    from engine.runtime.worker import build_worker

    prepare_worker(settings)
    if settings.worker_nice:
        os.nice(settings.worker_nice)  # pulls first: a batch waits a millisecond, a lender not
    worker = build_worker(settings)
    _tune_garbage_collection()
    observe_gc_pauses(worker.registry)
    if settings.pseudonym_key_is_default:
        log.warning("CREDITFLOW_PSEUDONYM_KEY is the development default; set it in production")
    # Faust replaces the root logger's handlers when it starts: as text, with its own coloured
    # lines (as it always did); as JSON, with ours.
    faust.Worker(
        worker.app,
        loglevel=settings.log_level,
        quiet=True,
        logging_config=None
        if settings.log_format == "text"
        else logging_config(settings.log_format, settings.log_level),
    ).execute_from_commandline()


def _tune_garbage_collection() -> None:
    """Fewer, cheaper cyclic collections in a worker or the API.

    A worker holds millions of small long-lived objects (decoded month aggregates, Faust,
    the loaded specs) and allocates thousands more per step, nearly all freed by reference
    counting. With Python's default thresholds a full collection walked the whole heap every
    few steps: 10 % of the ledger's time during paced ingest (py-spy), and a pause of its
    own. What exists at start-up is frozen (never scanned again), and the young
    generations are collected less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_api(settings: Settings) -> None:
    import uvloop

    from engine.api.app import serve_api

    if settings.api_realtime_priority:
        realtime_priority(settings.api_realtime_priority, "the API")
    _tune_garbage_collection()  # a pull allocates hundreds of objects: see below
    # The broker's acknowledgements of query records reach the event loop from the Kafka
    # producer's thread, which waits for the interpreter lock: by default up to 5 ms while
    # the loop is busy, most of a pull's latency at 2,000 pulls/s.
    sys.setswitchinterval(_SWITCH_INTERVAL_SECONDS)
    uvloop.run(serve_api(settings))


_SWITCH_INTERVAL_SECONDS = 0.0005


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[ENV_PREFIX + name.upper()] = str(value)
    return env


def _port_or_free(port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()


@dataclass
class EmbeddedStack:
    settings: Settings  # what the children run with
    env: dict[str, str]
    stack: Stack
    worker: Child  # the worker that runs the ledger (and intake, unless split)
    api: Child
    intake: Child | None = None  # the intake worker, when the stages run apart
    intake_url: str | None = None  # its web port (metrics, readiness)
    access: Child | None = None  # the access worker, when the stages run apart
    access_url: str | None = None

    def restart_worker(self, kill: bool = False) -> None:
        """Stop the worker (SIGKILL when ``kill``) and start a new one with the same settings."""
        if kill:
            self.worker.kill()
        else:
            self.worker.stop()
        self.stack.children.remove(self.worker)
        log_path = self.worker.log_path
        self.worker = self.stack.add(spawn("worker", creditflow_argv("worker"), self.env, log_path))
        self.wait_ready(self.worker, self.worker_url)

    def restart_api(self, kill: bool = False) -> None:
        """Stop the API (SIGKILL when ``kill``) and start a new one with the same settings."""
        if kill:
            self.api.kill()
        else:
            self.api.stop()
        self.stack.children.remove(self.api)
        log_path = self.api.log_path
        self.api = self.stack.add(spawn("api", creditflow_argv("api"), self.env, log_path))
        wait_http(f"{self.api_url}/healthz", 60, self.api.process)

    def add_worker(self, name: str, **overrides: Any) -> tuple[Child, str]:
        """Start one more worker in the same consumer group (scale-out) and return it with
        its web URL at once (see :meth:`wait_ready`). It logs to ``logs/<name>.log``, gets its
        own web port, and runs the stack's settings with ``overrides`` (e.g. ``data_dir``).
        """
        update = {"worker_web_port": free_port(), **overrides}
        settings = self.settings.model_copy(update=update)
        env = {**self.env, **settings_env(settings)}
        log_path = self.stack.run_dir / "logs" / f"{name}.log"
        child = self.stack.add(spawn(name, creditflow_argv("worker"), env, log_path))
        return child, f"http://{settings.api_host}:{settings.worker_web_port}"

    def wait_ready(self, worker: Child, url: str, timeout: float = 120.0) -> None:
        """Until the worker at ``url`` answers /readyz; on failure the error quotes its log."""
        try:
            wait_http(f"{url}/readyz", timeout, worker.process)
        except EmbeddedServiceError as exc:
            log_path = worker.log_path
            text = log_path.read_text() if log_path is not None else ""
            tail = "\n".join(
                line
                for line in text.splitlines()
                if "rror" in line or "xception" in line or "raise" in line
            )[-3000:]
            raise EmbeddedServiceError(f"{exc}; the worker log ends with:\n{tail}") from exc

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def worker_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.worker_web_port}"


@contextlib.contextmanager
def embedded_stack(
    settings: Settings,
    banks: tuple[str, ...] = (),
    split_stages: bool = False,
    ready_timeout: float = 120.0,
) -> Iterator[EmbeddedStack]:
    """Broker (unless CREDITFLOW_KAFKA_BOOTSTRAP is set), Redis if needed, worker and API.

    ``split_stages``: intake and ledger run as two worker processes (CREDITFLOW_WORKER_STAGES).
    ``ready_timeout``: how long the ledger worker may take to be ready (it republishes the
    views of existing state first: minutes for a large one, loadtest/scale.py).

    With the embedded broker, whose log lives in memory, worker state and Redis keys are
    per run too (a temporary directory and a unique key prefix) and are removed at exit.
    """
    with Stack.temporary() as stack:
        logs = stack.run_dir / "logs"
        logs.mkdir()
        update: dict[str, Any] = {}
        if settings.kafka_bootstrap is None:
            bootstrap, broker = start_broker(logs / "broker.log")
            stack.add(broker)
            update["kafka_bootstrap"] = bootstrap
            update["data_dir"] = stack.run_dir / "state"
            update["redis_prefix"] = f"{settings.redis_prefix}-{secrets.token_hex(4)}"
        if not redis_reachable(settings.redis_url.get_secret_value(), settings.redis_cluster):
            redis_url, redis_child = start_redis(stack.run_dir, logs / "redis.log")
            stack.add(redis_child)
            update["redis_url"] = SecretStr(redis_url)
        update["api_port"] = _port_or_free(settings.api_port)
        update["worker_web_port"] = _port_or_free(settings.worker_web_port)
        child_settings = settings.model_copy(update=update)
        env = {**os.environ, **settings_env(child_settings)}
        assert child_settings.kafka_bootstrap is not None
        kafka_admin.ensure_topics(
            child_settings.kafka_bootstrap,
            {bank_topic(code): settings.partitions for code in banks},
        )
        kafka_admin.ensure_access_topics(
            child_settings.kafka_bootstrap,
            settings.partitions,
            settings.query_record_retention_days,
        )
        intake = access = None
        intake_url = access_url = ""
        if split_stages:
            intake, intake_url = _start_stage(stack, child_settings, env, "intake")
            access, access_url = _start_stage(stack, child_settings, env, "access")
            env = {**env, f"{ENV_PREFIX}WORKER_STAGES": "ledger"}
            child_settings = child_settings.model_copy(update={"worker_stages": "ledger"})
        worker = stack.add(spawn("worker", creditflow_argv("worker"), env, logs / "worker.log"))
        api = stack.add(spawn("api", creditflow_argv("api"), env, logs / "api.log"))
        running = EmbeddedStack(
            child_settings,
            env,
            stack,
            worker,
            api,
            intake,
            intake_url if intake else None,
            access,
            access_url if access else None,
        )
        try:
            wait_http(f"{running.api_url}/healthz", 60, api.process)
            wait_http(f"{running.worker_url}/readyz", ready_timeout, worker.process)
            if intake is not None and banks:  # without a bank it waits for the first
                wait_http(f"{intake_url}/readyz", 120, intake.process)
            if access is not None:
                wait_http(f"{access_url}/readyz", 120, access.process)
            yield running
        finally:
            stack.stop()  # the worker first: nothing may publish while its views are removed
            if "redis_prefix" in update and "redis_url" not in update:
                delete_views(child_settings)


def _start_stage(
    stack: Stack, settings: Settings, env: dict[str, str], stage: str
) -> tuple[Child, str]:
    """A worker process that runs one stage, with a web port of its own."""
    port = free_port()
    stage_env = {
        **env,
        f"{ENV_PREFIX}WORKER_STAGES": stage,
        f"{ENV_PREFIX}WORKER_WEB_PORT": str(port),
    }
    log_path = stack.run_dir / "logs" / f"{stage}.log"
    child = stack.add(spawn(stage, creditflow_argv("worker"), stage_env, log_path))
    return child, f"http://{settings.api_host}:{port}"


def wait_for_interrupt(stack: EmbeddedStack) -> None:
    """Block until Ctrl-C, or until the worker or the API dies."""
    import time

    try:
        while True:
            children = [stack.worker, stack.api, stack.intake, stack.access]
            for child in children:
                if child is not None and child.process.poll() is not None:
                    log.error(
                        "%s exited with code %s; see %s",
                        child.name,
                        child.process.returncode,
                        child.log_path,
                    )
                    return
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def delete_views(settings: Settings) -> None:
    """Remove every key under the settings' Redis prefix: views, access state, query index."""
    import asyncio

    from state.redis_client import connect_settings

    async def delete() -> None:
        client = connect_settings(settings)
        try:
            async for key in client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000):
                await client.delete(key)
        finally:
            await client.aclose()

    try:
        asyncio.run(delete())
    except Exception as exc:
        log.warning("could not remove this run's views from Redis: %s", exc)
