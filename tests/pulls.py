"""A lender's credit system pulling products while a fault happens (tests/faults/ and the
Redis Cluster test): every answer must be the exact product, or a 503 with a JSON error, in
time; anything else is a problem the test reports."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from engine import codec
from engine.runtime.runner import EmbeddedStack
from tests.compare import same
from tests.integration.conftest import reader, wait_signals_judged, wait_until, with_signal_days

__all__ = ["Puller"]


class Puller:
    """A lender's credit system pulling every product in turn, as fast as answers come,
    checking each answer as it arrives."""

    def __init__(
        self,
        stack: EmbeddedStack,
        expected: dict[str, dict[str, dict[str, Any]]],
        max_pull_seconds: float,
    ) -> None:
        lender = reader(stack, expected)
        # the signal items count the episodes the worker kept once it has judged the data
        wait_signals_judged(stack)
        expected = dict(with_signal_days(stack, expected))
        self._max_pull_seconds = max_pull_seconds
        self._requests = [
            (
                urllib.request.Request(
                    stack.api_url
                    + lender.path(enterprise_id, "quarterly" if "Q" in label else "monthly", label),
                    headers=dict(lender.headers),
                ),
                items,
            )
            for enterprise_id, periods in sorted(expected.items())
            for label, items in sorted(periods.items())
        ]
        self.statuses: dict[int, int] = {}
        self.problems: list[str] = []
        self.unavailable: dict[str, int] = {}  # 503 answers by error code
        self.slowest = 0.0
        self._served_at = [0.0] * len(self._requests)  # when each was last answered 200
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="puller", daemon=True)

    def __enter__(self) -> Puller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def all_served_since(self, moment: float) -> bool:
        return min(self._served_at) >= moment

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Until ``check`` holds; on timeout, fail with what the pulls were answered."""
        try:
            wait_until(check, timeout, what)
        except AssertionError as exc:
            statuses = sorted(self.statuses.items())
            pytest.fail(f"{exc}; answers so far {statuses}, problems {self.problems[:5]}")

    def _run(self) -> None:
        while not self._stop.is_set():
            for index, (request, items) in enumerate(self._requests):
                if self._stop.is_set():
                    return
                if self._pull(request, items):
                    self._served_at[index] = time.monotonic()

    def _pull(self, request: urllib.request.Request, items: dict[str, Any]) -> bool:
        """Whether ``request`` was answered with its exact product."""
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:  # no answer at all (a hang that timed out, a reset)
            status, raw = 0, repr(exc).encode()
        took = time.monotonic() - started
        self.slowest = max(self.slowest, took)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        where = request.full_url.split("/v1/", 1)[1].split("?", 1)[0]
        if took > self._max_pull_seconds:
            self.problems.append(f"{where}: {status} after {took:.1f} s")
        if status == 200:
            served: dict[str, Any] = {}
            for segment in codec.loads(raw)["segments"]:
                served.update(segment["items"])
            wrong = [k for k, want in items.items() if not same(want, served.get(k))]
            if not wrong:
                return True
            # A 200 must be the exact product, never a partly rebuilt one.
            self.problems.append(f"{where}: 200 with wrong {wrong[:3]}")
        elif status == 503:
            error = codec.loads(raw).get("error", {})
            if not error.get("code") or not error.get("message"):
                self.problems.append(f"{where}: 503 without a JSON error: {raw[:200]!r}")
            self.unavailable[error.get("code")] = self.unavailable.get(error.get("code"), 0) + 1
        else:  # 404 ("no data") for a product that has data, 500, 401, a hang...
            self.problems.append(f"{where}: {status} {raw[:200]!r}")
        return False
