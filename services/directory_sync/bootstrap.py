"""directory_sync's composition root: the handlers, the run loop and the nightly scheduler."""

import asyncio
from pathlib import Path

from services.directory_sync.handlers import routes
from services.directory_sync.metrics import FeedGauges, refresher
from services.directory_sync.ports import DirectoryStore
from services.directory_sync.processes import run_processes
from services.directory_sync.runs import NightlyScheduler, RunLoop
from services.directory_sync.settings import DirectorySyncSettings
from services.directory_sync.store import PostgresDirectoryStore, RunQueries
from shared import topics
from shared.runtime import Clock, utc_now
from shared.worker import Context, Wiring, Worker

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: DirectorySyncSettings | None = None, *, clock: Clock = utc_now) -> Worker:
    """``clock`` tells the nightly scheduler the time (tests give it the night they want)."""
    settings = settings or DirectorySyncSettings()

    async def wire(context: Context) -> Wiring[DirectoryStore]:
        queries = RunQueries(context.pool)
        processes = run_processes(settings.run_processes)
        runs = RunLoop(
            queries, settings=settings, on_outcome=context.relay.waker, executor=processes
        )

        async def close_processes() -> None:
            if processes is not None:
                await asyncio.to_thread(processes.shutdown, wait=True, cancel_futures=True)

        nightly = NightlyScheduler(
            queries, settings=settings, clock=clock, on_queued=runs.waker.wake
        )
        gauges = FeedGauges(context.metrics.registry, topics.DIRECTORY_SYNC)
        return Wiring(
            routes=routes(settings),
            store=PostgresDirectoryStore,
            loops=[runs.run, nightly.run],
            after_commit=[runs.waker.wake],
            closers=[close_processes],
            before_scrape=[refresher(gauges, queries.figures, settings, clock)],
        )

    return Worker(topics.DIRECTORY_SYNC, settings, MIGRATIONS, wire)
