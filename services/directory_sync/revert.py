"""Undoing a school's last applied run (``directory.sync.revert.requested``): pure decisions.

The school is put back as it was before the run by applying its previous snapshot again,
as a run of its own: the same feed ids, so the persons the run created leave, those it
made leave come back (account_manager restores the deactivated and recreates the deleted
under their old logins), those it moved move back, and the classes it archived are named
again (and come back as the same classes). Only the school's last applied run can be
undone: its snapshot is the one the run made, and the one before it is kept.
"""

from dataclasses import dataclass
from uuid import UUID

from services.directory_sync.domain import Diff, Snapshot, SnapshotPerson, StoredSnapshot
from shared.contracts.common import Reason
from shared.contracts.directory import DirectorySyncRevertRequested


@dataclass(frozen=True)
class RunToUndo:
    run_id: UUID
    uai: str
    status: str | None
    dry_run: bool


@dataclass(frozen=True)
class Snapshots:
    """A school's snapshot and the one before it, as stored (JSON text)."""

    run_id: UUID  # the run that made the current one
    version: int
    digest: str
    persons: str
    classes: str
    previous_version: int | None  # 0: nothing before; None: not kept
    previous_persons: str | None
    previous_classes: str | None


def refusal(
    run: RunToUndo | None, command: DirectorySyncRevertRequested, snapshots: Snapshots | None
) -> Reason | None:
    """Why the run cannot be undone (None: it can)."""
    if run is None or run.uai != command.uai:
        return Reason(field="run_id", message=f"no run {command.run_id} of UAI {command.uai}")
    if run.status != "applied" or run.dry_run:
        status = "dry_run" if run.dry_run else run.status
        return Reason(
            field="run_id", message=f"run {run.run_id} was not applied ({status}): nothing to undo"
        )
    if snapshots is None or snapshots.run_id != run.run_id:
        return Reason(
            field="run_id",
            message=(
                f"a later run was applied to {run.uai} since run {run.run_id}: only the"
                " school's last applied run can be undone"
            ),
        )
    if snapshots.previous_version is None:
        return Reason(
            field="run_id",
            message=f"what {run.uai} was before run {run.run_id} was not kept: it cannot be undone",
        )
    return None


def undo(current: Snapshot, previous: Snapshot) -> Diff:
    """The changes that make ``current`` ``previous`` again, person by person (by feed
    id: no matching by names, the persons are the same)."""
    now = {p.feed_id: p for p in current.persons}
    before = {p.feed_id: p for p in previous.persons}
    created = [p for f, p in before.items() if f not in now]
    left = [p for f, p in now.items() if f not in before]
    moved: list[SnapshotPerson] = []
    updated: list[SnapshotPerson] = []
    unchanged = 0
    for feed_id, back in before.items():
        if feed_id not in now:
            continue
        if now[feed_id].classes != back.classes:
            moved.append(back)
        elif now[feed_id] != back:
            updated.append(back)
        else:
            unchanged += 1
    return Diff(
        persons=previous.persons,
        classes=previous.classes,
        created=tuple(created),
        updated=tuple(updated),
        moved=tuple(moved),
        left=tuple(left),
        unchanged=unchanged,
        classes_changed=current.classes != previous.classes,
        warnings=(),
    )


@dataclass(frozen=True)
class RevertPlan:
    previous: Snapshot  # what the school becomes again
    changes: Diff  # from the current snapshot to it, person by person


def plan(snapshots: Snapshots, version: int) -> RevertPlan:
    """What undoing the school's last applied run changes (``refusal`` said it can)."""
    current = StoredSnapshot(version, snapshots.digest, snapshots.persons, snapshots.classes)
    previous = StoredSnapshot(
        snapshots.previous_version or 0,
        None,
        snapshots.previous_persons or "[]",
        snapshots.previous_classes or "[]",
    ).parsed()
    return RevertPlan(previous, undo(current.parsed(), previous))
