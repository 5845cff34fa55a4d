"""A ledger step that fails for good (issue 17, fault 6): two valid bank events whose apply
raises in the ledger worker (a bug, planted in that worker alone). Each partition must go on
without its poisoned event after the failures in a row (CREDITFLOW_LEDGER_SET_ASIDE_AFTER_
FAILURES, 5), the operator must see it (the metric, an ERROR line with the coordinates and
no enterprise id, the event in txns.rejected as apply_failed with its original), and the
documented way out must lose nothing: once the worker runs without the bug, `creditflow
rejects --reason apply_failed --replay` publishes the events again and every product equals
the reference over the whole log."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine import codec
from engine.events.partitioner import partition_for
from engine.events.rejects import read_rejects, replay_rejects
from engine.runtime.embedded import Child
from engine.runtime.observe import worker_samples
from engine.runtime.runner import EmbeddedStack, embedded_stack
from tests import reference
from tests.faults.conftest import FAULT_MARKS
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    assert_products,
    generated_log,
    module_settings,
    publish_by_bank,
    wait_until,
)

pytestmark = [*FAULT_MARKS, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]

# Loaded by the ledger worker at start-up (sitecustomize, through PYTHONPATH): applying a
# poisoned transaction raises half-way, once the rows before it in its message are applied,
# as a bug in the ledger would. The worker started after the "fix" runs without it.
_BUG = """
import state.ledger as _ledger

_POISONED = {poisoned!r}
_apply_rows = _ledger.PartitionLedger._apply_rows


def _with_a_bug(self, rows):
    for index, row in enumerate(rows):
        if row[_ledger._ID] in _POISONED:
            _apply_rows(self, rows[:index])
            raise ZeroDivisionError("a bug planted by tests/faults/test_poisoned_row.py")
    return _apply_rows(self, rows)


_ledger.PartitionLedger._apply_rows = _with_a_bug
"""


def _log() -> list[dict[str, Any]]:
    return generated_log(71, 40, 2026 * 12 + 5, datetime(2026, 7, 1, tzinfo=UTC))


def _poisoned(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two plain events (no reversal, none reverses them, sent once), one of each bank, in two
    routed partitions, from the middle of the log: their partitions go on after them."""
    sent: dict[tuple[str, str], int] = {}
    reversed_ids = {(e["bank"], e.get("reversal_of")) for e in log}
    for e in log:
        sent[e["bank"], e["txn_id"]] = sent.get((e["bank"], e["txn_id"]), 0) + 1
    chosen: list[dict[str, Any]] = []
    for e in log[len(log) // 3 :]:
        key = (e["bank"], e["txn_id"])
        if "reversal_of" in e or key in reversed_ids or sent[key] != 1:
            continue
        if chosen and (
            e["bank"] == chosen[0]["bank"]
            or partition_for(e["enterprise_id"], PARTITIONS)
            == partition_for(chosen[0]["enterprise_id"], PARTITIONS)
        ):
            continue
        chosen.append(e)
        if len(chosen) == 2:
            return chosen
    raise AssertionError("no two events to poison")


@pytest.fixture(scope="module")
def stack(
    own_redis: tuple[str, Child, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    """The stages apart, JSON logs; the ledger worker starts with the bug planted."""
    bug = tmp_path_factory.mktemp("bug")
    poisoned = {e["txn_id"] for e in _poisoned(_log())}
    (bug / "sitecustomize.py").write_text(_BUG.format(poisoned=poisoned))
    path = os.pathsep.join(p for p in (str(bug), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    settings = module_settings(
        "poison", redis_url=own_redis[0], batch_max_messages=20, log_format="json"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", path)  # the stack's children inherit it
        with embedded_stack(settings, banks=BANKS, split_stages=True) as running:
            patch.undo()
            yield running


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        try:
            record = codec.loads(line)
        except codec.DecodeError:
            continue  # the broker's, or a line of Faust's banner
        if isinstance(record, dict):
            yield record


def _set_aside(stack: EmbeddedStack) -> float:
    samples = worker_samples(stack.worker_url).get("creditflow_ledger_set_aside_total", {})
    return sum(samples.values())


def _lag(stack: EmbeddedStack) -> float:
    samples = worker_samples(stack.worker_url).get("creditflow_partition_lag_messages", {})
    return sum(samples.values()) if len(samples) == PARTITIONS else -1.0


def test_a_row_that_always_fails_is_set_aside_and_replayed_once_fixed(
    stack: EmbeddedStack,
) -> None:
    log = _log()
    poisoned = _poisoned(log)
    without = [e for e in log if e not in poisoned]
    expected = reference.products(log)
    expected_without = reference.products(without)
    assert expected_without != expected, "the poisoned events must show in the products"
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None

    publish_by_bank(stack, log)
    # Every partition goes on: every product but the poisoned events, nothing stuck behind.
    assert_products(stack, expected_without, timeout=150)
    wait_until(lambda: _lag(stack) == 0, 30, "every partition to reach the end of its log")
    assert _set_aside(stack) == 2

    # The operator's view: one ERROR line each, with the coordinates, no enterprise id.
    assert stack.worker.log_path is not None
    text = stack.worker.log_path.read_text()
    lines = list(_json_lines(text))
    set_aside = [r for r in lines if "set aside" in r.get("event", "")]
    assert len(set_aside) == 2, set_aside
    failed = [r for r in lines if "ledger step failed" in r.get("event", "")]
    for record in set_aside:  # each after its step's 5 failures (one line a try)
        assert sum(r["time"] < record["time"] for r in failed) >= 5, "set aside too soon"
    first, last = (datetime.fromisoformat(r["time"]) for r in (failed[0], set_aside[-1]))
    print(
        f"{len(failed)} failed ledger steps; both set aside {(last - first).total_seconds():.1f} s"
    )
    for record in set_aside:
        assert record["level"] == "ERROR" and record["error"] == "ZeroDivisionError"
        assert record["topic"] == "creditflow.txns.routed.v1"
        assert isinstance(record["partition"], int) and isinstance(record["offset"], int)
        assert record["source"]["topic"] in {f"bank.{e['bank']}.txns" for e in poisoned}
    assert {r["partition"] for r in set_aside} == {
        partition_for(e["enterprise_id"], PARTITIONS) for e in poisoned
    }
    for e in poisoned:
        assert e["enterprise_id"] not in text, "an enterprise id in the worker's log"

    # The rejects topic holds each poisoned event once per place, with its original.
    records = {
        (r["source"]["topic"], r["source"]["offset"], r["source"]["index"]): r
        for r in read_rejects(bootstrap)
        if r["reason"] == "apply_failed"
    }
    assert len(records) == 2, records
    for record in records.values():
        original = codec.loads(record["original"])
        [event] = [e for e in poisoned if e["txn_id"] == original["txn_id"]]
        assert record["stage"] == "ledger" and "ZeroDivisionError" in record["detail"]
        assert record["source"]["topic"] == f"bank.{event['bank']}.txns"
        for field in ("enterprise_id", "booked_at", "amount_fen", "direction", "account"):
            assert original[field] == event[field], field

    # The way out: the worker without the bug, then the documented replay.
    if "PYTHONPATH" in os.environ:
        stack.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    else:
        del stack.env["PYTHONPATH"]
    stack.restart_worker()
    replayed, left = replay_rejects(bootstrap, "apply_failed")
    assert (replayed, left) == (2, [])
    assert_products(stack, expected, timeout=120)
    assert _set_aside(stack) == 0  # the new worker: created at 0, nothing set aside again
