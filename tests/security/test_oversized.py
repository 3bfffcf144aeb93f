"""Oversized and crafted messages against the consume wrapper: refused, never stuck.

An oversized body is dead-lettered at once with its size in the reason, before anything
parses it (unit: a processor whose unit of work must never open; integration: a real
worker on RabbitMQ and Postgres with the default limit). The last two tests are holes the
fuzzing found (a 5,000-digit schema major version, a garbage x-one-attempt header), which
left a message unsettled; both are now dead-lettered.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from shared import topics
from shared.contracts.orders import OrderReceived
from shared.envelope import Envelope
from shared.messaging.consumer import MessageProcessor, Outcome, QueueConsumer, Route
from shared.messaging.topology import Names
from shared.metrics import Metrics
from shared.retry import RetryPolicy
from shared.settings import DEFAULT_MAX_MESSAGE_BYTES, CommonSettings
from shared.store import TransactionStore
from shared.worker import Context, Wiring, Worker
from tests.conftest import Stack
from tests.support.broker import publish_raw, wait_for_queue
from tests.support.orders import cloudevent, order_data


class NeverOpened:
    """A unit of work that fails the test if the processor ever opens it."""

    opened = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        self.opened += 1
        raise AssertionError("the database was reached")
        yield  # pragma: no cover


async def never_called(event: Envelope[Any], *, store: Any) -> None:
    raise AssertionError("the handler was reached")


def processor(limit: int = DEFAULT_MAX_MESSAGE_BYTES) -> MessageProcessor[Any]:
    routes = {topics.ORDER_RECEIVED: Route(OrderReceived, never_called)}
    return MessageProcessor(routes, NeverOpened(), max_message_bytes=limit)


def order_body(padding: int = 0) -> bytes:
    event = cloudevent(order_data("BC-BIG"), event_id="big-1")
    event["padding"] = "x" * padding  # an unknown envelope attribute: kept, never read
    return json.dumps(event).encode()


def test_the_setting_defaults_to_four_mebibytes() -> None:
    assert CommonSettings().max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 4 * 1024 * 1024
    assert CommonSettings(max_message_bytes=1000).max_message_bytes == 1000
    with pytest.raises(ValueError):
        CommonSettings(max_message_bytes=0)


async def test_a_body_over_the_limit_is_dead_before_parsing() -> None:
    body = b"\xff" * 1001  # not even UTF-8: the size alone decides
    outcome = await processor(limit=1000).process(body)
    assert outcome == Outcome.dead("message of 1001 bytes is over the limit of 1000 bytes")


async def test_a_body_at_the_limit_goes_on_to_parsing() -> None:
    outcome = await processor(limit=1000).process(b"\xff" * 1000)
    assert outcome.kind == "dead" and outcome.reason is not None
    assert outcome.reason.startswith("unparseable CloudEvent")


async def test_legitimate_large_messages_fit_the_default_limit() -> None:
    # accounts.created for a school's whole feed is about 200 KB, a directory.synced chunk
    # of 500 persons about 150 KB: far below the default.
    body = order_body(padding=1_000_000)
    refused = await processor().process(order_body(padding=DEFAULT_MAX_MESSAGE_BYTES))
    assert len(body) < DEFAULT_MAX_MESSAGE_BYTES
    assert refused.kind == "dead" and "over the limit" in str(refused.reason)


def order_worker(stack: Stack, migrations: Path, handler: Any) -> Worker:
    """A worker whose one route, order.received, runs ``handler``."""

    async def wire(_: Context) -> Wiring[TransactionStore]:
        return Wiring(
            routes={topics.ORDER_RECEIVED: Route(OrderReceived, handler)}, store=TransactionStore
        )

    return Worker(topics.ORDER_INTAKE, stack.settings(CommonSettings), migrations, wire)


async def test_a_worker_dead_letters_an_oversized_message_with_its_size(
    stack: Stack, channel: AbstractChannel, tmp_path: Path
) -> None:
    handled: list[str] = []

    async def handler(event: Envelope[Any], *, store: TransactionStore) -> None:
        handled.append(event.id)

    worker = order_worker(stack, tmp_path, handler)
    await worker.start()
    try:
        body = order_body(padding=DEFAULT_MAX_MESSAGE_BYTES)
        await publish_raw(channel, stack.exchange, topics.ORDER_RECEIVED, body)
        [dead] = await wait_for_queue(channel, stack.names.dead_letter_queue, timeout=30)
        assert dead.headers["x-one-reason"] == (
            f"message of {len(body)} bytes is over the limit of {DEFAULT_MAX_MESSAGE_BYTES} bytes"
        )
        assert dead.headers["x-one-topic"] == topics.ORDER_RECEIVED
        assert len(dead.body) == len(body)  # parked whole, for an operator to look at
        # The worker keeps going: the next (normal) message is applied.
        await publish_raw(channel, stack.exchange, topics.ORDER_RECEIVED, order_body())
        for _ in range(200):
            if handled:
                break
            await asyncio.sleep(0.05)
        assert handled == ["big-1"]
    finally:
        await worker.stop()


# --- Holes the fuzzing found, now closed --------------------------------------------------


async def test_a_dataschema_with_a_huge_major_version_is_dead_not_an_exception() -> None:
    event = cloudevent(order_data("BC-MAJOR"), event_id="major-1")
    event["dataschema"] = "urn:one:schema:order.received:" + "9" * 5000
    outcome = await processor().process(json.dumps(event).encode())
    assert outcome.kind == "dead"


class FakeMessage:
    def __init__(self, headers: dict[str, Any]) -> None:
        self.body = b"not json"
        self.headers = headers
        self.routing_key = topics.ORDER_RECEIVED
        self.content_type = "application/cloudevents+json"
        self.message_id = self.correlation_id = self.type = None
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append("nack")


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, exchange: str, routing_key: str, message: Any) -> None:
        self.sent.append(exchange)


def settling(publisher: FakePublisher, metrics: Metrics | None = None) -> QueueConsumer:
    """A consumer whose ``_settle`` is called by hand (it never touches its queue)."""
    return QueueConsumer(
        None,  # type: ignore[arg-type]
        processor(),
        publisher,  # type: ignore[arg-type]
        names=Names(exchange="t.events", prefix="t"),
        worker=topics.ORDER_INTAKE,
        retry_policy=RetryPolicy((1.0,), max_attempts=3),
        metrics=metrics,
    )


async def test_a_garbage_attempt_header_does_not_leave_the_message_unsettled() -> None:
    publisher = FakePublisher()
    consumer = settling(publisher)
    message = FakeMessage({"x-one-attempt": "not a number"})
    await consumer._settle(message)  # type: ignore[arg-type]
    assert message.settled == ["ack"] and publisher.sent  # dead-lettered, acknowledged
