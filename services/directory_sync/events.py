"""The events directory_sync publishes, built from what its run loop and handlers decided
(the chunks themselves are cut by ``domain.chunks``)."""

from services.directory_sync.domain import RunResult
from services.directory_sync.ports import HeldRun, QueuedRun
from shared.contracts.directory import (
    DirectorySyncApproveRequested,
    DirectorySyncHeld,
    DirectorySyncReported,
    DirectorySyncRevertRequested,
    SyncCounts,
)
from shared.envelope import Contract


def run_finished(run: QueuedRun, result: RunResult) -> list[Contract]:
    """A finished run's chunks when it applied, the hold when held, then its report."""
    made: list[Contract] = list(result.payloads()) if result.status == "applied" else []
    if result.status == "held":
        made.append(
            DirectorySyncHeld(
                uai=run.uai,
                school_id=run.school_id,
                run_id=run.run_id,
                request_id=run.request_id,
                reasons=list(result.hold_reasons),
                counts=result.counts,
            )
        )
    made.append(
        DirectorySyncReported(
            uai=run.uai,
            school_id=run.school_id,
            run_id=run.run_id,
            request_id=run.request_id,
            dry_run=run.dry_run,
            trigger=run.trigger,
            status=result.status,
            counts=result.counts,
            errors=list(result.errors),
            warnings=list(result.warnings),
            turnover=result.turnover,
        )
    )
    return made


def approval_reported(
    held: HeldRun, command: DirectorySyncApproveRequested
) -> DirectorySyncReported:
    return DirectorySyncReported(
        uai=held.uai,
        school_id=held.school_id,
        run_id=held.run_id,
        request_id=command.request_id,
        trigger="approval",
        approved_by=command.approved_by,
        status="applied",
        counts=held.counts,
    )


def revert_reported(
    reverting: QueuedRun, command: DirectorySyncRevertRequested, counts: SyncCounts
) -> DirectorySyncReported:
    return DirectorySyncReported(
        uai=reverting.uai,
        school_id=reverting.school_id,
        run_id=reverting.run_id,
        request_id=command.request_id,
        trigger="revert",
        status="applied",
        counts=counts,
    )
