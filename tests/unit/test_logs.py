"""CREDITFLOW_LOG_FORMAT=json: every record one JSON object a line, with the fields a log
search filters on (time, level, component, event) and the partition and offsets where a
record concerns them; an unknown format is refused like any bad setting."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from agents import retry
from engine import codec
from engine.cli.main import main
from engine.logs import configure_logging
from engine.metrics import WorkerMetrics
from engine.settings import ENV_PREFIX, Settings


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None = b'[{"enterprise_id": "91350100M000100Y43"}]'


@pytest.fixture
def json_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The root logger configured as a process with CREDITFLOW_LOG_FORMAT=json configures
    it, writing to a buffer; restored afterwards (pytest has handlers of its own there)."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("json", "info")
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_a_failed_ledger_step_logs_one_json_line_with_its_coordinates(
    json_stderr: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry, "_FIRST_DELAY_SECONDS", 0.0)
    batch = [_Message("creditflow.txns.routed.v1", 3, offset) for offset in (12, 10, 11)]
    tries = 0

    async def step(messages: list[_Message]) -> int:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise OSError("disk full")
        return len(messages)

    metrics = WorkerMetrics(CollectorRegistry())
    assert asyncio.run(retry.until_done(step, batch, "ledger", metrics, retry.coordinates)) == 3

    lines = json_stderr.getvalue().splitlines()
    assert len(lines) == 1, lines  # the traceback is inside the object, not on lines of its own
    record = codec.loads(lines[0])
    assert record["level"] == "ERROR"
    assert record["component"] == "agents.retry"
    assert record["event"] == "ledger step failed; retrying the same batch in 0.0 s"
    assert datetime.fromisoformat(record["time"]).utcoffset() is not None
    assert record["stage"] == "ledger"
    assert record["topic"] == "creditflow.txns.routed.v1"
    assert record["partition"] == 3
    assert record["offsets"] == {"3": [10, 12]}
    assert "OSError: disk full" in record["exc_info"]
    assert "91350100M000100Y43" not in lines[0]  # offsets, never the messages' contents


def test_a_batch_over_several_partitions_has_no_single_partition() -> None:
    batch = [_Message("creditflow.txns.routed.v1", p, o) for p, o in ((1, 5), (2, 7), (1, 6))]
    fields = retry.coordinates(batch)
    assert fields == {
        "offsets": {"1": [5, 6], "2": [7, 7]},
        "topic": "creditflow.txns.routed.v1",
    }


def test_a_partition_log_call_carries_partition_and_offsets(json_stderr: io.StringIO) -> None:
    logging.getLogger("agents.ledger").warning(
        "partition %d: state at offset %d, log at %d; seeking again",
        5,
        100,
        140,
        extra={"partition": 5, "offset": 100, "end_offset": 140},
    )
    record = codec.loads(json_stderr.getvalue())
    assert record["event"] == "partition 5: state at offset 100, log at 140; seeking again"
    assert (record["partition"], record["offset"], record["end_offset"]) == (5, 100, 140)
    assert (record["level"], record["component"]) == ("WARNING", "agents.ledger")


def test_text_stays_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(f"{ENV_PREFIX}LOG_FORMAT", raising=False)
    assert Settings().log_format == "text"


def test_an_unknown_log_format_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}LOG_FORMAT", "yaml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()
    assert main(["bank", "list"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "log_format" in err and "'json'" in err


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_ids_in_an_exception_message_are_masked(
    log_format: Literal["json", "text"], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A traceback carries the exception's message, which no log call controls: a KeyError
    on a ledger key names the enterprise, a ValueError may name a person."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(log_format, "info")
    try:
        try:
            raise KeyError("L|91350100M000100Y43|BANK0001|T1 paid 11010519491231002X")
        except KeyError:
            logging.getLogger("agents.retry").exception("ledger step failed")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    written = stream.getvalue()
    assert "KeyError" in written and "ledger step failed" in written
    assert "91350100M000100Y43" not in written and "11010519491231002X" not in written
    assert "L|<id>|BANK0001|T1 paid <id>" in written
    assert "BANK0001|T1" in written  # what is not an id stays readable
