"""``services.directory_sync.ports.DirectoryStore`` in memory, and the worker's message path
on it."""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID

from services.directory_sync.domain import CLASSES, PERSONS, SnapshotPerson
from services.directory_sync.handlers import routes
from services.directory_sync.ports import DirectoryStore, HeldRun, QueuedRun, Registration
from services.directory_sync.revert import RunToUndo, Snapshots
from services.directory_sync.settings import DirectorySyncSettings
from shared.contracts.directory import DirectorySynced, FeedClass, SyncCounts
from shared.messaging.consumer import MessageProcessor, Outcome
from tests.fakes.events import InMemoryEventStore, unit_of_work
from tests.support.orders import cloudevent


@dataclass(frozen=True)
class RecordedRun:
    """A row of ``sync_runs`` as the handlers' statements leave it."""

    queued: QueuedRun
    state: str = "queued"
    status: str | None = None
    base_version: int | None = None
    digest: str | None = None
    counts: SyncCounts | None = None
    held: tuple[list[SnapshotPerson], list[FeedClass], list[DirectorySynced]] | None = None
    reverts: UUID | None = None
    approved_by: str | None = None


@dataclass(frozen=True)
class RecordedSnapshot:
    run_id: UUID
    version: int
    digest: str
    persons: str
    classes: str
    previous_version: int | None = 0  # as the table's default: 0, nothing before
    previous_persons: str | None = None
    previous_classes: str | None = None


@dataclass
class FakeDirectoryStore(InMemoryEventStore):
    registrations: dict[UUID, tuple[Registration, str, str]] = field(default_factory=dict)
    runs: dict[UUID, RecordedRun] = field(default_factory=dict)
    snapshot_of: dict[UUID, RecordedSnapshot] = field(default_factory=dict)  # by school

    async def register_school(
        self, school_id: UUID, *, uai: str, name: str, academie: str | None, order_id: str
    ) -> bool:
        taken = school_id in self.registrations or await self.school_by_uai(uai) is not None
        if not taken:
            self.registrations[school_id] = (Registration(school_id, uai, academie), name, order_id)
        return not taken

    async def school_by_uai(self, uai: str) -> Registration | None:
        found = (r for r, _, _ in self.registrations.values() if r.uai == uai)
        return next(found, None)

    async def queue_run(self, run: QueuedRun) -> None:
        if run.run_id in self.runs:
            raise ValueError(f"duplicate run {run.run_id}")
        self.runs[run.run_id] = RecordedRun(replace(run, attempts=0))

    async def run_school(self, run_id: UUID) -> UUID | None:
        found = self.runs.get(run_id)
        return found.queued.school_id if found else None

    async def lock_school(self, school_id: UUID) -> int:
        snapshot = self.snapshot_of.get(school_id)
        return snapshot.version if snapshot else 0

    async def run_to_undo(self, run_id: UUID) -> RunToUndo | None:
        found = self.runs.get(run_id)
        if found is None:
            return None
        return RunToUndo(run_id, found.queued.uai, found.status, found.queued.dry_run)

    async def snapshots(self, school_id: UUID) -> Snapshots | None:
        s = self.snapshot_of.get(school_id)
        if s is None:
            return None
        return Snapshots(
            s.run_id,
            s.version,
            s.digest,
            s.persons,
            s.classes,
            s.previous_version,
            s.previous_persons,
            s.previous_classes,
        )

    async def record_revert(
        self, run: QueuedRun, *, undone: UUID, base_version: int, digest: str, counts: SyncCounts
    ) -> None:
        await self.queue_run(run)
        self.runs[run.run_id] = replace(
            self.runs[run.run_id],
            state="done",
            status="applied",
            base_version=base_version,
            digest=digest,
            counts=counts,
            reverts=undone,
        )

    async def replace_snapshot(self, school_id: UUID, **snapshot: Any) -> None:
        old = self.snapshot_of.get(school_id)
        self.snapshot_of[school_id] = RecordedSnapshot(
            run_id=snapshot["run_id"],
            version=snapshot["version"],
            digest=snapshot["digest"],
            persons=snapshot["persons_json"],
            classes=CLASSES.dump_json(list(snapshot["classes"])).decode(),
            previous_version=old.version if old else 0,
            previous_persons=old.persons if old else None,
            previous_classes=old.classes if old else None,
        )

    async def held_run(self, run_id: UUID) -> HeldRun | None:
        found = self.runs.get(run_id)
        if found is None:
            return None
        persons, classes, chunks = found.held or ([], [], [])
        return HeldRun(
            run_id=run_id,
            school_id=found.queued.school_id,
            uai=found.queued.uai,
            status=found.status,
            base_version=found.base_version,
            digest=found.digest,
            counts=found.counts or SyncCounts(),
            persons=list(persons),
            classes=list(classes),
            chunks=list(chunks),
        )

    async def approve(
        self, held: HeldRun, *, approved_by: str, request_id: str, version: int
    ) -> None:
        assert held.digest is not None
        if self.runs[held.run_id].state != "done":
            raise ValueError("a run has a status once done")  # the table's CHECK
        await self.replace_snapshot(
            held.school_id,
            version=version + 1,
            digest=held.digest,
            run_id=held.run_id,
            persons_json=PERSONS.dump_json(held.persons).decode(),
            classes=held.classes,
        )
        self.runs[held.run_id] = replace(
            self.runs[held.run_id], status="applied", approved_by=approved_by, held=None
        )

    # What the run loop (RunQueries, not a handler's store) leaves behind, for the tests.

    def ran(self, run: QueuedRun, status: str, **recorded: Any) -> None:
        """``run`` as the run loop finishes it: done with ``status``."""
        self.runs[run.run_id] = RecordedRun(run, state="done", status=status, **recorded)


def _satisfies(fake: FakeDirectoryStore) -> DirectoryStore:
    return fake  # mypy (make lint) checks the fake against the Protocol here


class DirectorySync:
    """The worker's message path over one fake store, its feed folder ``feed_dir``."""

    def __init__(self, feed_dir: Path, store: FakeDirectoryStore | None = None) -> None:
        self.store = store or FakeDirectoryStore()
        settings = DirectorySyncSettings(feed_dir=feed_dir)
        self._processor = MessageProcessor(routes(settings), unit_of_work(self.store))
        self._sent = 0

    async def take(self, topic: str, data: dict[str, Any]) -> Outcome:
        self._sent += 1
        event = cloudevent(data, event_id=f"evt-{self._sent}", event_type=topic)
        return await self._processor.process(json.dumps(event, default=str).encode())

    def data_of(self, topic: str) -> list[Any]:
        return [event.data for event in self.store.emitted if event.type == topic]
