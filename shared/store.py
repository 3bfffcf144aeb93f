"""What every worker's store does inside a message's transaction: inbox and outbox."""

from typing import Any

from shared.db import Connection
from shared.envelope import Contract, Envelope


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
