"""The skeleton every worker's composition root fills in.

A worker names its schema and migrations and gives a ``wire`` function that builds its
routes, its store and any loops of its own from a ready ``Context``. ``Worker`` does the
rest in one order for all: provision and migrate the schema, connect to the broker, declare
the topology, run the outbox relay, consume; and on stop, the reverse, draining first.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from shared import db
from shared.db import Connection
from shared.logs import get_logger
from shared.messaging import topology
from shared.messaging.consumer import MessageProcessor, QueueConsumer, Route
from shared.messaging.publisher import Publisher, open_publisher
from shared.messaging.relay import OutboxRelay
from shared.settings import CommonSettings
from shared.store import TransactionStore

log = get_logger(__name__)
S = TypeVar("S", bound=TransactionStore)
Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Context:
    settings: CommonSettings
    pool: asyncpg.Pool
    publisher: Publisher
    names: topology.Names
    relay: OutboxRelay
    database: db.Database  # for a worker that needs a pool of its own beside ``pool``


@dataclass
class Wiring(Generic[S]):
    routes: dict[str, Route[S]]
    store: Callable[[Connection], S]
    loops: list[Loop] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


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
        self._connection: AbstractRobustConnection | None = None
        self._pool: asyncpg.Pool | None = None
        self._consumer: QueueConsumer | None = None
        self._relay: OutboxRelay | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.context: Context | None = None

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
        s = self.settings
        if s.database_admin_url:
            await db.provision(s.database_admin_url, self.database)
        self._pool = await db.create_pool(
            self.database, min_size=s.db_pool_min, max_size=s.db_pool_max, service=self.name
        )
        await db.migrate(self._pool, self.name, db.BACKBONE_MIGRATIONS, self._migrations)

        self._connection = await aio_pika.connect_robust(
            s.amqp_url, client_properties={"connection_name": self.name}
        )
        consume_channel = await self._connection.channel()
        await consume_channel.set_qos(prefetch_count=s.prefetch)
        queue = await topology.declare_worker(
            consume_channel,
            self.names,
            self.name,
            delivery_limit=s.delivery_limit,
            retry_delays=s.retry_delays,
        )
        publisher = await open_publisher(self._connection, s.exchange)
        self._relay = OutboxRelay(
            self._pool, publisher, batch=s.outbox_batch, poll_seconds=s.outbox_poll_seconds
        )
        self.context = Context(s, self._pool, publisher, self.names, self._relay, self.database)
        wiring = await self._wire(self.context)
        self._closers = wiring.closers

        relay = self._relay
        wakers = [relay.waker.wake, *wiring.after_commit]

        def wake_all() -> None:  # committed work is waiting: no need to wait for a poll
            for wake in wakers:
                wake()

        processor = MessageProcessor(
            wiring.routes, unit_of_work(self._pool, wiring.store), after_commit=wake_all
        )
        self._consumer = QueueConsumer(
            queue,
            processor,
            publisher,
            names=self.names,
            worker=self.name,
            retry_delays=s.retry_delays,
            max_attempts=s.max_attempts,
        )
        for loop in [relay.run, *wiring.loops]:
            self._tasks.append(asyncio.create_task(loop(self._stop)))
        await self._consumer.start()

    async def stop(self) -> None:
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
