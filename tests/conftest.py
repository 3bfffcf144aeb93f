"""Fixtures shared by the integration and end-to-end tiers (unit tests need none)."""

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from shared.messaging.topology import Names, all_exchange_names, all_queue_names
from shared.settings import CommonSettings
from tests.support.cluster import BrokerCluster, start_cluster
from tests.support.services import Services, discover

S = TypeVar("S", bound=CommonSettings)
TEST_RETRY_DELAYS = [0.3, 0.6]


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    found, containers = discover()
    yield found
    for container in containers:
        container.stop()  # type: ignore[attr-defined]


@dataclass
class Stack:
    """One isolated pipeline: its own database and its own broker names."""

    services: Services
    database: str
    prefix: str

    @property
    def names(self) -> Names:
        return Names(exchange=self.exchange, prefix=self.prefix)

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def database_url(self) -> str:
        return self.services.database_url(self.database)

    def common(self) -> dict[str, Any]:
        return {
            "amqp_url": self.services.amqp_url,
            "database_url": self.database_url,
            "database_admin_url": self.services.admin_url,
            "exchange": self.exchange,
            "topology_prefix": self.prefix,
            "retry_delays": TEST_RETRY_DELAYS,
            "max_attempts": 4,
            "outbox_poll_seconds": 0.2,
            "drain_seconds": 5.0,
            # The nightly feed would start whenever a test runs within its window; the
            # tests of the schedule turn it on with a clock of their own.
            "nightly_enabled": False,
            # Several workers run at once in a test: each serves /healthz on a free port.
            "ops_port": 0,
        }

    def settings(self, cls: type[S], **overrides: Any) -> S:
        return cls(**{**self.common(), **overrides})

    def env(self, **overrides: Any) -> dict[str, str]:
        """The same settings as ``ONE_*`` variables, for workers run as processes."""
        import json

        values = {**self.common(), **overrides}
        return {
            f"ONE_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
            for k, v in values.items()
        }

    async def admin(self) -> asyncpg.Connection:
        """A superuser connection to this stack's database."""
        admin = self.services.admin_url.rsplit("/", 1)[0] + f"/{self.database}"
        return await asyncpg.connect(admin)


@pytest.fixture
async def stack(services: Services) -> AsyncIterator[Stack]:
    tag = uuid.uuid4().hex[:10]
    created = Stack(services, database=f"one_test_{tag}", prefix=f"t{tag}")
    yield created
    await _forget(created)


async def _forget(stack: Stack) -> None:
    connection = await aio_pika.connect(stack.services.amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in all_queue_names(stack.names, TEST_RETRY_DELAYS):
            await channel.queue_delete(queue)
        for exchange in all_exchange_names(stack.names):
            await channel.exchange_delete(exchange)
    admin = await asyncpg.connect(stack.services.admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{stack.database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def broker_cluster() -> Iterator[BrokerCluster]:
    """The three-node RabbitMQ cluster of scripts/cluster.sh, started once."""
    yield start_cluster()


@pytest.fixture
async def cluster_stack(services: Services, broker_cluster: BrokerCluster) -> AsyncIterator[Stack]:
    """A stack whose broker is the cluster (node 1 for the test's own connections)."""
    await broker_cluster.ensure_all()
    tag = uuid.uuid4().hex[:10]
    on_cluster = Services(broker_cluster.url(1), services.admin_url, "cluster")
    stack = Stack(on_cluster, database=f"one_test_{tag}", prefix=f"t{tag}")
    yield stack
    await broker_cluster.ensure_all()  # a test that failed half-way leaves a node down
    await _forget(stack)


@pytest.fixture
async def amqp(services: Services) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(services.amqp_url)
    async with connection:
        yield connection


@pytest.fixture
async def channel(amqp: AbstractRobustConnection) -> AbstractChannel:
    return await amqp.channel()
