"""The feed runs: a loop that executes queued runs, and the nightly scheduler that queues them.

A run is claimed under a lease (so replicas share the work and a crashed worker's runs
come back), parses and compares the school's drop in a worker process (CPU-bound), and
finishes in one transaction: its report, the snapshot it replaces, and its events.
"""

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from uuid import UUID

from services.directory_sync import domain, events
from services.directory_sync.feed_folder import read_folder
from services.directory_sync.ports import QueuedRun
from services.directory_sync.settings import DirectorySyncSettings
from services.directory_sync.store import RunQueries
from shared.contracts.directory import (
    Finding,
    SyncCounts,
)
from shared.envelope import Contract, Envelope, new_event
from shared.errors import describe
from shared.logs import get_logger
from shared.retry import Retry
from shared.runtime import Clock, Waker, keep_leases, utc_now

log = get_logger(__name__)


class RunLoop:
    def __init__(
        self,
        queries: RunQueries,
        *,
        settings: DirectorySyncSettings,
        on_outcome: Waker,
        executor: Executor | None = None,
    ) -> None:
        self._queries = queries
        self._settings = settings
        self._on_outcome = on_outcome
        self._executor = executor
        self.waker = Waker(settings.run_poll_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._lane(stop) for _ in range(self._settings.run_concurrency)))

    async def _lane(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                claimed = await self._queries.claim(self._settings.run_lease_seconds)
            except Exception as exc:  # database away: wait and look again
                log.warning("run_claim_failed", error=describe(exc))
                await self.waker.sleep(2.0, stop)
                continue
            if claimed is None:
                await self.waker.wait(stop)
                continue
            run, head = claimed
            renewing = asyncio.create_task(self._keep_lease(run.run_id))
            try:
                await self.execute(run, head)
            finally:
                renewing.cancel()

    async def _keep_lease(self, run_id: UUID) -> None:
        """Renew the lease while the run goes on, so that a slow school is not run a
        second time by another replica; the lease stays short for crashed workers."""

        async def renew(lease: float) -> None:
            await self._queries.renew_lease(run_id, lease)

        await keep_leases(
            renew, self._settings.run_lease_seconds, failure="run_lease_renewal_failed"
        )

    async def execute(self, run: QueuedRun, head: domain.SnapshotHead) -> None:
        try:
            result = await self.compute(run, head)
            finished = await self._queries.finish(run, result, self._events(run, result))
        except Exception as exc:
            await self._failed(run, exc)
            return
        if not finished:
            # Another run applied onto this school meanwhile: compare again, now.
            log.info("run_recomputed", run_id=str(run.run_id), uai=run.uai)
            await self._queries.reschedule(run.run_id, delay_seconds=0, error=None)
            self.waker.wake()
            return
        self._on_outcome.wake()
        log.info(
            "run_done",
            run_id=str(run.run_id),
            uai=run.uai,
            trigger=run.trigger,
            status=result.status,
            **result.counts.model_dump(),
        )

    async def compute(self, run: QueuedRun, head: domain.SnapshotHead) -> domain.RunResult:
        folder = domain.drop_folder(self._settings.feed_dir, run.uai)
        if folder is None:
            return domain.invalid_uai(run.uai)
        s = self._settings
        drop = await asyncio.to_thread(read_folder, folder, max_file_bytes=s.feed_max_file_bytes)
        if drop is None:
            return domain.no_drop(head)
        # The digest and the parse are of the same bytes, read once: should the files
        # change meanwhile, the next run sees another digest and parses again.
        drop_digest = drop.digest()
        if head.digest == drop_digest:
            return domain.same_digest(head, dry_run=run.dry_run)
        stored = await self._queries.snapshot(run.school_id)
        compute = functools.partial(
            domain.compute,
            stored,
            drop,
            drop_digest,
            run_id=run.run_id,
            school_id=run.school_id,
            dry_run=run.dry_run,
            limits=s.feed_limits,
            leave_share=s.hold_leave_share,
            chunk_size=s.chunk_size,
        )
        # Parsing and comparing are CPU-bound: in worker processes where there are some
        # (the event loop and the other lanes go on meanwhile), else in a thread.
        computed = await asyncio.get_running_loop().run_in_executor(self._executor, compute)
        return domain.revived(computed) if computed.status == "held" else computed

    def _events(self, run: QueuedRun, result: domain.RunResult) -> list[Envelope[Contract]]:
        def event(data: Contract) -> Envelope[Contract]:
            return new_event(
                data,
                source=domain.SOURCE,
                correlationid=run.correlationid,
                causationid=run.causationid,
            )

        return [event(data) for data in events.run_finished(run, result)]

    async def _failed(self, run: QueuedRun, exc: Exception) -> None:
        """Tried again later with backoff; after the last attempt, reported as rejected."""
        reason = describe(exc)
        decision = self._settings.run_retry.decide_on(exc, run.attempts)
        if isinstance(decision, Retry):
            log.warning("run_retry", run_id=str(run.run_id), attempts=run.attempts, reason=reason)
            try:
                await self._queries.reschedule(
                    run.run_id, delay_seconds=decision.delay, error=reason
                )
            except Exception as again:  # the lease runs out and the run comes back anyway
                log.warning("run_reschedule_failed", error=describe(again))
            return
        log.error("run_failed", run_id=str(run.run_id), reason=decision.reason)
        result = domain.RunResult(
            status="rejected",
            counts=SyncCounts(),
            base_version=0,
            errors=(Finding(message=f"the run failed: {decision.reason}"),),
        )
        try:
            await self._queries.finish(run, result, self._events(run, result))
            self._on_outcome.wake()
        except Exception as again:
            log.warning("run_failure_not_recorded", error=describe(again))


class NightlyScheduler:
    """Queues each académie's nightly runs once a night, whatever the number of replicas:
    every replica looks, the database lets one of them start each académie's night."""

    def __init__(
        self,
        queries: RunQueries,
        *,
        settings: DirectorySyncSettings,
        clock: Clock = utc_now,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._queries = queries
        self._settings = settings
        self._clock = clock
        self._on_queued = on_queued

    async def run(self, stop: asyncio.Event) -> None:
        if not self._settings.nightly_enabled:
            return
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:
                log.warning("nightly_check_failed", error=describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.nightly_poll_seconds)

    async def tick(self) -> int:
        """Start the night due now, if any académie has not started it; runs queued."""
        s = self._settings
        night = domain.night_due(
            self._clock(), s.nightly_time, s.zone, timedelta(hours=s.nightly_window_hours)
        )
        if night is None:
            return 0
        queued = await self._queries.start_night(night)
        if queued:
            log.info("nightly_runs_queued", night=night.isoformat(), runs=queued)
            self._on_queued()
        return queued
