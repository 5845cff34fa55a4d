"""The garbage collection pause histogram."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from engine.metrics import observe_gc_pauses


def _count(registry: CollectorRegistry, generation: int) -> float:
    value = registry.get_sample_value(
        "creditflow_gc_pause_seconds_count", {"generation": str(generation)}
    )
    assert value is not None
    return value


def test_each_collection_is_timed_under_its_generation() -> None:
    registry = CollectorRegistry()
    callbacks = list(gc.callbacks)
    enabled = gc.isenabled()
    gc.disable()  # only the collections below: an automatic one between them would count too
    try:
        observe_gc_pauses(registry)
        assert [_count(registry, g) for g in range(3)] == [0, 0, 0]
        gc.collect(1)
        gc.collect(2)
        gc.collect(2)
    finally:
        gc.callbacks[:] = callbacks  # the callback is process-wide: leave none behind
        if enabled:
            gc.enable()
    assert _count(registry, 1) >= 1 and _count(registry, 2) >= 2
    pauses = registry.get_sample_value("creditflow_gc_pause_seconds_sum", {"generation": "2"})
    assert pauses is not None and pauses > 0
