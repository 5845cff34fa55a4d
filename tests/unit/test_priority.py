"""Real-time priority for the API and the pull client (engine/runtime/priority.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _in_child(priority: int) -> str:
    """(granted, policy after) of realtime_priority(priority) in a process of its own."""
    code = (
        "import os; from engine.runtime.priority import realtime_priority; "
        f"granted = realtime_priority({priority}, 'a test'); "
        "print(granted, os.sched_getscheduler(0) == os.SCHED_FIFO)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="real-time scheduling needs CAP_SYS_NICE")
def test_the_process_runs_under_sched_fifo() -> None:
    assert _in_child(10) == "True True"


def test_a_refusal_leaves_the_process_as_it_was() -> None:
    # 100 is beyond SCHED_FIFO's range: refused on any system, whoever asks.
    assert _in_child(100) == "False False"
