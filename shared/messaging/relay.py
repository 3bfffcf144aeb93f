"""The outbox relay: publishes rows that handlers committed, then marks them published and
drops their bodies (an event's body may hold activation codes: once the broker confirmed
it, nothing needs it here); the rest of a row, what ``onectl trace`` reads, is deleted after
``retention_hours``.

At least once: a crash between the broker's confirm and the update publishes the row
again, and the consumers' inboxes absorb the duplicate. Replicas share the work through
``FOR UPDATE SKIP LOCKED``.
"""

import asyncio
import contextlib
import time

import asyncpg

from shared.errors import describe
from shared.logs import get_logger
from shared.messaging.publisher import Outgoing, Publisher
from shared.metrics import Metrics
from shared.retry import GiveUp, RetryPolicy
from shared.runtime import Waker

log = get_logger(__name__)
PURGE_EVERY_SECONDS = 300.0
# The relay is busy when it published within this long: it then lingers (see ``run``).
BUSY_WITHIN_SECONDS = 0.5
# A committed event must go out: the relay never gives up, it only waits longer.
FOR_EVER = RetryPolicy.exponential(base=0.2, ceiling=5.0, max_attempts=None)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        *,
        batch: int = 200,
        poll_seconds: float = 1.0,
        linger_seconds: float = 0.0,
        retention_hours: float = 24.0,
        retry_policy: RetryPolicy = FOR_EVER,
        metrics: Metrics | None = None,
    ) -> None:
        if retry_policy.max_attempts is not None:
            raise ValueError("the outbox relay's retry policy must never give up")
        self._pool = pool
        self._publisher = publisher
        self._batch = batch
        self._linger = linger_seconds
        self._retention_seconds = retention_hours * 3600
        self._metrics = metrics
        self._policy = retry_policy
        self.waker = Waker(poll_seconds)
        self._last_purge = time.monotonic()
        self._last_published = float("-inf")

    async def flush_once(self) -> int:
        """Publish one batch; the number of rows published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT seq, message_id, topic, correlationid, body FROM outbox"
                " WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                return 0
            await self._publisher.publish_many(
                Outgoing(r["topic"], r["message_id"], r["correlationid"], bytes(r["body"]))
                for r in rows
            )
            if self._metrics is not None:  # every one confirmed and routed
                for r in rows:
                    self._metrics.published(r["topic"])
            await conn.execute(
                "UPDATE outbox SET published_at = now(), body = NULL WHERE seq = ANY($1::bigint[])",
                [r["seq"] for r in rows],
            )
        return len(rows)

    async def lag(self) -> int:
        async with self._pool.acquire() as conn:
            return int(
                await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            )

    async def backlog(self) -> tuple[int, float]:
        """Unpublished rows and the age in seconds of the oldest (0 when none)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS lag,"
                " COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest"
                " FROM outbox WHERE published_at IS NULL"
            )
        assert row is not None
        return int(row["lag"]), float(row["oldest"])

    async def run(self, stop: asyncio.Event) -> None:
        failed = 0  # attempts in a row that failed
        while not stop.is_set():
            try:
                published = await self.flush_once()
                if published:
                    self._last_published = time.monotonic()
                failed = 0
                if published >= self._batch:
                    continue
                await self._maybe_purge()
            except Exception as exc:  # broker or database away: keep the rows, try again
                failed += 1
                delay = self._policy.delay(failed)
                if isinstance(self._policy.decide_on(exc, failed), GiveUp):
                    # Nothing here may drop a committed event: say it loud, keep trying.
                    log.error("outbox_publish_failing", error=describe(exc), retry_in=delay)
                else:
                    log.warning("outbox_publish_failed", error=describe(exc), retry_in=delay)
                await self.waker.sleep(delay, stop)
                continue
            await self.waker.wait(stop)
            await self._linger_if_busy(stop)

    async def _linger_if_busy(self, stop: asyncio.Event) -> None:
        """Under a stream of commits, wait ``linger`` before publishing, so that one batch
        (two statements and a transaction) carries the rows of several commits instead of
        one each. After a quiet spell a row goes out at once: an idle pipeline's latency
        is unchanged."""
        if self._linger and time.monotonic() - self._last_published < BUSY_WITHIN_SECONDS:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._linger)
            # The commits that woke it meanwhile are in the batch about to be read.
            self.waker.clear()

    async def drain(self, timeout: float) -> None:
        """Publish what is left before stopping, as far as ``timeout`` allows."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await self.flush_once() == 0:
                    return
            except Exception:
                return

    async def _maybe_purge(self) -> None:
        if time.monotonic() - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = time.monotonic()
        async with self._pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
                self._retention_seconds,
            )
