"""The API's Kafka producer (confluent-kafka), awaited from asyncio.

librdkafka sends from its own threads; a thread of ours serves its delivery reports and
hands each to the event loop. ``send`` returns once the broker has acknowledged the message
(acks=all, idempotent) or raises ``DeliveryError``: the API never answers as if a record
were written when it is not. linger.ms is 0: a query record waits for no batch (measured on
the embedded broker at 2,000 records/s: p50 0.30 ms, p99 0.45 ms with 0; 1.6 and 2.4 ms
with 1).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from engine.events.kafka_clients import client_config

__all__ = ["AsyncProducer", "DeliveryError"]


class DeliveryError(Exception):
    """The broker did not acknowledge a message in time."""


class AsyncProducer:
    def __init__(self, bootstrap: str, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._config = client_config(
            bootstrap,
            {
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 0,
                # librdkafka gives up on a message after this; the caller's own wait is the
                # same, so a request is answered (503) within it.
                "message.timeout.ms": max(1, int(timeout_seconds * 1000)),
            },
        )
        self._producer = Producer(self._config)
        self._fenced = False  # the broker refuses this producer for good: make a new one
        self._retired: list[Producer] = []  # replaced producers, freed by the poll thread
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._producer.flush(2)

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)
            while self._retired:
                # Here, not on the event loop: freeing a producer waits for its messages.
                self._retired.pop().flush(self._timeout)

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> tuple[int, int]:
        """(partition, offset) of the message once the broker has it."""
        loop = self._loop
        assert loop is not None, "start() the producer first"
        future: asyncio.Future[tuple[int, int]] = loop.create_future()

        if self._fenced:
            self._replace()

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None and (error.fatal() or error.code() in _FENCED):
                self._fenced = True
            loop.call_soon_threadsafe(_settle, future, error, message)

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError as exc:
            raise DeliveryError(f"the producer's queue is full: {exc}") from exc
        try:
            async with asyncio.timeout(self._timeout):  # cheaper than wait_for: no task
                return await future
        except TimeoutError as exc:
            raise DeliveryError(f"no acknowledgement within {self._timeout} s") from exc

    def _replace(self) -> None:
        """A new producer (a new producer id) for one the broker fenced.

        An idempotent producer whose message timed out bumps its epoch; the embedded broker
        (Tansu 0.6) then refuses it with PRODUCER_FENCED, for every message after: after a
        broker pause of a few seconds the API answered 503 to every pull until it was
        restarted (issue 17, fault 1).
        """
        self._retired.append(self._producer)
        self._producer = Producer(self._config)
        self._fenced = False


_FENCED = (KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


def _settle(
    future: asyncio.Future[tuple[int, int]], error: KafkaError | None, message: Message
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(DeliveryError(str(error)))
    else:
        future.set_result((message.partition() or 0, message.offset() or 0))
