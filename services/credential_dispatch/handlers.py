"""credential_dispatch's handlers: they record what to send; the delivery loop sends it."""

import uuid
from dataclasses import replace
from typing import Any

from services.credential_dispatch import domain, events
from services.credential_dispatch.model import (
    Audited,
    AuditPurpose,
    Channel,
    Delivery,
    Dispatch,
    DispatchPurpose,
    Requester,
    YearTurnedNotice,
    new_delivery,
)
from services.credential_dispatch.ports import DispatchStore
from shared import topics
from shared.commands import reject_command
from shared.contracts.accounts import (
    AccountsCreated,
    ClassesArchived,
    ClassesCreated,
    SchoolYearTurned,
)
from shared.contracts.commands import (
    AccountActivated,
    ActivationCodeRenewed,
    ClassRenamed,
    ClassTeachersAssigned,
    CredentialsDispatchRequested,
    CredentialsDocumentSendRequested,
)
from shared.contracts.common import Reason
from shared.contracts.directory import (
    AccountsAttached,
    AccountsDeactivated,
    AccountsDeleted,
    AccountsDetached,
    AccountsUpdated,
)
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.envelope import Envelope
from shared.logs import get_logger
from shared.messaging.consumer import Route

log = get_logger(__name__)


async def handle_accounts_created(
    event: Envelope[AccountsCreated], *, store: DispatchStore
) -> None:
    created = event.data
    if created.school_name:
        await store.upsert_school(
            created.school_id,
            uai=created.uai,
            name=created.school_name,
            provisioning=created.provisioning,
        )
    await store.upsert_accounts(created.school_id, created.accounts)
    await store.link_accounts(created.accounts)
    for admin in (a for a in created.accounts if a.profile == "administrator"):
        # The school's administrator gets his first access by himself (guide, step 1).
        delivery = new_delivery("first_access", recipient=admin.email, account_id=admin.account_id)
        await _open_dispatch(
            event,
            "first_access",
            created.school_id,
            [delivery],
            store=store,
            audited=Audited(
                created.school_id,
                "first_access",
                None,
                None,
                None,
                [admin.account_id],
                "email",
                None,
            ),
        )


async def handle_accounts_updated(
    event: Envelope[AccountsUpdated], *, store: DispatchStore
) -> None:
    updated = event.data
    await store.update_accounts(updated.school_id, updated.accounts)
    if updated.restored:
        await store.set_deactivated(updated.restored, deactivated=False)


async def handle_accounts_deactivated(
    event: Envelope[AccountsDeactivated], *, store: DispatchStore
) -> None:
    await store.set_deactivated([a.account_id for a in event.data.accounts], deactivated=True)


async def handle_accounts_deleted(
    event: Envelope[AccountsDeleted], *, store: DispatchStore
) -> None:
    await store.delete_accounts([a.account_id for a in event.data.accounts])


async def handle_accounts_attached(
    event: Envelope[AccountsAttached], *, store: DispatchStore
) -> None:
    """Accounts of another school now in this one too: its administrator and the teachers
    of their classes here hand out their sheets as any other of theirs."""
    attached = event.data
    await store.attach_accounts(attached.school_id, attached.accounts)
    # Added, never replaced: the links the account has in its other schools stay.
    await store.link_accounts(attached.accounts)


async def handle_accounts_detached(
    event: Envelope[AccountsDetached], *, store: DispatchStore
) -> None:
    detached = event.data
    await store.detach_accounts(detached.school_id, [a.account_id for a in detached.accounts])


async def handle_invoice_issued(event: Envelope[InvoiceIssued], *, store: DispatchStore) -> None:
    invoice = event.data
    await store.add_invoice(invoice)
    delivery = new_delivery(
        "invoice", recipient=invoice.billing.email, invoice_number=invoice.invoice_number
    )
    await _open_dispatch(event, "invoice", invoice.school_id, [delivery], store=store)


async def handle_credit_note_issued(
    event: Envelope[CreditNoteIssued], *, store: DispatchStore
) -> None:
    """The credit note to the billing address, as its invoice went."""
    note = event.data
    await store.add_invoice(note)
    delivery = new_delivery(
        "credit_note", recipient=note.billing.email, invoice_number=note.credit_note_number
    )
    await _open_dispatch(event, "credit_note", note.school_id, [delivery], store=store)


async def _open_dispatch(
    event: Envelope[Any],
    purpose: DispatchPurpose,
    school_id: uuid.UUID,
    deliveries: list[Delivery],
    *,
    store: DispatchStore,
    audited: Audited | None = None,
    request_id: str | None = None,
    channel: Channel = "email",
    **request: Any,
) -> None:
    dispatch = Dispatch(
        dispatch_id=uuid.uuid4(),
        purpose=purpose,
        school_id=school_id,
        request_id=request_id,
        channel=channel,
        correlationid=event.correlationid,
        causationid=event.id,
        **request,
    )
    await store.add_dispatch(dispatch, deliveries)
    if audited is not None:  # a hand-out of credentials (an invoice is none)
        await store.audit(replace(audited, dispatch_id=dispatch.dispatch_id))
    # Nothing to send (no address at all): the outcome is known now.
    outcome = await store.complete_if_done(dispatch.dispatch_id)
    if outcome is not None and (reported := events.dispatch_finished(outcome)) is not None:
        await store.emit(reported)
    log.info("dispatch_opened", purpose=purpose, deliveries=len(deliveries))


async def handle_code_renewed(
    event: Envelope[ActivationCodeRenewed], *, store: DispatchStore
) -> None:
    await store.renew_code(event.data)


async def handle_account_activated(
    event: Envelope[AccountActivated], *, store: DispatchStore
) -> None:
    await store.mark_activated(event.data.account_id, event.data.activated_at or event.time)


async def handle_classes_created(event: Envelope[ClassesCreated], *, store: DispatchStore) -> None:
    created = event.data
    await store.upsert_classes(created.school_id, [(c.class_id, c.name) for c in created.classes])


async def handle_classes_archived(
    event: Envelope[ClassesArchived], *, store: DispatchStore
) -> None:
    await store.archive_classes([c.class_id for c in event.data.classes])


async def handle_school_year_turned(
    event: Envelope[SchoolYearTurned], *, store: DispatchStore
) -> None:
    """The school's administrator is told of the new year, and which classes still need
    their teachers (the guide: "l'administrateur doit à présent rattacher les enseignants
    à leurs classes")."""
    turned = event.data
    notice = YearTurnedNotice(
        school_name=await store.school_name(turned.school_id) or "",
        classes=tuple(c.name for c in turned.classes),
        without_teacher=tuple(c.name for c in turned.classes_without_teacher),
        closed_by_hand=turned.request_id is not None,
    )
    deliveries = [
        new_delivery("year_turned", recipient=email, account_id=admin_id)
        for admin_id, email in await store.administrators(turned.school_id)
    ]
    if deliveries:
        await _open_dispatch(
            event, "notice", turned.school_id, deliveries, store=store, notice=notice
        )


async def handle_class_renamed(event: Envelope[ClassRenamed], *, store: DispatchStore) -> None:
    renamed = event.data
    await store.upsert_classes(renamed.school_id, [(renamed.class_id, renamed.name)])


async def handle_class_teachers_assigned(
    event: Envelope[ClassTeachersAssigned], *, store: DispatchStore
) -> None:
    await store.set_class_teachers(event.data.class_id, event.data.teachers)


async def handle_dispatch_requested(
    event: Envelope[CredentialsDispatchRequested], *, store: DispatchStore
) -> None:
    command = event.data
    requester = await store.requester(command.requested_by)
    chosen = command.filter
    class_id = chosen.class_id if chosen else None
    selected = await store.select(
        command.school_id,
        command.account_ids,
        class_id,
        list(chosen.profiles) if chosen else [],
        chosen.not_activated if chosen else False,
    )
    if chosen is not None:
        selected = domain.within_scope(requester, selected)
    class_school = await store.class_school(class_id) if class_id else None
    reasons = domain.check_dispatch(command, requester, selected, class_school)
    audited = _audited(
        "request",
        command.school_id,
        command.request_id,
        command.requested_by,
        requester,
        accounts=command.account_ids or [s.account_id for s in selected],
        channel=command.channel,
        layout=command.layout if command.channel == "print" else None,
    )
    if reasons or requester is None:
        await store.audit(replace(audited, refused=reasons))
        await reject_request(event, reasons, store=store)
        return
    if command.channel == "print":
        # Pending even without an address: the document is printed and stored anyway.
        deliveries = [
            replace(
                new_delivery("print", recipient=requester.email), status="pending", last_error=None
            )
        ]
    else:
        students = [s.account_id for s in selected if s.profile == "student"]
        others = [s.account_id for s in selected if s.profile != "student"]
        plan = domain.email_recipients(
            selected, await store.parents_of(students), await store.emails_of(others)
        )
        deliveries = [
            replace(
                new_delivery("sheet", recipient=to, account_id=account_id),
                last_error=why or ("no email address" if to is None else None),
            )
            for account_id, to, why in plan
        ]
    await _open_dispatch(
        event,
        "request",
        command.school_id,
        deliveries,
        store=store,
        request_id=command.request_id,
        channel=command.channel,
        requested_by=command.requested_by,
        layout=command.layout,
        selection=[s.account_id for s in selected],
        audited=audited,
    )


async def handle_document_send_requested(
    event: Envelope[CredentialsDocumentSendRequested], *, store: DispatchStore
) -> None:
    command = event.data
    requester = await store.requester(command.requested_by)
    printed = await store.printed(command.document_id)
    held = printed.selection if printed is not None else None
    accounts = await store.select(command.school_id, held, None, [], False) if held else []
    reasons = domain.check_document_send(command, requester, printed, accounts)
    audited = _audited(
        "resend",
        command.school_id,
        command.request_id,
        command.requested_by,
        requester,
        accounts=list(held or []),
        channel="print",
        layout=printed.layout if printed else None,
        document_id=command.document_id,
    )
    if reasons or requester is None or printed is None:
        # An unknown document and another school's look the same: neither is named.
        unknown = printed is None or printed.school_id != command.school_id
        await store.audit(
            replace(audited, refused=reasons, accounts=[] if unknown else audited.accounts)
        )
        await reject_request(event, reasons, store=store)
        return
    # A print dispatch that starts with its document: the delivery loop finds it stored.
    delivery = replace(
        new_delivery("print", recipient=requester.email), status="pending", last_error=None
    )
    await _open_dispatch(
        event,
        "request",
        command.school_id,
        [delivery],
        store=store,
        request_id=command.request_id,
        channel="print",
        requested_by=command.requested_by,
        layout=printed.layout,
        selection=printed.selection,
        document_id=printed.document_id,
        audited=audited,
    )


def _audited(
    purpose: AuditPurpose,
    school_id: uuid.UUID,
    request_id: str,
    requested_by: uuid.UUID,
    requester: Requester | None,
    **what: Any,
) -> Audited:
    return Audited(
        school_id=school_id,
        purpose=purpose,
        request_id=request_id,
        requested_by=requested_by,
        requester_profile=requester.profile if requester else None,
        **what,
    )


async def reject_request(
    event: Envelope[Any], reasons: list[Reason], *, store: DispatchStore
) -> None:
    await reject_command(event, reasons, store=store, source=domain.SOURCE)


reject_invalid = reject_request


def routes() -> dict[str, Route[DispatchStore]]:
    return {
        topics.ACCOUNTS_CREATED: Route(AccountsCreated, handle_accounts_created),
        topics.ACCOUNTS_UPDATED: Route(AccountsUpdated, handle_accounts_updated),
        topics.ACCOUNTS_DEACTIVATED: Route(AccountsDeactivated, handle_accounts_deactivated),
        topics.ACCOUNTS_DELETED: Route(AccountsDeleted, handle_accounts_deleted),
        topics.ACCOUNTS_ATTACHED: Route(AccountsAttached, handle_accounts_attached),
        topics.ACCOUNTS_DETACHED: Route(AccountsDetached, handle_accounts_detached),
        topics.INVOICE_ISSUED: Route(InvoiceIssued, handle_invoice_issued),
        topics.CREDIT_NOTE_ISSUED: Route(CreditNoteIssued, handle_credit_note_issued),
        topics.ACTIVATION_CODE_RENEWED: Route(ActivationCodeRenewed, handle_code_renewed),
        topics.ACCOUNT_ACTIVATED: Route(AccountActivated, handle_account_activated),
        topics.CLASSES_CREATED: Route(ClassesCreated, handle_classes_created),
        topics.CLASSES_ARCHIVED: Route(ClassesArchived, handle_classes_archived),
        topics.SCHOOL_YEAR_TURNED: Route(SchoolYearTurned, handle_school_year_turned),
        topics.CLASS_RENAMED: Route(ClassRenamed, handle_class_renamed),
        topics.CLASS_TEACHERS_ASSIGNED: Route(
            ClassTeachersAssigned, handle_class_teachers_assigned
        ),
        topics.CREDENTIALS_DISPATCH_REQUESTED: Route(
            CredentialsDispatchRequested, handle_dispatch_requested, reject_invalid
        ),
        topics.CREDENTIALS_DOCUMENT_SEND_REQUESTED: Route(
            CredentialsDocumentSendRequested, handle_document_send_requested, reject_invalid
        ),
    }
