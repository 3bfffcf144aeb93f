"""The one consume wrapper every worker uses.

``MessageProcessor`` turns bytes into an outcome and knows nothing of AMQP: it refuses,
unread, a body over ``max_message_bytes``, parses the CloudEvent, checks the schema's major
version, validates the payload, then runs the handler inside one transaction with the
inbox claim. ``QueueConsumer`` applies the outcome
on the broker: ack, a delayed retry through a TTL tier, or a dead-letter with the reason
in the headers, always acknowledging only after the effects are committed. It counts each
outcome in the worker's ``Metrics``, and can be paused (``basic.cancel``: messages wait in
the queue) while the database is away, then resumed.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from shared.contracts.common import Reason, reasons_from
from shared.envelope import ATTRIBUTE_LENGTH, Contract, Envelope, RawEnvelope, schema_major
from shared.errors import OUTCOME_KINDS, Failure, OutcomeKind, classify, describe
from shared.logs import get_logger, message_context
from shared.messaging.publisher import Publisher
from shared.messaging.topology import Names
from shared.metrics import Metrics
from shared.retry import GiveUp, RetryPolicy
from shared.settings import DEFAULT_MAX_MESSAGE_BYTES
from shared.store import EventStore

log = get_logger(__name__)

S = TypeVar("S", bound=EventStore)
S_contra = TypeVar("S_contra", bound=EventStore, contravariant=True)
ATTEMPT_HEADER = "x-one-attempt"
TOPIC_HEADER = "x-one-topic"
REASON_HEADER = "x-one-reason"


class Handler(Protocol[S_contra]):
    def __call__(self, event: Envelope[Any], /, *, store: S_contra) -> Awaitable[None]: ...


class Rejector(Protocol[S_contra]):
    """Answers a payload that fails its contract (e.g. with order.rejected) instead of
    dead-lettering it, for topics whose senders expect a reasoned refusal."""

    def __call__(
        self, event: RawEnvelope, reasons: list[Reason], /, *, store: S_contra
    ) -> Awaitable[None]: ...


@dataclass(frozen=True)
class Route(Generic[S]):
    model: type[Contract]
    handler: Handler[S]
    on_invalid: Rejector[S] | None = None


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str | None = None
    topic: str | None = None

    @classmethod
    def applied(cls, topic: str) -> "Outcome":
        return cls("applied", topic=topic)

    @classmethod
    def duplicate(cls, topic: str) -> "Outcome":
        return cls("duplicate", topic=topic)

    @classmethod
    def retry(cls, reason: str, topic: str | None) -> "Outcome":
        return cls("retry", reason, topic)

    @classmethod
    def dead(cls, reason: str, topic: str | None = None) -> "Outcome":
        return cls("dead", reason, topic)


UnitOfWork = Callable[[], AbstractAsyncContextManager[S]]


class MessageProcessor(Generic[S]):
    def __init__(
        self,
        routes: dict[str, Route[S]],
        unit_of_work: UnitOfWork[S],
        *,
        handler_timeout: float = 120.0,
        after_commit: Callable[[], None] = lambda: None,
        on_connection_error: Callable[[], None] = lambda: None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        self._routes = routes
        self._max_bytes = max_message_bytes
        self._unit_of_work = unit_of_work
        self._timeout = handler_timeout
        self._after_commit = after_commit
        # Told when an attempt failed the way a lost database does, so that the worker
        # checks the database at once rather than at its next poll.
        self._on_connection_error = on_connection_error

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def process(self, body: bytes) -> Outcome:
        # Checked before anything reads the body: an oversized message costs no parsing.
        if len(body) > self._max_bytes:
            return Outcome.dead(
                f"message of {len(body)} bytes is over the limit of {self._max_bytes} bytes"
            )
        try:
            raw = RawEnvelope.model_validate_json(body)
        except ValidationError as exc:
            return Outcome.dead(f"unparseable CloudEvent: {_summary(reasons_from(exc))}")
        route = self._routes.get(raw.type)
        if route is None:
            return Outcome.dead(f"no handler for type {raw.type!r}", raw.type)
        major = schema_major(raw.dataschema)
        if major != route.model.major:
            return Outcome.dead(
                f"unsupported dataschema {raw.dataschema!r}: this worker reads "
                f"{route.model.dataschema()}",
                raw.type,
            )
        with message_context(
            event_id=raw.id,
            event_type=raw.type,
            correlationid=raw.correlationid,
            causationid=raw.causationid,
        ):
            return await self._apply(route, raw)

    async def _apply(self, route: Route[S], raw: RawEnvelope) -> Outcome:
        try:
            data = route.model.model_validate(raw.data)
        except ValidationError as exc:
            reasons = reasons_from(exc)
            if route.on_invalid is None:
                return Outcome.dead(f"invalid {raw.type}: {_summary(reasons)}", raw.type)
            return await self._run(raw, lambda store: route.on_invalid(raw, reasons, store=store))  # type: ignore[misc]
        event = Envelope[Any].model_construct(**{**dict(raw), "data": data})
        return await self._run(raw, lambda store: route.handler(event, store=store))

    async def _run(self, raw: RawEnvelope, act: Callable[[S], Awaitable[None]]) -> Outcome:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout), self._unit_of_work() as store:
                if not await store.claim(raw.id, raw.type):
                    log.info("duplicate_ignored")
                    return Outcome.duplicate(raw.type)
                await act(store)
        except Exception as exc:
            reason = describe(exc)
            if classify(exc) is Failure.PERMANENT:
                log.error("handler_failed_permanently", reason=reason)
                return Outcome.dead(reason, raw.type)
            log.warning("handler_failed_transiently", reason=reason)
            if isinstance(exc, CONNECTION_ERRORS):
                self._on_connection_error()
            return Outcome.retry(reason, raw.type)
        self._after_commit()
        log.info("applied", ms=round((time.perf_counter() - started) * 1000, 1))
        return Outcome.applied(raw.type)


# What a database (or any server) that went away raises: worth checking it at once.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
)


def _attempts(header: object) -> int:
    """Attempts made so far, from our header; anyone may publish, so garbage counts as 0."""
    try:
        return max(0, int(str(header or 0)[:9]))
    except ValueError:
        return 0


def _summary(reasons: list[Reason]) -> str:
    return "; ".join(f"{r.field}: {r.message}" for r in reasons)[:900]


REASON_BYTES = 1000  # what a header says of a failure: enough to act on, under a kilobyte


def _short(reason: str | None) -> str:
    encoded = (reason or "").encode()
    if len(encoded) <= REASON_BYTES:
        return reason or ""
    return encoded[: REASON_BYTES - 3].decode(errors="ignore") + "…"


class QueueConsumer:
    """Feeds one queue's deliveries to a processor and settles each on the broker.

    ``pause`` cancels the consumer on the broker (``basic.cancel``): no new delivery
    arrives, the messages wait in the queue without any attempt counted, and those already
    delivered finish as usual. ``resume`` consumes again. ``stop`` is final.
    """

    def __init__(
        self,
        queue: AbstractQueue,
        processor: MessageProcessor[Any],
        publisher: Publisher,
        *,
        names: Names,
        worker: str,
        retry_policy: RetryPolicy,
        metrics: Metrics | None = None,
    ) -> None:
        self._queue = queue
        self._processor = processor
        self._publisher = publisher
        self._names = names
        self._worker = worker
        self._policy = retry_policy
        self._metrics = metrics or Metrics(worker)
        self._tag: str | None = None
        self._paused = False
        self._stopping = False
        self._switch = asyncio.Lock()  # start, pause, resume and stop, one at a time
        self._in_flight: set[asyncio.Task[None]] = set()
        self.counts: dict[OutcomeKind, int] = dict.fromkeys(OUTCOME_KINDS, 0)

    @property
    def consuming(self) -> bool:
        return self._tag is not None and not self._paused and not self._stopping

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        async with self._switch:
            if self._tag is None and not self._stopping:
                self._tag = await self._queue.consume(self._on_message)

    async def pause(self) -> None:
        """Stop receiving until ``resume``; deliveries in flight finish on their own."""
        async with self._switch:
            if self._paused or self._stopping:
                return
            self._paused = True
            self._metrics.paused(True)
            await self._cancel()

    async def resume(self) -> None:
        async with self._switch:
            if not self._paused or self._stopping:
                return
            self._tag = await self._queue.consume(self._on_message)
            self._paused = False
            self._metrics.paused(False)

    async def stop(self, drain_seconds: float) -> None:
        """Stop taking messages, then let those in flight finish (or go back unacked)."""
        self._stopping = True
        async with self._switch:
            await self._cancel()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=drain_seconds)

    async def _cancel(self) -> None:
        if self._tag is not None:
            tag, self._tag = self._tag, None
            # A robust queue forgets the consumer even when the broker is away and the
            # cancel fails: it is not restored on reconnection either.
            await self._queue.cancel(tag)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            await self._settle(message)
        finally:
            self._in_flight.discard(task)

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        started = time.perf_counter()
        outcome = await self._processor.process(message.body)
        elapsed = time.perf_counter() - started
        try:
            attempt = _attempts(message.headers.get(ATTEMPT_HEADER)) + 1
            if outcome.kind == "retry":
                decision = self._policy.decide(Failure.TRANSIENT, outcome.reason or "", attempt)
                if isinstance(decision, GiveUp):
                    outcome = Outcome.dead(decision.reason, outcome.topic)
                else:
                    await self._retry_later(message, attempt, decision.delay, outcome)
            if outcome.kind == "dead":
                await self._dead_letter(message, outcome)
            await message.ack()
        except Exception as exc:
            # Could not park the message elsewhere: give it back; the delivery limit
            # stops a loop.
            log.warning("settle_failed", error=describe(exc))
            await message.nack(requeue=True)
        self.counts[outcome.kind] += 1
        self._metrics.consumed(self._label(message), outcome.kind, elapsed)

    async def _retry_later(
        self, message: AbstractIncomingMessage, attempt: int, delay: float, outcome: Outcome
    ) -> None:
        log.warning("retry_scheduled", attempt=attempt, delay_s=delay, reason=outcome.reason)
        headers = {
            **message.headers,
            ATTEMPT_HEADER: attempt,
            REASON_HEADER: _short(outcome.reason),
            TOPIC_HEADER: _topic(message, outcome),
        }
        tier = self._names.retry_queue(self._worker, delay)
        await self._publisher.send(
            self._names.retry_exchange(self._worker), tier, _copy(message, headers)
        )
        self._metrics.retried(self._label(message))

    async def _dead_letter(self, message: AbstractIncomingMessage, outcome: Outcome) -> None:
        log.error("dead_lettered", reason=outcome.reason)
        headers = {
            **message.headers,
            REASON_HEADER: _short(outcome.reason),
            TOPIC_HEADER: _topic(message, outcome),
            "x-one-worker": self._worker,
            "x-one-dead-at": datetime.now(UTC).isoformat(),
        }
        topic = _topic(message, outcome) or "unknown"
        await self._publisher.send(self._names.dead_exchange, topic, _copy(message, headers))
        self._metrics.dead_lettered(self._label(message))

    def _label(self, message: AbstractIncomingMessage) -> str:
        """The topic a metric counts a message under: one of this worker's routes, or
        ``other`` (a sender chooses the routing key and headers of what it publishes, and
        every distinct label is a series the metrics page keeps for ever)."""
        topic = str(message.headers.get(TOPIC_HEADER) or message.routing_key or "")
        return topic if topic in self._processor.topics else "other"


def _topic(message: AbstractIncomingMessage, outcome: Outcome) -> str:
    known = message.headers.get(TOPIC_HEADER)
    return str(known or outcome.topic or message.routing_key or "")[:ATTRIBUTE_LENGTH]


def _copy(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
