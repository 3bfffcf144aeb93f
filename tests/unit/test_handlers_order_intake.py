"""order_intake's handlers through its routing table and the consume wrapper, on the
in-memory store: every message it takes, on its success and refusal paths, no Postgres."""

import json
from typing import Any

import pytest

from services.order_intake.handlers import routes
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.contracts.orders import InvoiceIssued
from shared.errors import TransientError
from shared.messaging.consumer import MessageProcessor
from tests.fakes.events import unit_of_work
from tests.fakes.order_intake import FakeOrderStore, OrderIntake
from tests.support.orders import cloudevent, order_data


@pytest.fixture
def worker() -> OrderIntake:
    return OrderIntake()


def cancellation(order_id: str, reason: str = "doublon") -> dict[str, Any]:
    return {"order_id": order_id, "reason": reason, "cancelled_at": "2026-12-01T10:00:00Z"}


async def test_an_order_opens_the_school_and_invoices_it_in_paris_year(worker: OrderIntake):
    outcome = await worker.take(order_data("BC-1", department="074"))
    assert outcome.kind == "applied"
    assert worker.store.topics() == [topics.SCHOOL_INITIALISED, topics.INVOICE_ISSUED]
    [school] = worker.data_of(topics.SCHOOL_INITIALISED)
    assert (school.provisioning, school.academie) == ("automatic", "Haute-Savoie")
    [invoice] = worker.data_of(topics.INVOICE_ISSUED)
    assert invoice.invoice_number == "ONE-2027-000001"
    assert invoice.school_id == school.school_id


async def test_a_renewal_is_invoiced_without_opening_the_school_again(worker: OrderIntake):
    await worker.take(order_data("BC-1", department="075", number=12))
    await worker.take(order_data("BC-2", department="075", number=12))
    assert worker.store.topics().count(topics.SCHOOL_INITIALISED) == 1
    numbers = [i.invoice_number for i in worker.data_of(topics.INVOICE_ISSUED)]
    assert numbers == ["ONE-2027-000001", "ONE-2027-000002"]


async def test_the_same_order_twice_is_applied_once(worker: OrderIntake):
    await worker.take(order_data("BC-1"))
    again = await worker.take(order_data("BC-1"))  # a new event id: not an inbox duplicate
    assert again.kind == "applied"
    assert len(worker.data_of(topics.INVOICE_ISSUED)) == 1


async def test_an_order_id_reused_for_other_content_is_rejected(worker: OrderIntake):
    await worker.take(order_data("BC-1", classes=6))
    await worker.take(order_data("BC-1", classes=9))
    [rejected] = worker.data_of(topics.ORDER_REJECTED)
    assert [r.field for r in rejected.reasons] == ["order_id"]
    assert worker.store.rejections[0][0] == "BC-1"


async def test_an_invalid_order_is_rejected_field_by_field(worker: OrderIntake):
    data = order_data("BC-1")
    data["school"]["uai"] = "0740001A"  # wrong check letter
    data["administrator"]["email"] = "not an address"
    outcome = await worker.take(data)
    assert outcome.kind == "applied"  # answered with order.rejected, not dead-lettered
    [rejected] = worker.data_of(topics.ORDER_REJECTED)
    assert {r.field for r in rejected.reasons} == {"school.uai", "administrator.email"}
    assert worker.store.orders == {}


async def test_automatic_provisioning_outside_the_fed_departments_is_rejected(
    worker: OrderIntake,
):
    await worker.take(order_data("BC-1", department="075", provisioning="automatic"))
    [rejected] = worker.data_of(topics.ORDER_REJECTED)
    assert [r.field for r in rejected.reasons] == ["provisioning"]
    assert worker.store.schools == {} and worker.store.counters == {}


async def test_a_cancellation_issues_one_credit_note(worker: OrderIntake):
    await worker.take(order_data("BC-1"))
    await worker.take(cancellation("BC-1"), topics.ORDER_CANCELLED)
    await worker.take(cancellation("BC-1", "encore"), topics.ORDER_CANCELLED)
    [note] = worker.data_of(topics.CREDIT_NOTE_ISSUED)
    assert note.credit_note_number == "AVOIR-2027-000001"
    assert note.invoice_number == "ONE-2027-000001"
    assert note.total_incl_tax == worker.data_of(topics.INVOICE_ISSUED)[0].total_incl_tax


async def test_a_cancellation_of_an_unknown_order_is_rejected(worker: OrderIntake):
    outcome = await worker.take(cancellation("BC-404"), topics.ORDER_CANCELLED)
    assert outcome.kind == "applied"
    [rejected] = worker.data_of(topics.ORDER_REJECTED)
    assert rejected.order_id == "BC-404" and rejected.reasons[0].field == "order_id"
    assert worker.store.credit_notes == {}


async def test_a_redelivered_message_is_a_duplicate_without_effect(worker: OrderIntake):
    event = cloudevent(order_data("BC-1"), event_id="same-id")
    processor = MessageProcessor(routes(OrderIntakeSettings()), unit_of_work(worker.store))
    first = await processor.process(json.dumps(event).encode())
    second = await processor.process(json.dumps(event).encode())
    assert (first.kind, second.kind) == ("applied", "duplicate")
    assert len(worker.store.emitted) == 2


class InvoicesAway(FakeOrderStore):
    """The database goes away when the invoice is written: after the school and the order."""

    async def add_invoice(self, invoice: InvoiceIssued, *, year: int, seq: int) -> None:
        raise TransientError("connection lost")


async def test_a_failed_attempt_leaves_nothing_behind() -> None:
    worker = OrderIntake(InvoicesAway())
    outcome = await worker.take(order_data("BC-1"))
    assert (outcome.kind, outcome.reason) == ("retry", "TransientError: connection lost")
    store = worker.store
    assert (store.schools, store.orders, store.counters, store.inbox) == ({}, {}, {}, {})
    assert store.emitted == []
