"""credential_dispatch's handlers through its routing table and the consume wrapper, on the
in-memory store: every message it takes, on its success and refusal paths, no Postgres.
What a handler opens stays pending here (the delivery loop, which sends it, is tested on
real Postgres, Chromium and SMTP: test_dispatch_requests.py); what has nowhere to go is
reported at once."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.credential_dispatch.model import Audited, Dispatch, YearTurnedNotice
from shared import topics
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
from shared.contracts.commands import (
    AccountActivated,
    ActivationCodeRenewed,
    ClassRenamed,
    ClassTeachersAssigned,
)
from shared.contracts.directory import (
    AccountsAttached,
    AccountsDeactivated,
    AccountsDeleted,
    AccountsDetached,
    AccountsUpdated,
)
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from tests.fakes.credential_dispatch import AuditRecord, CredentialDispatch, SchoolRecord
from tests.fakes.order_intake import OrderIntake
from tests.support.orders import order_data, uai

SCHOOL, OTHER_SCHOOL = UUID(int=1), UUID(int=2)
UAI = uai("074", 1)
CP, CE1 = UUID(int=11), UUID(int=12)
ADMIN, MARIE, PAUL, ZOE, LEO, INES, JEAN, ANNE = (UUID(int=100 + n) for n in range(8))
OTHER_ADMIN, DOCUMENT = UUID(int=200), UUID(int=300)
EXPIRES = datetime(2026, 12, 1, tzinfo=UTC)
EVENT_TIME = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)  # tests.support.orders.cloudevent's
CLAIRE_MAIL, MARIE_MAIL, JEAN_MAIL = (
    "claire.martin@example.org",
    "marie.curie@example.org",
    "jean.lefevre@example.org",
)


def account(
    account_id: UUID,
    profile: str,
    first: str,
    last: str,
    *,
    email: str | None = None,
    class_ids: tuple[UUID, ...] = (),
    children: tuple[UUID, ...] = (),
) -> CreatedAccount:
    return CreatedAccount.model_validate(
        {
            "account_id": account_id,
            "profile": profile,
            "first_name": first,
            "last_name": last,
            "login": f"{first}.{last}".lower(),
            "email": email,
            "class_ids": list(class_ids),
            "children": list(children),
            "activation_code": f"code-{account_id.int}",
            "activation_expires_at": EXPIRES,
        }
    )


def the_school() -> list[CreatedAccount]:
    """As test_dispatch_requests.py's: Marie teaches CP; Zoé's father has an address, Léo's
    mother none; Inès is in CE1."""
    return [
        account(ADMIN, "administrator", "Claire", "Martin", email=CLAIRE_MAIL),
        account(MARIE, "teacher", "Marie", "Curie", email=MARIE_MAIL, class_ids=(CP,)),
        account(ZOE, "student", "Zoé", "Lefèvre", class_ids=(CP,)),
        account(LEO, "student", "Léo", "Roy", class_ids=(CP,)),
        account(INES, "student", "Inès", "Martin", class_ids=(CE1,)),
        account(
            JEAN, "relative", "Jean", "Lefèvre", email=JEAN_MAIL, class_ids=(CP,), children=(ZOE,)
        ),
        account(ANNE, "relative", "Anne", "Roy", class_ids=(CP,), children=(LEO,)),
    ]


def as_account(created: CreatedAccount, **changed: Any) -> Account:
    return Account.model_validate({**created.model_dump(), **changed})


def person(account_id: UUID) -> CreatedAccount:
    return next(a for a in the_school() if a.account_id == account_id)


@pytest.fixture
async def worker() -> CredentialDispatch:
    """The school's classes and accounts, as account_manager's events gave them."""
    worker = CredentialDispatch()
    classes = [ClassInfo(class_id=CP, name="CP"), ClassInfo(class_id=CE1, name="CE1")]
    await worker.send(ClassesCreated(school_id=SCHOOL, classes=classes))
    created = AccountsCreated(
        school_id=SCHOOL,
        uai=UAI,
        school_name="École du Lac",
        provisioning="manual",
        accounts=the_school(),
    )
    assert (await worker.send(created)).kind == "applied"
    return worker


async def request(
    worker: CredentialDispatch,
    requested_by: UUID,
    request_id: str = "req-1",
    school_id: UUID = SCHOOL,
    **data: Any,
) -> None:
    command = {
        "request_id": request_id,
        "requested_by": requested_by,
        "school_id": school_id,
        **data,
    }
    outcome = await worker.take(topics.CREDENTIALS_DISPATCH_REQUESTED, command)
    assert outcome.kind == "applied", outcome


async def send_again(
    worker: CredentialDispatch, requested_by: UUID, document_id: UUID, request_id: str = "req-2"
) -> None:
    command = {
        "request_id": request_id,
        "requested_by": requested_by,
        "school_id": SCHOOL,
        "document_id": document_id,
    }
    outcome = await worker.take(topics.CREDENTIALS_DOCUMENT_SEND_REQUESTED, command)
    assert outcome.kind == "applied", outcome


def dispatches(worker: CredentialDispatch, purpose: str) -> list[Dispatch]:
    return [d for d in worker.store.dispatches.values() if d.purpose == purpose]


def deliveries(worker: CredentialDispatch, dispatch: Dispatch) -> list[tuple[Any, ...]]:
    """(kind, account, recipient, status, last error) of each of the dispatch's deliveries."""
    return [
        (d.kind, d.account_id, d.recipient, d.status, d.last_error)
        for d in worker.store.deliveries_of(dispatch.dispatch_id)
    ]


def audit_of(worker: CredentialDispatch, request_id: str) -> AuditRecord:
    [record] = [r for r in worker.store.audit_entries if r.entry.request_id == request_id]
    return record


def rejected(worker: CredentialDispatch) -> list[tuple[str, str]]:
    """(field, message) of the last command.rejected."""
    return [(r.field, r.message) for r in worker.data_of(topics.COMMAND_REJECTED)[-1].reasons]


# accounts.created, .updated, .deactivated, .deleted -------------------------------------


async def test_accounts_created_keeps_the_copy_and_opens_the_administrators_first_access(
    worker: CredentialDispatch,
) -> None:
    store = worker.store
    assert store.schools == {SCHOOL: SchoolRecord(UAI, "École du Lac", "manual")}
    assert set(store.accounts) == {a.account_id for a in the_school()}
    assert {(MARIE, CP), (ZOE, CP), (INES, CE1), (JEAN, CP)} <= store.account_classes
    assert store.parent_children == {(JEAN, ZOE), (ANNE, LEO)}
    [first_access] = store.dispatches.values()
    assert (first_access.purpose, first_access.school_id, first_access.channel) == (
        "first_access",
        SCHOOL,
        "email",
    )
    assert deliveries(worker, first_access) == [
        ("first_access", ADMIN, CLAIRE_MAIL, "pending", None)
    ]
    [record] = store.audit_entries
    assert record.entry == Audited(
        SCHOOL, "first_access", None, None, None, [ADMIN], "email", None,
        dispatch_id=first_access.dispatch_id,
    )  # fmt: skip
    assert not record.completed
    assert store.emitted == []  # reported by the delivery loop, once sent


async def test_an_administrator_without_an_address_is_reported_undeliverable_at_once() -> None:
    worker = CredentialDispatch()
    admin = account(ADMIN, "administrator", "Claire", "Martin")
    await worker.send(AccountsCreated(school_id=SCHOOL, school_name="École", accounts=[admin]))
    [dispatched] = worker.data_of(topics.CREDENTIALS_DISPATCHED)
    assert dispatched.delivered == []
    assert [(u.account_id, u.reason) for u in dispatched.undeliverable] == [
        (ADMIN, "no email address")
    ]
    [record] = worker.store.audit_entries
    assert record.completed
    assert record.undeliverable == [{"account_id": str(ADMIN), "reason": "no email address"}]


async def test_accounts_given_again_replace_their_copy_and_the_school_keeps_its_provisioning(
    worker: CredentialDispatch,
) -> None:
    renamed = account(ZOE, "student", "Zoé", "Lefèvre-Roy", class_ids=(CP,))
    again = AccountsCreated(
        school_id=SCHOOL, school_name="École du Lac (Annecy)", accounts=[renamed]
    )
    await worker.send(again)
    assert worker.store.schools[SCHOOL] == SchoolRecord(None, "École du Lac (Annecy)", "manual")
    assert worker.store.accounts[ZOE].last_name == "Lefèvre-Roy"
    # An administrator is not among them: no first access again.
    assert len(dispatches(worker, "first_access")) == 1


async def test_an_invalid_event_is_dead_lettered_and_changes_nothing(
    worker: CredentialDispatch,
) -> None:
    before = len(worker.store.inbox), len(worker.store.accounts), len(worker.store.dispatches)
    outcome = await worker.take(topics.ACCOUNTS_CREATED, {"school_id": "SQL", "accounts": [{}]})
    assert outcome.kind == "dead"
    assert outcome.reason is not None and "school_id" in outcome.reason
    after = len(worker.store.inbox), len(worker.store.accounts), len(worker.store.dispatches)
    assert after == before


async def test_accounts_updated_follows_a_moved_pupil_and_his_parent_and_keeps_the_code(
    worker: CredentialDispatch,
) -> None:
    moved = [
        as_account(person(ZOE), classes=["CE1"], class_ids=[CE1]),
        as_account(person(JEAN), email="jean@example.org", class_ids=[CE1]),
    ]
    await worker.send(AccountsUpdated(school_id=SCHOOL, accounts=moved))
    store = worker.store
    assert {c for a, c in store.account_classes if a in (ZOE, JEAN)} == {CE1}
    assert (store.accounts[ZOE].classes, store.accounts[ZOE].activation_code) == (
        ["CE1"],
        f"code-{ZOE.int}",
    )
    assert store.accounts[JEAN].email == "jean@example.org"
    assert (JEAN, ZOE) in store.parent_children


async def test_a_deactivated_account_asks_for_nothing_and_is_handed_out_to_nobody(
    worker: CredentialDispatch,
) -> None:
    leavers = [as_account(person(MARIE)), as_account(person(ZOE))]
    await worker.send(AccountsDeactivated(school_id=SCHOOL, accounts=leavers))
    await request(worker, MARIE, channel="print", filter={"class_id": CP})
    assert rejected(worker) == [("requested_by", "unknown account")]
    await request(worker, ADMIN, "req-2", channel="print", filter={"profiles": ["student"]})
    [printed] = dispatches(worker, "request")
    assert printed.selection == [INES, LEO]

    await worker.send(AccountsUpdated(school_id=SCHOOL, accounts=leavers, restored=[MARIE, ZOE]))
    await request(worker, MARIE, "req-3", channel="print", filter={"class_id": CP})
    assert dispatches(worker, "request")[-1].selection == [MARIE, JEAN, ZOE, ANNE, LEO]


async def test_deleted_accounts_are_forgotten_with_their_links_both_ways(
    worker: CredentialDispatch,
) -> None:
    gone = [as_account(person(ZOE)), as_account(person(ANNE))]
    await worker.send(AccountsDeleted(school_id=SCHOOL, accounts=gone))
    store = worker.store
    assert ZOE not in store.accounts and ANNE not in store.accounts
    assert store.parent_children == set()  # Jean's child and Anne's, both gone
    assert not {a for a, _ in store.account_classes} & {ZOE, ANNE}


# accounts.attached, accounts.detached ----------------------------------------------------

THIRD_SCHOOL, CM1 = UUID(int=3), UUID(int=13)
HUGO, THIRD_ADMIN, NINA = UUID(int=201), UUID(int=202), UUID(int=203)


async def open_other_schools(worker: CredentialDispatch) -> None:
    """The other school, its CM1 taught by Hugo, and a third school, each with its
    administrator."""
    await worker.send(
        ClassesCreated(school_id=OTHER_SCHOOL, classes=[ClassInfo(class_id=CM1, name="CM1")])
    )
    theirs = [
        account(OTHER_ADMIN, "administrator", "Eve", "Noel", email="eve@example.org"),
        account(HUGO, "teacher", "Hugo", "Blanc", email="hugo@example.org", class_ids=(CM1,)),
        account(NINA, "student", "Nina", "Petit", class_ids=(CM1,)),
    ]
    await worker.send(AccountsCreated(school_id=OTHER_SCHOOL, accounts=theirs))
    third = account(THIRD_ADMIN, "administrator", "Ada", "Roux", email="ada@example.org")
    await worker.send(AccountsCreated(school_id=THIRD_SCHOOL, accounts=[third]))


async def attach(worker: CredentialDispatch, school_id: UUID, *accounts: Account) -> None:
    outcome = await worker.send(AccountsAttached(school_id=school_id, accounts=list(accounts)))
    assert outcome.kind == "applied", outcome


async def detach(worker: CredentialDispatch, school_id: UUID, *account_ids: UUID) -> None:
    accounts = [as_account(person(a)) for a in account_ids]
    outcome = await worker.send(AccountsDetached(school_id=school_id, accounts=accounts))
    assert outcome.kind == "applied", outcome


def zoe_in_cm1() -> Account:
    """Zoé as the other school gives her: in its CM1 too."""
    return as_account(person(ZOE), class_ids=[CM1], classes=["CM1"])


async def printed_for(
    worker: CredentialDispatch, requested_by: UUID, school_id: UUID, **selection: Any
) -> list[UUID] | None:
    """The selection of a print requested for ``school_id``; None when refused."""
    before = len(dispatches(worker, "request"))
    request_id = f"req-{len(worker.store.audit_entries)}"
    await request(worker, requested_by, request_id, school_id, channel="print", **selection)
    made = dispatches(worker, "request")
    return made[-1].selection if len(made) > before else None


async def test_an_attached_pupil_is_handed_out_by_his_other_school_as_its_own(
    worker: CredentialDispatch,
) -> None:
    await open_other_schools(worker)
    await attach(worker, OTHER_SCHOOL, zoe_in_cm1())
    pupils = {"profiles": ["student"]}
    # Its administrator's filter and its teacher's class pick her, by name as any other.
    assert await printed_for(worker, OTHER_ADMIN, OTHER_SCHOOL, filter=pupils) == [ZOE, NINA]
    assert await printed_for(worker, HUGO, OTHER_SCHOOL, filter={"class_id": CM1}) == [
        HUGO,
        ZOE,
        NINA,
    ]
    assert await printed_for(worker, OTHER_ADMIN, OTHER_SCHOOL, account_ids=[ZOE]) == [ZOE]
    # Her home keeps her; a third school has nothing of her.
    assert await printed_for(worker, ADMIN, SCHOOL, filter=pupils) == [ZOE, INES, LEO]
    assert await printed_for(worker, THIRD_ADMIN, THIRD_SCHOOL, filter=pupils) is None
    assert rejected(worker) == [("filter", "no account matches this request")]
    assert await printed_for(worker, THIRD_ADMIN, THIRD_SCHOOL, account_ids=[ZOE]) is None
    assert rejected(worker) == [("account_ids.0", f"unknown account {ZOE} in this school")]


async def test_an_attached_account_follows_the_updates_of_either_school(
    worker: CredentialDispatch,
) -> None:
    await open_other_schools(worker)
    await attach(worker, OTHER_SCHOOL, as_account(person(JEAN), children=[ZOE]))
    moved = as_account(person(JEAN), email="jean@example.org", children=[ZOE])
    await worker.send(AccountsUpdated(school_id=OTHER_SCHOOL, accounts=[moved]))
    assert worker.store.accounts[JEAN].email == "jean@example.org"
    assert worker.store.accounts[JEAN].school_id == SCHOOL  # his home stays


async def test_a_detached_account_leaves_that_school_and_stays_in_its_home(
    worker: CredentialDispatch,
) -> None:
    await open_other_schools(worker)
    await attach(worker, OTHER_SCHOOL, zoe_in_cm1())
    await detach(worker, OTHER_SCHOOL, ZOE)
    pupils = {"profiles": ["student"]}
    assert await printed_for(worker, OTHER_ADMIN, OTHER_SCHOOL, filter=pupils) == [NINA]
    assert await printed_for(worker, HUGO, OTHER_SCHOOL, filter={"class_id": CM1}) == [
        HUGO,
        NINA,
    ]
    assert await printed_for(worker, OTHER_ADMIN, OTHER_SCHOOL, account_ids=[ZOE]) is None
    assert await printed_for(worker, ADMIN, SCHOOL, filter=pupils) == [ZOE, INES, LEO]
    assert await printed_for(worker, MARIE, SCHOOL, filter={"class_id": CP}) == [
        MARIE,
        JEAN,
        ZOE,
        ANNE,
        LEO,
    ]  # her class at home kept
    assert worker.store.account_schools == {}


async def test_a_pupil_let_go_by_his_school_and_taken_by_another_is_that_school_s_only(
    worker: CredentialDispatch,
) -> None:
    """GS in June, CP in September: deactivated when his maternelle let him go, attached
    (re-homed) by his élémentaire; the maternelle no longer hands out his sheet."""
    await open_other_schools(worker)
    await worker.send(AccountsDeactivated(school_id=SCHOOL, accounts=[as_account(person(ZOE))]))
    await attach(worker, OTHER_SCHOOL, zoe_in_cm1())
    zoe = worker.store.accounts[ZOE]
    assert (zoe.school_id, zoe.deactivated) == (OTHER_SCHOOL, False)
    pupils = {"profiles": ["student"]}
    assert await printed_for(worker, OTHER_ADMIN, OTHER_SCHOOL, filter=pupils) == [ZOE, NINA]
    assert await printed_for(worker, ADMIN, SCHOOL, filter=pupils) == [INES, LEO]
    assert await printed_for(worker, ADMIN, SCHOOL, account_ids=[ZOE]) is None


async def test_detaching_its_home_moves_the_account_to_the_school_it_joined_first(
    worker: CredentialDispatch,
) -> None:
    await open_other_schools(worker)
    await attach(worker, THIRD_SCHOOL, as_account(person(JEAN)))
    worker.store.clock += timedelta(days=1)
    await attach(worker, OTHER_SCHOOL, as_account(person(JEAN), class_ids=[CM1]))
    await detach(worker, SCHOOL, JEAN)
    jean = worker.store.accounts[JEAN]
    assert jean.school_id == THIRD_SCHOOL
    assert set(worker.store.account_schools) == {(JEAN, OTHER_SCHOOL)}
    assert {c for a, c in worker.store.account_classes if a == JEAN} == {CM1}  # CP was Lac's
    relatives = {"profiles": ["relative"]}
    assert await printed_for(worker, ADMIN, SCHOOL, filter=relatives) == [ANNE]
    assert await printed_for(worker, THIRD_ADMIN, THIRD_SCHOOL, filter=relatives) == [JEAN]
    assert await printed_for(worker, OTHER_ADMIN, OTHER_SCHOOL, filter=relatives) == [JEAN]


async def test_an_attached_event_never_changes_a_code(worker: CredentialDispatch) -> None:
    await open_other_schools(worker)
    await worker.send(renewal("new-code"))
    await worker.send(AccountActivated(account_id=LEO))
    await attach(worker, OTHER_SCHOOL, as_account(person(ZOE)), as_account(person(LEO)))
    zoe, leo = worker.store.accounts[ZOE], worker.store.accounts[LEO]
    assert (zoe.activation_code, zoe.activation_expires_at) == ("new-code", EXPIRES)
    assert (leo.activation_code, leo.activated_at) == (None, EVENT_TIME)
    # An account never seen here is copied without one: its code is its accounts.created's.
    stranger = account(UUID(int=204), "relative", "Paul", "Petit", children=(NINA,))
    await attach(worker, OTHER_SCHOOL, as_account(stranger))
    copied = worker.store.accounts[stranger.account_id]
    assert (copied.school_id, copied.activation_code, copied.login) == (
        OTHER_SCHOOL,
        None,
        "paul.petit",
    )
    assert (stranger.account_id, NINA) in worker.store.parent_children


async def test_an_account_attached_before_its_accounts_created_is_in_both_schools(
    worker: CredentialDispatch,
) -> None:
    """Two replicas may take the two events in either order: the copy made by the
    attaching school keeps it, and the creating school's event brings the code and its own
    membership."""
    await open_other_schools(worker)
    late = account(UUID(int=205), "student", "Lou", "Petit", class_ids=(CP,))
    await attach(worker, OTHER_SCHOOL, as_account(late, class_ids=[CM1]))
    await worker.send(AccountsCreated(school_id=SCHOOL, accounts=[late]))
    copied = worker.store.accounts[late.account_id]
    assert (copied.school_id, copied.activation_code) == (OTHER_SCHOOL, late.activation_code)
    assert set(worker.store.account_schools) == {(late.account_id, SCHOOL)}
    pupils = {"profiles": ["student"]}
    assert late.account_id in (await printed_for(worker, ADMIN, SCHOOL, filter=pupils) or [])
    by_other = await printed_for(worker, OTHER_ADMIN, OTHER_SCHOOL, filter=pupils)
    assert late.account_id in (by_other or [])


@pytest.mark.parametrize("topic", [topics.ACCOUNTS_ATTACHED, topics.ACCOUNTS_DETACHED])
async def test_an_invalid_attached_or_detached_event_is_dead_lettered(
    worker: CredentialDispatch, topic: str
) -> None:
    before = worker.store.accounts.copy(), worker.store.account_schools.copy()
    outcome = await worker.take(topic, {"school_id": str(OTHER_SCHOOL), "accounts": [{}]})
    assert outcome.kind == "dead"
    assert outcome.reason is not None and "account_id" in outcome.reason
    assert (worker.store.accounts, worker.store.account_schools) == before
    assert worker.data_of(topics.COMMAND_REJECTED) == []  # an event: nobody to answer


# invoice.issued, credit_note.issued ------------------------------------------------------


async def billing_documents() -> tuple[InvoiceIssued, CreditNoteIssued]:
    """An invoice and its credit note, as order_intake issues them."""
    orders = OrderIntake()
    await orders.take(order_data("BC-1"))
    cancel = {"order_id": "BC-1", "reason": "doublon", "cancelled_at": "2026-12-01T10:00:00Z"}
    await orders.take(cancel, topics.ORDER_CANCELLED)
    [invoice] = orders.data_of(topics.INVOICE_ISSUED)
    [note] = orders.data_of(topics.CREDIT_NOTE_ISSUED)
    return invoice, note


async def test_an_invoice_is_kept_and_mailed_to_the_billing_address() -> None:
    worker = CredentialDispatch()
    invoice, _ = await billing_documents()
    await worker.send(invoice)
    assert worker.store.invoices == {invoice.invoice_number: invoice}
    [dispatch] = worker.store.dispatches.values()
    assert (dispatch.purpose, dispatch.school_id, dispatch.correlationid) == (
        "invoice",
        invoice.school_id,
        "BC-1",
    )
    [delivery] = worker.store.deliveries_of(dispatch.dispatch_id)
    assert (delivery.kind, delivery.recipient, delivery.invoice_number, delivery.status) == (
        "invoice",
        "factures@example.org",
        invoice.invoice_number,
        "pending",
    )
    assert worker.store.audit_entries == []  # an invoice hands out no credentials
    # A second copy of it (another message) keeps the first.
    await worker.send(invoice.model_copy(update={"school_name": "Autre"}))
    assert worker.store.invoices[invoice.invoice_number].school_name == invoice.school_name


async def test_a_credit_note_goes_as_its_invoice_went() -> None:
    worker = CredentialDispatch()
    invoice, note = await billing_documents()
    await worker.send(invoice)
    await worker.send(note)
    assert set(worker.store.invoices) == {invoice.invoice_number, note.credit_note_number}
    [dispatch] = dispatches(worker, "credit_note")
    [delivery] = worker.store.deliveries_of(dispatch.dispatch_id)
    assert (delivery.kind, delivery.recipient, delivery.invoice_number) == (
        "credit_note",
        "factures@example.org",
        note.credit_note_number,
    )


async def test_billing_documents_without_an_address_are_reported_undelivered_at_once() -> None:
    worker = CredentialDispatch()
    invoice, note = await billing_documents()
    nowhere = invoice.billing.model_copy(update={"email": None})
    await worker.send(invoice.model_copy(update={"billing": nowhere}))
    await worker.send(note.model_copy(update={"billing": nowhere}))
    [invoice_fate] = worker.data_of(topics.INVOICE_DELIVERED)
    assert (invoice_fate.invoice_number, invoice_fate.order_id, invoice_fate.delivered) == (
        invoice.invoice_number,
        "BC-1",
        False,
    )
    assert invoice_fate.reason == "no email address"
    [note_fate] = worker.data_of(topics.CREDIT_NOTE_DELIVERED)
    assert (note_fate.credit_note_number, note_fate.delivered) == (note.credit_note_number, False)
    assert worker.store.completed == set(worker.store.dispatches)


# activation_code.renewed, account.activated -----------------------------------------------


def renewal(code: str) -> ActivationCodeRenewed:
    return ActivationCodeRenewed(
        account_id=ZOE, school_id=SCHOOL, activation_code=code, activation_expires_at=EXPIRES
    )


async def test_a_renewed_code_replaces_the_old_one_until_the_account_is_activated(
    worker: CredentialDispatch,
) -> None:
    await worker.send(renewal("new-code"))
    assert worker.store.accounts[ZOE].activation_code == "new-code"
    await worker.send(AccountActivated(account_id=ZOE))  # when: the event's time
    zoe = worker.store.accounts[ZOE]
    assert (zoe.activated_at, zoe.activation_code) == (EVENT_TIME, None)
    await worker.send(renewal("too-late"))
    assert worker.store.accounts[ZOE].activation_code is None


async def test_a_deactivated_account_s_code_is_void_until_a_renewal_gives_a_new_one(
    worker: CredentialDispatch,
) -> None:
    """account_manager voids a leaver's code; a never-activated one taken back (issue 22)
    gets a new one by activation_code.renewed: his old code must never print again."""
    assert worker.store.accounts[ZOE].activation_code is not None
    zoe = [as_account(person(ZOE))]
    await worker.send(AccountsDeactivated(school_id=SCHOOL, accounts=zoe))
    assert worker.store.accounts[ZOE].activation_code is None
    await worker.send(AccountsUpdated(school_id=SCHOOL, accounts=zoe, restored=[ZOE]))
    assert worker.store.accounts[ZOE].activation_code is None  # restored, still no code
    await worker.send(renewal("code-for-september"))
    assert worker.store.accounts[ZOE].activation_code == "code-for-september"


async def test_an_account_activated_twice_keeps_its_first_activation(
    worker: CredentialDispatch,
) -> None:
    first, later = datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 9, 3, tzinfo=UTC)
    await worker.send(AccountActivated(account_id=LEO, activated_at=first))
    await worker.send(AccountActivated(account_id=LEO, activated_at=later))
    assert worker.store.accounts[LEO].activated_at == first
    await request(worker, ADMIN, channel="print", filter={"not_activated": True})
    [printed] = dispatches(worker, "request")
    assert printed.selection is not None and LEO not in printed.selection


# classes.created, classes.archived, class.renamed, class.teachers.assigned ----------------


async def test_classes_are_kept_renamed_and_archived_out_of_every_scope(
    worker: CredentialDispatch,
) -> None:
    assert {c: k.name for c, k in worker.store.classes.items()} == {CP: "CP", CE1: "CE1"}
    await worker.send(ClassRenamed(class_id=CP, school_id=SCHOOL, name="CP A"))
    assert (worker.store.classes[CP].name, worker.store.classes[CP].school_id) == ("CP A", SCHOOL)
    await worker.send(
        ClassesArchived(school_id=SCHOOL, classes=[ArchivedClass(class_id=CP, name="CP A")])
    )
    assert set(worker.store.classes) == {CE1}
    assert not {c for _, c in worker.store.account_classes} & {CP}
    await request(worker, ADMIN, channel="print", filter={"class_id": CP})
    assert rejected(worker) == [("filter.class_id", "unknown class in this school")]


async def test_assigned_teachers_replace_the_class_s_teachers_and_keep_its_pupils(
    worker: CredentialDispatch,
) -> None:
    paul = account(PAUL, "teacher", "Paul", "Langevin")
    await worker.send(AccountsCreated(school_id=SCHOOL, accounts=[paul]))
    await worker.send(ClassTeachersAssigned(class_id=CP, school_id=SCHOOL, teachers=[PAUL]))
    in_cp = {a for a, c in worker.store.account_classes if c == CP}
    assert in_cp == {PAUL, ZOE, LEO, JEAN, ANNE}
    await worker.send(ClassTeachersAssigned(class_id=CP, school_id=SCHOOL, teachers=[]))
    assert {a for a, c in worker.store.account_classes if c == CP} == {ZOE, LEO, JEAN, ANNE}


# school.year.turned ------------------------------------------------------------------------


def year_turned(school_id: UUID = SCHOOL, request_id: str | None = None) -> SchoolYearTurned:
    cp, ce1 = ClassInfo(class_id=CP, name="CP"), ClassInfo(class_id=CE1, name="CE1")
    return SchoolYearTurned(
        school_id=school_id,
        classes=[cp, ce1],
        classes_without_teacher=[ce1],
        request_id=request_id,
    )


async def test_each_administrator_is_told_of_the_new_year(worker: CredentialDispatch) -> None:
    second = account(UUID(int=99), "administrator", "Hugo", "Blanc", email="hugo@example.org")
    await worker.send(AccountsCreated(school_id=SCHOOL, accounts=[second]))
    await worker.send(year_turned(request_id="req-close"))
    [notice] = dispatches(worker, "notice")
    assert notice.notice == YearTurnedNotice("École du Lac", ("CP", "CE1"), ("CE1",), True)
    assert deliveries(worker, notice) == [
        ("year_turned", UUID(int=99), "hugo@example.org", "pending", None),
        ("year_turned", ADMIN, CLAIRE_MAIL, "pending", None),
    ]  # by account id
    assert worker.store.topics() == []


async def test_a_new_year_without_an_administrator_to_tell_sends_nothing(
    worker: CredentialDispatch,
) -> None:
    await worker.send(year_turned(OTHER_SCHOOL))
    assert dispatches(worker, "notice") == []
    # An administrator without an address: done at once, and a notice reports nothing.
    admin = account(OTHER_ADMIN, "administrator", "Eve", "Noel")
    await worker.send(AccountsCreated(school_id=OTHER_SCHOOL, accounts=[admin]))
    await worker.send(year_turned(OTHER_SCHOOL))
    [notice] = dispatches(worker, "notice")
    assert notice.notice is not None and not notice.notice.closed_by_hand
    assert deliveries(worker, notice) == [
        ("year_turned", OTHER_ADMIN, None, "failed", "no email address")
    ]
    assert notice.dispatch_id in worker.store.completed
    assert len(worker.data_of(topics.CREDENTIALS_DISPATCHED)) == 1  # the first access's only


# credentials.dispatch.requested ----------------------------------------------------------


async def test_by_email_each_pupil_s_sheet_goes_to_his_parents_with_an_address(
    worker: CredentialDispatch,
) -> None:
    await request(worker, MARIE, channel="email", filter={"class_id": CP, "profiles": ["student"]})
    [dispatch] = dispatches(worker, "request")
    assert (dispatch.channel, dispatch.requested_by, dispatch.selection) == (
        "email",
        MARIE,
        [ZOE, LEO],
    )
    assert deliveries(worker, dispatch) == [
        ("sheet", ZOE, JEAN_MAIL, "pending", None),
        ("sheet", LEO, None, "failed", "no parent with an email address"),
    ]
    record = audit_of(worker, "req-1")
    assert record.entry == Audited(
        SCHOOL, "request", "req-1", MARIE, "teacher", [ZOE, LEO], "email", None,
        dispatch_id=dispatch.dispatch_id,
    )  # fmt: skip
    assert worker.data_of(topics.CREDENTIALS_DISPATCHED) == []  # Zoé's is still to send


async def test_a_deactivated_parent_is_sent_no_sheet_of_his_child(
    worker: CredentialDispatch,
) -> None:
    await worker.send(AccountsDeactivated(school_id=SCHOOL, accounts=[as_account(person(JEAN))]))
    await request(worker, MARIE, channel="email", filter={"class_id": CP, "profiles": ["student"]})
    [dispatch] = dispatches(worker, "request")
    sent_to = {to for _, _, to, _, _ in deliveries(worker, dispatch)}
    assert JEAN_MAIL not in sent_to
    assert ("sheet", ZOE, None, "failed", "no parent with an email address") in deliveries(
        worker, dispatch
    )


async def test_accounts_without_an_address_are_reported_undeliverable_at_once(
    worker: CredentialDispatch,
) -> None:
    await request(worker, ADMIN, channel="email", account_ids=[ANNE, LEO])
    [dispatched] = worker.data_of(topics.CREDENTIALS_DISPATCHED)
    assert (dispatched.request_id, dispatched.channel, dispatched.delivered) == (
        "req-1",
        "email",
        [],
    )
    assert [(u.account_id, u.reason) for u in dispatched.undeliverable] == [
        (ANNE, "no email address"),
        (LEO, "no parent with an email address"),
    ]
    record = audit_of(worker, "req-1")
    assert record.completed and record.delivered == []


async def test_a_print_is_one_document_for_the_requester(worker: CredentialDispatch) -> None:
    await request(
        worker, ADMIN, channel="print", layout="compact", filter={"profiles": ["student"]}
    )
    [dispatch] = dispatches(worker, "request")
    assert (dispatch.channel, dispatch.layout, dispatch.selection) == (
        "print",
        "compact",
        [ZOE, INES, LEO],  # by last name
    )
    assert deliveries(worker, dispatch) == [("print", None, CLAIRE_MAIL, "pending", None)]
    record = audit_of(worker, "req-1")
    assert (record.entry.layout, record.entry.accounts) == ("compact", [ZOE, INES, LEO])


async def test_a_print_for_a_requester_without_an_address_is_printed_all_the_same(
    worker: CredentialDispatch,
) -> None:
    paul = account(PAUL, "teacher", "Paul", "Langevin", class_ids=(CP,))
    await worker.send(AccountsCreated(school_id=SCHOOL, accounts=[paul]))
    await request(worker, PAUL, channel="print", account_ids=[ZOE])
    [dispatch] = dispatches(worker, "request")
    assert deliveries(worker, dispatch) == [("print", None, None, "pending", None)]
    assert worker.data_of(topics.CREDENTIALS_DISPATCHED) == []


async def test_a_teacher_s_filter_keeps_to_his_pupils_their_parents_and_himself(
    worker: CredentialDispatch,
) -> None:
    paul = account(PAUL, "teacher", "Paul", "Langevin", email="paul@example.org", class_ids=(CP,))
    await worker.send(AccountsCreated(school_id=SCHOOL, accounts=[paul]))
    await request(worker, MARIE, channel="print", filter={"class_id": CP})
    await request(worker, ADMIN, "req-2", channel="print", filter={"class_id": CP})
    by_marie, by_admin = dispatches(worker, "request")
    # By last name, then first name; never Paul's code to Marie.
    assert by_marie.selection == [MARIE, JEAN, ZOE, ANNE, LEO]
    assert by_admin.selection == [MARIE, PAUL, JEAN, ZOE, ANNE, LEO]


OUT_OF_SCOPE = [
    (MARIE, {"filter": {"class_id": CE1}}, ("filter.class_id", "not one of your classes")),
    (MARIE, {"account_ids": [INES]}, ("account_ids.0", "not a pupil or parent of your classes")),
    (JEAN, {"account_ids": [ZOE]}, ("requested_by", "a relative account cannot hand out sheets")),
    (UUID(int=999), {"account_ids": [ZOE]}, ("requested_by", "unknown account")),
    (ADMIN, {"filter": {"profiles": ["personnel"]}}, ("filter", "no account matches this request")),
]


@pytest.mark.parametrize(("requested_by", "selection", "reason"), OUT_OF_SCOPE)
async def test_a_request_out_of_scope_is_rejected_audited_and_sends_nothing(
    worker: CredentialDispatch,
    requested_by: UUID,
    selection: dict[str, Any],
    reason: tuple[str, str],
) -> None:
    await request(worker, requested_by, channel="print", **selection)
    assert rejected(worker) == [reason]
    [refusal] = worker.data_of(topics.COMMAND_REJECTED)
    assert (refusal.request_id, refusal.command) == ("req-1", topics.CREDENTIALS_DISPATCH_REQUESTED)
    assert dispatches(worker, "request") == []
    record = audit_of(worker, "req-1")
    assert record.entry.refused is not None
    assert [(r.field, r.message) for r in record.entry.refused] == [reason]
    assert (record.entry.requested_by, record.entry.dispatch_id) == (requested_by, None)


async def test_an_invalid_request_is_rejected_field_by_field(worker: CredentialDispatch) -> None:
    await request(worker, ADMIN, channel="fax", account_ids=["SQL"])
    assert {field for field, _ in rejected(worker)} == {"channel", "account_ids.0"}
    command = {"request_id": "req-2", "requested_by": ADMIN, "school_id": SCHOOL}
    await worker.take(topics.CREDENTIALS_DOCUMENT_SEND_REQUESTED, {**command, "document_id": 7})
    assert [field for field, _ in rejected(worker)] == ["document_id"]
    assert dispatches(worker, "request") == []
    # Nothing was asked of anyone's credentials: nothing to audit.
    assert [r.entry.purpose for r in worker.store.audit_entries] == ["first_access"]


# credentials.document.send.requested -----------------------------------------------------


async def printed_by_marie(worker: CredentialDispatch) -> Dispatch:
    """Marie's compact print of her class, its document stored by the delivery loop."""
    await request(
        worker, MARIE, "req-print", channel="print", layout="compact", filter={"class_id": CP}
    )
    [printed] = dispatches(worker, "request")
    worker.store.stored(printed.dispatch_id, DOCUMENT)
    return printed


async def test_a_stored_document_is_sent_again_to_its_requester_or_the_administrator(
    worker: CredentialDispatch,
) -> None:
    printed = await printed_by_marie(worker)
    await send_again(worker, MARIE, DOCUMENT)
    await send_again(worker, ADMIN, DOCUMENT, "req-3")
    _, to_marie, to_admin = dispatches(worker, "request")
    assert (to_marie.document_id, to_marie.layout, to_marie.selection) == (
        DOCUMENT,
        "compact",
        printed.selection,
    )
    assert deliveries(worker, to_marie) == [("print", None, MARIE_MAIL, "pending", None)]
    assert deliveries(worker, to_admin) == [("print", None, CLAIRE_MAIL, "pending", None)]
    record = audit_of(worker, "req-2")
    assert (record.entry.purpose, record.entry.document_id, record.entry.accounts) == (
        "resend",
        DOCUMENT,
        printed.selection,
    )


async def test_another_school_s_document_is_refused_as_unknown_without_naming_it(
    worker: CredentialDispatch,
) -> None:
    theirs = account(OTHER_ADMIN, "administrator", "Eve", "Noel", email="eve@example.org")
    await worker.send(AccountsCreated(school_id=OTHER_SCHOOL, accounts=[theirs]))
    await request(
        worker, OTHER_ADMIN, school_id=OTHER_SCHOOL, channel="print", account_ids=[OTHER_ADMIN]
    )
    [their_print] = dispatches(worker, "request")
    worker.store.stored(their_print.dispatch_id, DOCUMENT)

    await send_again(worker, ADMIN, DOCUMENT)
    assert rejected(worker) == [("document_id", "unknown document in this school")]
    await send_again(worker, ADMIN, UUID(int=404), "req-3")
    assert rejected(worker) == [("document_id", "unknown document in this school")]
    for request_id in ("req-2", "req-3"):
        record = audit_of(worker, request_id)
        assert (record.entry.purpose, record.entry.accounts) == ("resend", [])
    assert len(dispatches(worker, "request")) == 1


async def test_a_document_is_refused_to_a_colleague_and_to_a_teacher_detached_since(
    worker: CredentialDispatch,
) -> None:
    printed = await printed_by_marie(worker)
    paul = account(PAUL, "teacher", "Paul", "Langevin", email="paul@example.org", class_ids=(CP,))
    await worker.send(AccountsCreated(school_id=SCHOOL, accounts=[paul]))
    await send_again(worker, PAUL, DOCUMENT)
    assert [field for field, _ in rejected(worker)] == ["requested_by"]
    assert audit_of(worker, "req-2").entry.accounts == printed.selection  # his school's

    await worker.send(ClassTeachersAssigned(class_id=CP, school_id=SCHOOL, teachers=[PAUL]))
    await send_again(worker, MARIE, DOCUMENT, "req-3")
    assert rejected(worker) == [
        ("document_id", "this document holds sheets of accounts no longer in your classes")
    ]
    assert len(dispatches(worker, "request")) == 1
