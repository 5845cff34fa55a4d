"""`python -m loadtest.memory` must keep working: a tiny run writes its series and, with
``--trace``, the ledger worker's holders (the debug hook in loadtest/memtrace/). Never judged
on the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.loadtools,  # make loadtools: about 20 s more than make test can spare
    pytest.mark.timeout(300),
]


def test_the_tiny_memory_run_samples_the_worker_and_its_holders(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    env = {**os.environ, "MEMTRACE_DELAY_SECONDS": "0", "MEMTRACE_SECONDS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.memory",
            "--enterprises=10",
            "--repeats=1",
            "--rate=200",
            "--seconds=3",
            "--sustained=2",
            "--trace",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["worker_rss_peak_mb"] > 0
    assert {"burst 1", "paced", "sustained"} <= result["peak_by_phase_mb"].keys()
    assert result["judged_enterprises"] > 0
    lines = [json.loads(line) for line in out.with_suffix(".trace.jsonl").read_text().splitlines()]
    assert lines, "the ledger worker's hook wrote nothing"
    assert all(line["rss_mb"] > 0 for line in lines)
    assert any("signals digests" in line["holders_mb"] for line in lines)
    assert lines[-1]["pymalloc"]["allocated_mb"] > 0
