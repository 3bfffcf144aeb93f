"""The delivery loop: renders and sends the emails that handlers recorded.

Each delivery is claimed under a lease (so replicas share the work and a crashed worker's
claims come back), sent with a Message-ID derived from its id, and settled in a
transaction that also reports the dispatch's outcome when it was the last. A transient
failure (SMTP 4xx or down, renderer crash) is tried again later with backoff; a permanent
one is reported as undeliverable.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from uuid import UUID

from services.credential_dispatch import domain, einvoice, events
from services.credential_dispatch.documents import (
    NO_CLASS,
    ClassGroup,
    Documents,
    MailContent,
    SheetAccount,
    collation_key,
)
from services.credential_dispatch.exports import ExportRow, credentials_csv
from services.credential_dispatch.mailer import Mailer, build_message
from services.credential_dispatch.model import (
    Delivery,
    DeliveryKind,
    Dispatch,
    SheetRow,
    YearTurnedNotice,
)
from services.credential_dispatch.renderer import PdfRenderer
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.credential_dispatch.store import DeliveryQueries
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.errors import PermanentError, describe
from shared.logs import get_logger
from shared.retry import Retry
from shared.runtime import Waker, keep_leases

log = get_logger(__name__)


class DeliveryLoop:
    def __init__(
        self,
        queries: DeliveryQueries,
        *,
        documents: Documents,
        renderer: PdfRenderer,
        mailer: Mailer,
        settings: CredentialDispatchSettings,
        on_outcome: Waker,
    ) -> None:
        self._queries = queries
        self._documents = documents
        self._renderer = renderer
        self._mailer = mailer
        self._settings = settings
        self._on_outcome = on_outcome
        self.waker = Waker(settings.delivery_poll_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        # Several lanes, each with its own claimed batch, so that one batch's rendering
        # overlaps another's sending and recording.
        await asyncio.gather(*(self._lane(stop) for _ in range(self._settings.delivery_lanes)))

    async def _lane(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                batch = await self._queries.claim_due(
                    self._settings.delivery_batch, self._settings.delivery_lease_seconds
                )
            except Exception as exc:  # database away: wait and look again
                log.warning("delivery_claim_failed", error=describe(exc))
                await self.waker.sleep(2.0, stop)
                continue
            if not batch:
                await self.waker.wait(stop)
                continue
            renewing = asyncio.create_task(self._keep_leases([d.delivery_id for d in batch]))
            try:
                await self.deliver_batch(batch)
            except Exception as exc:
                # A fault outside any one delivery (a template, the database) must not end
                # the lane: the batch's leases lapse and its deliveries are claimed again.
                log.error("delivery_batch_failed", deliveries=len(batch), error=describe(exc))
                await self.waker.sleep(2.0, stop)
            finally:
                renewing.cancel()

    async def _keep_leases(self, delivery_ids: list[UUID]) -> None:
        """Renew the batch's leases while it is being sent. The lease is short so that a
        crashed worker's claims come back soon; renewal keeps a slow send from being
        claimed (and sent) a second time by another replica."""

        async def renew(lease: float) -> None:
            await self._queries.renew_leases(delivery_ids, lease)

        await keep_leases(
            renew, self._settings.delivery_lease_seconds, failure="lease_renewal_failed"
        )

    async def deliver_batch(self, batch: list[Delivery]) -> None:
        documents = await asyncio.gather(*(self._load(d) for d in batch), return_exceptions=True)
        loaded = {d.delivery_id: doc for d, doc in zip(batch, documents, strict=True)}
        await self._render_together([doc for doc in documents if isinstance(doc, Document)])
        await asyncio.gather(*(self.deliver(d, loaded[d.delivery_id]) for d in batch))

    async def deliver(self, delivery: Delivery, document: "Document | BaseException") -> None:
        try:
            if isinstance(document, BaseException):
                raise document
            if document.pdf is None and document.filename is not None:
                document.pdf = await self._renderer.render(self._html([document.subject]))
            if isinstance(document.subject, BILLING) and document.pdf is not None:
                document.pdf = await self._facturx(document)
            await self._mailer.send(self._message(delivery, document))
        except Exception as exc:
            await self._failed(delivery, exc)
            return
        await self._settle(delivery, sent=True, error=None)
        log.info(
            "delivered",
            kind=delivery.kind,
            delivery_id=str(delivery.delivery_id),
            attempts=delivery.attempts,
        )

    async def _facturx(self, document: "Document") -> bytes:
        """The billing document's PDF as Factur-X: made PDF/A-3 here unless its batch
        already was, then given its XML."""
        assert document.pdf is not None and isinstance(document.subject, BILLING)
        if document.pdf_a:
            xml = einvoice.invoice_xml(document.subject)
            return await asyncio.to_thread(einvoice.attach, document.pdf, xml, document.subject)
        return await einvoice.facturx_pdf(
            document.pdf, document.subject, ghostscript=self._settings.ghostscript_path
        )

    async def _render_together(self, documents: list["Document"]) -> None:
        """Render the batch's sheets in one Chromium call and its invoices in another;
        where that fails, each document is rendered on its own when it is sent."""
        for kind in (SheetAccount, BILLING):
            group = [d for d in documents if isinstance(d.subject, kind)]
            if len(group) > 1:
                await self._render_group(group)

    async def _render_group(self, group: list["Document"]) -> None:
        billing = isinstance(group[0].subject, BILLING)
        try:
            html = self._html([d.subject for d in group])
            if billing:  # made PDF/A-3 together too: one Ghostscript run for the batch
                whole = await self._renderer.render(html)
                pages = await einvoice.pdf_a3_each(
                    whole, len(group), ghostscript=self._settings.ghostscript_path
                )
            else:
                pages = await self._renderer.render_one_page_each(html, len(group))
        except Exception as exc:
            log.warning("batch_render_failed", documents=len(group), error=describe(exc))
            return
        for document, pdf in zip(group, pages or [], strict=False):
            document.pdf, document.pdf_a = pdf, billing

    async def _failed(self, delivery: Delivery, exc: Exception) -> None:
        reason = describe(exc)
        decision = self._settings.delivery_retry.decide_on(exc, delivery.attempts)
        if isinstance(decision, Retry):
            log.warning(
                "delivery_retry",
                delivery_id=str(delivery.delivery_id),
                attempts=delivery.attempts,
                delay_s=decision.delay,
                reason=reason,
            )
            await self._queries.reschedule(
                delivery.delivery_id, delay_seconds=decision.delay, error=reason
            )
            return
        log.error("delivery_failed", delivery_id=str(delivery.delivery_id), reason=decision.reason)
        await self._settle(delivery, sent=False, error=decision.reason)

    async def _settle(self, delivery: Delivery, *, sent: bool, error: str | None) -> None:
        outcome = await self._queries.settle(
            delivery, sent=sent, error=error, report=events.dispatch_finished
        )
        if outcome is not None:
            self._on_outcome.wake()

    async def _load(self, delivery: Delivery) -> "Document":
        if delivery.recipient is None:
            raise PermanentError("no email address")
        if delivery.kind == "first_access" and delivery.account_id is not None:
            row = await self._sheet_row(delivery, delivery.account_id)
            account = domain.sheet_account(row)
            return Document(
                subject=account,
                content=self._documents.first_access_email(account, provisioning=row.provisioning),
                filename=f"fiche-de-connexion-{account.login}.pdf",
            )
        if delivery.kind == "sheet" and delivery.account_id is not None:
            account = domain.sheet_account(await self._sheet_row(delivery, delivery.account_id))
            for_parent = account.profile == "student"
            return Document(
                subject=account,
                content=self._documents.sheet_email(account, for_parent=for_parent),
                filename=f"fiche-de-connexion-{account.login}.pdf",
            )
        if delivery.kind == "print":
            return await self._print(delivery)
        if delivery.kind in ("invoice", "credit_note") and delivery.invoice_number is not None:
            return await self._billing(delivery.kind, delivery.invoice_number)
        if delivery.kind == "year_turned":
            return await self._year_turned(delivery)
        # Every kind is known (the store refuses others): what is missing is its subject.
        raise PermanentError(f"a {delivery.kind} delivery without its account or document")

    async def _sheet_row(self, delivery: Delivery, account_id: UUID) -> SheetRow:
        """The account's sheet as its dispatch's school shows it (an account in several
        schools: that school's name, and a parent's children there)."""
        dispatch = await self._queries.dispatch(delivery.dispatch_id)
        row = await self._queries.account_sheet(account_id, dispatch.school_id)
        if row is None:
            raise PermanentError(f"account {account_id} is unknown here")
        return row

    async def _billing(self, kind: DeliveryKind, number: str) -> "Document":
        """An invoice or a credit note, mailed with its Factur-X PDF."""
        stored = await self._queries.invoice_document(number)
        if stored is None:
            raise PermanentError(f"{kind.replace('_', ' ')} {number} is unknown here")
        if kind == "credit_note":
            note = CreditNoteIssued.model_validate_json(stored)
            return Document(
                subject=note,
                content=self._documents.credit_note_email(note),
                filename=f"avoir-{number}.pdf",
            )
        invoice = InvoiceIssued.model_validate_json(stored)
        return Document(
            subject=invoice,
            content=self._documents.invoice_email(invoice),
            filename=f"facture-{number}.pdf",
        )

    async def _year_turned(self, delivery: Delivery) -> "Document":
        """The administrator's notice of the new year: a mail, nothing attached."""
        dispatch = await self._queries.dispatch(delivery.dispatch_id)
        notice = dispatch.notice or YearTurnedNotice()
        return Document(
            subject=Notice(delivery.kind),
            content=self._documents.year_turned_email(
                school_name=notice.school_name,
                classes=notice.classes,
                without_teacher=notice.without_teacher,
                closed_by_hand=notice.closed_by_hand,
            ),
            filename=None,
        )

    async def _print(self, delivery: Delivery) -> "Document":
        """The requester's document: printed once and stored, then found again by a retry."""
        dispatch = await self._queries.dispatch(delivery.dispatch_id)
        rows = await self._queries.account_sheets(dispatch.selection or [], dispatch.school_id)
        accounts = [domain.sheet_account(r) for r in rows]
        stored = (
            await self._queries.stored_document(dispatch.document_id)
            if (dispatch.document_id)
            else None
        )
        if stored is None:
            filename, content_type, content = await self._make_print(dispatch, accounts)
            document_id = await self._queries.store_document(
                dispatch, filename=filename, content_type=content_type, content=content
            )
        else:
            assert dispatch.document_id is not None
            (filename, content_type, content), document_id = stored, dispatch.document_id
        if delivery.recipient is None:
            raise PermanentError(
                f"the requester has no email address: fetch document {document_id}"
            )
        school = accounts[0].school_name if accounts else ""
        classes = sorted({c for a in accounts for c in a.classes[:1]}, key=collation_key)
        return Document(
            subject=PrintJob(str(document_id)),
            content=self._documents.print_email(
                school_name=school,
                count=len(accounts),
                classes=classes,
                layout=dispatch.layout or "detailed",
                document_id=str(document_id),
            ),
            filename=filename,
            pdf=content,
            content_type=content_type,
        )

    async def _make_print(
        self, dispatch: Dispatch, accounts: list[SheetAccount]
    ) -> tuple[str, str, bytes]:
        stamp = datetime.now(UTC)
        if dispatch.layout == "csv":
            export = [
                ExportRow(
                    last_name=a.last_name,
                    first_name=a.first_name,
                    profile=a.profile,
                    classes=a.classes,
                    login=a.login,
                    activation_code=a.activation_code,
                    activated=a.activated,
                )
                for a in accounts
            ]
            return (f"identifiants-{stamp:%Y%m%d-%H%M}.csv", "text/csv", credentials_csv(export))
        groups: dict[str, list[SheetAccount]] = {}
        for account in accounts:
            groups.setdefault(account.classes[0] if account.classes else NO_CLASS, []).append(
                account
            )
        parts = self._documents.print_parts(
            [ClassGroup(name, members) for name, members in groups.items()],
            "compact" if dispatch.layout == "compact" else "detailed",
            school_name=accounts[0].school_name if accounts else "",
            requested_at=stamp,
        )
        pdf = await self._renderer.render_parts(parts)
        return f"fiches-de-connexion-{stamp:%Y%m%d-%H%M}.pdf", "application/pdf", pdf

    def _html(self, subjects: "list[Subject]") -> str:
        """Sheets, or invoices and credit notes (never both), laid one per page."""
        sheets = [s for s in subjects if isinstance(s, SheetAccount)]
        if sheets:
            return self._documents.detailed_sheets_html(sheets)
        return self._documents.invoices_html([s for s in subjects if isinstance(s, BILLING)])

    def _message(self, delivery: Delivery, document: "Document") -> EmailMessage:
        assert delivery.recipient is not None
        attachments = []
        if document.filename is not None:
            assert document.pdf is not None
            attachments.append((document.filename, document.pdf, document.content_type))
        return build_message(
            sender=self._settings.mail_from,
            to=delivery.recipient,
            subject=document.content.subject,
            content=document.content,
            attachments=attachments,
            message_id=domain.message_id(delivery.delivery_id),
        )


@dataclass
class Document:
    """What one delivery sends: its mail, and its PDF once rendered."""

    subject: "Subject"
    content: MailContent
    filename: str | None  # of the attachment; None: a mail alone
    pdf: bytes | None = None  # the attachment, once made
    pdf_a: bool = False  # already PDF/A-3 (a billing document rendered with its batch)
    content_type: str = "application/pdf"


@dataclass(frozen=True)
class PrintJob:
    document_id: str


@dataclass(frozen=True)
class Notice:
    kind: str


# What a delivery's document is about; invoices and credit notes are billing documents,
# printed alike and sent as Factur-X.
Subject = SheetAccount | InvoiceIssued | CreditNoteIssued | PrintJob | Notice
BILLING = (InvoiceIssued, CreditNoteIssued)
