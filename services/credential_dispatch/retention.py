"""What credential_dispatch keeps, and for how long: printed documents (they hold
activation codes) ``document_retention_days``; the audit of hand-outs (never a code)
``audit_retention_days``. Every replica runs it; deleting twice deletes nothing more."""

import asyncio

import asyncpg

from shared.logs import get_logger
from shared.runtime import Waker, each_turn

log = get_logger(__name__)


class RetentionLoop:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        document_days: float,
        audit_days: float,
        interval_seconds: float,
    ) -> None:
        self._pool = pool
        self._document_seconds = document_days * 86400
        self._audit_seconds = audit_days * 86400
        self.waker = Waker(interval_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        await each_turn(self.purge_once, self.waker, stop, failure="retention_failed")

    async def purge_once(self) -> tuple[int, int]:
        """(documents, audit entries) deleted."""
        async with self._pool.acquire() as conn:
            documents = await conn.fetchval(
                "WITH gone AS (DELETE FROM documents"
                " WHERE created_at < now() - make_interval(secs => $1) RETURNING 1)"
                " SELECT count(*) FROM gone",
                self._document_seconds,
            )
            entries = await conn.fetchval(
                "WITH gone AS (DELETE FROM audit"
                " WHERE at < now() - make_interval(secs => $1) RETURNING 1)"
                " SELECT count(*) FROM gone",
                self._audit_seconds,
            )
        if documents or entries:
            log.info("retention_purged", documents=documents, audit_entries=entries)
        return int(documents), int(entries)
