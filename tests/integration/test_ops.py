"""A worker's /healthz, /readyz and /metrics, and its pause while Postgres is away.

The outage is real at the TCP level: the worker reaches Postgres through a proxy the test
owns; closing it refuses new connections and cuts the open ones, as a stopped server would.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractChannel
from prometheus_client.parser import text_string_to_metric_families

from services.order_intake.bootstrap import build
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy, drain_queue, publish_raw, wait_for_queue
from tests.support.orders import cloudevent, order_data
from tools.waits import eventually

WORKER = topics.ORDER_INTAKE


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``close`` is an outage, ``open`` the end of it."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.port = 0  # chosen at the first open, kept after
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when the server is gone
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()
        self._writers.discard(sink)


@pytest.fixture
async def proxy(stack: Stack) -> AsyncIterator[TcpProxy]:
    running = TcpProxy(stack.services.pg_host, stack.services.pg_port)
    await running.open()
    yield running
    await running.close()


@pytest.fixture
async def start() -> AsyncIterator[Callable[[OrderIntakeSettings], Awaitable[Worker]]]:
    started: list[Worker] = []

    async def run(settings: OrderIntakeSettings) -> Worker:
        worker = build(settings)
        await worker.start()
        started.append(worker)
        return worker

    yield run
    for worker in started:
        await worker.stop()


async def get(worker: Worker, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{worker.ops_port}{path}") as response,
    ):
        return response.status, await response.text()


async def metric(worker: Worker, name: str, **labels: str) -> float:
    """One sample of /metrics (0 when the series does not exist yet)."""
    status, text = await get(worker, "/metrics")
    assert status == 200
    wanted = {"worker": WORKER, **labels}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return sample.value
    return 0.0


async def send_order(channel: AbstractChannel, stack: Stack, n: int) -> None:
    # A school of its own per order: each one opens it and invoices it.
    event = cloudevent(order_data(f"OPS-{n}", number=1000 + n), event_id=f"ops-{n}")
    await publish_raw(channel, stack.exchange, "order.received", json.dumps(event).encode())


async def queued(channel: AbstractChannel, stack: Stack) -> int:
    # Not robust: a robust channel would hand back its cached queue and its stale count.
    queue = await channel.declare_queue(stack.names.work_queue(WORKER), passive=True, robust=False)
    return int(queue.declaration_result.message_count or 0)


async def holds(check: Callable[[], Awaitable[bool]], *, seconds: float, what: str) -> None:
    """``check`` stays true for ``seconds`` (a window of observation, not a wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await check(), what
        await asyncio.sleep(0.05)


async def test_health_readiness_and_metrics_count_what_happened(stack, channel, start):
    worker = await start(stack.settings(OrderIntakeSettings, ops_port=0))
    assert worker.ops_port
    assert await get(worker, "/healthz") == (200, json.dumps({"status": "alive"}))
    status, body = await get(worker, "/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready"})

    spy = EventSpy()
    await spy.start(channel, stack.exchange)
    for n in (1, 2, 3):
        await send_order(channel, stack, n)
    await publish_raw(channel, stack.exchange, "order.received", b"{not json")

    await spy.wait_for("invoice.issued", count=3)
    await spy.wait_for("school.initialised", count=3)
    [dead] = await wait_for_queue(channel, stack.names.dead_letter_queue)
    assert str(dead.headers["x-one-reason"]).startswith("unparseable CloudEvent")

    topic = {"topic": "order.received"}

    async def all_counted() -> bool:
        return await metric(worker, "one_consumed_total", **topic, outcome="dead") == 1

    await eventually(all_counted, what="the poison message counted")
    assert await metric(worker, "one_consumed_total", **topic, outcome="applied") == 3
    assert await metric(worker, "one_consumed_total", **topic, outcome="duplicate") == 0
    assert await metric(worker, "one_consumed_total", **topic, outcome="retry") == 0
    assert await metric(worker, "one_dead_lettered_total", **topic) == 1
    assert await metric(worker, "one_retried_total", **topic) == 0
    assert await metric(worker, "one_handler_seconds_count", **topic) == 4
    assert await metric(worker, "one_published_total", topic="school.initialised") == 3
    assert await metric(worker, "one_published_total", topic="invoice.issued") == 3
    assert await metric(worker, "one_published_total", topic="order.rejected") == 0

    async def outbox_empty() -> bool:
        return await metric(worker, "one_outbox_lag") == 0

    await eventually(outbox_empty, what="outbox lag 0")
    assert await metric(worker, "one_outbox_oldest_seconds") == 0
    assert await metric(worker, "one_db_pool_size") >= 1
    assert (
        0 <= await metric(worker, "one_db_pool_in_use") <= await metric(worker, "one_db_pool_size")
    )
    assert await metric(worker, "one_consumer_paused") == 0

    await worker.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(worker, "/healthz")


async def test_two_workers_in_one_process_keep_their_own_metrics(stack, channel, start):
    first = await start(stack.settings(OrderIntakeSettings, ops_port=0))
    second = await start(stack.settings(OrderIntakeSettings, ops_port=0))
    assert first.ops_port != second.ops_port
    await send_order(channel, stack, 1)

    async def applied_once() -> bool:
        counts = [
            await metric(w, "one_consumed_total", topic="order.received", outcome="applied")
            for w in (first, second)
        ]
        return sorted(counts) == [0, 1]

    await eventually(applied_once, what="one worker of two applied it")


async def test_database_outage_pauses_consuming_and_loses_nothing(
    stack, channel, start, proxy: TcpProxy
):
    settings = stack.settings(
        OrderIntakeSettings,
        ops_port=0,
        database_url=f"postgresql://127.0.0.1:{proxy.port}/{stack.database}",
        database_check_seconds=0.2,
    )
    worker = await start(settings)
    spy = EventSpy()
    await spy.start(channel, stack.exchange)
    await send_order(channel, stack, 1)
    await spy.wait_for("invoice.issued")
    assert (await get(worker, "/readyz"))[0] == 200

    await proxy.close()  # Postgres is away

    async def not_ready() -> dict[str, Any] | None:
        status, body = await get(worker, "/readyz")
        return json.loads(body) if status == 503 else None

    report = await eventually(not_ready, what="/readyz 503")
    assert report["status"] == "not ready"
    assert "database" in report["problems"]

    async def paused() -> bool:
        return await metric(worker, "one_consumer_paused") == 1

    await eventually(paused, what="consumer paused")
    status, body = await get(worker, "/readyz")
    assert status == 503
    assert json.loads(body)["problems"]["consumer"].startswith("paused")
    assert (await get(worker, "/healthz"))[0] == 200  # alive all along
    assert await metric(worker, "one_ready") == 0  # what WorkerNotReady alerts on

    for n in (2, 3, 4):
        await send_order(channel, stack, n)

    async def waiting_in_queue() -> bool:
        return await queued(channel, stack) == 3

    await eventually(waiting_in_queue, what="3 orders waiting in the queue")
    # Several checks of the database later, they still wait: no attempt spent on them.
    await holds(waiting_in_queue, seconds=1.5, what="orders left in the queue while paused")

    await proxy.open()  # Postgres is back

    async def ready() -> bool:
        return (await get(worker, "/readyz"))[0] == 200

    await eventually(ready, what="/readyz 200 again")

    async def four_invoices() -> dict[str, str] | None:
        # The outbox publishes at least once: an invoice published just before Postgres
        # went away, and not yet marked, is published again with the same id once it is
        # back (consumers drop the copy by its id).
        by_id = {i["id"]: i["data"]["order_id"] for i in spy.of_type("invoice.issued")}
        return by_id if len(by_id) >= 4 else None

    by_id = await eventually(four_invoices, what="four invoices")
    assert sorted(by_id.values()) == [f"OPS-{n}" for n in (1, 2, 3, 4)]
    assert await metric(worker, "one_consumer_paused") == 0
    assert await metric(worker, "one_ready") == 1
    topic = {"topic": "order.received"}
    assert await metric(worker, "one_consumed_total", **topic, outcome="applied") == 4
    assert await metric(worker, "one_retried_total", **topic) == 0
    assert await metric(worker, "one_dead_lettered_total", **topic) == 0
    assert await drain_queue(channel, stack.names.dead_letter_queue) == []

    async def queue_empty() -> bool:  # the broker's count follows the acks shortly
        return await queued(channel, stack) == 0

    await eventually(queue_empty, what="the queue emptied")
    conn = await stack.admin()
    try:
        assert await conn.fetchval("SELECT count(*) FROM order_intake.orders") == 4
        assert await conn.fetchval("SELECT count(*) FROM order_intake.inbox") == 4
    finally:
        await conn.close()


def test_each_worker_has_its_own_default_ops_port() -> None:
    """The four workers started on one host with their defaults do not collide."""
    from services.account_manager.settings import AccountManagerSettings
    from services.credential_dispatch.settings import CredentialDispatchSettings
    from services.directory_sync.settings import DirectorySyncSettings

    defaults = {
        cls.model_fields["ops_port"].default
        for cls in (
            OrderIntakeSettings,
            DirectorySyncSettings,
            AccountManagerSettings,
            CredentialDispatchSettings,
        )
    }
    assert defaults == {8001, 8002, 8003, 8004}


async def test_a_taken_ops_port_stops_the_worker_with_one_clear_line() -> None:
    """A second worker on a port already listened on exits at start (code 2) with one log
    line naming ONE_OPS_PORT, not a traceback; before reaching the broker or Postgres."""
    import os
    import socket
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.order_intake",
            env={**os.environ, "ONE_OPS_PORT": str(port), "ONE_AMQP_URL": "amqp://nowhere:1/"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    [taken_line] = [r for r in lines if r.get("event") == "ops_port_taken"]
    assert taken_line["setting"] == "ONE_OPS_PORT" and taken_line["port"] == port
    assert "Traceback" not in out.decode() + err.decode()
