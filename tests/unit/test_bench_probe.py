"""The benchmark's freshness probe must watch an enterprise of its own."""

from __future__ import annotations

from loadtest.bench import events_for, probe_enterprise


def test_freshness_probes_have_enterprises_no_data_set_has() -> None:
    # The seeds `make bench`'s data sets use: batch 1 + 10k, single 2 + 10k, paced 7,
    # sustained 8.
    seeds = (1, 2, 7, 8, 11, 12, 21, 22)
    generated = {e["enterprise_id"] for seed in seeds for e in events_for(seed, 20, 1)}
    probes = {probe_enterprise(seed) for seed in (1, 2, 3)}
    assert len(probes) == 3
    assert not probes & generated
