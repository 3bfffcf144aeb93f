"""The events account_manager publishes, built from what its handlers decided and wrote.

Handlers emit what these return; nothing here reads or writes a store.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from services.account_manager.domain import NewAccount
from services.account_manager.ports import AccountView, PossibleDuplicate, RunFindings, SchoolInfo
from services.account_manager.scope import ClassRow
from shared.contracts.accounts import (
    Account,
    AccountsCreated,
    ArchivedClass,
    ClassesArchived,
    ClassesCreated,
    ClassInfo,
    CreatedAccount,
    SchoolYearTurned,
)
from shared.contracts.commands import ActivationCodeRenewed, ClassRenamed, ClassTeachersAssigned
from shared.contracts.directory import (
    AccountsAttached,
    AccountsDeactivated,
    AccountsDeleted,
    AccountsDetached,
    AccountsUpdated,
    AppliedCounts,
    DirectorySyncApplied,
    DirectorySynced,
    Finding,
)
from shared.envelope import Contract

# Accounts ------------------------------------------------------------------------------


def accounts_created(school: SchoolInfo, accounts: list[CreatedAccount]) -> AccountsCreated:
    return AccountsCreated(
        school_id=school.school_id,
        uai=school.uai,
        school_name=school.name,
        provisioning=school.provisioning,
        accounts=accounts,
    )


def created_account(
    account: NewAccount,
    login: str,
    class_ids: list[UUID],
    classes: Mapping[UUID, ClassRow],
    children: list[UUID],
) -> CreatedAccount:
    """A new account as a command or a school's opening made it (not read back)."""
    return CreatedAccount(
        account_id=account.account_id,
        profile=account.profile,
        first_name=account.first_name,
        last_name=account.last_name,
        login=login,
        email=account.email,
        birth_date=account.birth_date,
        classes=[classes[c].name for c in class_ids],
        class_ids=class_ids,
        children=children,
        activation_code=account.activation_code,
        activation_expires_at=account.activation_expires_at,
    )


def _fields(view: AccountView) -> dict[str, Any]:
    return {
        "account_id": view.account_id,
        "profile": view.profile,
        "first_name": view.first_name,
        "last_name": view.last_name,
        "login": view.login,
        "email": view.email,
        "birth_date": view.birth_date,
        "classes": view.class_names,
        "class_ids": view.class_ids,
        "children": view.children,
    }


def published_account(view: AccountView) -> Account:
    return Account(**_fields(view))


def created_from_view(view: AccountView) -> CreatedAccount:
    return CreatedAccount(
        **_fields(view),
        activation_code=view.activation_code,
        activation_expires_at=view.activation_expires_at,
    )


def accounts_deleted(school_id: UUID, gone: Sequence[AccountView]) -> AccountsDeleted:
    return AccountsDeleted(school_id=school_id, accounts=[published_account(v) for v in gone])


def pupils_placed(
    school_id: UUID, views: Mapping[UUID, AccountView], placed: Sequence[UUID], request_id: str
) -> AccountsUpdated:
    return AccountsUpdated(
        school_id=school_id,
        accounts=[published_account(views[a]) for a in placed],
        request_id=request_id,
    )


def code_renewed(
    account_id: UUID, school_id: UUID, code: str, expires: datetime, request_id: str | None
) -> ActivationCodeRenewed:
    return ActivationCodeRenewed(
        account_id=account_id,
        school_id=school_id,
        activation_code=code,
        activation_expires_at=expires,
        request_id=request_id,
    )


# Classes -------------------------------------------------------------------------------


def classes_created(school_id: UUID, classes: Sequence[tuple[UUID, str]]) -> ClassesCreated:
    return ClassesCreated(
        school_id=school_id,
        classes=[ClassInfo(class_id=class_id, name=name) for class_id, name in classes],
    )


def class_renamed(klass: ClassRow, name: str, request_id: str) -> ClassRenamed:
    return ClassRenamed(
        class_id=klass.class_id, school_id=klass.school_id, name=name, request_id=request_id
    )


def teachers_assigned(
    class_id: UUID, school_id: UUID, teachers: list[UUID], request_id: str | None = None
) -> ClassTeachersAssigned:
    return ClassTeachersAssigned(
        class_id=class_id, school_id=school_id, teachers=teachers, request_id=request_id
    )


def classes_archived(
    school_id: UUID, archived: list[ArchivedClass], detached: Sequence[UUID]
) -> list[Contract]:
    """Classes gone with the year (or the export): archived, their teachers detached."""
    out: list[Contract] = (
        [ClassesArchived(school_id=school_id, classes=archived)] if archived else []
    )
    return out + [teachers_assigned(class_id, school_id, []) for class_id in detached]


def year_closed(
    school_id: UUID,
    archived: list[ArchivedClass],
    detached: Sequence[UUID],
    fresh: Sequence[tuple[UUID, str]],
    request_id: str,
) -> list[Contract]:
    """A manual school's year closed by its administrator: the old classes archived, the
    new year's empty ones made, and the year turned (every new class still untaught)."""
    created = classes_created(school_id, fresh)
    turned = SchoolYearTurned(
        school_id=school_id,
        classes=created.classes,
        classes_without_teacher=created.classes,
        request_id=request_id,
    )
    return [*classes_archived(school_id, archived, detached), created, turned]


# A chunk of the ONDE feed ---------------------------------------------------------------


@dataclass(frozen=True)
class ChunkEvents:
    """What a chunk did that its events tell, with the accounts as they now are."""

    school: SchoolInfo
    classes: list[ClassInfo]  # new, or back from the archive
    archived: list[ArchivedClass]
    detached: list[UUID]  # archived classes that lost their teachers
    reattached: Mapping[UUID, list[UUID]]  # classes back with teachers: their teachers
    created: list[UUID]
    updated: list[UUID]
    restored: list[UUID]
    deactivated: list[AccountView]
    deleted: list[AccountView]
    views: Mapping[UUID, AccountView]  # of ``created``, ``updated`` and ``attached_accounts``
    year: tuple[list[ClassInfo], list[ClassInfo]] | None  # the new year: classes, untaught
    # Accounts of another school now in this one (found by INE). One re-homed here (his
    # home school let him go, he was deactivated) is told as attached too, not as
    # accounts.updated ``restored``: to this school's readers he is an account they do not
    # hold yet, and accounts.attached is the one event that adds a school to an account.
    # An attached account is active by definition: a reader holding him deactivated
    # (from his old home's accounts.deactivated) makes him active again.
    attached_accounts: list[UUID] = field(default_factory=list)
    # Accounts that left this school while another still holds them, as they now are.
    detached_accounts: list[AccountView] = field(default_factory=list)
    # Leavers taken back who never activated: their new codes (activation_code.renewed).
    new_codes: Mapping[UUID, str] = field(default_factory=dict)
    codes_expire: datetime | None = None


def chunk_applied(done: ChunkEvents) -> list[Contract]:
    """The chunk's events, in the order readers need them: classes first, then accounts
    joining or leaving the school, new ones, changed ones, gone ones, and the year."""
    school_id = done.school.school_id
    out: list[Contract] = []
    if done.classes:
        out.append(ClassesCreated(school_id=school_id, classes=done.classes))
    out += classes_archived(school_id, done.archived, done.detached)
    out += [
        teachers_assigned(class_id, school_id, teachers)
        for class_id, teachers in done.reattached.items()
    ]
    if done.attached_accounts:
        views = [published_account(done.views[a]) for a in done.attached_accounts]
        out.append(AccountsAttached(school_id=school_id, accounts=views))
    if done.detached_accounts:
        views = [published_account(v) for v in done.detached_accounts]
        out.append(AccountsDetached(school_id=school_id, accounts=views))
    if done.created:
        made = [created_from_view(done.views[a]) for a in done.created]
        out.append(accounts_created(done.school, made))
    if done.updated:
        out.append(
            AccountsUpdated(
                school_id=school_id,
                accounts=[
                    published_account(done.views[a]) for a in done.updated if a in done.views
                ],
                restored=done.restored,
            )
        )
    if done.new_codes:
        assert done.codes_expire is not None
        out += [
            code_renewed(account_id, school_id, code, done.codes_expire, None)
            for account_id, code in done.new_codes.items()
        ]
    if done.deactivated:
        out.append(
            AccountsDeactivated(
                school_id=school_id, accounts=[published_account(v) for v in done.deactivated]
            )
        )
    if done.deleted:
        out.append(accounts_deleted(school_id, done.deleted))
    if done.year is not None:
        classes, untaught = done.year
        out.append(
            SchoolYearTurned(school_id=school_id, classes=classes, classes_without_teacher=untaught)
        )
    return out


# The feed's runs -----------------------------------------------------------------------

_PROFILE_LABELS = {"relative": "parent", "student": "pupil", "teacher": "teacher"}


def run_applied(chunk: DirectorySynced, findings: RunFindings) -> DirectorySyncApplied:
    """A run's last chunk is applied: what its chunks decided across schools."""
    assert chunk.version is not None
    return DirectorySyncApplied(
        uai=chunk.uai,
        school_id=chunk.school_id,
        run_id=chunk.run_id,
        version=chunk.version,
        counts=AppliedCounts(
            attached=findings.attached, possible_duplicates=len(findings.duplicates)
        ),
        warnings=[_duplicate_warning(d) for d in findings.duplicates],
    )


def _duplicate_warning(duplicate: PossibleDuplicate) -> Finding:
    """Told to the school that has the second account: its own person's names, never the
    other school's name or account."""
    label = _PROFILE_LABELS.get(duplicate.profile, duplicate.profile)
    return Finding(
        message=(
            f"possible duplicate: {label} {duplicate.first_name} {duplicate.last_name} has the"
            f" names of a {label} of another school of ONE but not the same email (or none):"
            " a new account was made for this school, not merged with the other"
        )
    )
