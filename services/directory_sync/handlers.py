"""directory_sync's handlers: they register the schools fed from ONDE, queue their runs
(the run loop executes them), and apply the held runs an operator approves."""

import uuid
from collections.abc import Callable
from typing import Any

from services.directory_sync import domain, events, revert
from services.directory_sync.domain import PERSONS
from services.directory_sync.ports import DirectoryStore, HeldRun, QueuedRun
from services.directory_sync.settings import DirectorySyncSettings
from shared import topics
from shared.commands import reject_command
from shared.contracts.common import Reason
from shared.contracts.directory import (
    DirectorySyncApproveRequested,
    DirectorySyncRequested,
    DirectorySyncRevertRequested,
)
from shared.contracts.orders import SchoolInitialised
from shared.envelope import Envelope, follow
from shared.logs import get_logger
from shared.messaging.consumer import Route

log = get_logger(__name__)


async def handle_school_initialised(
    event: Envelope[SchoolInitialised],
    *,
    store: DirectoryStore,
    settings: DirectorySyncSettings,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> None:
    school = event.data
    if school.provisioning != "automatic":
        return
    added = await store.register_school(
        school.school_id,
        uai=school.uai,
        name=school.name,
        academie=school.academie,
        order_id=school.order_id,
    )
    log.info("feed_registered" if added else "feed_already_registered", uai=school.uai)
    folder = domain.drop_folder(settings.feed_dir, school.uai)
    if not added or folder is None or not folder.is_dir():
        return
    # The school's first sync, right away rather than at the next night.
    await store.queue_run(
        QueuedRun(
            run_id=new_id(),
            school_id=school.school_id,
            uai=school.uai,
            trigger="first_sync",
            dry_run=False,
            correlationid=event.correlationid,
            causationid=event.id,
        )
    )
    log.info("first_sync_queued", uai=school.uai)


async def handle_sync_requested(
    event: Envelope[DirectorySyncRequested],
    *,
    store: DirectoryStore,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> None:
    command = event.data
    school = await store.school_by_uai(command.uai)
    if school is None:
        unknown = Reason(field="uai", message=f"no school fed from ONDE has UAI {command.uai}")
        await reject_request(event, [unknown], store=store)
        return
    run_id = new_id()
    await store.queue_run(
        QueuedRun(
            run_id=run_id,
            school_id=school.school_id,
            uai=school.uai,
            trigger="request",
            dry_run=command.dry_run,
            correlationid=command.request_id,
            causationid=event.id,
            request_id=command.request_id,
            requested_by=command.requested_by,
        )
    )
    log.info("run_queued", uai=school.uai, run_id=str(run_id), dry_run=command.dry_run)


async def handle_approve_requested(
    event: Envelope[DirectorySyncApproveRequested], *, store: DirectoryStore
) -> None:
    """Apply a held run as it was reported, if nothing was applied to its school since."""
    command = event.data
    school_id = await store.run_school(command.run_id)
    # The school first, then the run: the same order as a run finishing, so no deadlock.
    version = await store.lock_school(school_id) if school_id else 0
    held = await store.held_run(command.run_id) if school_id else None
    reason = approval_refusal(held, command, version)
    if reason is not None:
        await reject_request(event, [reason], store=store)
        return
    assert held is not None
    await store.approve(
        held, approved_by=command.approved_by, request_id=command.request_id, version=version
    )
    reported = events.approval_reported(held, command)
    await store.emit_all(
        [follow(event, data, source=domain.SOURCE) for data in [*held.chunks, reported]]
    )
    log.info("held_run_approved", uai=held.uai, run_id=str(held.run_id))


async def handle_revert_requested(
    event: Envelope[DirectorySyncRevertRequested],
    *,
    store: DirectoryStore,
    chunk_size: int,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> None:
    """Undo the school's last applied run: its previous snapshot applied again, as a run
    of its own (reported, trigger "revert"). The drop that was undone keeps its digest, so
    that the next run does not apply it again: only a new drop is."""
    command = event.data
    school_id = await store.run_school(command.run_id)
    # The school first, then the run: the same order as a run finishing, so no deadlock.
    version = await store.lock_school(school_id) if school_id else 0
    run = await store.run_to_undo(command.run_id) if school_id else None
    snapshots = await store.snapshots(school_id) if school_id else None
    reason = revert.refusal(run, command, snapshots)
    if reason is not None:
        await reject_request(event, [reason], store=store)
        return
    assert school_id is not None and snapshots is not None and run is not None
    planned = revert.plan(snapshots, version)
    reverting = QueuedRun(
        run_id=new_id(),
        school_id=school_id,
        uai=run.uai,
        trigger="revert",
        dry_run=False,
        correlationid=command.request_id,
        causationid=event.id,
        request_id=command.request_id,
        requested_by=command.requested_by,
    )
    counts = planned.changes.counts
    await store.record_revert(
        reverting, undone=run.run_id, base_version=version, digest=snapshots.digest, counts=counts
    )
    persons = list(planned.previous.persons)
    await store.replace_snapshot(
        school_id,
        version=version + 1,
        digest=snapshots.digest,
        run_id=reverting.run_id,
        persons_json=PERSONS.dump_json(persons).decode(),
        persons_count=len(persons),
        classes=planned.previous.classes,
    )
    made = domain.chunks(
        planned.changes,
        run_id=reverting.run_id,
        school_id=school_id,
        uai=run.uai,
        version=version + 1,
        size=chunk_size,
    )
    reported = events.revert_reported(reverting, command, counts)
    await store.emit_all([follow(event, data, source=domain.SOURCE) for data in [*made, reported]])
    log.info("run_reverted", uai=run.uai, run_id=str(run.run_id), by=command.requested_by)


def approval_refusal(
    held: HeldRun | None, command: DirectorySyncApproveRequested, version: int
) -> Reason | None:
    """Why an approval cannot apply its run (None: it can)."""
    if held is None or held.uai != command.uai:
        return Reason(field="run_id", message=f"no run {command.run_id} of UAI {command.uai}")
    if held.status != "held":
        return Reason(field="run_id", message=f"run {held.run_id} is not held ({held.status})")
    if held.base_version != version:
        return Reason(
            field="run_id",
            message=(
                f"another run was applied to {held.uai} since run {held.run_id} was held: "
                "its changes no longer apply; run the feed again"
            ),
        )
    return None


async def reject_request(
    event: Envelope[Any], reasons: list[Reason], *, store: DirectoryStore
) -> None:
    await reject_command(event, reasons, store=store, source=domain.SOURCE)


reject_invalid = reject_request


def routes(settings: DirectorySyncSettings) -> dict[str, Route[DirectoryStore]]:
    async def on_school(event: Envelope[SchoolInitialised], *, store: DirectoryStore) -> None:
        await handle_school_initialised(event, store=store, settings=settings)

    async def on_revert(
        event: Envelope[DirectorySyncRevertRequested], *, store: DirectoryStore
    ) -> None:
        await handle_revert_requested(event, store=store, chunk_size=settings.chunk_size)

    return {
        topics.SCHOOL_INITIALISED: Route(SchoolInitialised, on_school),
        topics.DIRECTORY_SYNC_REQUESTED: Route(
            DirectorySyncRequested, handle_sync_requested, reject_invalid
        ),
        topics.DIRECTORY_SYNC_APPROVE_REQUESTED: Route(
            DirectorySyncApproveRequested, handle_approve_requested, reject_invalid
        ),
        topics.DIRECTORY_SYNC_REVERT_REQUESTED: Route(
            DirectorySyncRevertRequested, on_revert, reject_invalid
        ),
    }
