"""Smoke run of loadtest.state_size, the state-size measurement (so that it never rots)."""

from __future__ import annotations

from loadtest.state_size import measure


def test_the_state_size_measurement_runs_and_adds_up() -> None:
    result = measure(enterprises=4, months=2)
    families = result["by_family"]
    assert result["enterprise_months"] == families["M"]["keys"] > 0
    assert families["L"]["keys"] >= result["events"] * 0.9  # duplicates are not recorded
    # Copied apart, each family compresses about as it does together.
    total = result["live_bytes_per_enterprise_month"]
    assert 0 < total <= sum(family["live"] for family in families.values()) * 1.5
    for family in ("L", "M"):
        assert 0 < families[family]["live"] < families[family]["raw"]
