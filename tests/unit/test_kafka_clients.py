"""librdkafka's own log lines go through Python logging, never raw to stderr.

A raw ``%6|...|BGQUEUE|rdkafka#producer-1|`` line in the API's JSON log broke
test_every_process_logs_one_json_object_a_line in CI; every client of ours takes its config
from engine/events/kafka_clients.py.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest
from confluent_kafka import Producer

from engine.events.kafka_clients import client_config


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nobody listens


def test_librdkafka_complaints_reach_logging_not_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    producer = Producer(client_config(bootstrap, {"reconnect.backoff.ms": 10}))
    with caplog.at_level(logging.DEBUG, logger="librdkafka"):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not caplog.records:
            producer.poll(0.1)  # serves librdkafka's log queue, as our clients' polls do
    producer.flush(0)
    assert any(r.name == "librdkafka" for r in caplog.records), "no librdkafka record logged"
    assert "rdkafka#producer" not in capfd.readouterr().err
