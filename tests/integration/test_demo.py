"""`make demo` must keep working: a short run of the same command."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def _stack_processes() -> set[str]:
    found = subprocess.run(
        ["pgrep", "-f", r"engine\.cli (worker|api)|tansu.*broker|redis-server"],
        capture_output=True,
        text=True,
    )
    return set(found.stdout.split())


def test_a_short_demo_prints_both_products_and_stops_everything() -> None:
    before = _stack_processes()
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
    assert _stack_processes() <= before, "the demo left processes running"
