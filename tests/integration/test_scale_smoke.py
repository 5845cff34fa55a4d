"""`python -m loadtest.scale` must keep working: a tiny run writes every field, never judged
on timings or against the issue's thresholds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


def test_the_tiny_scale_run_writes_every_field(tmp_path: Path) -> None:
    result_path = tmp_path / "scale.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.scale",
            "--enterprises=20",
            "--months=2",
            "--rate=200",
            "--seconds=3",
            f"--data-dir={tmp_path / 'data'}",
            f"--result={result_path}",
        ],
        capture_output=True,
        text=True,
        timeout=150,
        env=dict(os.environ),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(result_path.read_text())
    assert json.loads(run.stdout.strip().splitlines()[-1]) == result  # the printed line
    assert (result["enterprises"], result["months"]) == (20, 2)
    assert 0 < result["enterprise_months"] <= 20 * 2
    assert result["events"] >= result["enterprise_months"]
    assert result["rejected"] == 0
    assert result["state_bytes_per_enterprise_month"] > 0
    split = result["state_split_partition_0_bytes_per_enterprise_month"]
    assert split["enterprise_months"] == 0 or split["ledger"] > 0 < split["months"]
    assert 0 < result["traffic_events"] <= result["traffic_events_written"]
    assert 0 < result["traffic_enterprises"] <= 20
    for name in ("ledger_worker", "intake_worker", "api"):
        assert 0 < result[f"{name}_rss_mb"] <= result[f"{name}_peak_rss_mb"], name
    assert 0 < result["redis_view_keys"] <= 20
    assert result["redis_bytes_per_enterprise_month"] > 0
    assert result["limits"]["rocksdb_block_cache_bytes"] > 0
    assert result["machine"]["cores"] >= 1
    assert len(result["git_commit"]) == 40 or result["git_commit"] == "unknown"
    assert result["started_at"][:2] == "20"
    assert not (tmp_path / "data").exists()  # removed without --keep
