"""Product pulls at a target rate, spread over enterprises with a Zipf skew (open loop).

    python -m loadtest.pulls URLS_FILE RATE SECONDS [CONNECTIONS] [--warm] [--realtime]

URLS_FILE holds one URL per line (one host), most popular first; the i-th is pulled with
weight 1 / (i + 1). Prints one JSON line: requests, errors, answered pulls per second, and
the p50 / p99 / max latency in milliseconds of the pulls that succeeded.

Open loop: the i-th pull is due at ``start + i / RATE`` whatever happened before. Pulls are
sent on a 1 ms tick (the event loop's timers have millisecond resolution), so a pull is
written up to a tick after it was due; its latency counts from that write, unless it had
to wait for a free connection, when it counts from the moment it was due (no coordinated
omission). The tick's own lag is reported apart (``send_lag_p99_ms``). A pull that
fails, answers other than 200, or takes longer than 2 s is an error. With ``--warm`` every
URL is pulled once before the measured run (a first pull renders the product, one to five
milliseconds of the API's CPU; the run then measures lenders pulling again).

With ``--realtime`` the client runs at real-time priority (SCHED_FIFO, engine/runtime/priority.py):
lenders pull from machines of their own, and on the machine it measures the client's own
wait for a core would count as the API's latency (its send lag p99 was 15 to 18 ms at
normal priority during ingest, 1.4 ms at real-time priority). ``client_realtime`` says
whether it got it.

The client is deliberately lean: it shares two cores with the API it measures, the
worker and the broker. Each of a fixed set of keep-alive HTTP/1.1 connections
(asyncio protocols, uvloop) carries one request at a time, written from pre-encoded
bytes; a response is read only as far as its status line and Content-Length. Measured
here: 77 us of CPU per pull (mostly the two system calls), against 200 us for the aiohttp
client this replaced.
"""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import time
from typing import cast
from urllib.parse import urlsplit

import uvloop

from engine import codec
from engine.runtime.priority import realtime_priority

__all__ = ["run"]

_TIMEOUT_SECONDS = 2.0
_TICK_SECONDS = 0.001
_CLIENT_PRIORITY = 10  # real-time priority with --realtime (the bench gives the API the same)


class _Pull(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, done: collections.abc.Callable[[_Pull, bool], None]) -> None:
        self._done = done
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._need = -1  # bytes of the whole response, once the headers are in
        self._ok = False
        self.since = 0.0  # where the latency of the request in flight counts from
        self.busy = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.busy:
            self.busy = False
            self._done(self, False)

    def send(self, request: bytes, since: float) -> None:
        assert self._transport is not None and not self.busy
        self.busy, self.since = True, since
        self._buffer.clear()
        self._need = -1
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._need < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).lower()
            self._ok = head.startswith(b"http/1.1 200")
            marker = head.find(b"content-length:")
            if marker < 0:  # our API always sends one; anything else is an error here
                self._fail()
                return
            line_end = head.find(b"\r\n", marker)
            length = head[marker + 15 : line_end if line_end >= 0 else len(head)]
            self._need = end + 4 + int(length)
        if len(self._buffer) >= self._need:
            self.busy = False
            self._done(self, self._ok)

    def _fail(self) -> None:
        if self._transport is not None:
            self._transport.close()


_HEADER = "header "  # a line of the URL file that holds a request header


async def run(
    urls: list[str],
    rate: float,
    seconds: float,
    connections: int = 32,
    seed: int = 1,
    warm: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    parts = urlsplit(urls[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    requests = [
        f"GET {_target(url)} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
        for url in urls
    ]
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(urls))]
    total = int(rate * seconds)
    chosen = rng.choices(range(len(urls)), weights, k=total)
    latencies: list[float] = []
    errors = 0
    waiting: collections.deque[tuple[int, float]] = collections.deque()  # (url index, due)
    idle: list[_Pull] = []

    def done(pull: _Pull, ok: bool) -> None:
        nonlocal errors
        latency = time.perf_counter() - pull.since
        if ok and latency <= _TIMEOUT_SECONDS:
            latencies.append(latency)
        else:
            errors += 1
        if pull.closed.done():
            return
        if waiting:
            index, due = waiting.popleft()
            pull.send(requests[index], due)
        else:
            idle.append(pull)

    pulls: list[_Pull] = []
    for _ in range(connections):
        _, pull = await loop.create_connection(lambda: _Pull(done), host, port)
        pulls.append(pull)
        idle.append(pull)
    if warm:
        waiting.extend((index, 0.0) for index in range(len(urls)))
        for _ in range(min(len(idle), len(waiting))):
            index, _due = waiting.popleft()
            idle.pop().send(requests[index], time.perf_counter())
        while waiting or any(p.busy for p in pulls):
            await asyncio.sleep(_TICK_SECONDS)
        latencies.clear()
        errors = 0

    lags: list[float] = []
    begin = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        while sent < total and begin + sent / rate <= now:
            due = begin + sent / rate
            lags.append(now - due)
            while idle and idle[-1].closed.done():  # closed by the server while idle
                idle.pop()
            if idle:
                idle.pop().send(requests[chosen[sent]], now)
            else:  # every connection is busy: the wait counts
                waiting.append((chosen[sent], due))
            sent += 1
        await asyncio.sleep(_TICK_SECONDS)
    deadline = time.perf_counter() + _TIMEOUT_SECONDS
    while (waiting or any(p.busy for p in pulls)) and time.perf_counter() < deadline:
        await asyncio.sleep(_TICK_SECONDS)
    elapsed = time.perf_counter() - begin
    errors += len(waiting) + sum(1 for p in pulls if p.busy)  # never answered in time
    for pull in pulls:
        pull._fail()
    ordered = sorted(latencies)
    lags.sort()

    def percentile(q: float, values: list[float] = ordered) -> float:
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    return {
        "requests": total,
        "errors": errors,
        "qps": len(latencies) / elapsed if elapsed else 0.0,  # answered pulls per second
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": percentile(1.0),
        "send_lag_p99_ms": percentile(0.99, lags),
    }


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def main(argv: list[str]) -> None:
    warm = "--warm" in argv
    realtime = "--realtime" in argv and realtime_priority(_CLIENT_PRIORITY, "the pull client")
    argv = [arg for arg in argv if arg not in ("--warm", "--realtime")]
    headers: dict[str, str] = {}
    urls: list[str] = []
    with open(argv[0], encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(_HEADER):  # e.g. the bearer token: kept out of argv
                name, _, value = line[len(_HEADER) :].partition(":")
                headers[name.strip()] = value.strip()
            elif line:
                urls.append(line)
    connections = int(argv[3]) if len(argv) > 3 else 32
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(
            run(urls, float(argv[1]), float(argv[2]), connections, warm=warm, headers=headers)
        )
    print(codec.dumps({**result, "client_realtime": realtime}).decode(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
