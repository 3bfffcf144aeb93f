"""Planner statistics kept up with a burst of writes, in every worker.

Autovacuum analyses a table once it has changed by a tenth, but looks only once a minute
(``autovacuum_naptime``): during an académie's first import the tables go from empty to
half a million rows within that minute, and the chunks are planned without statistics. A
person looked up by key then became a hash join over every account (a sequential scan
of the whole table per chunk, growing with it); in credential_dispatch's copy, a statement
planned while its table was nearly empty compared each of a message's 258 accounts with
every row of it. This loop analyses the worker's own tables that changed by more than a
share since their last analysis, every few seconds (an analysis also drops the plans
cached for them); idle, it reads one catalogue view.
"""

import asyncio

import asyncpg

from shared.db import Connection, quote_ident
from shared.logs import get_logger
from shared.runtime import Waker, each_turn

log = get_logger(__name__)


class StatisticsLoop:
    def __init__(
        self, pool: asyncpg.Pool, *, interval_seconds: float, min_changes: int, share: float
    ) -> None:
        self._pool = pool
        self._min_changes = min_changes
        self._share = share
        self.waker = Waker(interval_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        await each_turn(self.analyze_once, self.waker, stop, failure="statistics_failed")

    async def analyze_once(self) -> list[str]:
        """Analyse the tables that changed enough since their last analysis; their names."""
        async with self._pool.acquire() as conn:
            tables = await stale_tables(conn, min_changes=self._min_changes, share=self._share)
            for table in tables:
                await analyze(conn, table)
        if tables:
            log.info("statistics_refreshed", tables=tables)
        return tables


async def stale_tables(conn: Connection, *, min_changes: int, share: float) -> list[str]:
    """Tables of this worker's schema changed by more than ``min_changes`` rows and
    ``share`` of their rows since they were last analysed."""
    rows = await conn.fetch(
        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema()"
        " AND n_mod_since_analyze > greatest($1::bigint, $2::float8 * n_live_tup)"
        " ORDER BY relname",
        min_changes,
        share,
    )
    return [r["relname"] for r in rows]


async def analyze(conn: Connection, table: str) -> None:
    await conn.execute(f"ANALYZE {quote_ident(table)}")
