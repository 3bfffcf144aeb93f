"""Pure decisions of credential_dispatch: who may have what sent, to whom, and how a sheet
reads (what a finished dispatch reports is built in ``events``)."""

from collections.abc import Mapping
from uuid import UUID

from services.credential_dispatch.documents import SheetAccount
from services.credential_dispatch.model import (
    Printed,
    Requester,
    Selected,
    SheetRow,
)
from shared import topics
from shared.contracts.commands import (
    CredentialsDispatchRequested,
    CredentialsDocumentSendRequested,
)
from shared.contracts.common import Reason

SOURCE = topics.source_of(topics.CREDENTIAL_DISPATCH)


def message_id(delivery_id: UUID, domain: str = "one.onboarding") -> str:
    """The same delivery always carries the same Message-ID, so a resend is recognisable."""
    return f"<{delivery_id}@{domain}>"


def sheet_account(row: SheetRow) -> SheetAccount:
    """A connection sheet's view of an account row; a spent code is never shown."""
    activated = row.activated_at is not None
    return SheetAccount(
        account_id=str(row.account_id),
        profile=row.profile,
        first_name=row.first_name,
        last_name=row.last_name,
        login=row.login,
        activation_code=None if activated else row.activation_code,
        activation_expires_at=None if activated else row.activation_expires_at,
        activated=activated,
        school_name=row.school_name,
        # The classes it is attached to here; else those account_manager sent with it.
        classes=row.class_names or row.classes,
        children=row.children_names,
    )


def check_dispatch(
    command: CredentialsDispatchRequested,
    requester: Requester | None,
    selected: list[Selected],
    filter_class_school: UUID | None,
) -> list[Reason]:
    """The requester's scope: an administrator, his school (the accounts whose home it is
    and those attached to it); a teacher, his classes (their pupils and parents, and
    himself)."""
    if requester is None:
        return [Reason(field="requested_by", message="unknown account")]
    if command.school_id not in requester.schools:
        return [Reason(field="requested_by", message="this account belongs to another school")]
    if requester.profile not in ("administrator", "teacher"):
        return [
            Reason(
                field="requested_by",
                message=f"a {requester.profile} account cannot hand out sheets",
            )
        ]
    reasons: list[Reason] = []
    chosen = command.filter
    if chosen and chosen.class_id is not None:
        if filter_class_school != command.school_id:
            reasons.append(Reason(field="filter.class_id", message="unknown class in this school"))
        elif requester.profile == "teacher" and chosen.class_id not in requester.class_ids:
            reasons.append(Reason(field="filter.class_id", message="not one of your classes"))
    elif chosen and requester.profile == "teacher":
        reasons.append(
            Reason(
                field="filter.class_id",
                message="a teacher hands out the sheets of one of his classes",
            )
        )
    found = {s.account_id: s for s in selected if command.school_id in s.schools}
    for index, account_id in enumerate(command.account_ids or []):
        row = found.get(account_id)
        if row is None:
            reasons.append(
                Reason(
                    field=f"account_ids.{index}",
                    message=f"unknown account {account_id} in this school",
                )
            )
        elif requester.profile == "teacher" and not _teacher_may(requester, row):
            reasons.append(
                Reason(
                    field=f"account_ids.{index}", message="not a pupil or parent of your classes"
                )
            )
    if not reasons and not found:
        reasons.append(Reason(field="filter", message="no account matches this request"))
    return reasons


def _teacher_may(requester: Requester, row: Selected) -> bool:
    if row.account_id == requester.account_id:
        return True
    return row.profile in ("student", "relative") and bool(row.class_ids & requester.class_ids)


def within_scope(requester: Requester | None, selected: list[Selected]) -> list[Selected]:
    """What a filter may pick for the requester: a teacher's class also holds his
    co-teachers, whose sheets (and codes) are not his to hand out; an administrator's
    school holds everyone."""
    if requester is None or requester.profile != "teacher":
        return selected
    return [row for row in selected if _teacher_may(requester, row)]


def email_recipients(
    selected: list[Selected],
    parents: Mapping[UUID, list[tuple[UUID, str | None]]],
    emails: Mapping[UUID, str | None],
) -> list[tuple[UUID, str | None, str | None]]:
    """(account whose sheet it is, address, reason when none): a pupil's sheet goes to
    each of his parents who has an address; anyone else's to his own."""
    plan: list[tuple[UUID, str | None, str | None]] = []
    for row in selected:
        if row.profile == "student":
            addresses = [e for _, e in parents.get(row.account_id, []) if e]
            if not addresses:
                plan.append((row.account_id, None, "no parent with an email address"))
            plan.extend((row.account_id, address, None) for address in addresses)
        elif emails.get(row.account_id):
            plan.append((row.account_id, emails[row.account_id], None))
        else:
            plan.append((row.account_id, None, "no email address"))
    return plan


def check_document_send(
    command: CredentialsDocumentSendRequested,
    requester: Requester | None,
    printed: Printed | None,
    accounts: list[Selected],
) -> list[Reason]:
    """A stored document goes again to whoever printed it, or to his school's administrator;
    an unknown document and another school's look the same, so that ids cannot be probed.
    The requester's scope is checked as it is now on the ``accounts`` the document holds: a
    teacher detached from a class since he printed it no longer has its codes."""
    if requester is None:
        return [Reason(field="requested_by", message="unknown account")]
    if command.school_id not in requester.schools:
        return [Reason(field="requested_by", message="this account belongs to another school")]
    if printed is None or printed.school_id != command.school_id:
        return [Reason(field="document_id", message="unknown document in this school")]
    if requester.profile != "administrator" and requester.account_id != printed.requested_by:
        return [
            Reason(
                field="requested_by",
                message="only its requester or the school's administrator can have it again",
            )
        ]
    if len(within_scope(requester, accounts)) < len(accounts):
        return [
            Reason(
                field="document_id",
                message="this document holds sheets of accounts no longer in your classes",
            )
        ]
    return []
