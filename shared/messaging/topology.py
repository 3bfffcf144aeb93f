"""The broker topology, declared in one place.

- ``<exchange>`` (topic, durable): every event and command, routing key = CloudEvents type.
- ``<prefix>.<worker>``: each worker's quorum queue, bound to its subscriptions, with a
  delivery limit and dead-lettering (at-least-once) to ``<prefix>.dead``.
- ``<prefix>.<worker>.retry.<ms>``: one TTL queue per retry tier (the broker has no
  delayed-message plugin). Expired messages dead-letter through the default exchange
  straight back to the worker's own queue, so a retry never reaches other workers.
- ``<prefix>.dead`` (topic) and ``<prefix>.dead-letter``: poison messages, with the
  reason in their headers.
- ``<prefix>.upstream``: the integration feed of every outward event, bounded by age and
  length, so that upstream systems can read them and every publish is routable.
"""

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared import topics

QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
UPSTREAM_MAX_AGE_MS = 7 * 24 * 3600 * 1000
UPSTREAM_MAX_LENGTH = 1_000_000


@dataclass(frozen=True)
class Names:
    exchange: str = "one.events"
    prefix: str = "one"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def upstream_queue(self) -> str:
        return f"{self.prefix}.upstream"

    def work_queue(self, worker: str) -> str:
        return f"{self.prefix}.{worker}"

    def retry_queue(self, worker: str, delay_seconds: float) -> str:
        return f"{self.prefix}.{worker}.retry.{round(delay_seconds * 1000)}"


async def declare_common(channel: AbstractChannel, names: Names) -> AbstractExchange:
    events = await channel.declare_exchange(
        names.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_exchange(
        names.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dlq = await channel.declare_queue(names.dead_letter_queue, durable=True, arguments=QUORUM)
    await dlq.bind(dead, routing_key="#")
    upstream = await channel.declare_queue(
        names.upstream_queue,
        durable=True,
        arguments={
            **QUORUM,
            "x-message-ttl": UPSTREAM_MAX_AGE_MS,
            "x-max-length": UPSTREAM_MAX_LENGTH,
            "x-overflow": "drop-head",
        },
    )
    for topic in topics.UPSTREAM_EVENTS:
        await upstream.bind(events, routing_key=topic)
    return events


async def declare_worker(
    channel: AbstractChannel,
    names: Names,
    worker: str,
    *,
    delivery_limit: int,
    retry_delays: list[float],
) -> AbstractQueue:
    events = await declare_common(channel, names)
    queue = await channel.declare_queue(
        names.work_queue(worker),
        durable=True,
        arguments={
            **QUORUM,
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": names.dead_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    for topic in topics.SUBSCRIPTIONS[worker]:
        await queue.bind(events, routing_key=topic)
    for delay in sorted(set(retry_delays)):
        await channel.declare_queue(
            names.retry_queue(worker, delay),
            durable=True,
            arguments={
                **QUORUM,
                "x-message-ttl": round(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": names.work_queue(worker),
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
    return queue


def all_queue_names(names: Names, retry_delays: list[float]) -> list[str]:
    """Every queue the topology may declare (for cleanup by tests and operators)."""
    queues = [names.dead_letter_queue, names.upstream_queue]
    for worker in topics.WORKERS:
        queues.append(names.work_queue(worker))
        queues.extend(names.retry_queue(worker, d) for d in sorted(set(retry_delays)))
    return queues
