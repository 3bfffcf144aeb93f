"""What directory_sync's handlers need of a store: the Protocol they are written against,
and the rows that cross it.

``store.PostgresDirectoryStore`` is the real one (all the SQL); tests/fakes holds an
in-memory one that records state, so that the handlers run without Postgres in the unit
tier.
"""

from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from services.directory_sync.domain import SnapshotPerson, Trigger
from services.directory_sync.revert import RunToUndo, Snapshots
from shared.contracts.directory import DirectorySynced, FeedClass, SyncCounts
from shared.store import EventStore


@dataclass(frozen=True)
class Registration:
    school_id: UUID
    uai: str
    academie: str | None


@dataclass(frozen=True)
class QueuedRun:
    run_id: UUID
    school_id: UUID
    uai: str
    trigger: Trigger
    dry_run: bool
    correlationid: str
    causationid: str | None = None
    request_id: str | None = None
    requested_by: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class HeldRun:
    """A run as an approval finds it, with what it would apply when held."""

    run_id: UUID
    school_id: UUID
    uai: str
    status: str | None
    base_version: int | None
    digest: str | None
    counts: SyncCounts
    persons: list[SnapshotPerson]
    classes: list[FeedClass]
    chunks: list[DirectorySynced]


class DirectoryStore(EventStore, Protocol):
    async def register_school(
        self, school_id: UUID, *, uai: str, name: str, academie: str | None, order_id: str
    ) -> bool:
        """False when the school was registered already."""
        ...

    async def school_by_uai(self, uai: str) -> Registration | None: ...

    async def queue_run(self, run: QueuedRun) -> None: ...

    async def run_school(self, run_id: UUID) -> UUID | None: ...

    async def lock_school(self, school_id: UUID) -> int:
        """Lock the school's feed until commit; the version of its snapshot (0: none)."""
        ...

    async def run_to_undo(self, run_id: UUID) -> RunToUndo | None: ...

    async def snapshots(self, school_id: UUID) -> Snapshots | None: ...

    async def record_revert(
        self, run: QueuedRun, *, undone: UUID, base_version: int, digest: str, counts: SyncCounts
    ) -> None: ...

    async def replace_snapshot(self, school_id: UUID, **snapshot: Any) -> None: ...

    async def held_run(self, run_id: UUID) -> HeldRun | None: ...

    async def approve(
        self, held: HeldRun, *, approved_by: str, request_id: str, version: int
    ) -> None: ...
