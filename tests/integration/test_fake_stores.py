"""Each in-memory fake store (tests/fakes) against its worker's Postgres store: the same
calls give the same results, so that what the unit tier proves on the fakes holds."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from services.order_intake.bootstrap import build as build_order_intake
from services.order_intake.ports import OrderStore, SchoolRow
from services.order_intake.settings import OrderIntakeSettings
from services.order_intake.store import PostgresOrderStore
from shared import topics
from shared.contracts.common import Reason
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.worker import Worker
from tests.conftest import Stack
from tests.fakes.order_intake import FakeOrderStore, OrderIntake
from tests.support.orders import order_data


@pytest.fixture
async def order_intake(stack: Stack) -> AsyncIterator[Worker]:
    running = build_order_intake(stack.settings(OrderIntakeSettings))
    await running.start()
    yield running
    await running.stop()


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
