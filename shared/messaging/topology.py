"""The broker topology, described in one place and declared by one deploy step.

- ``<exchange>`` (topic, durable): every event and command, routing key = CloudEvents type.
- ``<prefix>.<worker>``: each worker's quorum queue, bound to its subscriptions, with a
  delivery limit and dead-lettering (at-least-once) to ``<prefix>.dead``.
- ``<prefix>.<worker>.retry`` (direct) and ``<prefix>.<worker>.retry.<ms>``: the worker's
  retry exchange and one TTL queue per retry tier behind it (the broker has no
  delayed-message plugin). Expired messages dead-letter through the default exchange
  straight back to the worker's own queue, so a retry never reaches other workers. A
  worker writes its own retry exchange, never the default exchange, through which it could
  put a message in any queue.
- ``<prefix>.dead`` (topic) and ``<prefix>.dead-letter``: poison messages, with the
  reason in their headers; bounded in length and age.
- ``<prefix>.upstream``: the integration feed of every outward event, bounded by age and
  length, so that upstream systems can read them and every publish is routable.

``plan`` says what exists; ``apply`` declares all of it (``onectl topology apply``, the
deploy step, run with a user allowed to configure); a worker's ``open_worker`` finds its
part passively, so that its own broker user needs no configure right, and declares the
whole plan itself only where nothing was deployed and its user may (local development).
Every queue and binding exists before any worker starts: an event published before its
consumer first ran waits in that consumer's queue.
"""

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity

from shared import topics
from shared.logs import get_logger

log = get_logger(__name__)

QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
UPSTREAM_MAX_AGE_MS = 7 * 24 * 3600 * 1000
UPSTREAM_MAX_LENGTH = 1_000_000
DEAD_LETTER_MAX_AGE_MS = 30 * 24 * 3600 * 1000
DEAD_LETTER_MAX_LENGTH = 100_000


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

    def retry_exchange(self, worker: str) -> str:
        return f"{self.prefix}.{worker}.retry"

    def retry_queue(self, worker: str, delay_seconds: float) -> str:
        return f"{self.prefix}.{worker}.retry.{round(delay_seconds * 1000)}"


@dataclass(frozen=True)
class Exchange:
    name: str
    type: aio_pika.ExchangeType


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Plan:
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]


def _worker_part(
    names: Names, worker: str, delivery_limit: int, retry_delays: Iterable[float]
) -> tuple[list[Exchange], list[Queue], list[Binding]]:
    work = names.work_queue(worker)
    retry = names.retry_exchange(worker)
    queues = [
        Queue(
            work,
            {
                **QUORUM,
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": names.dead_exchange,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
    ]
    bindings = [Binding(names.exchange, work, topic) for topic in topics.SUBSCRIPTIONS[worker]]
    for delay in sorted(set(retry_delays)):
        tier = names.retry_queue(worker, delay)
        queues.append(
            Queue(
                tier,
                {
                    **QUORUM,
                    "x-message-ttl": round(delay * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": work,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        )
        bindings.append(Binding(retry, tier, tier))
    return [Exchange(retry, aio_pika.ExchangeType.DIRECT)], queues, bindings


def plan(names: Names, *, delivery_limit: int, retry_delays: Iterable[float]) -> Plan:
    """Every exchange, queue and binding of the pipeline."""
    delays = list(retry_delays)
    exchanges = [
        Exchange(names.exchange, aio_pika.ExchangeType.TOPIC),
        Exchange(names.dead_exchange, aio_pika.ExchangeType.TOPIC),
    ]
    queues = [
        Queue(
            names.dead_letter_queue,
            {
                **QUORUM,
                "x-message-ttl": DEAD_LETTER_MAX_AGE_MS,
                "x-max-length": DEAD_LETTER_MAX_LENGTH,
                "x-overflow": "drop-head",
            },
        ),
        Queue(
            names.upstream_queue,
            {
                **QUORUM,
                "x-message-ttl": UPSTREAM_MAX_AGE_MS,
                "x-max-length": UPSTREAM_MAX_LENGTH,
                "x-overflow": "drop-head",
            },
        ),
    ]
    bindings = [Binding(names.dead_exchange, names.dead_letter_queue, "#")]
    bindings += [Binding(names.exchange, names.upstream_queue, t) for t in topics.UPSTREAM_EVENTS]
    for worker in topics.WORKERS:
        more_exchanges, more_queues, more_bindings = _worker_part(
            names, worker, delivery_limit, delays
        )
        exchanges += more_exchanges
        queues += more_queues
        bindings += more_bindings
    return Plan(tuple(exchanges), tuple(queues), tuple(bindings))


@dataclass
class Applied:
    declared: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # exists with other arguments


async def apply(connection: AbstractConnection, wanted: Plan) -> Applied:
    """Declare every object of ``wanted`` (idempotent). A queue that exists with other
    arguments is left as it is and reported: redeclaring it would need it deleted, with
    its messages."""
    applied = Applied()
    channel = await connection.channel()
    try:
        exchanges: dict[str, Any] = {}
        for exchange in wanted.exchanges:
            exchanges[exchange.name] = await channel.declare_exchange(
                exchange.name, exchange.type, durable=True
            )
            applied.declared.append(f"exchange {exchange.name}")
        queues: dict[str, AbstractQueue] = {}
        for queue in wanted.queues:
            try:
                queues[queue.name] = await channel.declare_queue(
                    queue.name, durable=True, arguments=queue.arguments
                )
                applied.declared.append(f"queue {queue.name}")
            except ChannelClosed as exc:  # PRECONDITION_FAILED: inequivalent arguments
                applied.conflicts.append(f"queue {queue.name}: {exc}")
                log.warning("topology_conflict", queue=queue.name, error=str(exc))
                await channel.close()
                channel = await connection.channel()
                queues[queue.name] = await channel.get_queue(queue.name, ensure=True)
                exchanges = {
                    name: await channel.get_exchange(name, ensure=True) for name in exchanges
                }
        for binding in wanted.bindings:
            await queues[binding.queue].bind(
                exchanges[binding.exchange], routing_key=binding.routing_key
            )
        applied.declared.append(f"{len(wanted.bindings)} bindings")
    finally:
        await channel.close()
    return applied


async def open_worker(
    connection: AbstractConnection,
    names: Names,
    worker: str,
    *,
    delivery_limit: int,
    retry_delays: list[float],
    prefetch: int,
) -> AbstractQueue:
    """The worker's queue, on a channel of its own with ``prefetch``, its exchanges checked
    (passive: no configure right needed). Where its part is missing, the whole plan is
    declared first, as the deploy step would (local development, a user allowed to)."""
    for first in (True, False):
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=prefetch)
            return await _find_worker(channel, names, worker, retry_delays)
        except ChannelNotFoundEntity:
            if not first:
                raise
            log.info("topology_missing_declaring", worker=worker)
        with contextlib.suppress(Exception):
            await channel.close()
        await apply(
            connection, plan(names, delivery_limit=delivery_limit, retry_delays=retry_delays)
        )
    raise AssertionError("unreachable")


async def _find_worker(
    channel: AbstractChannel, names: Names, worker: str, retry_delays: list[float]
) -> AbstractQueue:
    for exchange in (names.exchange, names.dead_exchange, names.retry_exchange(worker)):
        await channel.get_exchange(exchange, ensure=True)
    for delay in sorted(set(retry_delays)):
        await channel.get_queue(names.retry_queue(worker, delay), ensure=True)
    return await channel.get_queue(names.work_queue(worker), ensure=True)


def all_queue_names(names: Names, retry_delays: list[float]) -> list[str]:
    """Every queue the topology may declare (for cleanup by tests and operators)."""
    wanted = plan(names, delivery_limit=1, retry_delays=retry_delays)
    return [queue.name for queue in wanted.queues]


def all_exchange_names(names: Names) -> list[str]:
    wanted = plan(names, delivery_limit=1, retry_delays=[])
    return [exchange.name for exchange in wanted.exchanges]
