"""A TCP relay between one process and Redis that can hold back the answer to one request.

A fault scenario arms it with a command name (``MGET``); the next request naming it goes to
Redis, and Redis answers, but the answer stays in the relay (on that connection only) until
:meth:`RedisStall.release`. So a worker can be caught in the middle of a step, after Redis
has read what it asked for and before the worker has it, at a moment the scenario knows.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RedisStall"]

_CHUNK = 65536


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    holding: bool = False
    held: list[bytes] = field(default_factory=list)


class RedisStall:
    def __init__(self, redis_host: str, redis_port: int) -> None:
        self._target = (redis_host, redis_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._armed: bytes | None = None
        self.holding = threading.Event()  # set once an answer is held
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def arm(self, command: str) -> None:
        """Hold the answer to the next request naming ``command`` (RESP, as redis-py sends)."""
        name = command.upper().encode()
        with self._lock:
            self._armed = b"$%d\r\n%s\r\n" % (len(name), name)
            self.holding.clear()

    def release(self) -> None:
        """Send what was held, and relay freely from now on."""
        with self._lock:
            self._armed = None
            for link in self._links:
                if link.holding:
                    link.holding = False
                    with contextlib.suppress(OSError):
                        link.client.sendall(b"".join(link.held))
                    link.held.clear()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for link in self._links:
                for sock in (link.client, link.server):
                    with contextlib.suppress(OSError):
                        sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self._target)
            except OSError:
                return
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._requests, args=(link,), daemon=True).start()
            threading.Thread(target=self._answers, args=(link,), daemon=True).start()

    def _requests(self, link: _Link) -> None:
        _relay(link.client, link.server, lambda data: self._arm(link, data))

    def _answers(self, link: _Link) -> None:
        _relay(link.server, link.client, lambda data: self._hold(link, data))

    def _arm(self, link: _Link, request: bytes) -> bool:
        with self._lock:
            # Marked before the request leaves: its answer cannot come back first.
            if self._armed is not None and self._armed in request.upper():
                link.holding, self._armed = True, None
        return True

    def _hold(self, link: _Link, answer: bytes) -> bool:
        """Whether the answer goes on now (else it is held until released)."""
        with self._lock:
            if link.holding:
                link.held.append(answer)
                self.holding.set()
                return False
        return True


def _relay(source: socket.socket, sink: socket.socket, passes: Callable[[bytes], bool]) -> None:
    """Copy ``source`` to ``sink`` until it closes, what ``passes`` lets through."""
    while True:
        try:
            data = source.recv(_CHUNK)
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            return
        if passes(data):
            with contextlib.suppress(OSError):
                sink.sendall(data)
