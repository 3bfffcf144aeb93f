"""account_manager's composition root."""

from datetime import timedelta
from pathlib import Path

from services.account_manager.feed_store import PostgresFeedStore
from services.account_manager.handlers import routes
from services.account_manager.ports import FeedStore
from services.account_manager.purge import PurgeLoop
from services.account_manager.settings import AccountManagerSettings
from services.account_manager.store import RankReserver
from shared import db, topics
from shared.runtime import utc_now
from shared.worker import Context, Wiring, Worker

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: AccountManagerSettings | None = None) -> Worker:
    settings = settings or AccountManagerSettings()

    async def wire(context: Context) -> Wiring[FeedStore]:
        purge = PurgeLoop(
            context.pool,
            grace=timedelta(days=settings.deactivation_grace_days),
            interval_seconds=settings.purge_interval_seconds,
            batch=settings.purge_batch,
            clock=utc_now,
            on_commit=context.relay.waker.wake,
        )
        # Login ranks are reserved on a pool of their own (see
        # RankReserver): taking them from ``context.pool`` could starve it, every
        # connection held by a chunk waiting for one more.
        ranks_pool = await db.create_pool(
            context.database, min_size=1, max_size=2, service=f"{topics.ACCOUNT_MANAGER}-ranks"
        )
        return Wiring(
            routes=routes(settings, reserve_ranks=RankReserver(ranks_pool)),
            store=PostgresFeedStore,
            loops=[purge.run],
            closers=[ranks_pool.close],
        )

    return Worker(topics.ACCOUNT_MANAGER, settings, MIGRATIONS, wire)
