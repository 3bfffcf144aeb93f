"""Each in-memory fake store (tests/fakes) against its worker's Postgres store: the same
calls give the same results, so that what the unit tier proves on the fakes holds."""

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, astuple, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, cast

import asyncpg
import pytest

from services.credential_dispatch.bootstrap import build as build_credential_dispatch
from services.credential_dispatch.model import (
    Audited,
    AuditPurpose,
    Channel,
    Delivery,
    DeliveryKind,
    Dispatch,
    DispatchPurpose,
    YearTurnedNotice,
    new_delivery,
)
from services.credential_dispatch.ports import DispatchStore
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.credential_dispatch.store import PostgresDispatchStore
from services.directory_sync.bootstrap import build as build_directory_sync
from services.directory_sync.domain import PERSONS, SnapshotPerson
from services.directory_sync.ports import DirectoryStore, HeldRun, QueuedRun
from services.directory_sync.settings import DirectorySyncSettings
from services.directory_sync.store import PostgresDirectoryStore
from services.order_intake.domain import SchoolRow
from services.order_intake.ports import OrderStore
from services.order_intake.store import PostgresOrderStore
from shared import topics
from shared.contracts.accounts import Account, ClassesCreated, CreatedAccount
from shared.contracts.commands import ActivationCodeRenewed
from shared.contracts.common import Reason
from shared.contracts.directory import FeedClass, SyncCounts
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.db import Connection
from shared.envelope import new_event
from shared.store import EventStore
from shared.worker import Worker
from tests.conftest import Stack
from tests.fakes.credential_dispatch import AuditRecord, FakeDispatchStore
from tests.fakes.directory_sync import FakeDirectoryStore
from tests.fakes.order_intake import FakeOrderStore, OrderIntake
from tests.support.orders import order_data


async def billing_documents() -> tuple[InvoiceIssued, CreditNoteIssued]:
    """An invoice and its credit note as the handlers make them."""
    worker = OrderIntake()
    await worker.take(order_data("BC-F1"))
    cancel = {"order_id": "BC-F1", "reason": "doublon", "cancelled_at": "2026-12-01T10:00:00Z"}
    await worker.take(cancel, topics.ORDER_CANCELLED)
    [invoice] = worker.data_of(topics.INVOICE_ISSUED)
    [note] = worker.data_of(topics.CREDIT_NOTE_ISSUED)
    return invoice, note


Documents = tuple[InvoiceIssued, CreditNoteIssued]


async def order_script(store: OrderStore, documents: Documents) -> list[Any]:
    """Every method of ``ports.OrderStore``, and what each returns."""
    invoice, note = documents
    school = SchoolRow(invoice.school_id, invoice.uai, invoice.school_name, "automatic")
    seen: list[Any] = [await store.school_by_uai(school.uai)]
    await store.add_school(school, department="074", academie="Haute-Savoie", order_id="BC-F1")
    seen.append(await store.school_by_uai(school.uai))
    seen.append(await store.order_fingerprint("BC-F1"))
    await store.add_order(
        "BC-F1", fingerprint="f1", school_id=school.school_id, payload="{}", correlationid="c"
    )
    seen.append(await store.order_fingerprint("BC-F1"))
    seen += [await store.next_invoice_seq(2027), await store.next_invoice_seq(2027)]
    seen.append(await store.next_invoice_seq(2028))
    await store.add_invoice(invoice, year=2027, seq=1)
    seen += [await store.invoice_of_order("BC-F1"), await store.invoice_of_order("BC-NONE")]
    seen.append(await store.credit_note_of_order("BC-F1"))
    seen.append(await store.next_credit_note_seq(2027))
    await store.add_credit_note(note, year=2027, seq=1, cancelled_at=note.issued_at)
    seen.append(await store.credit_note_of_order("BC-F1"))
    await store.add_rejection(None, "evt-1", [Reason(field="order_id", message="unknown")])
    seen += [await store.claim("m-1", topics.ORDER_RECEIVED)]
    seen += [await store.claim("m-1", topics.ORDER_RECEIVED)]
    return seen


async def refuses(act: Callable[[], Awaitable[None]]) -> bool:
    try:
        await act()
    except Exception:
        return True
    return False


async def duplicate_refusals(store: OrderStore, documents: Documents) -> list[bool]:
    """What the tables' unique keys refuse, the fake refuses too."""
    invoice = documents[0]
    school = SchoolRow(uuid.uuid4(), invoice.uai, "École", "manual")
    await store.add_school(school, department="074", academie=None, order_id="BC-F1")
    again = SchoolRow(uuid.uuid4(), invoice.uai, "École", "manual")
    return [
        await refuses(
            lambda: store.add_school(again, department="074", academie=None, order_id="BC-F2")
        )
    ]


Script = Callable[[OrderStore, Documents], Awaitable[Any]]


async def on_postgres(worker: Worker, script: Script, documents: Documents) -> Any:
    async with worker.context.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            return await script(PostgresOrderStore(conn), documents)
        finally:
            await transaction.rollback()  # each script starts from empty tables


async def test_the_fake_order_store_answers_as_postgres_does(order_intake: Worker) -> None:
    documents = await billing_documents()
    fake = await order_script(FakeOrderStore(), documents)
    assert fake == await on_postgres(order_intake, order_script, documents)
    assert fake[-2:] == [True, False]  # the script reached its end on both


async def test_the_fake_order_store_refuses_what_postgres_refuses(order_intake: Worker) -> None:
    documents = await billing_documents()
    fake = await duplicate_refusals(FakeOrderStore(), documents)
    assert fake == await on_postgres(order_intake, duplicate_refusals, documents) == [True]


@pytest.fixture
async def directory_sync(stack: Stack, tmp_path: Path) -> AsyncIterator[Worker]:
    running = build_directory_sync(
        stack.settings(DirectorySyncSettings, feed_dir=tmp_path, run_processes=0)
    )
    await running.start()
    yield running
    await running.stop()


UAI = "0740001Z"


async def directory_script(store: DirectoryStore, ids: list[uuid.UUID]) -> list[Any]:
    """Every method of ``ports.DirectoryStore``, and what each returns."""
    school_id, first, second = ids[:3]
    lea = SnapshotPerson(
        feed_id=ids[3], profile="student", first_name="Léa", last_name="MARTIN",
        birth_date=date(2018, 3, 1), classes=["CP"],
    )  # fmt: skip
    persons, classes = PERSONS.dump_json([lea]).decode(), [FeedClass(name="CP")]
    seen: list[Any] = [await store.school_by_uai(UAI)]
    register = store.register_school
    seen.append(await register(school_id, uai=UAI, name="École", academie="A", order_id="o"))
    seen.append(await register(school_id, uai=UAI, name="École", academie="A", order_id="o"))
    seen.append(await register(ids[4], uai=UAI, name="Autre", academie=None, order_id="p"))
    seen.append(await store.school_by_uai(UAI))
    await store.queue_run(QueuedRun(first, school_id, UAI, "nightly", False, "c", attempts=3))
    seen += [await store.run_school(first), await store.run_school(ids[5])]
    seen += [await store.lock_school(school_id), await store.snapshots(school_id)]
    seen += [await store.run_to_undo(first), await store.held_run(first)]
    await store.replace_snapshot(
        school_id, version=1, digest="d1", run_id=first, persons_json=persons,
        persons_count=1, classes=classes,
    )  # fmt: skip
    seen += [await store.lock_school(school_id), await store.snapshots(school_id)]
    reverting = QueuedRun(second, school_id, UAI, "revert", False, "c", "e", "r", "ops")
    await store.record_revert(
        reverting, undone=first, base_version=1, digest="d1", counts=SyncCounts(left=1)
    )
    await store.replace_snapshot(
        school_id, version=2, digest="d1", run_id=second, persons_json="[]",
        persons_count=0, classes=[],
    )  # fmt: skip
    seen += [await store.run_to_undo(second), await store.snapshots(school_id)]
    held = HeldRun(second, school_id, UAI, "held", 2, "d3", SyncCounts(), [lea], classes, [])
    await store.approve(held, approved_by="Mme Dupont", request_id="r2", version=2)
    seen += [await store.held_run(second), await store.snapshots(school_id)]
    seen += [await store.claim("m-1", "x"), await store.claim("m-1", "x")]
    # Last: in Postgres a refused statement ends the transaction.
    queued = replace(held, run_id=first)  # a run not done has no status
    approve = store.approve
    seen.append(await refuses(lambda: approve(queued, approved_by="x", request_id="r", version=3)))
    return seen


async def test_the_fake_directory_store_answers_as_postgres_does(directory_sync: Worker) -> None:
    ids = [uuid.uuid4() for _ in range(6)]
    fake = await directory_script(FakeDirectoryStore(), ids)
    async with directory_sync.context.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            real = await directory_script(PostgresDirectoryStore(conn), ids)
        finally:
            await transaction.rollback()
    assert fake == real
    assert fake[-3:] == [True, False, True]  # the script reached its end on both


# credential_dispatch -----------------------------------------------------------------------


@pytest.fixture
async def credential_dispatch(stack: Stack) -> AsyncIterator[Worker]:
    running = build_credential_dispatch(stack.settings(CredentialDispatchSettings, smtp_port=9))
    await running.start()
    yield running
    await running.stop()


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


# Two schools, their classes, accounts (plain ASCII names: ORDER BY names then sorts them
# alike in any collation), dispatches, deliveries and a document.
LAC, PRES, BOIS = uid(1), uid(2), uid(3)
CP, CE1, CM1 = uid(11), uid(12), uid(13)
ADMIN_B, ADMIN_A, MARIE, PAUL, ZOE, LEO, JEAN, ANNE, EVE, NINA = (uid(100 + n) for n in range(10))
NOWHERE, STRANGER = uid(999), uid(998)  # unknown accounts, classes, dispatches, documents
BY_MAIL, BY_PRINT, NOTICE, BILLING, DOCUMENT = (uid(500 + n) for n in range(5))
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


class DispatchBackend(NamedTuple):
    store: DispatchStore
    # What the delivery loop writes (DeliveryQueries.settle's status, store_document's row).
    settle: Callable[[uuid.UUID, bool, str | None], Awaitable[None]]
    keep_document: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]
    tables: Callable[[], Awaitable[dict[str, Any]]]  # what no Protocol method reads back
    attempt: Callable[[Callable[[], Awaitable[None]]], Awaitable[str | None]]  # error's name


def person(
    n: int, profile: str, first: str, last: str, *, email: str | None = None, **links: Any
) -> CreatedAccount:
    return CreatedAccount.model_validate(
        {
            "account_id": uid(100 + n),
            "profile": profile,
            "first_name": first,
            "last_name": last,
            "login": f"{first}.{last}".lower(),
            "email": email,
            "birth_date": date(2018, 3, n + 1) if profile == "student" else None,
            "activation_code": f"code{n}",
            "activation_expires_at": T0 + timedelta(days=90),
            **links,
        }
    )


LAC_ACCOUNTS = [
    person(0, "administrator", "Hugo", "Blanc", email="b@example.org"),
    person(1, "administrator", "Claire", "Adam", email="a@example.org"),
    person(2, "teacher", "Marie", "Curie", email="c@example.org", class_ids=[CP]),
    person(3, "teacher", "Paul", "Langevin", class_ids=[CP, CE1]),
    person(4, "student", "Zoe", "Lefevre", classes=["CP"], class_ids=[CP]),
    person(5, "student", "Leo", "Roy", class_ids=[CP]),
    person(6, "relative", "Jean", "Lefevre", email="j@example.org", class_ids=[CP], children=[ZOE]),
    person(7, "relative", "Anne", "Roy", class_ids=[CP], children=[LEO, ZOE]),
]
EVE_OF_PRES = person(8, "personnel", "Eve", "Noel", email="e@example.org", class_ids=[CM1])


async def copy_script(store: DispatchStore) -> list[Any]:
    """The copy of schools, classes and accounts, and every read of it."""
    seen: list[Any] = [await store.school_name(LAC)]
    await store.upsert_school(LAC, uai="0740001Z", name="Ecole du Lac", provisioning="manual")
    await store.upsert_school(LAC, uai=None, name="Ecole du Lac bis", provisioning=None)
    await store.upsert_school(PRES, uai=None, name="Ecole des Pres", provisioning=None)
    seen += [await store.school_name(LAC), await store.school_name(PRES)]
    await store.upsert_classes(LAC, [(CP, "CP"), (CE1, "CE1")])
    await store.upsert_classes(PRES, [(CP, "CP A"), (CM1, "CM1")])  # CP renamed, still Lac's
    seen += [await store.class_school(CP), await store.class_school(NOWHERE)]
    await store.upsert_accounts(LAC, LAC_ACCOUNTS)
    await store.upsert_accounts(PRES, [EVE_OF_PRES])
    again = LAC_ACCOUNTS[4].model_copy(update={"first_name": "Zoey", "activation_code": "z2"})
    await store.upsert_accounts(PRES, [again])  # a known account keeps its school
    await store.link_accounts([*LAC_ACCOUNTS, EVE_OF_PRES])
    await store.link_accounts([])
    seen += await reads(store)
    moved = Account.model_validate({**again.model_dump(), "class_ids": [CE1], "classes": ["CE1"]})
    one_child = Account.model_validate({**LAC_ACCOUNTS[7].model_dump(), "children": [LEO]})
    elsewhere = Account.model_validate({**EVE_OF_PRES.model_dump(), "first_name": "Evelyne"})
    await store.update_accounts(LAC, [moved, one_child, elsewhere])  # Eve is not Lac's
    seen += await reads(store)
    seen += await across_schools(store)
    await store.set_class_teachers(CP, [PAUL, STRANGER])  # Marie detached, pupils stay
    await store.set_class_teachers(CE1, [])
    await store.set_deactivated([LEO, JEAN, ADMIN_B, NOWHERE], deactivated=True)
    seen += await reads(store)
    await store.set_deactivated([LEO], deactivated=False)
    renewed = ActivationCodeRenewed(
        account_id=LEO, school_id=LAC, activation_code="l2", activation_expires_at=T0
    )
    await store.renew_code(renewed)
    await store.mark_activated(LEO, T0)
    await store.mark_activated(LEO, T0 + timedelta(days=1))  # the first activation stays
    too_late = renewed.model_copy(update={"activation_code": "l3"})
    await store.renew_code(too_late)  # no code comes back once activated
    await store.mark_activated(NOWHERE, T0)
    seen.append(await store.select(LAC, None, None, [], True))
    await store.archive_classes([CE1, NOWHERE])
    await store.delete_accounts([ANNE, ZOE, NOWHERE])  # a parent, and a child of Jean's
    seen += await reads(store)
    return seen


def attached(account: CreatedAccount, **changed: Any) -> Account:
    """The account as accounts.attached gives it: no code."""
    return Account.model_validate({**account.model_dump(), **changed})


async def across_schools(store: DispatchStore) -> list[Any]:
    """Accounts attached to other schools, then detached, their homes moving."""
    jean, anne, marie = LAC_ACCOUNTS[6], LAC_ACCOUNTS[7], LAC_ACCOUNTS[2]
    nina = person(9, "student", "Nina", "Petit", class_ids=[CM1])  # a new copy, here
    jean_in_pres = attached(jean, class_ids=[CM1], children=[ZOE, NINA], email="jj@example.org")
    await store.attach_accounts(PRES, [jean_in_pres, attached(nina), attached(LAC_ACCOUNTS[1])])
    await store.link_accounts([jean_in_pres, nina])
    await store.attach_accounts(PRES, [attached(jean, first_name="Jeannot")])  # kept once
    await store.attach_accounts(BOIS, [attached(jean), attached(anne)])
    await store.attach_accounts(PRES, [attached(anne)])  # the same now(): by school id
    await store.attach_accounts(LAC, [attached(marie, first_name="Maria")])  # her home
    await store.upsert_accounts(BOIS, [LAC_ACCOUNTS[5]])  # created by Bois, Leo's home Lac
    renamed = Account.model_validate({**jean_in_pres.model_dump(), "last_name": "Lefebvre"})
    await store.update_accounts(PRES, [renamed])  # an attached account follows its changes
    seen = await reads(store)
    await store.detach_accounts(PRES, [JEAN, ZOE, NOWHERE])  # his Pres class goes with it
    await store.detach_accounts(LAC, [ANNE, JEAN])  # homes move: Anne's to Pres, Jean's Bois
    await store.detach_accounts(BOIS, [NINA])  # neither her home nor attached: nothing
    seen += await reads(store)
    await store.set_deactivated([JEAN], deactivated=True)  # let go by every school
    await store.attach_accounts(PRES, [attached(jean)])  # taken back: Pres's only
    return [*seen, *await reads(store)]


async def reads(store: DispatchStore) -> list[Any]:
    everyone = [ADMIN_B, ADMIN_A, MARIE, PAUL, ZOE, LEO, JEAN, ANNE, EVE, NINA, NOWHERE]
    return [
        await store.select(LAC, None, None, [], False),
        await store.select(PRES, None, None, [], False),
        await store.select(BOIS, None, None, ["relative", "student"], False),
        await store.select(PRES, None, CM1, [], False),
        await store.select(LAC, None, CP, ["student", "relative"], False),
        await store.select(PRES, [ZOE, EVE, NOWHERE], None, [], False),  # any school's
        await store.select(LAC, [], None, [], False),
        await store.select(LAC, None, CE1, [], False),
        [await store.requester(account_id) for account_id in everyone],
        await store.parents_of([ZOE, LEO, NOWHERE, ZOE]),
        await store.emails_of(everyone),
        await store.administrators(LAC),
        await store.administrators(PRES),
        await store.class_school(CE1),
    ]


def delivery(
    n: int,
    kind: DeliveryKind,
    recipient: str | None,
    account_id: uuid.UUID | None = None,
    **more: Any,
) -> Delivery:
    """A delivery of a known id; its dispatch_id and attempts are not what is stored."""
    made = new_delivery(kind, recipient=recipient, account_id=account_id)
    return replace(made, delivery_id=uid(600 + n), attempts=3, **more)


def request_dispatch(dispatch_id: uuid.UUID, channel: Channel = "email", **more: Any) -> Dispatch:
    return Dispatch(
        dispatch_id, "request", LAC, f"req-{dispatch_id.int}", channel, "c", "e", **more
    )


def entry(
    request_id: str,
    requested_by: uuid.UUID | None,
    accounts: list[uuid.UUID],
    channel: Channel = "email",
    layout: str | None = None,
    *,
    purpose: AuditPurpose = "request",
    profile: str | None = None,
    **more: Any,
) -> Audited:
    return Audited(
        LAC, purpose, request_id, requested_by, profile, accounts, channel, layout, **more
    )


async def dispatch_script(backend: DispatchBackend, documents: Documents) -> list[Any]:
    """Invoices, dispatches, audit entries, and their outcomes as deliveries end."""
    store, (invoice, note) = backend.store, documents
    await store.add_invoice(invoice)
    await store.add_invoice(invoice.model_copy(update={"school_name": "Autre"}))  # ignored
    await store.add_invoice(note)
    billing = Dispatch(BILLING, "invoice", invoice.school_id, None, "email", "BC-F1", "e")
    to_billing = delivery(0, "invoice", "f@example.org", invoice_number=invoice.invoice_number)
    await store.add_dispatch(billing, [to_billing])
    by_mail = request_dispatch(BY_MAIL, requested_by=ADMIN_A, selection=[ZOE, LEO, MARIE])
    sheets = [
        delivery(1, "sheet", "j@example.org", ZOE),
        delivery(2, "sheet", None, LEO, last_error="no parent with an email address"),
        delivery(3, "sheet", "c@example.org", MARIE),
    ]
    await store.add_dispatch(by_mail, sheets)
    by_print = request_dispatch(
        BY_PRINT, channel="print", requested_by=MARIE, layout="compact", selection=[LEO, ZOE]
    )
    await store.add_dispatch(by_print, [delivery(4, "print", "c@example.org")])
    said = YearTurnedNotice("Ecole du Lac", ("CP", "CE1"), ("CE1",), closed_by_hand=True)
    notice = Dispatch(NOTICE, "notice", LAC, None, "email", "c", None, notice=said)
    await store.add_dispatch(notice, [delivery(5, "year_turned", None, ADMIN_A)])
    await store.audit(
        entry("r1", ADMIN_A, [ZOE, LEO, MARIE], profile="administrator", dispatch_id=BY_MAIL)
    )
    await store.audit(
        entry("r2", MARIE, [LEO, ZOE], "print", "compact", profile="teacher", dispatch_id=BY_PRINT)
    )
    refused = [Reason(field="account_ids.0", message="not a pupil or parent of your classes")]
    await store.audit(
        entry("r3", None, [], "print", purpose="resend", document_id=NOWHERE, refused=refused)
    )
    seen: list[Any] = [await store.complete_if_done(BY_MAIL), await store.printed(DOCUMENT)]
    await backend.settle(uid(601), True, None)
    await backend.settle(uid(603), False, "mailbox full")
    await backend.settle(uid(601), False, "too late")  # ended already: stays sent
    seen += [await store.complete_if_done(BY_MAIL), await store.complete_if_done(BY_MAIL)]
    await backend.keep_document(BY_PRINT, DOCUMENT)
    await backend.settle(uid(604), True, None)
    seen += [await store.printed(DOCUMENT), await store.complete_if_done(BY_PRINT)]
    seen += [await store.complete_if_done(NOTICE), await store.complete_if_done(BILLING)]
    await backend.settle(uid(600), False, None)
    seen += [await store.complete_if_done(BILLING), await store.complete_if_done(NOWHERE)]
    created = ClassesCreated(school_id=LAC, classes=[])
    events = [new_event(created, source="s", correlationid="c", event_id=f"e-{n}") for n in "abc"]
    await store.emit(events[0])
    await store.emit_all(events[1:])
    await store.emit_all([])
    seen.append([event.id for event in store.emitted])
    seen += [await store.claim("m-1", "x"), await store.claim("m-1", "x")]
    seen.append(await backend.tables())
    return seen


async def dispatch_refusals(backend: DispatchBackend, documents: Documents) -> list[Any]:
    """What the tables' keys and CHECKs refuse, each call on its own (a savepoint)."""
    store, attempt = backend.store, backend.attempt
    dispatch = request_dispatch(BY_MAIL)
    await store.add_dispatch(dispatch, [delivery(1, "sheet", "j@example.org", ZOE)])
    await store.audit(entry("r1", None, [], dispatch_id=BY_MAIL))
    other = request_dispatch(BY_PRINT)
    unknown_kind = replace(delivery(2, "sheet", None), kind=cast(DeliveryKind, "fax"))
    another = entry("r2", None, [])
    return [
        await attempt(lambda: store.add_dispatch(dispatch, [])),
        await attempt(lambda: store.add_dispatch(other, [delivery(1, "sheet", "x@example.org")])),
        await attempt(lambda: store.add_dispatch(other, [delivery(3, "sheet", None)] * 2)),
        await attempt(lambda: store.add_dispatch(other, [unknown_kind])),
        await attempt(
            lambda: store.add_dispatch(replace(other, purpose=cast(DispatchPurpose, "spam")), [])
        ),
        await attempt(lambda: store.audit(replace(another, dispatch_id=BY_MAIL))),
        await attempt(lambda: store.audit(replace(another, purpose=cast(AuditPurpose, "leak")))),
        await attempt(lambda: store.add_invoice(documents[0])),
        await attempt(lambda: store.add_invoice(documents[0])),  # a second copy: ignored
        await store.complete_if_done(BY_PRINT),  # nothing refused was kept
        await backend.tables(),
    ]


def fake_dispatch_backend(fake: FakeDispatchStore | None = None) -> DispatchBackend:
    fake = fake or FakeDispatchStore()

    async def settle(delivery_id: uuid.UUID, sent: bool, error: str | None) -> None:
        fake.settled(delivery_id, sent=sent, error=error)

    async def keep_document(dispatch_id: uuid.UUID, document_id: uuid.UUID) -> None:
        fake.stored(dispatch_id, document_id, content=b"%PDF")

    async def tables() -> dict[str, Any]:
        return fake_tables(fake)

    async def attempt(call: Callable[[], Awaitable[None]]) -> str | None:
        try:
            await call()
        except asyncpg.PostgresError as refused:
            return type(refused).__name__
        return None

    return DispatchBackend(fake, settle, keep_document, tables, attempt)


def fake_tables(fake: FakeDispatchStore) -> dict[str, Any]:
    """The fake's records as postgres_tables reads the tables (each record's fields in the
    order of the columns it selects)."""
    return {
        "schools": sorted((k, *astuple(s)) for k, s in fake.schools.items()),
        "classes": sorted((k, *astuple(c)) for k, c in fake.classes.items()),
        "accounts": sorted(((k, *astuple(a)) for k, a in fake.accounts.items()), key=first),
        "account_classes": fake.account_classes,
        "account_schools": set(fake.account_schools),
        "parent_children": fake.parent_children,
        "invoices": {n: json.loads(i.model_dump_json()) for n, i in fake.invoices.items()},
        "dispatches": sorted((k, k in fake.completed) for k in fake.dispatches),
        "deliveries": sorted((astuple(d) for d in fake.deliveries.values()), key=first),
        "documents": {k: (d.dispatch_id, d.school_id) for k, d in fake.documents.items()},
        "audit": sorted(map(fake_audit_row, fake.audit_entries), key=canonical),
    }


def fake_audit_row(record: AuditRecord) -> dict[str, Any]:
    refused = record.entry.refused
    return {
        **asdict(record.entry),
        "refused": None if refused is None else [reason.model_dump() for reason in refused],
        "completed": record.completed,
        "delivered": record.delivered,
        "undeliverable": record.undeliverable,
    }


def first(row: tuple[Any, ...]) -> Any:
    return row[0]


def canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def postgres_dispatch_backend(conn: Connection) -> DispatchBackend:
    async def settle(delivery_id: uuid.UUID, sent: bool, error: str | None) -> None:
        await conn.execute(
            "UPDATE deliveries SET status = $2, last_error = $3"
            " WHERE delivery_id = $1 AND status = 'pending'",
            delivery_id,
            "sent" if sent else "failed",
            error,
        )

    async def keep_document(dispatch_id: uuid.UUID, document_id: uuid.UUID) -> None:
        await conn.execute(
            "INSERT INTO documents (document_id, dispatch_id, school_id, filename, content_type,"
            " content) SELECT $2, dispatch_id, school_id, 'fiches.pdf', 'application/pdf', $3"
            " FROM dispatches WHERE dispatch_id = $1",
            dispatch_id,
            document_id,
            b"%PDF",
        )
        await conn.execute(
            "UPDATE dispatches SET document_id = $2 WHERE dispatch_id = $1",
            dispatch_id,
            document_id,
        )

    async def tables() -> dict[str, Any]:
        return await postgres_tables(conn)

    async def attempt(call: Callable[[], Awaitable[None]]) -> str | None:
        try:
            async with conn.transaction():  # a savepoint: the script goes on after a refusal
                await call()
        except asyncpg.PostgresError as refused:
            return type(refused).__name__
        return None

    return DispatchBackend(PostgresDispatchStore(conn), settle, keep_document, tables, attempt)


async def postgres_tables(conn: Connection) -> dict[str, Any]:
    async def rows(sql: str) -> list[tuple[Any, ...]]:
        return sorted((tuple(r) for r in await conn.fetch(sql)), key=first)

    async def pairs(sql: str) -> set[tuple[Any, ...]]:
        return {tuple(r) for r in await conn.fetch(sql)}

    audit = await conn.fetch(
        "SELECT school_id, purpose, request_id, requested_by, requester_profile, accounts,"
        " channel, layout, document_id, refused::text, dispatch_id,"
        " completed_at IS NOT NULL AS completed, delivered::text, undeliverable::text FROM audit"
    )
    invoices = await conn.fetch("SELECT invoice_number, document::text FROM invoices")
    documents = await conn.fetch("SELECT document_id, dispatch_id, school_id FROM documents")
    return {
        "schools": await rows("SELECT school_id, uai, name, provisioning FROM schools"),
        "classes": await rows("SELECT class_id, school_id, name FROM classes"),
        "accounts": await rows(
            "SELECT account_id, school_id, profile, first_name, last_name, login, email,"
            " birth_date, classes, children, activation_code, activation_expires_at,"
            " activated_at, deactivated_at IS NOT NULL FROM accounts"
        ),
        "account_classes": await pairs("SELECT account_id, class_id FROM account_classes"),
        "account_schools": await pairs("SELECT account_id, school_id FROM account_schools"),
        "parent_children": await pairs("SELECT parent_id, child_id FROM parent_children"),
        "invoices": {r["invoice_number"]: json.loads(r["document"]) for r in invoices},
        "dispatches": await rows("SELECT dispatch_id, completed_at IS NOT NULL FROM dispatches"),
        "deliveries": await rows(
            "SELECT delivery_id, dispatch_id, kind, account_id, invoice_number, recipient,"
            " attempts, status, last_error FROM deliveries"
        ),
        "documents": {r["document_id"]: (r["dispatch_id"], r["school_id"]) for r in documents},
        "audit": sorted(map(postgres_audit_row, audit), key=canonical),
    }


def postgres_audit_row(row: asyncpg.Record) -> dict[str, Any]:
    said = ("refused", "delivered", "undeliverable")  # jsonb, read as text
    return {**dict(row), **{k: None if row[k] is None else json.loads(row[k]) for k in said}}


DispatchScript = Callable[[DispatchBackend, Documents], Awaitable[list[Any]]]


async def on_both(worker: Worker, script: DispatchScript) -> tuple[list[Any], list[Any]]:
    """``script`` on the fake, then on Postgres in a transaction rolled back."""
    documents = await billing_documents()
    fake = await script(fake_dispatch_backend(), documents)
    assert worker.context is not None
    async with worker.context.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            real = await script(postgres_dispatch_backend(conn), documents)
        finally:
            await transaction.rollback()
    return fake, real


async def copy_and_dispatch(backend: DispatchBackend, documents: Documents) -> list[Any]:
    return [*await copy_script(backend.store), *await dispatch_script(backend, documents)]


async def test_the_fake_dispatch_store_answers_as_postgres_does(
    credential_dispatch: Worker,
) -> None:
    fake, real = await on_both(credential_dispatch, copy_and_dispatch)
    assert fake[:-1] == real[:-1]
    assert fake[-1] == real[-1]  # the tables, apart: a difference there reads better
    assert fake[-3:-1] == [True, False]  # the script reached its end on both


async def test_the_fake_dispatch_store_refuses_what_postgres_refuses(
    credential_dispatch: Worker,
) -> None:
    fake, real = await on_both(credential_dispatch, dispatch_refusals)
    assert fake == real
    unique, check = "UniqueViolationError", "CheckViolationError"
    assert fake[:-2] == [unique, unique, unique, check, check, unique, check, None, None]


class CallNames:
    """A store's stand-in that notes the name of each attribute asked of it."""

    def __init__(self, store: DispatchStore) -> None:
        self.store = store
        self.names: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.names.add(name)
        return getattr(self.store, name)


async def test_the_dispatch_script_calls_every_method_of_the_protocol() -> None:
    fake = FakeDispatchStore()
    noted = CallNames(fake)
    backend = fake_dispatch_backend(fake)._replace(store=cast(DispatchStore, noted))
    await copy_and_dispatch(backend, await billing_documents())
    protocol = {*vars(DispatchStore), *vars(EventStore), *EventStore.__annotations__}
    assert {name for name in protocol if not name.startswith("_")} <= noted.names
