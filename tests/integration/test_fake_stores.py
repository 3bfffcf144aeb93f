"""Each in-memory fake store (tests/fakes) against its worker's Postgres store: the same
calls give the same results, so that what the unit tier proves on the fakes holds."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.directory_sync.bootstrap import build as build_directory_sync
from services.directory_sync.domain import PERSONS, SnapshotPerson
from services.directory_sync.ports import DirectoryStore, HeldRun, QueuedRun
from services.directory_sync.settings import DirectorySyncSettings
from services.directory_sync.store import PostgresDirectoryStore
from services.order_intake.domain import SchoolRow
from services.order_intake.ports import OrderStore
from services.order_intake.store import PostgresOrderStore
from shared import topics
from shared.contracts.common import Reason
from shared.contracts.directory import FeedClass, SyncCounts
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.worker import Worker
from tests.conftest import Stack
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
