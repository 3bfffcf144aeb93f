"""``services.credential_dispatch.ports.DispatchStore`` in memory, and the worker's message
path on it.

Each table is a dict or a set keyed as the table is; each method changes, returns and
refuses what its statements do (tests/integration/test_fake_stores.py holds them to it,
call for call, against Postgres). A refusal raises asyncpg's own error, so that the consume
wrapper classifies it as it would Postgres's. What the delivery loop writes (a delivery's
end, a printed document) no handler writes: ``settled`` and ``stored`` put it there.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, NoReturn, cast
from uuid import UUID

from asyncpg.exceptions import CheckViolationError, ForeignKeyViolationError, UniqueViolationError

from services.credential_dispatch.handlers import routes
from services.credential_dispatch.model import (
    AUDIT_PURPOSES,
    DELIVERY_KINDS,
    DELIVERY_STATUSES,
    DISPATCH_PURPOSES,
    Audited,
    Delivery,
    Dispatch,
    DispatchOutcome,
    Printed,
    Requester,
    Selected,
)
from services.credential_dispatch.ports import DispatchStore
from shared.contracts.accounts import Account, CreatedAccount
from shared.contracts.commands import ActivationCodeRenewed
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.envelope import Contract
from shared.messaging.consumer import MessageProcessor, Outcome
from tests.fakes.events import InMemoryEventStore, unit_of_work
from tests.support.orders import cloudevent


def _duplicate(key: str) -> NoReturn:
    raise UniqueViolationError(f"duplicate key value violates unique constraint {key!r}")


def _unchecked(check: str, value: object) -> NoReturn:
    raise CheckViolationError(f"{value!r} violates check constraint {check!r}")


@dataclass
class SchoolRecord:
    uai: str | None
    name: str
    provisioning: str | None


@dataclass
class AccountRecord:
    school_id: UUID
    profile: str
    first_name: str
    last_name: str
    login: str
    email: str | None
    birth_date: date | None
    classes: list[str]
    children: list[UUID]
    activation_code: str | None
    activation_expires_at: datetime | None
    activated_at: datetime | None = None
    deactivated: bool = False  # deactivated_at is set

    @property
    def name_order(self) -> tuple[str, str]:
        """ORDER BY last_name, first_name: as Postgres sorts them in the C collation, and in
        any other for the plain ASCII names of tests/integration/test_fake_stores.py."""
        return self.last_name, self.first_name


@dataclass
class ClassRecord:
    school_id: UUID
    name: str


@dataclass(frozen=True)
class StoredDocument:
    dispatch_id: UUID
    school_id: UUID
    filename: str
    content_type: str
    content: bytes


@dataclass
class AuditRecord:
    """A row of ``audit``: the entry as written, then what its dispatch delivered."""

    entry: Audited
    completed: bool = False
    delivered: list[dict[str, str | None]] | None = None
    undeliverable: list[dict[str, str | None]] | None = None


def _text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _by_recipient(delivery: Delivery) -> tuple[bool, str]:
    """ORDER BY recipient: NULLs last, as Postgres sorts them in ascending order."""
    return delivery.recipient is None, delivery.recipient or ""


@dataclass
class FakeDispatchStore(InMemoryEventStore):
    schools: dict[UUID, SchoolRecord] = field(default_factory=dict)
    accounts: dict[UUID, AccountRecord] = field(default_factory=dict)
    # (account, school) -> attached_at: the schools an account is in besides its home.
    account_schools: dict[tuple[UUID, UUID], datetime] = field(default_factory=dict)
    classes: dict[UUID, ClassRecord] = field(default_factory=dict)
    account_classes: set[tuple[UUID, UUID]] = field(default_factory=set)  # (account, class)
    parent_children: set[tuple[UUID, UUID]] = field(default_factory=set)  # (parent, child)
    invoices: dict[str, InvoiceIssued | CreditNoteIssued] = field(default_factory=dict)
    dispatches: dict[UUID, Dispatch] = field(default_factory=dict)
    completed: set[UUID] = field(default_factory=set)  # dispatches with completed_at
    deliveries: dict[UUID, Delivery] = field(default_factory=dict)
    documents: dict[UUID, StoredDocument] = field(default_factory=dict)
    audit_entries: list[AuditRecord] = field(default_factory=list)
    # now(), as the transaction of each message sees it: a test moves it on.
    clock: datetime = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)

    # The copy of schools, accounts and classes -------------------------------------------

    async def upsert_school(
        self, school_id: UUID, *, uai: str | None, name: str, provisioning: str | None
    ) -> None:
        known = self.schools.get(school_id)
        if known is not None and provisioning is None:
            provisioning = known.provisioning
        self.schools[school_id] = SchoolRecord(uai, name, provisioning)

    async def school_name(self, school_id: UUID) -> str | None:
        school = self.schools.get(school_id)
        return school.name if school else None

    async def upsert_accounts(self, school_id: UUID, accounts: list[CreatedAccount]) -> None:
        for account in accounts:
            known = self.accounts.get(account.account_id)
            self.accounts[account.account_id] = AccountRecord(
                school_id=known.school_id if known else school_id,  # not in the UPDATE's SET
                profile=account.profile,
                first_name=account.first_name,
                last_name=account.last_name,
                login=account.login,
                email=account.email,
                birth_date=account.birth_date,
                classes=list(account.classes),
                children=list(account.children),
                activation_code=account.activation_code,
                activation_expires_at=account.activation_expires_at,
                activated_at=known.activated_at if known else None,
                deactivated=known.deactivated if known else False,
            )
        self._attach(school_id, [a.account_id for a in accounts])

    async def attach_accounts(self, school_id: UUID, accounts: list[Account]) -> None:
        for account in accounts:
            known = self.accounts.get(account.account_id)
            if known is not None and known.deactivated:  # back, in this school only
                known.school_id, known.deactivated = school_id, False
                for key in [k for k in self.account_schools if k[0] == account.account_id]:
                    del self.account_schools[key]
            if known is None:  # a new copy, in this school, without a code
                known = self.accounts[account.account_id] = AccountRecord(
                    school_id, account.profile, "", "", "", None, None, [], [], None, None
                )
            known.first_name, known.last_name = account.first_name, account.last_name
            known.login, known.email = account.login, account.email
            known.birth_date = account.birth_date
            known.classes, known.children = list(account.classes), list(account.children)
        self._attach(school_id, [a.account_id for a in accounts])

    def _attach(self, school_id: UUID, account_ids: list[UUID]) -> None:
        for account_id in account_ids:
            known = self.accounts.get(account_id)
            if known is not None and known.school_id != school_id:
                self.account_schools.setdefault((account_id, school_id), self.clock)

    async def detach_accounts(self, school_id: UUID, account_ids: list[UUID]) -> None:
        gone = set(account_ids)
        self.account_classes = {
            (account_id, class_id)
            for account_id, class_id in self.account_classes
            if account_id not in gone
            or class_id not in self.classes
            or self.classes[class_id].school_id != school_id
        }
        for account_id in gone:
            self.account_schools.pop((account_id, school_id), None)
            known = self.accounts.get(account_id)
            others = self._attached_by_age(account_id)
            if known is not None and known.school_id == school_id and others:
                known.school_id = others[0]
                del self.account_schools[(account_id, others[0])]

    def _attached_by_age(self, account_id: UUID) -> list[UUID]:
        """ORDER BY attached_at, school_id."""
        attached = [(at, s) for (a, s), at in self.account_schools.items() if a == account_id]
        return [school_id for _, school_id in sorted(attached)]

    def _schools(self, account_id: UUID) -> frozenset[UUID]:
        return frozenset(s for a, s in self.account_schools if a == account_id)

    def _in_school(self, account_id: UUID, school_id: UUID) -> bool:
        """Home = school_id OR attached to it."""
        home = self.accounts[account_id].school_id
        return home == school_id or (account_id, school_id) in self.account_schools

    async def link_accounts(self, accounts: Sequence[Account]) -> None:
        for account in accounts:
            self.account_classes |= {(account.account_id, c) for c in account.class_ids}
            self.parent_children |= {(account.account_id, c) for c in account.children}

    async def update_accounts(self, school_id: UUID, accounts: list[Account]) -> None:
        for account in accounts:
            known = self.accounts.get(account.account_id)
            if known is None or not self._in_school(account.account_id, school_id):
                continue
            known.first_name, known.last_name = account.first_name, account.last_name
            known.email, known.birth_date = account.email, account.birth_date
            known.classes, known.children = list(account.classes), list(account.children)
            known.login = account.login
        moved = {a.account_id for a in accounts}
        # The event's profile, not the copy's, says whose children are replaced.
        parents = {a.account_id for a in accounts if a.profile == "relative"}
        self.account_classes = {link for link in self.account_classes if link[0] not in moved}
        self.parent_children = {link for link in self.parent_children if link[0] not in parents}
        await self.link_accounts(accounts)

    async def set_deactivated(self, account_ids: list[UUID], *, deactivated: bool) -> None:
        for account_id in account_ids:
            if account_id in self.accounts:
                self.accounts[account_id].deactivated = deactivated
                if deactivated:
                    self.accounts[account_id].activation_code = None

    async def delete_accounts(self, account_ids: list[UUID]) -> None:
        gone = set(account_ids)
        self.parent_children = {
            (parent, child)
            for parent, child in self.parent_children
            if parent not in gone and child not in gone
        }
        self.account_classes = {link for link in self.account_classes if link[0] not in gone}
        self.account_schools = {  # ON DELETE CASCADE
            link: at for link, at in self.account_schools.items() if link[0] not in gone
        }
        for account_id in gone:
            self.accounts.pop(account_id, None)

    async def renew_code(self, renewed: ActivationCodeRenewed) -> None:
        known = self.accounts.get(renewed.account_id)
        if known is not None and known.activated_at is None:
            known.activation_code = renewed.activation_code
            known.activation_expires_at = renewed.activation_expires_at

    async def mark_activated(self, account_id: UUID, at: datetime) -> None:
        known = self.accounts.get(account_id)
        if known is not None:
            known.activated_at = at if known.activated_at is None else known.activated_at
            known.activation_code = None

    async def upsert_classes(self, school_id: UUID, classes: list[tuple[UUID, str]]) -> None:
        for class_id, name in classes:
            known = self.classes.get(class_id)
            self.classes[class_id] = ClassRecord(known.school_id if known else school_id, name)

    async def archive_classes(self, class_ids: list[UUID]) -> None:
        gone = set(class_ids)
        self.account_classes = {link for link in self.account_classes if link[1] not in gone}
        for class_id in gone:
            self.classes.pop(class_id, None)

    async def set_class_teachers(self, class_id: UUID, teachers: list[UUID]) -> None:
        detached = {
            (account_id, class_id)
            for account_id, linked in self.account_classes
            if linked == class_id
            and account_id not in teachers
            and account_id in self.accounts
            and self.accounts[account_id].profile == "teacher"
        }
        self.account_classes -= detached
        self.account_classes |= {(teacher, class_id) for teacher in teachers}

    # What a request is checked and planned with -------------------------------------------

    def _class_ids(self, account_id: UUID) -> frozenset[UUID]:
        return frozenset(c for a, c in self.account_classes if a == account_id)

    async def administrators(self, school_id: UUID) -> list[tuple[UUID, str | None]]:
        found = [
            (account_id, account.email)
            for account_id, account in self.accounts.items()
            if self._in_school(account_id, school_id)
            and account.profile == "administrator"
            and not account.deactivated
        ]
        return sorted(found, key=lambda admin: admin[0])

    async def requester(self, account_id: UUID) -> Requester | None:
        known = self.accounts.get(account_id)
        if known is None or known.deactivated:
            return None
        return Requester(
            account_id,
            known.school_id,
            known.profile,
            known.email,
            self._class_ids(account_id),
            self._schools(account_id),
        )

    async def class_school(self, class_id: UUID) -> UUID | None:
        known = self.classes.get(class_id)
        return known.school_id if known else None

    def _picked(
        self,
        account_id: UUID,
        school_id: UUID,
        account_ids: list[UUID] | None,
        class_id: UUID | None,
        profiles: list[str],
        not_activated: bool,
    ) -> bool:
        account = self.accounts[account_id]
        if account_ids is None:
            named = self._in_school(account_id, school_id)
        else:
            named = account_id in account_ids
        return (
            named
            and (class_id is None or (account_id, class_id) in self.account_classes)
            and (not profiles or account.profile in profiles)
            and not (not_activated and account.activated_at is not None)
            and not account.deactivated
        )

    async def select(
        self,
        school_id: UUID,
        account_ids: list[UUID] | None,
        class_id: UUID | None,
        profiles: list[str],
        not_activated: bool,
    ) -> list[Selected]:
        picked = [
            account_id
            for account_id in self.accounts
            if self._picked(account_id, school_id, account_ids, class_id, profiles, not_activated)
        ]
        picked.sort(key=lambda account_id: self.accounts[account_id].name_order)
        return [
            Selected(
                account_id,
                self.accounts[account_id].school_id,
                self.accounts[account_id].profile,
                self._class_ids(account_id),
                self._schools(account_id),
            )
            for account_id in picked
        ]

    async def parents_of(self, child_ids: list[UUID]) -> dict[UUID, list[tuple[UUID, str | None]]]:
        found: dict[UUID, list[tuple[UUID, str | None]]] = {c: [] for c in child_ids}
        links = [
            (parent, child)
            for parent, child in self.parent_children
            if child in found
            and parent in self.accounts  # the JOIN drops unknown parents
            and not self.accounts[parent].deactivated
        ]
        links.sort(key=lambda link: self.accounts[link[0]].name_order)
        for parent, child in links:
            found[child].append((parent, self.accounts[parent].email))
        return found

    async def emails_of(self, account_ids: list[UUID]) -> dict[UUID, str | None]:
        return {a: self.accounts[a].email for a in account_ids if a in self.accounts}

    async def printed(self, document_id: UUID) -> Printed | None:
        document = self.documents.get(document_id)
        if document is None:
            return None
        request = self.dispatches[document.dispatch_id]
        return Printed(
            document_id, document.school_id, request.requested_by, request.layout, request.selection
        )

    # What to send, and what was handed out ------------------------------------------------

    async def add_invoice(self, invoice: InvoiceIssued | CreditNoteIssued) -> None:
        self.invoices.setdefault(invoice.document_number, invoice)  # ON CONFLICT DO NOTHING

    async def add_dispatch(self, dispatch: Dispatch, deliveries: list[Delivery]) -> None:
        if dispatch.dispatch_id in self.dispatches:
            _duplicate("dispatches_pkey")
        if dispatch.purpose not in DISPATCH_PURPOSES:
            _unchecked("dispatches_purpose_check", dispatch.purpose)
        self._check_deliveries(deliveries)
        self.dispatches[dispatch.dispatch_id] = dispatch
        for delivery in deliveries:
            # Filed under this dispatch, its attempts the column's default.
            filed = replace(delivery, dispatch_id=dispatch.dispatch_id, attempts=0)
            self.deliveries[delivery.delivery_id] = filed

    def _check_deliveries(self, deliveries: Iterable[Delivery]) -> None:
        seen: set[UUID] = set()
        for delivery in deliveries:
            if delivery.delivery_id in self.deliveries or delivery.delivery_id in seen:
                _duplicate("deliveries_pkey")
            if delivery.kind not in DELIVERY_KINDS:
                _unchecked("deliveries_kind_check", delivery.kind)
            if delivery.status not in DELIVERY_STATUSES:
                _unchecked("deliveries_status_check", delivery.status)
            seen.add(delivery.delivery_id)

    async def audit(self, entry: Audited) -> None:
        if entry.purpose not in AUDIT_PURPOSES:
            _unchecked("audit_purpose_check", entry.purpose)
        if entry.dispatch_id is not None and self._audit_of(entry.dispatch_id):
            _duplicate("audit_dispatch_id_key")
        self.audit_entries.append(AuditRecord(entry))

    def _audit_of(self, dispatch_id: UUID) -> list[AuditRecord]:
        return [r for r in self.audit_entries if r.entry.dispatch_id == dispatch_id]

    async def complete_if_done(self, dispatch_id: UUID) -> DispatchOutcome | None:
        done = sorted(self.deliveries_of(dispatch_id), key=_by_recipient)
        if any(d.status == "pending" for d in done):
            return None
        dispatch = self.dispatches.get(dispatch_id)
        if dispatch is None or dispatch_id in self.completed:
            return None
        self.completed.add(dispatch_id)
        outcome = DispatchOutcome(
            dispatch=dispatch,
            # A sent delivery has its recipient: it was sent to it.
            delivered=[(d.account_id, cast(str, d.recipient)) for d in done if d.status == "sent"],
            undeliverable=[
                (d.account_id, d.last_error or "not delivered")
                for d in done
                if d.status == "failed"
            ],
            invoice_number=next((d.invoice_number for d in done if d.invoice_number), None),
        )
        self._audit_outcome(outcome)
        return outcome

    def _audit_outcome(self, outcome: DispatchOutcome) -> None:
        dispatch = outcome.dispatch
        for record in self._audit_of(dispatch.dispatch_id):
            record.completed = True
            if record.entry.document_id is None:
                record.entry = replace(record.entry, document_id=dispatch.document_id)
            record.delivered = [{"account_id": _text(a), "to": to} for a, to in outcome.delivered]
            record.undeliverable = [
                {"account_id": _text(a), "reason": why} for a, why in outcome.undeliverable
            ]

    # What the delivery loop (DeliveryQueries, not a handler's store) leaves behind, for
    # the tests.

    def deliveries_of(self, dispatch_id: UUID) -> list[Delivery]:
        return [d for d in self.deliveries.values() if d.dispatch_id == dispatch_id]

    def settled(self, delivery_id: UUID, *, sent: bool, error: str | None = None) -> None:
        """A pending delivery as the delivery loop ends it: sent, or failed for good."""
        delivery = self.deliveries[delivery_id]
        if delivery.status == "pending":
            self.deliveries[delivery_id] = replace(
                delivery, status="sent" if sent else "failed", last_error=error
            )

    def stored(
        self,
        dispatch_id: UUID,
        document_id: UUID,
        *,
        filename: str = "fiches.pdf",
        content_type: str = "application/pdf",
        content: bytes = b"%PDF-1.7",
    ) -> None:
        """The document the delivery loop printed for a dispatch, kept under its id."""
        dispatch = self.dispatches.get(dispatch_id)
        if dispatch is None:
            raise ForeignKeyViolationError(f"no dispatch {dispatch_id} for the document")
        self.documents[document_id] = StoredDocument(
            dispatch_id, dispatch.school_id, filename, content_type, content
        )
        self.dispatches[dispatch_id] = replace(dispatch, document_id=document_id)


def _satisfies(fake: FakeDispatchStore) -> DispatchStore:
    return fake  # mypy (make lint) checks the fake against the Protocol here


class CredentialDispatch:
    """The worker's message path over one fake store (the delivery loop does not run:
    what it would send stays pending)."""

    def __init__(self, store: FakeDispatchStore | None = None) -> None:
        self.store = store or FakeDispatchStore()
        self._processor = MessageProcessor(routes(), unit_of_work(self.store))
        self._sent = 0

    async def take(self, topic: str, data: dict[str, Any]) -> Outcome:
        self._sent += 1
        event = cloudevent(data, event_id=f"evt-{self._sent}", event_type=topic)
        return await self._processor.process(json.dumps(event, default=str).encode())

    async def send(self, event: Contract) -> Outcome:
        return await self.take(event.topic, event.model_dump(mode="json"))

    def data_of(self, topic: str) -> list[Any]:
        return [event.data for event in self.store.emitted if event.type == topic]
