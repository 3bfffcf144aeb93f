"""Undoing a school's last applied run, in directory_sync's pure decisions: the changes
that make the previous snapshot the school's again, and when an undo is refused."""

import uuid
from datetime import date

from services.directory_sync import revert
from services.directory_sync.domain import Snapshot, diff
from shared.contracts.directory import DirectorySyncRevertRequested
from tests.unit.test_feed_diff import UAI, applied, export, parent, pupil


def test_undoing_a_run_brings_back_who_left_and_removes_who_came():
    zoe = pupil("Zoé", "Roux", "CP", line=2, born=date(2019, 1, 2))
    leo = pupil("Léo", "Roy", "CM2", line=3, born=date(2015, 1, 2))
    before = applied(export([zoe, leo], [parent("Anne", "Roy", leo, line=2)]))
    # The run: Léo and his mother gone, Zoé in CE1, Inès new.
    ines = pupil("Inès", "Petit", "CP", line=4, born=date(2020, 5, 6))
    night = diff(before, export([pupil("Zoé", "Roux", "CE1", line=2, born=zoe.birth_date), ines]))
    after = Snapshot(version=2, digest="d2", persons=night.persons, classes=night.classes)

    undone = revert.undo(after, before)

    assert undone.persons == before.persons and undone.classes == before.classes
    assert {p.first_name for p in undone.created} == {"Léo", "Anne"}
    # The same feed ids: account_manager finds the persons again, no matching by names.
    assert {p.feed_id for p in undone.created} == {p.feed_id for p in night.left}
    assert [p.first_name for p in undone.left] == ["Inès"]
    [moved_back] = undone.moved
    assert (moved_back.first_name, moved_back.classes) == ("Zoé", ["CP"])
    assert undone.classes_changed and not undone.turnover
    assert undone.counts.left == undone.counts.unexpected_leavers == 1


def test_undoing_a_first_import_empties_the_school():
    first = applied(export([pupil("Zoé", "Roux", line=2)]))
    undone = revert.undo(first, Snapshot(version=0, digest=None))
    assert [p.first_name for p in undone.left] == ["Zoé"] and undone.classes == ()


def test_only_the_school_s_last_applied_run_is_undone():
    run_id = uuid.uuid4()
    command = DirectorySyncRevertRequested(
        request_id="r", requested_by="ops", uai=UAI, run_id=run_id
    )
    kept = revert.Snapshots(run_id, 3, "d", "[]", "[]", 2, "[]", "[]")
    applied_run = revert.RunToUndo(run_id, UAI, "applied", False)

    def refused(run, snapshots=kept) -> str | None:
        reason = revert.refusal(run, command, snapshots)
        return None if reason is None else reason.message

    assert refused(applied_run) is None
    assert refused(None) == f"no run {run_id} of UAI {UAI}"
    assert refused(revert.RunToUndo(run_id, "0740001X", "applied", False)).startswith("no run")
    assert "not applied (held)" in refused(revert.RunToUndo(run_id, UAI, "held", False))
    assert "not applied (dry_run)" in refused(revert.RunToUndo(run_id, UAI, "applied", True))
    later = revert.Snapshots(uuid.uuid4(), 4, "d", "[]", "[]", 3, "[]", "[]")
    assert "a later run was applied" in refused(applied_run, later)
    lost = revert.Snapshots(run_id, 3, "d", "[]", "[]", None, None, None)
    assert "was not kept" in refused(applied_run, lost)
