"""Publishing with publisher confirms and ``mandatory``: a publish that returns is a
publish that failed, never a message silently dropped."""

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from shared.envelope import CONTENT_TYPE

PUBLISH_TIMEOUT = 15.0


@dataclass(frozen=True)
class Outgoing:
    topic: str
    message_id: str
    correlationid: str
    body: bytes
    headers: Mapping[str, Any] | None = None


def to_amqp(out: Outgoing) -> aio_pika.Message:
    return aio_pika.Message(
        out.body,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=out.message_id,
        correlation_id=out.correlationid,
        type=out.topic,
        headers=dict(out.headers or {}),
    )


class Publisher:
    """Publishes to one exchange on a confirming channel; raises unless every message was
    confirmed and routed."""

    def __init__(self, channel: AbstractChannel, exchange: AbstractExchange) -> None:
        self._channel = channel
        self._exchange = exchange
        self._others: dict[str, AbstractExchange] = {}

    async def publish(self, out: Outgoing) -> None:
        await self._exchange.publish(
            to_amqp(out), routing_key=out.topic, mandatory=True, timeout=PUBLISH_TIMEOUT
        )

    async def publish_many(self, batch: Iterable[Outgoing]) -> None:
        await asyncio.gather(*(self.publish(out) for out in batch))

    async def send(self, exchange: str, routing_key: str, message: aio_pika.Message) -> None:
        """To another exchange of the topology (a worker's retry exchange, the dead-letter
        exchange), never the default one: through that, any queue could be written."""
        found = self._others.get(exchange)
        if found is None:
            found = await self._channel.get_exchange(exchange, ensure=False)
            self._others[exchange] = found
        await found.publish(
            message, routing_key=routing_key, mandatory=True, timeout=PUBLISH_TIMEOUT
        )


async def open_publisher(connection: aio_pika.abc.AbstractConnection, exchange: str) -> Publisher:
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    events = await channel.get_exchange(exchange, ensure=True)
    return Publisher(channel, events)
