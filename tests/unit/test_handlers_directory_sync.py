"""directory_sync's handlers through its routing table and the consume wrapper, on the
in-memory store: every message it takes, on its success and refusal paths, no Postgres.
(The run loop, which reads the drops, is tested on real Postgres: test_feed_runs.py.)"""

import uuid
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from services.directory_sync.domain import PERSONS, SnapshotPerson
from services.directory_sync.ports import QueuedRun
from shared import topics
from shared.contracts.directory import DirectorySynced, FeedClass, SyncCounts
from tests.fakes.directory_sync import DirectorySync
from tests.support.feed import school_initialised

UAI = "0740001Z"
OTHER_UAI = "0740002A"


@pytest.fixture
def worker(tmp_path: Path) -> DirectorySync:
    return DirectorySync(tmp_path)


async def registered(worker: DirectorySync, uai: str = UAI) -> UUID:
    data = school_initialised(uai)
    await worker.take(topics.SCHOOL_INITIALISED, data)
    return UUID(data["school_id"])


def sync_request(uai: str = UAI, **more: Any) -> dict[str, Any]:
    return {"request_id": "req-1", "requested_by": "ops", "uai": uai, **more}


def command(run_id: UUID, uai: str = UAI, **by: str) -> dict[str, Any]:
    return {"request_id": "req-2", "uai": uai, "run_id": str(run_id), **by}


def pupil(name: str) -> SnapshotPerson:
    return SnapshotPerson(
        feed_id=uuid.uuid4(),
        profile="student",
        first_name=name,
        last_name="MARTIN",
        birth_date=date(2018, 3, 1),
        classes=["CP"],
    )


def finished_run(school_id: UUID, *, trigger: str = "nightly") -> QueuedRun:
    return QueuedRun(uuid.uuid4(), school_id, UAI, trigger, False, "corr")  # type: ignore[arg-type]


def reasons_of(worker: DirectorySync) -> list[tuple[str, str]]:
    [rejected] = worker.data_of(topics.COMMAND_REJECTED)
    return [(r.field, r.message) for r in rejected.reasons]


async def test_an_automatic_school_with_a_drop_is_registered_and_synced_at_once(
    worker: DirectorySync, tmp_path: Path
) -> None:
    (tmp_path / UAI).mkdir()
    school_id = await registered(worker)
    registration = await worker.store.school_by_uai(UAI)
    assert registration is not None and registration.school_id == school_id
    [run] = worker.store.runs.values()
    assert (run.queued.trigger, run.queued.school_id, run.state) == (
        "first_sync",
        school_id,
        "queued",
    )


async def test_a_school_registered_twice_or_without_a_drop_queues_no_run(
    worker: DirectorySync, tmp_path: Path
) -> None:
    await registered(worker, OTHER_UAI)  # no folder yet
    (tmp_path / OTHER_UAI).mkdir()
    await registered(worker, OTHER_UAI)  # the same UAI again (a renewal's order)
    assert len(worker.store.registrations) == 1
    assert worker.store.runs == {}


async def test_a_manual_school_is_not_fed(worker: DirectorySync, tmp_path: Path) -> None:
    (tmp_path / UAI).mkdir()
    data = {**school_initialised(UAI), "provisioning": "manual"}
    outcome = await worker.take(topics.SCHOOL_INITIALISED, data)
    assert outcome.kind == "applied"
    assert (worker.store.registrations, worker.store.runs) == ({}, {})


async def test_a_sync_request_queues_a_run_with_its_request(worker: DirectorySync) -> None:
    school_id = await registered(worker)
    await worker.take(topics.DIRECTORY_SYNC_REQUESTED, sync_request(dry_run=True))
    [run] = worker.store.runs.values()
    assert (run.queued.trigger, run.queued.dry_run, run.queued.request_id) == (
        "request",
        True,
        "req-1",
    )
    assert run.queued.school_id == school_id


async def test_a_sync_request_for_a_school_not_fed_is_rejected(worker: DirectorySync) -> None:
    await worker.take(topics.DIRECTORY_SYNC_REQUESTED, sync_request(OTHER_UAI))
    assert [field for field, _ in reasons_of(worker)] == ["uai"]
    assert worker.store.runs == {}


async def test_an_invalid_sync_request_is_rejected_field_by_field(worker: DirectorySync) -> None:
    outcome = await worker.take(
        topics.DIRECTORY_SYNC_REQUESTED, sync_request("0740001A", dry_run="perhaps")
    )
    assert outcome.kind == "applied"  # answered with command.rejected, not dead-lettered
    assert {field for field, _ in reasons_of(worker)} == {"uai", "dry_run"}


def held(worker: DirectorySync, school_id: UUID, persons: list[SnapshotPerson]) -> UUID:
    run = finished_run(school_id)
    chunk = DirectorySynced(
        run_id=run.run_id, school_id=school_id, uai=UAI, chunk=0, chunks=1, version=1
    )
    worker.store.ran(
        run,
        "held",
        base_version=0,
        digest="d1",
        counts=SyncCounts(created=len(persons)),
        held=(persons, [FeedClass(name="CP")], [chunk]),
    )
    return run.run_id


async def test_an_approved_held_run_is_applied_as_it_was_reported(worker: DirectorySync) -> None:
    school_id = await registered(worker)
    run_id = held(worker, school_id, [pupil("Léa")])
    await worker.take(
        topics.DIRECTORY_SYNC_APPROVE_REQUESTED, command(run_id, approved_by="Mme Dupont")
    )
    assert worker.store.topics()[-2:] == [topics.DIRECTORY_SYNCED, topics.DIRECTORY_SYNC_REPORTED]
    [reported] = worker.data_of(topics.DIRECTORY_SYNC_REPORTED)
    assert (reported.status, reported.trigger, reported.approved_by) == (
        "applied",
        "approval",
        "Mme Dupont",
    )
    snapshot = worker.store.snapshot_of[school_id]
    assert (snapshot.version, snapshot.digest, snapshot.run_id) == (1, "d1", run_id)
    assert [p.first_name for p in PERSONS.validate_json(snapshot.persons)] == ["Léa"]
    assert worker.store.runs[run_id].status == "applied"


async def test_an_approval_is_refused_when_the_run_is_not_held_or_is_stale(
    worker: DirectorySync,
) -> None:
    school_id = await registered(worker)
    run_id = held(worker, school_id, [pupil("Léa")])
    await worker.store.replace_snapshot(  # another run was applied meanwhile
        school_id, version=1, digest="d0", run_id=uuid.uuid4(), persons_json="[]", classes=[]
    )
    await worker.take(topics.DIRECTORY_SYNC_APPROVE_REQUESTED, command(run_id, approved_by="x"))
    await worker.take(
        topics.DIRECTORY_SYNC_APPROVE_REQUESTED, command(uuid.uuid4(), approved_by="x")
    )
    stale, unknown = worker.data_of(topics.COMMAND_REJECTED)
    assert "another run was applied" in stale.reasons[0].message
    assert unknown.reasons[0].message.startswith("no run ")
    assert worker.store.runs[run_id].status == "held"
    assert topics.DIRECTORY_SYNCED not in worker.store.topics()


async def applied_twice(worker: DirectorySync, school_id: UUID) -> tuple[UUID, SnapshotPerson]:
    """Two applied runs: the first brought Léa, the second Hugo."""
    lea, hugo = pupil("Léa"), pupil("Hugo")
    for version, persons in ((1, [lea]), (2, [lea, hugo])):
        run = finished_run(school_id)
        worker.store.ran(run, "applied", base_version=version - 1, digest=f"d{version}")
        await worker.store.replace_snapshot(
            school_id,
            version=version,
            digest=f"d{version}",
            run_id=run.run_id,
            persons_json=PERSONS.dump_json(persons).decode(),
            classes=[FeedClass(name="CP")],
        )
    return run.run_id, hugo


async def test_the_last_applied_run_is_undone_as_a_run_of_its_own(worker: DirectorySync) -> None:
    school_id = await registered(worker)
    last, hugo = await applied_twice(worker, school_id)
    await worker.take(topics.DIRECTORY_SYNC_REVERT_REQUESTED, command(last, requested_by="ops"))
    [chunk] = worker.data_of(topics.DIRECTORY_SYNCED)
    assert (chunk.left, chunk.version) == ([hugo.feed_id], 3)
    [reported] = worker.data_of(topics.DIRECTORY_SYNC_REPORTED)
    assert (reported.trigger, reported.counts.left) == ("revert", 1)
    reverting = worker.store.runs[reported.run_id]
    assert (reverting.reverts, reverting.status, reverting.digest) == (last, "applied", "d2")
    snapshot = worker.store.snapshot_of[school_id]
    assert [p.first_name for p in PERSONS.validate_json(snapshot.persons)] == ["Léa"]
    assert snapshot.version == 3


async def test_only_the_last_applied_run_can_be_undone(worker: DirectorySync) -> None:
    school_id = await registered(worker)
    last, _ = await applied_twice(worker, school_id)
    first = next(r for r in worker.store.runs if r != last)
    dry = QueuedRun(uuid.uuid4(), school_id, UAI, "request", True, "corr")
    worker.store.ran(dry, "applied", digest="d9")
    for run_id in (first, dry.run_id):
        await worker.take(topics.DIRECTORY_SYNC_REVERT_REQUESTED, command(run_id, requested_by="o"))
    later, dry_run = worker.data_of(topics.COMMAND_REJECTED)
    assert "only the school's last applied run can be undone" in later.reasons[0].message
    assert "(dry_run)" in dry_run.reasons[0].message
    assert worker.store.snapshot_of[school_id].version == 2
