"""`make demo` must keep working: a short run of the same command."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def _left_running(tag: str) -> list[str]:
    """Processes still running with the demo's tag in their environment: the demo's own
    descendants, whoever else runs a stack on the machine (their children inherit it)."""
    marker = f"DEMO_TEST_TAG={tag}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if marker in variables:
            found.append(environ.parent.name)
    return found


def test_a_short_demo_prints_both_products_and_stops_everything() -> None:
    tag = secrets.token_hex(8)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "demo",
            "--enterprises",
            "20",
            "--months",
            "4",
            "--seconds",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "DEMO_TEST_TAG": tag},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "资金流信用信息明细汇总" in out and "资金流信用信息报告" in out
    for item in ("inflow_amount_fen", "流入金额", "closing_balance_fen", "期末余额"):
        assert item in out
    # Working pulls: an institution's token and the enterprise's authorization.
    assert out.count("curl -s -H 'Authorization: Bearer cf1.") == 2
    assert out.count("?authorization=") == 2
    assert "everything it started has stopped" in out
    assert not _left_running(tag), "the demo left processes running"
