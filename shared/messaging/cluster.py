"""One connection over the nodes of a RabbitMQ cluster.

A client talks to one node at a time. aio-pika's robust connection comes back by itself
after a connection is lost, but always to the address it was given: with a node gone for
good (maintenance, a host lost), a worker would knock on that door forever while the two
other nodes serve its queue. ``ClusterConnection`` keeps the list of addresses
(``ONE_AMQP_URLS``) in an ``AddressRing``: a lost connection, or an attempt that fails,
moves the next attempt to the next node, round the list.

The queues survive the node: quorum queues keep a replica on each node of the cluster (the
broker's default group size is every node at declaration) and elect a new leader when the
leader's node goes away.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from shared.logs import get_logger
from shared.settings import without_password

log = get_logger(__name__)


class AddressRing:
    """Which broker address the next connection attempt goes to.

    The first attempt goes to the first address; after an attempt that failed or a
    connection that was lost, the next attempt goes to the next address, round the list;
    after a success, the ring stays where it is.
    """

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("at least one broker address is needed")
        self.addresses = tuple(addresses)
        self._index = 0
        self._moving_on = False  # the last attempt failed, or its connection was lost

    @property
    def current(self) -> str:
        return self.addresses[self._index]

    def next_attempt(self) -> str:
        """The address to try now."""
        if self._moving_on:
            self._index = (self._index + 1) % len(self.addresses)
        self._moving_on = True  # until ``connected`` says the attempt worked
        return self.current

    def connected(self) -> None:
        self._moving_on = False

    def lost(self) -> None:
        self._moving_on = True


class ClusterConnection(RobustConnection):
    """A robust connection that reconnects to the next node of ``ring``."""

    def __init__(self, ring: AddressRing, **kwargs: Any) -> None:
        self.ring = ring
        super().__init__(URL(ring.current), **kwargs)

    @property
    def node(self) -> str:
        """The address of the node of the current (or last) attempt, without password."""
        return without_password(str(self.url))

    # aio-pika's robust connection makes each attempt in this (name-mangled) method; its
    # version is pinned in pyproject.toml, and tests/integration/test_cluster.py fails if
    # a release renames it (the worker would then stay on its first node).
    async def _RobustConnection__connect_transport(self) -> None:
        self.url = URL(self.ring.next_attempt())
        await super()._RobustConnection__connect_transport()  # type: ignore[misc]
        self.ring.connected()
        log.info("broker_connected", node=self.node)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if not (self._close_called or self.is_closed):
            self.ring.lost()
            log.warning("broker_connection_lost", node=self.node)
        await super()._on_connection_close(closing)


async def connect(
    addresses: Sequence[str], *, name: str, reconnect_interval: float = 1.0
) -> ClusterConnection:
    """A robust connection to the first node of ``addresses`` that answers.

    Each address is tried in turn; the error of the last one is raised when none answers
    (the worker's start then fails, as with a single broker).
    """
    ring = AddressRing(addresses)
    last: BaseException | None = None
    for _ in ring.addresses:
        connection = ClusterConnection(
            ring,
            client_properties={"connection_name": name},
            reconnect_interval=reconnect_interval,
        )
        try:
            await connection.connect()
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            last = exc
            log.warning("broker_unreachable", node=without_password(ring.current), error=str(exc))
            ring.lost()
            await connection.close()
            continue
        return connection
    assert last is not None
    raise last
