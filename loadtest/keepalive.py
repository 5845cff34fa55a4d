"""GETs over one persistent HTTP/1.1 connection: the bench's probes poll the API with it.

A new connection per poll (urllib) cost the probing process about a millisecond of CPU each,
taken from the very cores whose lag it measures.
"""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

from engine import codec

__all__ = ["KeepAlive"]


class KeepAlive:
    """GETs over one persistent HTTP/1.1 connection, reopened after an error."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._headers = headers
        self._connection: http.client.HTTPConnection | None = None

    def get(self, path: str) -> Any:
        """The decoded JSON body of a 200 answer, or None (any other answer, or an error)."""
        try:
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=5)
            self._connection.request("GET", path, headers=self._headers)
            response = self._connection.getresponse()
            body = response.read()
            return codec.loads(body) if response.status == 200 else None
        except (OSError, http.client.HTTPException, codec.DecodeError):
            self.close()
            return None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
