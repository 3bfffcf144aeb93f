"""The backbone on real RabbitMQ and Postgres: retries with backoff, dead-letters with
reasons, the inbox, the outbox relay with confirms and ``mandatory``."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from shared import db, topics
from shared.contracts.orders import OrderReceived, OrderRejected
from shared.envelope import Envelope, follow
from shared.errors import PermanentError, TransientError
from shared.messaging.consumer import Route
from shared.messaging.publisher import Outgoing, Publisher, open_publisher
from shared.messaging.relay import OutboxRelay
from shared.settings import CommonSettings
from shared.store import TransactionStore
from shared.worker import Context, Wiring, Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy, publish_raw, wait_for_queue
from tests.support.orders import cloudevent, order_data
from tools.waits import eventually

Behaviour = Callable[[int], None]  # raises to fail the n-th attempt (1-based)


class Recorder:
    """A handler whose failures the test scripts; it records each attempt."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.attempts: list[float] = []
        self.applied: list[str] = []

    async def __call__(self, event: Envelope[OrderReceived], *, store: TransactionStore) -> None:
        self.attempts.append(time.monotonic())
        self.behaviour(len(self.attempts))
        self.applied.append(event.id)
        rejected = OrderRejected(order_id=event.data.order_id, reasons=[])
        await store.emit(follow(event, rejected, source="urn:one:tests"))


@pytest.fixture
def empty_migrations(tmp_path: Path) -> Path:
    return tmp_path


async def start_worker(stack: Stack, recorder: Recorder, migrations: Path) -> Worker:
    async def wire(_: Context) -> Wiring[TransactionStore]:
        return Wiring(
            routes={topics.ORDER_RECEIVED: Route(OrderReceived, recorder)}, store=TransactionStore
        )

    worker = Worker(topics.ORDER_INTAKE, stack.settings(CommonSettings), migrations, wire)
    await worker.start()
    return worker


@pytest.fixture
async def run_with(stack: Stack, empty_migrations: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Worker] = []

    async def run(recorder: Recorder) -> Worker:
        worker = await start_worker(stack, recorder, empty_migrations)
        started.append(worker)
        return worker

    yield run
    for worker in started:
        await worker.stop()


async def send(channel: AbstractChannel, stack: Stack, event_id: str) -> None:
    event = cloudevent(order_data(f"BC-{event_id}"), event_id=event_id)
    await publish_raw(channel, stack.exchange, "order.received", json.dumps(event).encode())


def fail_first(times: int, error: Exception) -> Behaviour:
    def behaviour(attempt: int) -> None:
        if attempt <= times:
            raise error

    return behaviour


async def test_transient_failure_is_retried_with_growing_delays(stack, channel, run_with):
    recorder = Recorder(fail_first(2, TransientError("database away")))
    await run_with(recorder)
    spy = EventSpy()
    await spy.start(channel, stack.exchange, "order.rejected")
    await send(channel, stack, "r-1")

    await spy.wait_for("order.rejected")
    first, second, third = recorder.attempts
    # Tiers of the test stack: 0.3 s then 0.6 s.
    assert 0.25 <= second - first < 2.0
    assert second - first + 0.2 < third - second
    assert recorder.applied == ["r-1"]


async def test_retries_exhausted_go_to_dead_letter_with_reason(stack, channel, run_with):
    recorder = Recorder(fail_first(99, TransientError("smtp down")))
    await run_with(recorder)
    await send(channel, stack, "r-2")

    [dead] = await wait_for_queue(channel, stack.names.dead_letter_queue, timeout=30)
    assert len(recorder.attempts) == 4
    assert "gave up after 4 attempts" in str(dead.headers["x-one-reason"])
    assert "smtp down" in str(dead.headers["x-one-reason"])
    assert dead.headers["x-one-topic"] == "order.received"
    assert json.loads(dead.body)["id"] == "r-2"


async def test_permanent_failure_is_dead_lettered_at_once(stack, channel, run_with):
    recorder = Recorder(fail_first(99, PermanentError("school closed")))
    await run_with(recorder)
    await send(channel, stack, "r-3")

    [dead] = await wait_for_queue(channel, stack.names.dead_letter_queue)
    assert len(recorder.attempts) == 1
    assert dead.headers["x-one-reason"] == "PermanentError: school closed"


async def test_duplicate_message_takes_effect_once(stack, channel, run_with):
    recorder = Recorder(fail_first(0, RuntimeError()))
    worker = await run_with(recorder)
    for _ in range(3):
        await send(channel, stack, "r-4")
    await send(channel, stack, "r-5")

    await eventually(lambda: _async(recorder.applied.count("r-5") == 1), what="r-5 applied")
    await eventually(lambda: _async(worker._consumer.counts["duplicate"] == 2), what="2 dups")
    assert recorder.applied.count("r-4") == 1


async def test_effects_roll_back_with_a_failed_attempt(stack, channel, run_with):
    """A failure after emitting leaves no event behind: events commit with the effects."""
    recorder = Recorder(fail_first(1, TransientError("late failure")))

    async def emit_then(event: Envelope[OrderReceived], *, store: TransactionStore) -> None:
        await store.emit(
            follow(event, OrderRejected(order_id="early", reasons=[]), source="urn:one:tests")
        )
        await recorder(event, store=store)

    async def wire(_: Context) -> Wiring[TransactionStore]:
        return Wiring(
            routes={topics.ORDER_RECEIVED: Route(OrderReceived, emit_then)}, store=TransactionStore
        )

    worker = Worker(topics.ORDER_INTAKE, stack.settings(CommonSettings), Path("/nonexistent"), wire)
    await worker.start()
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange, "order.rejected")
        await send(channel, stack, "r-6")
        await spy.wait_for("order.rejected", count=2)
        await asyncio.sleep(0.5)
        # One attempt failed after emitting "early": only the successful one's 2 events.
        assert [e["data"]["order_id"] for e in spy.events].count("early") == 1
    finally:
        await worker.stop()


async def test_relay_keeps_unroutable_rows_until_they_can_be_published(stack, empty_migrations):
    worker = await start_worker(stack, Recorder(fail_first(0, RuntimeError())), empty_migrations)
    await worker.stop()  # schema and topology are in place; no relay of its own runs now
    pool = await db.create_pool(worker.database, min_size=1, max_size=2, service="test")
    connection = await aio_pika.connect(stack.services.amqp_url)
    try:
        relay = OutboxRelay(pool, await open_publisher(connection, stack.exchange))
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox (message_id, topic, correlationid, body)"
                " VALUES ('m-1', 'nobody.listens', 'c', '{}')"
            )
        # ``mandatory``: an unroutable publish fails and the row stays for later.
        with pytest.raises(aio_pika.exceptions.PublishError):
            await relay.flush_once()
        assert await relay.lag() == 1

        async with pool.acquire() as conn:
            await conn.execute("UPDATE outbox SET topic = 'order.rejected'")
        assert await relay.flush_once() == 1
        assert await relay.lag() == 0
        assert await relay.flush_once() == 0
    finally:
        await connection.close()
        await pool.close()


async def test_a_published_row_keeps_no_body_and_goes_after_its_retention(stack, empty_migrations):
    """An event's body (accounts.created holds activation codes) is dropped once the broker
    confirmed it; the row, what onectl trace reads, is deleted after the retention."""
    worker = await start_worker(stack, Recorder(fail_first(0, RuntimeError())), empty_migrations)
    await worker.stop()
    pool = await db.create_pool(worker.database, min_size=1, max_size=2, service="test")
    connection = await aio_pika.connect(stack.services.amqp_url)
    try:
        relay = OutboxRelay(
            pool, await open_publisher(connection, stack.exchange), retention_hours=1.0
        )
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox (message_id, topic, correlationid, body)"
                " VALUES ('secret-1', 'order.rejected', 'c', '{\"code\": \"abcd3456\"}'),"
                " ('old-1', 'order.rejected', 'c', '{}')"
            )
        assert await relay.flush_once() == 2
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT message_id, body FROM outbox ORDER BY seq")
            assert [(r["message_id"], r["body"]) for r in rows] == [
                ("secret-1", None),
                ("old-1", None),
            ]
            await conn.execute(
                "UPDATE outbox SET published_at = now() - interval '61 minutes'"
                " WHERE message_id = 'old-1'"
            )
        relay._last_purge = float("-inf")  # due now
        await relay._maybe_purge()
        async with pool.acquire() as conn:
            left = await conn.fetch("SELECT message_id FROM outbox")
        assert [r["message_id"] for r in left] == ["secret-1"]
    finally:
        await connection.close()
        await pool.close()


async def _async(value: Any) -> Any:
    return value


class RecordingPublisher(Publisher):
    """The real publisher, recording the size of each batch it is given."""

    def __init__(self, publisher: Publisher) -> None:
        super().__init__(publisher._channel, publisher._exchange)
        self.batches: list[int] = []

    async def publish_many(self, batch: Iterable[Outgoing]) -> None:
        outgoing = list(batch)
        self.batches.append(len(outgoing))
        await super().publish_many(outgoing)


async def test_a_busy_relay_publishes_a_stream_of_commits_in_one_batch(stack, empty_migrations):
    """After a quiet spell a row is published at once; rows committed one after another
    while the relay is busy wait ``linger`` and go out together."""
    worker = await start_worker(stack, Recorder(fail_first(0, RuntimeError())), empty_migrations)
    await worker.stop()  # schema and topology are in place; no relay of its own runs now
    pool = await db.create_pool(worker.database, min_size=1, max_size=2, service="test")
    connection = await aio_pika.connect(stack.services.amqp_url)
    stop = asyncio.Event()
    try:
        publisher = RecordingPublisher(await open_publisher(connection, stack.exchange))
        relay = OutboxRelay(pool, publisher, poll_seconds=30.0, linger_seconds=1.0)
        running = asyncio.create_task(relay.run(stop))

        async def commit(message_id: str) -> None:
            async with pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO outbox (message_id, topic, correlationid, body)"
                    " VALUES ($1, 'order.rejected', 'c', '{}')",
                    message_id,
                )
            relay.waker.wake()

        async def published() -> bool:
            return await relay.lag() == 0

        started = time.monotonic()
        await commit("quiet")
        await eventually(published, what="the quiet row published")
        assert time.monotonic() - started < 1.0  # not held back by the linger
        assert publisher.batches == [1]

        for n in range(5):  # the relay is busy now: these wait for one another
            await commit(f"stream-{n}")
            await asyncio.sleep(0.02)
        await eventually(published, what="the stream published")
        assert publisher.batches == [1, 5]
    finally:
        stop.set()
        await running
        await connection.close()
        await pool.close()


async def test_a_loop_that_dies_makes_the_worker_not_ready(stack, empty_migrations):
    """A worker's own loop (the delivery loop, the purge) ending on an error it did not
    catch is reported by readiness, not left to die in silence."""
    failing = asyncio.Event()

    async def fragile_loop(stop: asyncio.Event) -> None:
        await failing.wait()
        raise RuntimeError("template missing")

    async def wire(_: Context) -> Wiring[TransactionStore]:
        return Wiring(
            routes={topics.ORDER_RECEIVED: Route(OrderReceived, Recorder(lambda _: None))},
            store=TransactionStore,
            loops=[fragile_loop],
        )

    worker = Worker(topics.ORDER_INTAKE, stack.settings(CommonSettings), empty_migrations, wire)
    await worker.start()
    try:
        await eventually(lambda: _ready(worker), timeout=10, what="the worker ready")
        failing.set()

        async def reported() -> bool:
            problems = await worker.readiness()
            return any("fragile_loop" in k and "template missing" in v for k, v in problems.items())

        await eventually(reported, timeout=10, what="the dead loop reported")
    finally:
        await worker.stop()


async def _ready(worker: Worker) -> bool:
    return await worker.readiness() == {}
