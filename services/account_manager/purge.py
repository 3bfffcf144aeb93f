"""The purge: deactivated leavers past their grace period are removed (accounts.deleted),
and classes archived as long ago, and the logins of deleted leavers kept as long.

Every replica runs it. Each school is purged under the same school lock as its feed
chunks, taken first as they take it: a chunk restoring a leaver and the purge removing
him never cross (and never deadlock), and two replicas never remove (nor announce) the
same account twice.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from services.account_manager import events, feed_rules
from services.account_manager.domain import SOURCE
from services.account_manager.feed_store import PostgresFeedStore
from services.account_manager.ports import FeedStore
from shared.envelope import new_event
from shared.logs import get_logger
from shared.runtime import Waker, each_turn

log = get_logger(__name__)


class PurgeLoop:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        grace: timedelta,
        interval_seconds: float,
        batch: int,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._grace = grace
        self._batch = batch
        self._clock = clock
        self._on_commit = on_commit
        self.waker = Waker(interval_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        await each_turn(lambda: self.purge_once(stop), self.waker, stop, failure="purge_failed")

    async def purge_once(self, stop: asyncio.Event | None = None) -> int:
        """Remove every leaver (and archived class) whose grace period is over; how many
        leavers."""
        cutoff = feed_rules.purge_cutoff(self._clock(), self._grace)
        async with self._pool.acquire() as conn:
            schools = await purge_aged(PostgresFeedStore(conn), cutoff)
        removed = 0
        for school_id in schools:
            while not (stop and stop.is_set()):
                done = await self._purge_batch(school_id, cutoff)
                removed += done
                if done < self._batch:
                    break
        return removed

    async def _purge_batch(self, school_id: UUID, cutoff: datetime) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            done = await purge_leavers(PostgresFeedStore(conn), school_id, cutoff, self._batch)
        if done:
            self._on_commit()
            log.info("leavers_purged", school_id=str(school_id), count=done)
        return done


async def purge_aged(store: FeedStore, cutoff: datetime) -> list[UUID]:
    """Forget the classes archived and the deleted leavers' logins kept since ``cutoff`` or
    before; the schools with leavers due for removal."""
    if classes := await store.delete_archived_classes(cutoff):
        log.info("archived_classes_purged", count=classes)
    await store.forget_deleted_logins(cutoff)
    await store.forget_identity_claims(cutoff)
    return await store.schools_with_expired(cutoff)


async def purge_leavers(store: FeedStore, school_id: UUID, cutoff: datetime, limit: int) -> int:
    """Up to ``limit`` leavers of the school due for removal removed and announced
    (accounts.deleted), under the school's feed lock, in the store's transaction; how many."""
    await store.lock_school_feed(school_id)
    due = await store.claim_expired(school_id, cutoff, limit)
    if not due:
        return 0
    views = await store.account_views(due)
    await store.delete_accounts(due)
    gone = events.accounts_deleted(school_id, [views[a] for a in due])
    await store.emit(new_event(gone, source=SOURCE, correlationid=f"purge:{school_id}"))
    return len(due)
