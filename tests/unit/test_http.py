"""The API's HTTP server (engine/api/http.py) over real sockets: framing, order, keep-alive."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Awaitable, Iterator

import pytest

from engine.api.http import HttpServer, Response
from engine.runtime.embedded import free_port


async def _slow(path: str) -> Response:
    await asyncio.sleep(0.05)
    return Response(200, f"slow {path}".encode(), "text/plain")


def _dispatch(method: str, path: str) -> Response | Awaitable[Response]:
    if path.startswith("/slow"):
        return _slow(path)  # answered later, by a coroutine
    if path == "/boom":
        raise RuntimeError("a bug")
    return Response(200, f"{method} {path}".encode(), "text/plain")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    loop = asyncio.new_event_loop()
    server = HttpServer(_dispatch)
    started = threading.Event()

    async def run() -> None:
        await server.start("127.0.0.1", port)
        started.set()
        while not stopping.is_set():
            await asyncio.sleep(0.02)
        await server.stop()

    stopping = threading.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    assert started.wait(5)
    yield port
    stopping.set()
    thread.join(5)
    loop.close()


def _raw(port: int, request: bytes, wait: float = 0.5) -> bytes:
    """Send raw bytes, read until the server closes or ``wait`` passes."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_keep_alive_serves_many_requests_on_one_connection(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for k in range(3):
        connection.request("GET", f"/x/{k}?q=1")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == f"GET /x/{k}".encode()  # the query is not part of the path
        assert response.getheader("Content-Type") == "text/plain"
        assert response.getheader("Date")
    connection.close()


def test_pipelined_requests_are_answered_in_order_whichever_is_slow(port: int) -> None:
    request = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for path in ("/a", "/slow/b", "/c")
    )
    reply = _raw(port, request + b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    bodies = [part.split(b"\r\n\r\n", 1)[1][:20] for part in reply.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b.split(b"HTTP")[0] for b in bodies] == [
        b"GET /a",
        b"slow /slow/b",
        b"GET /c",
        b"GET /d",
    ]
    assert b"Connection: close" in reply.rsplit(b"HTTP/1.1", 1)[1]


def test_head_has_the_length_of_get_and_no_body(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("HEAD", "/abc")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Length") == str(len("HEAD /abc"))
    assert response.read() == b""
    connection.close()


def test_percent_encoded_paths_are_decoded(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/a%20b")
    assert connection.getresponse().read() == b"GET /a b"
    connection.close()


def test_a_malformed_request_gets_400_and_the_connection_closes(port: int) -> None:
    reply = _raw(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in reply


def test_a_failing_application_gets_500_and_the_server_goes_on(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/boom")
    response = connection.getresponse()
    assert response.status == 500 and b"internal" in response.read()
    connection.request("GET", "/after")
    assert connection.getresponse().read() == b"GET /after"
    connection.close()


def test_a_client_that_leaves_during_a_slow_answer_harms_nobody(port: int) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"GET /slow/x HTTP/1.1\r\nHost: x\r\n\r\n")  # and gone before the answer
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/slow/y")
    assert connection.getresponse().read() == b"slow /slow/y"
    connection.close()
