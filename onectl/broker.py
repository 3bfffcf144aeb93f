"""RabbitMQ: confirmed publishes, the dead-letter queue read in place, replays."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelClosed, DeliveryError, PublishError

from onectl import redact
from onectl.config import OnectlSettings
from onectl.errors import CliError, not_found, unreachable
from onectl.validate import Checked
from shared.envelope import CONTENT_TYPE
from shared.messaging import topology
from shared.messaging.publisher import Outgoing, to_amqp
from shared.settings import without_password

CONFIRM_TIMEOUT = 15.0
REPLAYED_HEADER = "x-one-replayed-at"
# Headers of a dead letter that describe its death, not the message: dropped on replay so
# that the worker counts its attempts afresh.
_DEATH_HEADERS = ("x-one-", "x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


@contextlib.asynccontextmanager
async def connect(settings: OnectlSettings) -> AsyncIterator[AbstractConnection]:
    connection = await _first_node(settings)
    try:
        yield connection
    finally:
        await connection.close()


async def _first_node(settings: OnectlSettings) -> AbstractConnection:
    """A connection to the first broker node of ``ONE_AMQP_URLS`` (or ``ONE_AMQP_URL``)
    that answers."""
    failures = []
    for address in settings.broker_addresses:
        try:
            return await asyncio.wait_for(
                aio_pika.connect(address, client_properties={"connection_name": "onectl"}),
                timeout=settings.connect_timeout,
            )
        except (OSError, AMQPError, TimeoutError) as exc:
            failures.append(f"{without_password(address)}: {exc or type(exc).__name__}")
    raise unreachable(f"RabbitMQ unreachable at {'; '.join(failures)}")


async def _events_exchange(
    connection: AbstractConnection, settings: OnectlSettings
) -> tuple[AbstractChannel, aio_pika.abc.AbstractExchange]:
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(settings.exchange, ensure=True)
    except ChannelClosed as exc:
        raise unreachable(
            f"exchange {settings.exchange!r} does not exist: is the pipeline running?"
        ) from exc
    return channel, exchange


async def publish(settings: OnectlSettings, message: Checked) -> None:
    """Publish with confirms and ``mandatory``: returns only once the broker took it."""
    async with connect(settings) as connection:
        await publish_on(connection, settings, [message])


async def publish_on(
    connection: AbstractConnection, settings: OnectlSettings, messages: list[Checked]
) -> None:
    """Publish each message in turn on one channel, each confirmed before the next."""
    _, exchange = await _events_exchange(connection, settings)
    for message in messages:
        out = Outgoing(message.topic, message.event_id, message.correlationid, message.body)
        try:
            await exchange.publish(
                to_amqp(out), routing_key=out.topic, mandatory=True, timeout=CONFIRM_TIMEOUT
            )
        except DeliveryError as exc:
            raise CliError(3, f"{out.topic} was not routed to any queue: {exc}") from exc
        except (PublishError, TimeoutError) as exc:
            raise CliError(3, f"the broker did not confirm {out.topic}: {exc}") from exc


# ---------------------------------------------------------------------------------------
# Topology
# ---------------------------------------------------------------------------------------


async def apply_topology(settings: OnectlSettings) -> topology.Applied:
    """The deploy step: every exchange, queue and binding of the pipeline, declared with
    this user's rights (one allowed to configure: the broker's admin)."""
    wanted = topology.plan(
        settings.names, delivery_limit=settings.delivery_limit, retry_delays=settings.retry_delays
    )
    async with connect(settings) as connection:
        try:
            return await topology.apply(connection, wanted)
        except ChannelClosed as exc:
            raise CliError(3, f"the broker refused the topology: {exc}") from exc


# ---------------------------------------------------------------------------------------
# Dead letters
# ---------------------------------------------------------------------------------------


@dataclass
class DeadLetter:
    message_id: str
    topic: str
    worker: str | None
    reason: str | None
    attempts: int | None
    dead_at: str | None
    headers: dict[str, Any]
    body: bytes
    correlationid: str | None = None
    event: dict[str, Any] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return redact.shown(self._summary())  # type: ignore[no-any-return]

    def _summary(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "topic": self.topic,
            "worker": self.worker,
            "reason": self.reason,
            "attempts": self.attempts,
            "dead_at": self.dead_at,
            "correlationid": self.correlationid,
        }

    def detail(self, *, reveal: bool = False) -> dict[str, Any]:
        """Everything it holds, safe to print: codes masked unless ``reveal``."""
        body: Any = self.event
        if body is None:
            body = self.body.decode("utf-8", errors="replace")
        shown_ = {**self._summary(), "headers": _plain(self.headers), "body": body}
        return dict(redact.shown(shown_, reveal=reveal))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _count(value: Any) -> int | None:
    """A count from a header anyone may have written: garbage is no count."""
    try:
        return int(str(value)[:9]) if value is not None else None
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def read_dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    """What a dead letter says about itself: our headers, else the broker's ``x-death``."""
    headers = dict(message.headers or {})
    event: dict[str, Any] | None = None
    try:
        parsed = json.loads(message.body)
        event = parsed if isinstance(parsed, dict) else None
    except ValueError:
        event = None
    deaths = headers.get("x-death")
    first: Any = deaths[0] if isinstance(deaths, list) and deaths else {}
    first_death: dict[str, Any] = dict(first) if isinstance(first, dict) else {}
    topic = _text(headers.get("x-one-topic"))
    if not topic:
        keys = first_death.get("routing-keys")
        topic = _text(keys[0]) if isinstance(keys, list) and keys else None
    if not topic and event is not None:
        topic = _text(event.get("type"))
    reason = _text(headers.get("x-one-reason"))
    worker = _text(headers.get("x-one-worker"))
    if reason is None and first_death:
        reason = f"broker: {_text(first_death.get('reason'))} (delivery limit)"
        queue = _text(first_death.get("queue")) or ""
        worker = worker or queue.rsplit(".", 1)[-1] or None
    # x-one-attempt counts the attempts before the last one, which dead-lettered it.
    retried = _count(headers.get("x-one-attempt"))
    attempts = retried + 1 if retried is not None else _count(first_death.get("count")) or 1
    dead_at = _text(headers.get("x-one-dead-at"))
    died = first_death.get("time")
    if dead_at is None and isinstance(died, datetime):
        dead_at = died.isoformat()
    message_id = message.message_id or (_text(event.get("id")) if event else None) or "?"
    correlationid = message.correlation_id or (_text(event.get("correlationid")) if event else None)
    return DeadLetter(
        message_id=message_id,
        topic=topic or "",
        worker=worker,
        reason=reason,
        attempts=attempts,
        dead_at=dead_at,
        headers=headers,
        body=message.body,
        correlationid=correlationid,
        event=event,
    )


async def _scan(
    connection: AbstractConnection, settings: OnectlSettings
) -> tuple[AbstractChannel, list[tuple[AbstractIncomingMessage, DeadLetter]]]:
    """Every message now in the dead-letter queue, taken without acknowledgement: they go
    back in place when the returned channel closes, unless acked on it."""
    channel = await connection.channel()
    try:
        queue = await channel.get_queue(settings.names.dead_letter_queue, ensure=True)
    except ChannelClosed as exc:
        raise not_found(
            f"no dead-letter queue {settings.names.dead_letter_queue!r} on this broker"
        ) from exc
    found: list[tuple[AbstractIncomingMessage, DeadLetter]] = []
    while True:
        message = await queue.get(no_ack=False, fail=False, timeout=CONFIRM_TIMEOUT)
        if message is None:
            return channel, found
        found.append((message, read_dead_letter(message)))


async def list_dead(settings: OnectlSettings) -> list[DeadLetter]:
    """A passive read: every message stays in the queue, in its place."""
    async with connect(settings) as connection:
        channel, found = await _scan(connection, settings)
        await channel.close()
        return [letter for _, letter in found]


def matches(letter: DeadLetter, wanted: str) -> bool:
    return letter.message_id == wanted or (
        letter.event is not None and letter.event.get("id") == wanted
    )


async def show_dead(settings: OnectlSettings, wanted: str) -> list[DeadLetter]:
    letters = [letter for letter in await list_dead(settings) if matches(letter, wanted)]
    if not letters:
        raise not_found(f"no dead letter with id {wanted!r}")
    return letters


@dataclass(frozen=True)
class Replayed:
    message_id: str
    topic: str


def _replay_message(letter: DeadLetter, message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in letter.headers.items() if not str(k).startswith(_DEATH_HEADERS)}
    headers[REPLAYED_HEADER] = datetime.now(UTC).isoformat()
    return aio_pika.Message(
        letter.body,
        headers=headers,
        content_type=message.content_type or CONTENT_TYPE,
        message_id=message.message_id or letter.message_id,
        correlation_id=message.correlation_id or letter.correlationid,
        type=letter.topic,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def replay(
    settings: OnectlSettings,
    select: Callable[[DeadLetter], bool],
    *,
    on_done: Callable[[Replayed], None] = lambda _: None,
) -> list[Replayed]:
    """Republish each selected dead letter, body and id unchanged, to the exchange under its
    original routing key; ack it from the queue only once the broker confirmed the copy.
    Safe to repeat: a worker's inbox ignores an id it already applied."""
    async with connect(settings) as connection:
        _, exchange = await _events_exchange(connection, settings)
        channel, found = await _scan(connection, settings)
        done: list[Replayed] = []
        try:
            for message, letter in found:
                if not select(letter):
                    continue
                if not letter.topic:
                    raise CliError(2, f"dead letter {letter.message_id} has no known topic")
                try:
                    await exchange.publish(
                        _replay_message(letter, message),
                        routing_key=letter.topic,
                        mandatory=True,
                        timeout=CONFIRM_TIMEOUT,
                    )
                except (DeliveryError, PublishError, TimeoutError) as exc:
                    raise CliError(
                        3, f"replay of {letter.message_id} not confirmed ({exc}); left in place"
                    ) from exc
                await message.ack()
                item = Replayed(letter.message_id, letter.topic)
                done.append(item)
                on_done(item)
        finally:
            await channel.close()  # what was not replayed goes back in place
        return done


# ---------------------------------------------------------------------------------------
# Waiting for an answer
# ---------------------------------------------------------------------------------------


class Listener:
    """An exclusive queue bound to some topics, declared before a command is sent, so its
    answer cannot be missed."""

    def __init__(self, connection: AbstractConnection, settings: OnectlSettings) -> None:
        self._connection = connection
        self._settings = settings
        self._queue: aio_pika.abc.AbstractQueue | None = None

    async def bind(self, *topics: str) -> None:
        channel = await self._connection.channel()
        self._queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        exchange = await channel.get_exchange(self._settings.exchange, ensure=True)
        for topic in topics:
            await self._queue.bind(exchange, routing_key=topic)

    async def wait_for(
        self, correlationid: str, timeout: float
    ) -> dict[str, Any]:  # the CloudEvent answering
        return (await self.wait_for_all([correlationid], timeout))[correlationid]

    async def wait_for_all(
        self, correlationids: list[str], timeout: float
    ) -> dict[str, dict[str, Any]]:
        """The first event answering each of ``correlationids``, by correlationid."""
        assert self._queue is not None
        wanted = set(correlationids)
        if not wanted:
            return {}
        answers: dict[str, dict[str, Any]] = {}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                event = json.loads(message.body)
            except ValueError:
                return
            key = event.get("correlationid") if isinstance(event, dict) else None
            if key in wanted and key not in answers:
                answers[key] = event
                if len(answers) == len(wanted) and not done.done():
                    done.set_result(None)

        await self._queue.consume(on_message, no_ack=True)
        try:
            await asyncio.wait_for(done, timeout=timeout)
        except TimeoutError as exc:
            missing = sorted(wanted - set(answers))
            raise CliError(
                1,
                f"no answer for {', '.join(missing)} within {timeout:g} s (is the worker running?)",
            ) from exc
        return answers
