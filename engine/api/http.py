"""A lean HTTP/1.1 server for the API's few GET routes: httptools parses, an asyncio protocol
frames the responses.

Why not aiohttp: a cached pull is a dictionary look-up, and aiohttp's request, routing and
response objects cost 116 us of CPU per pull on this machine against 24 to 34 us for this
server returning the same 4 KB body (loadtest.pulls at 2,000 pulls/s, one process each; a
Rust server, granian's RSGI, cost 100 us, its threads handing every request to Python).
On two cores shared with the workers and the broker, that CPU is latency.

What it does: keep-alive (HTTP/1.1 by default, ``Connection: close`` honoured), requests of
one connection answered in order (pipelining), HEAD as GET without the body, a ``Date``
header, 400 for what does not parse, idle connections closed after ``KEEPALIVE_SECONDS``,
and a graceful stop. What it does not: request bodies (ignored), chunked responses,
upgrades, TLS (a proxy in front terminates it).

The application is one callable, ``dispatch(method, path)``, that returns a
:class:`Response` at once (a cached pull) or an awaitable of one (anything that reads
Redis); the server never creates a task for the first kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

import httptools

__all__ = ["KEEPALIVE_SECONDS", "Dispatch", "HttpServer", "Response"]

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 75.0  # as aiohttp's default
_MAX_URL_BYTES = 8192
_MAX_QUEUED = 32  # pipelined requests waiting on one connection before it stops reading


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


Dispatch = Callable[[str, str], Response | Awaitable[Response]]  # (method, path)


class HttpServer:
    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._heads: dict[tuple[int, str, bool], bytes] = {}
        self._date = b""
        self._ticker: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._tick()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop accepting, let answers in progress finish (up to ``grace_seconds``), close."""
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + grace_seconds
        while any(c.busy for c in self._connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self._connections):
            connection.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    def _tick(self) -> None:
        """Once a second: the Date header, and idle connections closed."""
        self._date = formatdate(usegmt=True).encode()
        self._heads.clear()
        idle_since = time.monotonic() - KEEPALIVE_SECONDS
        for connection in list(self._connections):
            if not connection.busy and connection.last_active < idle_since:
                connection.close()
        self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)

    def head(self, status: int, content_type: str, length: int, keep_alive: bool) -> bytes:
        key = (status, content_type, keep_alive)
        prefix = self._heads.get(key)
        if prefix is None:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = "Unknown"
            prefix = self._heads[key] = (
                f"HTTP/1.1 {status} {reason}\r\nServer: creditflow\r\nDate: ".encode()
                + self._date
                + f"\r\nContent-Type: {content_type}\r\n".encode()
                + (b"" if keep_alive else b"Connection: close\r\n")
                + b"Content-Length: "
            )
        return prefix + str(length).encode() + b"\r\n\r\n"


_BAD_REQUEST = Response(400, b'{"error":{"code":"bad_request","message":"malformed request"}}')
_INTERNAL = Response(500, b'{"error":{"code":"internal","message":"internal error"}}')


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed as they come, answered in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._queue: deque[tuple[str, str, bool]] = deque()  # waiting behind an async answer
        self._answering: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._closing = False
        self.last_active = time.monotonic()

    @property
    def busy(self) -> bool:
        return self._answering is not None or bool(self._queue)

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # An answer in progress is not cancelled (aiohttp's default too): it may be a Redis
        # read that concurrent pulls of the same product share; its result is dropped.
        self._server._connections.discard(self)
        self._closing = True
        self._queue.clear()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail()
        except httptools.HttpParserError:
            self._fail()

    def pause_writing(self) -> None:  # the client does not read: stop reading from it too
        self._pause_reading()

    def resume_writing(self) -> None:
        self._resume_reading()

    # -- httptools callbacks ------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_URL_BYTES:
            raise httptools.HttpParserError("URL too long")

    def on_message_complete(self) -> None:
        url, self._url = self._url, b""
        method = self._parser.get_method().decode("ascii", "replace")
        keep_alive = self._parser.should_keep_alive()
        try:
            raw_path = httptools.parse_url(url).path or b"/"
            path = raw_path.decode("utf-8")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            self._queue_or_answer("", "", keep_alive)  # answered 400 in turn
            return
        self._queue_or_answer(method, unquote(path) if "%" in path else path, keep_alive)

    # -- answering --------------------------------------------------------------------

    def _queue_or_answer(self, method: str, path: str, keep_alive: bool) -> None:
        if self._answering is not None or self._queue:
            self._queue.append((method, path, keep_alive))
            if len(self._queue) >= _MAX_QUEUED:
                self._pause_reading()
            return
        self._answer(method, path, keep_alive)

    def _answer(self, method: str, path: str, keep_alive: bool) -> None:
        """Answer now if the application can; else in a task, the queue waiting behind it."""
        if not method:
            self._write(_BAD_REQUEST, False, False)
            return
        try:
            result = self._server._dispatch(method, path)
        except Exception:
            log.exception("request failed")
            result = _INTERNAL
        if isinstance(result, Response):
            self._write(result, keep_alive, method == "HEAD")
            return
        self._answering = asyncio.ensure_future(self._later(result, keep_alive, method == "HEAD"))

    async def _later(self, pending: Awaitable[Response], keep_alive: bool, head: bool) -> None:
        try:
            response = await pending
        except Exception:
            log.exception("request failed")
            response = _INTERNAL
        self._answering = None
        self._write(response, keep_alive, head)
        while self._queue and self._answering is None and not self._closing:
            self._answer(*self._queue.popleft())
        if not self._queue:
            self._resume_reading()

    def _write(self, response: Response, keep_alive: bool, head: bool) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        body = response.body
        header = self._server.head(response.status, response.content_type, len(body), keep_alive)
        transport.write(header if head else header + body)
        self.last_active = time.monotonic()
        if not keep_alive:
            self.close()

    def _fail(self) -> None:
        """A request that does not parse: 400, and the connection closes (its framing is lost)."""
        self._queue.clear()
        self._write(_BAD_REQUEST, False, False)
        self.close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self._closing:
            self._reading_paused = False
            self._transport.resume_reading()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            if self._transport is not None:
                self._transport.close()
