"""Real-time priority for the API and the pull client (engine/runtime/priority.py)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path


def _in_child(priority: int) -> str:
    """(granted, policy after) of realtime_priority(priority) in a process of its own."""
    code = (
        "import os; from engine.runtime.priority import realtime_priority; "
        f"granted = realtime_priority({priority}, 'a test'); "
        "print(granted, os.sched_getscheduler(0) == os.SCHED_FIFO)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.strip()


_CAP_SYS_NICE = 23  # linux/capability.h


def _may_raise_priority() -> bool:
    """Whether this process holds CAP_SYS_NICE (root without it may not; a user with it may),
    or an RLIMIT_RTPRIO that allows priority 10."""
    status = Path("/proc/self/status").read_text()
    effective = int(
        next(line for line in status.splitlines() if line.startswith("CapEff:"))[7:], 16
    )
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return bool(effective >> _CAP_SYS_NICE & 1) or soft == resource.RLIM_INFINITY or soft >= 10


def test_the_process_runs_under_sched_fifo_when_allowed_and_is_unchanged_when_not() -> None:
    expected = "True True" if _may_raise_priority() else "False False"
    assert _in_child(10) == expected


def test_a_refusal_leaves_the_process_as_it_was() -> None:
    # 100 is beyond SCHED_FIFO's range: refused on any system, whoever asks.
    assert _in_child(100) == "False False"
