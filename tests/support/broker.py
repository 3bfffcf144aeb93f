"""Test-side broker helpers: publish raw messages, watch events, read a queue."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from shared.envelope import CONTENT_TYPE, Contract, Envelope, new_event
from tools.waits import eventually


async def publish_raw(
    channel: AbstractChannel, exchange: str, routing_key: str, body: bytes, **props: Any
) -> None:
    target = await channel.get_exchange(exchange)
    await target.publish(
        aio_pika.Message(
            body, content_type=CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props
        ),
        routing_key=routing_key,
    )


async def publish_event(
    channel: AbstractChannel,
    exchange: str,
    data: Contract,
    *,
    correlationid: str,
    event_id: str | None = None,
    source: str = "urn:one:tests",
) -> Envelope[Contract]:
    event = new_event(data, source=source, correlationid=correlationid, event_id=event_id)
    await publish_raw(channel, exchange, event.type, event.to_json())
    return event


class EventSpy:
    """Records every message on the exchange through its own exclusive queue."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._queue: aio_pika.abc.AbstractQueue | None = None

    async def start(self, channel: AbstractChannel, exchange: str, binding: str = "#") -> None:
        self._queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await self._queue.bind(await channel.get_exchange(exchange), routing_key=binding)
        await self._queue.consume(self._record, no_ack=True)

    async def _record(self, message: AbstractIncomingMessage) -> None:
        try:
            self.events.append(json.loads(message.body))
        except ValueError:
            self.events.append({"type": "<unparseable>", "raw": message.body})

    def of_type(self, event_type: str, **where: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("type") == event_type
            and all(e.get("data", {}).get(k) == v for k, v in where.items())
        ]

    async def wait_for(
        self, event_type: str, count: int = 1, timeout: float = 20.0, **where: Any
    ) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            found = self.of_type(event_type, **where)
            return found if len(found) >= count else None

        return await eventually(enough, timeout=timeout, what=f"{count} × {event_type}")


async def drain_queue(
    channel: AbstractChannel, queue_name: str, timeout: float = 0.5
) -> list[AbstractIncomingMessage]:
    """Every message now in ``queue_name``, acknowledged."""
    queue = await channel.get_queue(queue_name)
    messages = []
    while True:
        message = await queue.get(fail=False, timeout=timeout)
        if message is None:
            return messages
        await message.ack()
        messages.append(message)


async def wait_for_queue(
    channel: AbstractChannel,
    queue_name: str,
    count: int = 1,
    timeout: float = 20.0,
    predicate: Callable[[AbstractIncomingMessage], bool] = lambda m: True,
) -> list[AbstractIncomingMessage]:
    got: list[AbstractIncomingMessage] = []

    async def enough() -> bool:
        got.extend(m for m in await drain_queue(channel, queue_name, 0.1) if predicate(m))
        return len(got) >= count

    await eventually(enough, timeout=timeout, what=f"{count} message(s) in {queue_name}")
    await asyncio.sleep(0)
    return got
