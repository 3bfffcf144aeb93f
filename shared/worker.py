"""The skeleton every worker's composition root fills in.

A worker names its schema and migrations and gives a ``wire`` function that builds its
routes, its store and any loops of its own from a ready ``Context``. ``Worker`` does the
rest in one order for all: provision and migrate the schema, connect to the broker, declare
the topology, run the outbox relay and the planner statistics loop, consume; and on stop,
the reverse, draining first.

Beside those, every worker serves /healthz, /readyz and /metrics (``shared.ops``) on
``ops_port``, and watches its database: while Postgres does not answer it stops consuming
(the messages wait in the queue instead of burning their attempts) and reports itself not
ready, then consumes again by itself once Postgres answers.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg

from shared import db
from shared.db import Connection
from shared.errors import describe
from shared.logs import get_logger
from shared.messaging import cluster, topology
from shared.messaging.consumer import MessageProcessor, QueueConsumer, Route
from shared.messaging.publisher import Publisher, open_publisher
from shared.messaging.relay import OutboxRelay
from shared.metrics import Metrics
from shared.ops import OpsServer
from shared.runtime import Waker
from shared.settings import CommonSettings
from shared.statistics import StatisticsLoop
from shared.store import EventStore

log = get_logger(__name__)
S = TypeVar("S", bound=EventStore)
Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
# How long a readiness or outage check waits for ``SELECT 1``, and for the broker to
# cancel or restart the consumer.
DATABASE_TIMEOUT = 2.0
SWITCH_TIMEOUT = 10.0


@dataclass
class Context:
    settings: CommonSettings
    pool: asyncpg.Pool
    publisher: Publisher
    names: topology.Names
    relay: OutboxRelay
    database: db.Database  # for a worker that needs a pool of its own beside ``pool``
    metrics: Metrics  # a worker's own series go in ``metrics.registry``


@dataclass
class Wiring(Generic[S]):
    routes: dict[str, Route[S]]
    store: Callable[[Connection], S]
    loops: list[Loop] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Set the worker's own gauges just before a scrape of /metrics.
    before_scrape: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def unit_of_work(
    pool: asyncpg.Pool, store: Callable[[Connection], S]
) -> Callable[[], AbstractAsyncContextManager[S]]:
    @asynccontextmanager
    async def begin() -> AsyncIterator[S]:
        async with pool.acquire() as conn, conn.transaction():
            yield store(conn)

    return begin


class Worker:
    def __init__(
        self,
        name: str,
        settings: CommonSettings,
        migrations: Path,
        wire: Callable[[Context], Awaitable[Wiring[Any]]],
    ) -> None:
        self.name = name
        self.settings = settings
        self._migrations = migrations
        self._wire = wire
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped_loops: dict[str, str] = {}  # loop -> why it ended before the worker
        self._connection: cluster.ClusterConnection | None = None
        self._pool: asyncpg.Pool | None = None
        self._consumer: QueueConsumer | None = None
        self._relay: OutboxRelay | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._scrape_hooks: list[Callable[[], Awaitable[None]]] = []
        self._stopping = False
        # Poked by the consume wrapper when a handler lost its connection: check now.
        self._database_check = Waker(settings.database_check_seconds)
        self.metrics = Metrics(name)
        self._ops = OpsServer(
            settings.ops_host,
            settings.ops_port,
            readiness=self.readiness,
            metrics=self.metrics,
            before_scrape=self.refresh_metrics,
        )
        self.context: Context | None = None

    @property
    def ops_port(self) -> int | None:
        """The port /healthz, /readyz and /metrics are served on, once started."""
        return self._ops.port

    @property
    def broker_node(self) -> str | None:
        """The broker address the worker is connected to now (no password), if any."""
        connection = self._connection
        if connection is None or not connection.connected.is_set():
            return None
        return connection.node

    @property
    def database(self) -> db.Database:
        s = self.settings
        return db.Database(
            url=s.database_url,
            role=s.database_role or f"one_{self.name}",
            schema=self.name,
            password=s.database_password,
        )

    @property
    def names(self) -> topology.Names:
        return topology.Names(exchange=self.settings.exchange, prefix=self.settings.topology_prefix)

    async def start(self) -> None:
        # Alive (and saying why it is not ready) from the first moment.
        await self._ops.start()
        try:
            await self._start()
        except BaseException:
            await self._ops.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        if s.database_admin_url:
            await db.provision(s.database_admin_url, self.database)
        self._pool = await db.create_pool(
            self.database, min_size=s.db_pool_min, max_size=s.db_pool_max, service=self.name
        )
        await db.migrate(self._pool, self.name, db.BACKBONE_MIGRATIONS, self._migrations)

        self._connection = await cluster.connect(s.broker_addresses, name=self.name)
        queue = await topology.open_worker(
            self._connection,
            self.names,
            self.name,
            delivery_limit=s.delivery_limit,
            retry_delays=s.retry_delays,
            prefetch=s.prefetch,
        )
        publisher = await open_publisher(self._connection, s.exchange)
        self._relay = OutboxRelay(
            self._pool,
            publisher,
            batch=s.outbox_batch,
            poll_seconds=s.outbox_poll_seconds,
            linger_seconds=s.outbox_linger_seconds,
            retention_hours=s.outbox_retention_hours,
            retry_policy=s.outbox_retry,
            metrics=self.metrics,
        )
        self.context = Context(
            s, self._pool, publisher, self.names, self._relay, self.database, self.metrics
        )
        wiring = await self._wire(self.context)
        self._closers = wiring.closers
        self._scrape_hooks = wiring.before_scrape

        relay = self._relay
        wakers = [relay.waker.wake, *wiring.after_commit]

        def wake_all() -> None:  # committed work is waiting: no need to wait for a poll
            for wake in wakers:
                wake()

        processor = MessageProcessor(
            wiring.routes,
            unit_of_work(self._pool, wiring.store),
            after_commit=wake_all,
            on_connection_error=self._database_check.wake,
            max_message_bytes=s.max_message_bytes,
        )
        self._consumer = QueueConsumer(
            queue,
            processor,
            publisher,
            names=self.names,
            worker=self.name,
            retry_policy=s.message_retry,
            metrics=self.metrics,
        )
        # Every worker's own tables keep planner statistics through a burst of writes.
        statistics = StatisticsLoop(
            self._pool,
            interval_seconds=s.statistics_interval_seconds,
            min_changes=s.statistics_min_changes,
            share=s.statistics_share,
        )
        for loop in [relay.run, self._watch_database, statistics.run, *wiring.loops]:
            name = getattr(loop, "__qualname__", repr(loop))
            task = asyncio.create_task(loop(self._stop), name=name)
            task.add_done_callback(self._loop_ended)
            self._tasks.append(task)
        await self._consumer.start()

    def _loop_ended(self, task: "asyncio.Task[None]") -> None:
        """A loop ends when the worker stops, or at once when it has nothing to do. One
        that ends on an error it did not catch leaves its work undone: the worker says so
        and is no longer ready, so that its orchestrator restarts it rather than let it
        run on without the loop."""
        if task.cancelled() or self._stop.is_set():
            return
        error = task.exception()
        if error is None:
            return  # a loop with nothing to do here (the nightly one, switched off)
        why = describe(error)
        self._stopped_loops[task.get_name()] = why
        log.error("loop_stopped", loop=task.get_name(), error=why)

    async def stop(self) -> None:
        self._stopping = True
        if self._consumer is not None:
            await self._consumer.stop(self.settings.drain_seconds)
        self._stop.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self.settings.drain_seconds)
            # Loops still busy past the drain are cancelled before their resources close
            # under them: their claimed work stays claimed and comes back when its lease ends.
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._relay is not None:
            await self._relay.drain(timeout=5.0)
        for close in reversed(self._closers):
            await close()
        if self._connection is not None:
            await self._connection.close()
        if self._pool is not None:
            await self._pool.close()
        await self._ops.stop()

    async def readiness(self) -> dict[str, str]:
        """What keeps the worker from doing its work, by component; empty when ready."""
        problems: dict[str, str] = {}
        connection = self._connection
        if connection is None or connection.is_closed or not connection.connected.is_set():
            problems["broker"] = "not connected"
        database = await self._database_problem()
        if database is not None:
            problems["database"] = database
        consumer = self._consumer
        if self._stopping or (consumer is not None and consumer.stopping):
            problems["consumer"] = "stopping"
        elif consumer is None:
            problems["consumer"] = "not started"
        elif consumer.paused:
            problems["consumer"] = "paused while the database does not answer"
        elif not consumer.consuming:
            problems["consumer"] = "not consuming"
        for loop, why in self._stopped_loops.items():
            problems[f"loop {loop}"] = f"stopped: {why}"
        return problems

    async def refresh_metrics(self) -> None:
        """Set the gauges a scrape reads: readiness, pool use, outbox lag, the worker's own."""
        self.metrics.ready(not await self.readiness())
        pool = self._pool
        if pool is None:
            return
        size = pool.get_size()
        self.metrics.pool(size, size - pool.get_idle_size())
        async with asyncio.timeout(DATABASE_TIMEOUT):
            if self._relay is not None:
                lag, oldest = await self._relay.backlog()
                self.metrics.outbox(lag, oldest)
            for refresh in self._scrape_hooks:
                await refresh()

    async def _database_problem(self) -> str | None:
        if self._pool is None:
            return "no pool yet"
        return await _select_one(self._pool.fetchval)

    async def _watch_database(self, stop: asyncio.Event) -> None:
        """Pause consuming while Postgres does not answer; resume when it does.

        Paused, the consumer is cancelled on the broker: messages wait in the queue and no
        delivery attempt is spent on them. Those already in flight when Postgres went away
        fail and are retried as usual. The check runs on a connection of its own: a pool
        busy with long handlers is no outage.
        """
        consumer = self._consumer
        assert consumer is not None
        probe: asyncpg.Connection | None = None
        try:
            while not stop.is_set():
                if probe is None or probe.is_closed():
                    probe = None
                    try:
                        probe = await self._connect_probe()
                    except Exception as exc:
                        problem: str | None = describe(exc)
                    else:
                        problem = await _select_one(probe.fetchval)
                else:
                    problem = await _select_one(probe.fetchval)
                await self._switch_consumer(consumer, problem)
                await self._database_check.wait(stop)
        finally:
            if probe is not None:
                probe.terminate()

    async def _connect_probe(self) -> "asyncpg.Connection[Any]":
        database = self.database
        async with asyncio.timeout(DATABASE_TIMEOUT):
            return await asyncpg.connect(
                database.url,
                user=database.user,
                password=database.password,
                server_settings={"application_name": f"{self.name}:probe"},
            )

    async def _switch_consumer(self, consumer: QueueConsumer, problem: str | None) -> None:
        if consumer.stopping or (problem is None) != consumer.paused:
            return  # nothing changed
        try:
            async with asyncio.timeout(SWITCH_TIMEOUT):
                if problem is not None:
                    log.warning("database_unreachable_consumer_paused", error=problem)
                    await consumer.pause()
                else:
                    await consumer.resume()
                    log.info("database_back_consumer_resumed")
        except Exception as exc:  # the broker away too: try again at the next check
            log.warning("consumer_switch_failed", error=describe(exc))


async def _select_one(fetchval: Callable[[str], Awaitable[Any]]) -> str | None:
    """``None`` when ``SELECT 1`` answers within ``DATABASE_TIMEOUT``, else what went wrong."""
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            await fetchval("SELECT 1")
    except TimeoutError:
        return f"no answer to SELECT 1 within {DATABASE_TIMEOUT:g} s"
    except Exception as exc:
        return describe(exc)
    return None
