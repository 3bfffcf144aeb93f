"""Every SQL statement of directory_sync."""

from uuid import UUID

from shared.store import TransactionStore


class DirectoryStore(TransactionStore):
    async def register_school(
        self, school_id: UUID, *, uai: str, name: str, academie: str | None, order_id: str
    ) -> bool:
        added = await self.conn.fetchval(
            "INSERT INTO feed_registrations (school_id, uai, name, academie, order_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            school_id,
            uai,
            name,
            academie,
            order_id,
        )
        return bool(added)
