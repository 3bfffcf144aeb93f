"""What every worker's store does inside a message's transaction: inbox and outbox."""

from collections.abc import Sequence
from typing import Any, Protocol

from shared.db import Connection
from shared.envelope import Contract, Envelope


class EventStore(Protocol):
    """What the consume wrapper and every handler need of a store, whatever holds it:
    the inbox claim and the outbox. A worker's own store protocol extends it; its Postgres
    store and its in-memory fake (tests/fakes) both satisfy it."""

    emitted: list[Envelope[Any]]

    async def claim(self, message_id: str, topic: str) -> bool: ...

    async def emit(self, event: Envelope[Contract]) -> None: ...

    async def emit_all(self, events: Sequence[Envelope[Contract]]) -> None: ...


class TransactionStore:
    """Base of each worker's store: bound to one connection inside one transaction.

    The consume wrapper opens the transaction, claims the message in the inbox, runs the
    handler (whose business rows and emitted events land in this same transaction), then
    commits and only then acknowledges.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.emitted: list[Envelope[Any]] = []

    async def claim(self, message_id: str, topic: str) -> bool:
        """Record the message; False if it was already applied (a duplicate)."""
        claimed = await self.conn.fetchval(
            "INSERT INTO inbox (message_id, topic) VALUES ($1, $2)"
            " ON CONFLICT (message_id) DO NOTHING RETURNING true",
            message_id,
            topic,
        )
        return bool(claimed)

    async def emit_all(self, events: Sequence[Envelope[Contract]]) -> None:
        """``emit`` for several events, in one statement (the outbox keeps their order)."""
        if not events:
            return
        if len(events) == 1:
            await self.emit(events[0])
            return
        await self.conn.execute(
            "INSERT INTO outbox (message_id, topic, correlationid, causationid, body)"
            " SELECT message_id, topic, correlationid, causationid, body"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])"
            " WITH ORDINALITY AS e(message_id, topic, correlationid, causationid, body, n)"
            " ORDER BY n",
            [e.id for e in events],
            [e.type for e in events],
            [e.correlationid for e in events],
            [e.causationid for e in events],
            [e.to_json() for e in events],
        )
        self.emitted.extend(events)

    async def emit(self, event: Envelope[Contract]) -> None:
        await self.conn.execute(
            "INSERT INTO outbox (message_id, topic, correlationid, causationid, body)"
            " VALUES ($1, $2, $3, $4, $5)",
            event.id,
            event.type,
            event.correlationid,
            event.causationid,
            event.to_json(),
        )
        self.emitted.append(event)
