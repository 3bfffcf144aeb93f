"""Every SQL statement of directory_sync."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from services.directory_sync.domain import (
    CLASSES,
    NO_SNAPSHOT,
    NO_STORED_SNAPSHOT,
    PERSONS,
    RunResult,
    SnapshotHead,
    StoredSnapshot,
)
from services.directory_sync.ports import HeldRun, QueuedRun, Registration
from services.directory_sync.revert import RunToUndo, Snapshots
from shared.contracts.directory import DirectorySynced, FeedClass, SyncCounts
from shared.db import Connection
from shared.envelope import Contract, Envelope
from shared.store import TransactionStore

_CHUNKS = TypeAdapter(list[DirectorySynced])


_RUN_COLUMNS = (
    "run_id, school_id, uai, trigger, dry_run, correlationid, causationid, request_id,"
    " requested_by, attempts"
)


class PostgresDirectoryStore(TransactionStore):
    """``ports.DirectoryStore`` in Postgres."""

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

    async def school_by_uai(self, uai: str) -> Registration | None:
        row = await self.conn.fetchrow(
            "SELECT school_id, uai, academie FROM feed_registrations WHERE uai = $1", uai
        )
        return Registration(**row) if row else None

    async def queue_run(self, run: QueuedRun) -> None:
        await self.conn.execute(
            f"INSERT INTO sync_runs ({_RUN_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
            run.run_id,
            run.school_id,
            run.uai,
            run.trigger,
            run.dry_run,
            run.correlationid,
            run.causationid,
            run.request_id,
            run.requested_by,
        )

    async def run_school(self, run_id: UUID) -> UUID | None:
        school_id: UUID | None = await self.conn.fetchval(
            "SELECT school_id FROM sync_runs WHERE run_id = $1", run_id
        )
        return school_id

    async def lock_school(self, school_id: UUID) -> int:
        return await lock_school(self.conn, school_id)

    async def run_to_undo(self, run_id: UUID) -> RunToUndo | None:
        row = await self.conn.fetchrow(
            "SELECT run_id, uai, status, dry_run FROM sync_runs WHERE run_id = $1", run_id
        )
        return RunToUndo(**row) if row else None

    async def snapshots(self, school_id: UUID) -> Snapshots | None:
        """The school's snapshot and the one before it."""
        row = await self.conn.fetchrow(
            "SELECT run_id, version, digest, persons, classes, previous_version,"
            " previous_persons, previous_classes FROM feed_snapshots WHERE school_id = $1",
            school_id,
        )
        return Snapshots(**row) if row else None

    async def record_revert(
        self, run: QueuedRun, *, undone: UUID, base_version: int, digest: str, counts: SyncCounts
    ) -> None:
        """The revert as a run of its own, done and applied, naming the run it undid."""
        await self.queue_run(run)
        await self.conn.execute(
            "UPDATE sync_runs SET state = 'done', status = 'applied', base_version = $2,"
            " digest = $3, counts = $4::jsonb, reverts = $5, finished_at = now()"
            " WHERE run_id = $1",
            run.run_id,
            base_version,
            digest,
            counts.model_dump_json(),
            undone,
        )

    async def replace_snapshot(self, school_id: UUID, **snapshot: Any) -> None:
        """``replace_snapshot`` (below) in this transaction."""
        await replace_snapshot(self.conn, school_id, **snapshot)

    async def held_run(self, run_id: UUID) -> HeldRun | None:
        """The run, locked: of two approvals of one run, the second finds it applied."""
        row = await self.conn.fetchrow(
            "SELECT run_id, school_id, uai, status, base_version, digest, counts, held_changes"
            " FROM sync_runs WHERE run_id = $1 FOR UPDATE",
            run_id,
        )
        if row is None:
            return None
        changes: dict[str, Any] = json.loads(row["held_changes"] or "{}")
        return HeldRun(
            run_id=row["run_id"],
            school_id=row["school_id"],
            uai=row["uai"],
            status=row["status"],
            base_version=row["base_version"],
            digest=row["digest"],
            counts=SyncCounts.model_validate_json(row["counts"] or "{}"),
            persons=PERSONS.validate_python(changes.get("persons", [])),
            classes=CLASSES.validate_python(changes.get("classes", [])),
            chunks=_CHUNKS.validate_python(changes.get("chunks", [])),
        )

    async def approve(
        self, held: HeldRun, *, approved_by: str, request_id: str, version: int
    ) -> None:
        assert held.digest is not None
        await replace_snapshot(
            self.conn,
            held.school_id,
            version=version + 1,
            digest=held.digest,
            run_id=held.run_id,
            persons_json=PERSONS.dump_json(held.persons).decode(),
            persons_count=len(held.persons),
            classes=held.classes,
        )
        await self.conn.execute(
            "UPDATE sync_runs SET status = 'applied', approved_by = $2, approve_request_id = $3,"
            " approved_at = now(), held_changes = NULL WHERE run_id = $1",
            held.run_id,
            approved_by,
            request_id,
        )


async def lock_school(conn: Connection, school_id: UUID) -> int:
    """Lock the school's feed (its registration row, which always exists) and return the
    version of its snapshot (0: none yet). Runs and approvals of one school serialise here."""
    await conn.execute(
        "SELECT 1 FROM feed_registrations WHERE school_id = $1 FOR UPDATE", school_id
    )
    version = await conn.fetchval(
        "SELECT version FROM feed_snapshots WHERE school_id = $1", school_id
    )
    return int(version or 0)


async def replace_snapshot(
    conn: Connection,
    school_id: UUID,
    *,
    version: int,
    digest: str,
    run_id: UUID,
    persons_json: str,
    persons_count: int,
    classes: Sequence[FeedClass],
) -> None:
    """The school's snapshot is now this one; the one it replaces is kept as the previous
    (only the last applied run can be undone)."""
    await conn.execute(
        "INSERT INTO feed_snapshots (school_id, version, digest, run_id, persons, classes,"
        " persons_count, previous_version) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)"
        " ON CONFLICT (school_id) DO UPDATE SET version = EXCLUDED.version,"
        " digest = EXCLUDED.digest, run_id = EXCLUDED.run_id, persons = EXCLUDED.persons,"
        " persons_count = EXCLUDED.persons_count,"
        " classes = EXCLUDED.classes, applied_at = now(),"
        " previous_version = feed_snapshots.version, previous_run_id = feed_snapshots.run_id,"
        " previous_persons = feed_snapshots.persons, previous_classes = feed_snapshots.classes",
        school_id,
        version,
        digest,
        run_id,
        persons_json,
        CLASSES.dump_json(list(classes)).decode(),
        persons_count,
    )


def _findings(findings: Any) -> str:
    return json.dumps([f.model_dump(mode="json") for f in findings])


@dataclass(frozen=True)
class FeedFigures:
    schools: int  # registered for the feed
    night_started: float  # epoch seconds of the last night's start, 0 if none
    held: int  # runs held for an operator
    oldest_held_seconds: float  # how long the oldest of them has waited, 0 if none
    waiting: int  # runs queued, not claimed
    running: int  # runs claimed under a live lease
    last_night: dict[str, int]  # the last night's runs by status ("queued" until done)


class RunQueries:
    """The run loop's and the nightly scheduler's statements, each in its own transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(self, lease_seconds: float) -> tuple[QueuedRun, SnapshotHead] | None:
        """The next queued run, leased, with the head of its school's snapshot as it is now
        (checked again when the run finishes)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "WITH claimed AS ("
                " UPDATE sync_runs SET lease_until = now() + make_interval(secs => $1),"
                " attempts = attempts + 1"
                " WHERE run_id = (SELECT run_id FROM sync_runs"
                "  WHERE state = 'queued' AND not_before <= now()"
                "  AND (lease_until IS NULL OR lease_until < now())"
                "  ORDER BY not_before LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_RUN_COLUMNS})"
                " SELECT claimed.*, s.version, s.digest, s.persons_count"
                " FROM claimed LEFT JOIN feed_snapshots s USING (school_id)",
                lease_seconds,
            )
        if row is None:
            return None
        fields = dict(row)
        version, digest, persons = (fields.pop(k) for k in ("version", "digest", "persons_count"))
        head = (
            NO_SNAPSHOT
            if version is None
            else SnapshotHead(version=version, digest=digest, persons=persons)
        )
        return QueuedRun(**fields), head

    async def renew_lease(self, run_id: UUID, lease_seconds: float) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE sync_runs SET lease_until = now() + make_interval(secs => $2)"
                " WHERE run_id = $1 AND state = 'queued'",
                run_id,
                lease_seconds,
            )

    async def reschedule(self, run_id: UUID, *, delay_seconds: float, error: str | None) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE sync_runs SET lease_until = NULL, last_error = coalesce($2, last_error),"
                " not_before = now() + make_interval(secs => $3)"
                " WHERE run_id = $1 AND state = 'queued'",
                run_id,
                error,
                delay_seconds,
            )

    async def snapshot(self, school_id: UUID) -> StoredSnapshot:
        """The last applied snapshot as stored (JSON text): parsed where the run computes."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT version, digest, persons, classes FROM feed_snapshots WHERE school_id = $1",
                school_id,
            )
        return StoredSnapshot(**row) if row else NO_STORED_SNAPSHOT

    async def finish(
        self, run: QueuedRun, result: RunResult, events: list[Envelope[Contract]]
    ) -> bool:
        """Record the run's report, apply it (snapshot and events, in one transaction).

        False when it must be computed again: another run changed the snapshot it was
        compared with. A run another replica already finished (its lease ran out) is left
        as that replica recorded it.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            version = await lock_school(conn, run.school_id)
            if result.needs_same_snapshot and version != result.base_version:
                return False
            held = (
                {
                    "persons": json.loads(result.next_persons_json or "[]"),
                    "classes": CLASSES.dump_python(list(result.classes), mode="json"),
                    "chunks": _CHUNKS.dump_python(list(result.chunks), mode="json"),
                }
                if result.status == "held"
                else None
            )
            done = await conn.fetchval(
                "UPDATE sync_runs SET state = 'done', status = $2, lease_until = NULL,"
                " base_version = $3, digest = $4, counts = $5::jsonb, errors = $6::jsonb,"
                " warnings = $7::jsonb, hold_reasons = $8::jsonb, held_changes = $9::jsonb,"
                " turnover = $10, finished_at = now()"
                " WHERE run_id = $1 AND state = 'queued' RETURNING true",
                run.run_id,
                result.status,
                result.base_version,
                result.digest,
                result.counts.model_dump_json(),
                _findings(result.errors),
                _findings(result.warnings),
                json.dumps(list(result.hold_reasons)),
                json.dumps(held) if held is not None else None,
                result.turnover,
            )
            if not done:
                return True
            if result.replaces_snapshot:
                persons_json = result.next_persons_json
                assert result.digest is not None and persons_json is not None
                await replace_snapshot(
                    conn,
                    run.school_id,
                    version=version + 1,
                    digest=result.digest,
                    run_id=run.run_id,
                    persons_json=persons_json,
                    persons_count=result.next_snapshot_size,
                    classes=result.classes,
                )
            elif result.status == "unchanged" and result.digest is not None:
                # Same persons from other bytes (an ignored column changed): the next run
                # with these bytes skips parsing.
                await conn.execute(
                    "UPDATE feed_snapshots SET digest = $2 WHERE school_id = $1"
                    " AND digest IS DISTINCT FROM $2",
                    run.school_id,
                    result.digest,
                )
            await TransactionStore(conn).emit_all(events)
            return True

    async def figures(self) -> "FeedFigures":
        """What operators watch of the feed (directory_sync's gauges)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT"
                " (SELECT count(*) FROM feed_registrations) AS schools,"
                " (SELECT extract(epoch FROM max(started_at)) FROM nightly_runs) AS night_started,"
                " (SELECT count(*) FROM sync_runs WHERE status = 'held') AS held,"
                " (SELECT extract(epoch FROM now() - min(finished_at)) FROM sync_runs"
                "   WHERE status = 'held') AS oldest_held,"
                " (SELECT count(*) FROM sync_runs WHERE state = 'queued'"
                "   AND (lease_until IS NULL OR lease_until < now())) AS waiting,"
                " (SELECT count(*) FROM sync_runs WHERE state = 'queued'"
                "   AND lease_until >= now()) AS running"
            )
            last_night = await conn.fetch(
                "SELECT coalesce(status, 'queued') AS status, count(*) AS runs FROM sync_runs"
                " WHERE trigger = 'nightly'"
                "  AND created_at >= (SELECT max(started_at) FROM nightly_runs)"
                " GROUP BY 1"
            )
        assert row is not None
        return FeedFigures(
            schools=row["schools"],
            night_started=float(row["night_started"] or 0),
            held=row["held"],
            oldest_held_seconds=float(row["oldest_held"] or 0),
            waiting=row["waiting"],
            running=row["running"],
            last_night={r["status"]: r["runs"] for r in last_night},
        )

    async def start_night(self, night: date) -> int:
        """Queue the night's runs of every académie whose night has not started yet.

        The row of ``nightly_runs`` is the once-only token: of replicas inserting it at the
        same time, one inserts and queues one run per registered school of that académie,
        in the same transaction; the others wait for its commit and insert nothing.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            queued = await conn.fetchval(
                "WITH started AS ("
                "  INSERT INTO nightly_runs (academie, night)"
                "  SELECT DISTINCT coalesce(academie, ''), $1::date FROM feed_registrations"
                "  ORDER BY 1 ON CONFLICT DO NOTHING RETURNING academie),"
                " queued AS ("
                "  INSERT INTO sync_runs (run_id, school_id, uai, trigger, correlationid)"
                "  SELECT gen_random_uuid(), r.school_id, r.uai, 'nightly',"
                "   'nightly:' || $1::date::text || ':' || s.academie"
                "  FROM feed_registrations r"
                "  JOIN started s ON coalesce(r.academie, '') = s.academie"
                "  RETURNING 1)"
                " SELECT count(*) FROM queued",
                night,
            )
        return int(queued or 0)
