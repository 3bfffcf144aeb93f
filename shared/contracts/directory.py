"""Step 2 for automatic schools: the nightly ONDE feed (directory_sync's messages, and the
events account_manager answers them with).

directory_sync gives every person of a school's feed a ``feed_id`` of its own, stable from
run to run (matched by DESIGN §4: same profile, same folded names, same birth date for a
pupil). ``directory.synced`` carries a run's changes by feed id, cut into chunks;
account_manager keeps which account each feed id is.
"""

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from shared import topics
from shared.contracts.accounts import Account
from shared.contracts.commands import RequestId
from shared.contracts.common import Model, Uai
from shared.envelope import Contract, Serialised

FeedProfile = Literal["teacher", "student", "relative"]


class FeedClass(Model):
    name: str
    level: str | None = None
    # ONDE's "Identifiant classe", in the layouts that give it (minor addition).
    onde_id: str | None = None


class FeedPerson(Model):
    """A person as the export gives him, in full (created, updated and moved alike)."""

    feed_id: UUID
    profile: FeedProfile
    first_name: str
    last_name: str
    birth_date: date | None = None  # always set for a pupil
    email: str | None = None
    # A pupil's class; the class the teachers file names for a teacher (none: left for the
    # administrator to attach). A parent's classes are his children's: not listed here.
    classes: list[str] = Field(default_factory=list)
    children: list[UUID] = Field(default_factory=list)  # feed ids of a parent's children
    director: bool = False  # a teacher who heads the school
    # A pupil's national id (INE), in the layouts that give it (minor addition): stable
    # across renames and typos, directory_sync matches a pupil by it first.
    ine: str | None = None


class DirectorySynced(Contract):
    """One chunk of a run's changes. Chunks of a run may be applied in any order and by
    any replica: a parent's children may come in another chunk than the parent. Runs of
    a school are applied in the order of their ``version``: a chunk of run n waits until
    every chunk of run n - 1 is applied, since each run is computed against the last."""

    topic = topics.DIRECTORY_SYNCED

    run_id: UUID
    school_id: UUID
    uai: Uai
    chunk: Annotated[int, Field(ge=0)]
    chunks: Annotated[int, Field(ge=1)]
    # The school's feed version this run brings it to: 1 for its first run, then one more
    # for each applied run. None: sent before runs were numbered, applied as it comes.
    version: Annotated[int, Field(ge=1)] | None = None
    classes: list[FeedClass] = Field(default_factory=list)  # every class of the export
    created: list[FeedPerson] = Field(default_factory=list)
    updated: list[FeedPerson] = Field(default_factory=list)  # names, email or parent links
    moved: list[FeedPerson] = Field(default_factory=list)  # to another class
    left: list[UUID] = Field(default_factory=list)  # feed ids no longer in the export
    # The school's turnover run (la rentrée): once its last chunk is applied, the school's
    # administrator is told which classes have no teacher (minor addition).
    turnover: bool = False


class SerialisedChunk(Serialised):
    """A ``DirectorySynced`` as the JSON text the worker process that computed it wrote:
    published as it is (parsing and serialising it again in directory_sync's main process
    took a quarter of that process's time in a first import)."""

    topic = DirectorySynced.topic
    major = DirectorySynced.major


class SyncCounts(Model):
    created: int = 0
    updated: int = 0
    moved: int = 0
    left: int = 0
    unchanged: int = 0
    # Of ``left``: those leaving as the year's turnover expects (the last level's pupils,
    # those a "Décision de passage" sends on, their parents), and the others (minor addition).
    expected_leavers: int = 0
    unexpected_leavers: int = 0


class Finding(Model):
    """An error or a warning of a run, located in the school's files."""

    file: str | None = None
    line: int | None = None
    message: str


SyncStatus = Literal["applied", "unchanged", "dry_run", "held", "rejected", "no_drop"]


class DirectorySyncReported(Contract):
    """One per school and run, dry or not, changed or not."""

    topic = topics.DIRECTORY_SYNC_REPORTED

    uai: Uai
    school_id: UUID
    run_id: UUID
    request_id: str | None = None  # null for the nightly run
    dry_run: bool = False
    # What started the run; an approved held run is reported again, applied, by "approval";
    # an operator's undoing of a run is a run of its own, "revert" (minor addition).
    trigger: Literal["first_sync", "nightly", "request", "approval", "revert"] | None = None
    approved_by: str | None = None
    status: SyncStatus
    counts: SyncCounts
    errors: list[Finding] = Field(default_factory=list)
    warnings: list[Finding] = Field(default_factory=list)
    # The school's turnover run (la rentrée): most continuing pupils moved up a level
    # (minor addition).
    turnover: bool = False


class AppliedCounts(Model):
    # Persons of another school of the platform now in this one, with the account they
    # had (a pupil by his INE, a parent by his names and email).
    attached: int = 0
    # New accounts whose names alone are those of a person of another school (no email on
    # a side, or another one): perhaps one person with two accounts, never merged.
    possible_duplicates: int = 0


class DirectorySyncApplied(Contract):
    """account_manager has applied every chunk of a run: what applying it decided that
    the run's ``directory.sync.reported``, sent before, could not know. One per applied
    numbered run with changes; its correlationid is the report's (minor addition)."""

    topic = topics.DIRECTORY_SYNC_APPLIED

    uai: Uai
    school_id: UUID
    run_id: UUID
    version: Annotated[int, Field(ge=1)]
    counts: AppliedCounts
    warnings: list[Finding] = Field(default_factory=list)  # a possible duplicate each


class DirectorySyncHeld(Contract):
    """A run that looks wrong (too many leavers, a truncated or wrongly encoded file) waits
    for an operator's ``directory.sync.approve.requested``."""

    topic = topics.DIRECTORY_SYNC_HELD

    uai: Uai
    school_id: UUID
    run_id: UUID
    request_id: str | None = None
    reasons: list[str]
    counts: SyncCounts


class DirectorySyncRequested(Contract):
    """Run the feed of one school now (an operator, or the ENT for its administrator)."""

    topic = topics.DIRECTORY_SYNC_REQUESTED

    request_id: RequestId
    requested_by: str | None = None  # an operator's name or an account id, for the record
    uai: Uai
    dry_run: bool = False


class DirectorySyncApproveRequested(Contract):
    """An operator approves a held run: it is applied as it was reported."""

    topic = topics.DIRECTORY_SYNC_APPROVE_REQUESTED

    request_id: RequestId
    approved_by: Annotated[str, Field(min_length=1, max_length=200)]
    uai: Uai
    run_id: UUID


class DirectorySyncRevertRequested(Contract):
    """An operator undoes a school's last applied run: the school is put back as it was
    before it (its previous snapshot applied again as a run of its own, reported). Refused
    for a run that was not applied, or once a later run has been applied."""

    topic = topics.DIRECTORY_SYNC_REVERT_REQUESTED

    request_id: RequestId
    requested_by: Annotated[str, Field(min_length=1, max_length=200)]
    uai: Uai
    run_id: UUID


class AccountsUpdated(Contract):
    topic = topics.ACCOUNTS_UPDATED

    school_id: UUID
    accounts: list[Account]
    restored: list[UUID] = Field(default_factory=list)  # deactivated accounts come back
    # The class.pupils.place.requested it answers; None for the feed's changes.
    request_id: str | None = None


class AccountsAttached(Contract):
    """Accounts that already exist in another school of the platform and are now in this
    one too (a pupil by his INE, a parent by his names and email): the same login,
    activation code and activation state, none of them repeated here. A new account is
    ``accounts.created``, the only event that carries a code."""

    topic = topics.ACCOUNTS_ATTACHED

    school_id: UUID
    accounts: list[Account]


class AccountsDetached(Contract):
    """Accounts no longer in this school but still held by another: not deactivated (that
    is ``accounts.deactivated``, when no school holds the account any more)."""

    topic = topics.ACCOUNTS_DETACHED

    school_id: UUID
    accounts: list[Account]


class AccountsDeactivated(Contract):
    topic = topics.ACCOUNTS_DEACTIVATED

    school_id: UUID
    accounts: list[Account]


class AccountsDeleted(Contract):
    topic = topics.ACCOUNTS_DELETED

    school_id: UUID
    accounts: list[Account]
