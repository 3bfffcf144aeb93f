"""order_intake against real RabbitMQ and Postgres: accepted, rejected, duplicate and
poison orders."""

import json
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractChannel

from services.order_intake.bootstrap import build
from services.order_intake.settings import OrderIntakeSettings
from services.order_intake.store import PostgresOrderStore
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy, publish_raw, wait_for_queue
from tests.support.orders import cloudevent, order_data
from tools.waits import eventually


@pytest.fixture
async def worker(stack: Stack) -> AsyncIterator[Worker]:
    running = build(stack.settings(OrderIntakeSettings))
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def spy(worker: Worker, stack: Stack, channel: AbstractChannel) -> EventSpy:
    watcher = EventSpy()
    await watcher.start(channel, stack.exchange)
    return watcher


async def send(channel: AbstractChannel, stack: Stack, event: dict) -> None:
    await publish_raw(channel, stack.exchange, event["type"], json.dumps(event).encode())


async def test_valid_order_opens_school_and_issues_invoice(stack, channel, spy):
    await send(channel, stack, cloudevent(order_data("BC-1"), event_id="e-1"))

    [initialised] = await spy.wait_for("school.initialised")
    [invoice] = await spy.wait_for("invoice.issued")
    assert initialised["correlationid"] == "BC-1"
    assert initialised["causationid"] == "e-1"
    assert initialised["data"]["provisioning"] == "automatic"
    assert initialised["data"]["academie"] == "Haute-Savoie"
    assert invoice["data"]["invoice_number"].endswith("-000001")
    assert invoice["data"]["total_incl_tax"] == "180.00"
    assert invoice["data"]["school_id"] == initialised["data"]["school_id"]


async def test_invalid_order_is_rejected_field_by_field(stack, channel, spy):
    data = order_data("BC-2")
    data["school"]["uai"] = "0741234A"
    data["billing"]["siret"] = "21740010600018"
    data["classes"] = 0
    await send(channel, stack, cloudevent(data, event_id="e-2"))

    [rejected] = await spy.wait_for("order.rejected")
    fields = {r["field"] for r in rejected["data"]["reasons"]}
    assert fields == {"school.uai", "billing.siret", "classes"}
    assert rejected["data"]["order_id"] == "BC-2"
    assert spy.of_type("school.initialised") == []


async def test_automatic_asked_for_ineligible_school_is_rejected(stack, channel, spy):
    data = order_data("BC-3", department="075", provisioning="automatic")
    await send(channel, stack, cloudevent(data, event_id="e-3"))
    [rejected] = await spy.wait_for("order.rejected")
    assert [r["field"] for r in rejected["data"]["reasons"]] == ["provisioning"]


async def test_same_order_twice_is_applied_once_and_conflict_rejected(stack, channel, spy):
    event = cloudevent(order_data("BC-4"), event_id="e-4")
    await send(channel, stack, event)
    await send(channel, stack, event)  # redelivered: same event id
    await send(channel, stack, cloudevent(order_data("BC-4"), event_id="e-4b"))  # resent
    changed = order_data("BC-4", classes=7)
    await send(channel, stack, cloudevent(changed, event_id="e-4c"))  # conflict

    [rejected] = await spy.wait_for("order.rejected")
    assert rejected["data"]["reasons"][0]["field"] == "order_id"
    assert len(spy.of_type("school.initialised")) == 1
    assert len(spy.of_type("invoice.issued")) == 1
    conn = await stack.admin()
    try:
        assert await conn.fetchval("SELECT count(*) FROM order_intake.orders") == 1
        assert await conn.fetchval("SELECT count(*) FROM order_intake.invoices") == 1
    finally:
        await conn.close()


async def test_renewal_is_invoiced_without_reopening_the_school(stack, channel, spy):
    await send(channel, stack, cloudevent(order_data("BC-5"), event_id="e-5"))
    await send(channel, stack, cloudevent(order_data("BC-6"), event_id="e-6"))
    invoices = await spy.wait_for("invoice.issued", count=2)
    assert sorted(i["data"]["invoice_number"][-6:] for i in invoices) == ["000001", "000002"]
    assert len(spy.of_type("school.initialised")) == 1


async def test_poison_messages_are_dead_lettered_and_worker_goes_on(stack, channel, spy):
    await publish_raw(channel, stack.exchange, "order.received", b"{not json")
    future = cloudevent(order_data("BC-7"), event_id="e-7", major=2)
    await send(channel, stack, future)
    await send(channel, stack, cloudevent(order_data("BC-8"), event_id="e-8"))

    dead = await wait_for_queue(channel, stack.names.dead_letter_queue, count=2)
    reasons = sorted(str(m.headers["x-one-reason"]) for m in dead)
    assert reasons[0].startswith("unparseable CloudEvent")
    assert "unsupported dataschema" in reasons[1]
    assert all(m.headers["x-one-worker"] == "order_intake" for m in dead)
    [initialised] = await spy.wait_for("school.initialised")
    assert initialised["data"]["order_id"] == "BC-8"


def cancellation(order_id: str, event_id: str, reason: str = "Commande passée en double"):
    return cloudevent(
        {"order_id": order_id, "reason": reason, "cancelled_at": "2026-09-15T10:00:00Z"},
        event_id=event_id,
        event_type="order.cancelled",
    )


async def test_a_cancelled_order_gets_one_credit_note_for_its_whole_invoice(stack, channel, spy):
    await send(channel, stack, cloudevent(order_data("BC-C1"), event_id="e-c1"))
    [invoice] = await spy.wait_for("invoice.issued")
    await send(channel, stack, cancellation("BC-C1", "x-c1"))
    [note] = await spy.wait_for("credit_note.issued")
    data, billed = note["data"], invoice["data"]
    assert note["correlationid"] == "BC-C1" and note["causationid"] == "x-c1"
    assert data["credit_note_number"].startswith("AVOIR-")
    assert data["credit_note_number"].endswith("-000001")
    assert data["invoice_number"] == billed["invoice_number"]
    assert data["reason"] == "Commande passée en double"
    for same in ("order_id", "school_id", "lines", "vat", "seller", "billing", "order_reference"):
        assert data[same] == billed[same], same
    for total in ("total_excl_tax", "total_vat", "total_incl_tax"):
        assert data[total] == billed[total], total

    # The same cancellation again, or another one for the order: acknowledged, no effect.
    await send(channel, stack, cancellation("BC-C1", "x-c1"))
    await send(channel, stack, cancellation("BC-C1", "x-c1-again", reason="Autre motif"))
    await send(channel, stack, cloudevent(order_data("BC-C2"), event_id="e-c2"))
    await spy.wait_for("invoice.issued", count=2)
    await send(channel, stack, cancellation("BC-C2", "x-c2"))
    await spy.wait_for("credit_note.issued", count=2)

    async def all_consumed() -> bool:
        conn = await stack.admin()
        try:
            seen = await conn.fetchval(
                "SELECT count(*) FROM order_intake.inbox WHERE message_id LIKE 'x-c%'"
            )
        finally:
            await conn.close()
        return bool(seen == 3)  # x-c1 (once), x-c1-again, x-c2

    await eventually(all_consumed, timeout=20, what="every cancellation consumed")
    notes = spy.of_type("credit_note.issued")
    assert [n["data"]["order_id"] for n in notes] == ["BC-C1", "BC-C2"]
    assert notes[1]["data"]["credit_note_number"].endswith("-000002")


async def test_cancelling_an_unknown_order_is_rejected_with_a_reason(stack, channel, spy):
    await send(channel, stack, cancellation("BC-NOWHERE", "x-u1"))
    [rejected] = await spy.wait_for("order.rejected")
    assert rejected["causationid"] == "x-u1"
    assert rejected["data"]["order_id"] == "BC-NOWHERE"
    assert [r["field"] for r in rejected["data"]["reasons"]] == ["order_id"]
    assert "not known" in rejected["data"]["reasons"][0]["message"]
    assert spy.of_type("credit_note.issued") == []


async def test_a_rolled_back_credit_note_leaves_no_gap(stack, channel, spy):
    """A number taken by a cancellation whose transaction does not commit is taken
    again by the next one."""
    conn = await stack.admin()
    try:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("SET LOCAL search_path = order_intake")
                assert await PostgresOrderStore(conn).next_credit_note_seq(2026) == 1
                raise RuntimeError("the cancellation fails after its number was taken")
    finally:
        await conn.close()
    for n in (1, 2):
        await send(channel, stack, cloudevent(order_data(f"BC-R{n}"), event_id=f"e-r{n}"))
        await spy.wait_for("invoice.issued", count=n)
        await send(channel, stack, cancellation(f"BC-R{n}", f"x-r{n}"))
    notes = await spy.wait_for("credit_note.issued", count=2)
    assert sorted(n["data"]["credit_note_number"][-6:] for n in notes) == ["000001", "000002"]


async def test_the_order_s_service_code_reaches_the_invoice_and_its_credit_note(
    stack, channel, spy
):
    order = order_data("BC-S1")
    order["billing"]["service_code"] = "SERV-ECOLES"
    await send(channel, stack, cloudevent(order, event_id="e-s1"))
    [invoice] = await spy.wait_for("invoice.issued")
    assert invoice["data"]["service_code"] == "SERV-ECOLES"
    await send(channel, stack, cancellation("BC-S1", "x-s1"))
    [note] = await spy.wait_for("credit_note.issued")
    assert note["data"]["service_code"] == "SERV-ECOLES"


async def test_a_malformed_cancellation_is_rejected_field_by_field(stack, channel, spy):
    """A careless or hostile order system: no reason, a date that is none, an order id
    with SQL in it. Refused with the fields named; nothing is cancelled."""
    event = cloudevent(
        {"order_id": "BC-1; DROP TABLE orders", "cancelled_at": "yesterday"},
        event_id="x-bad",
        event_type="order.cancelled",
        correlationid="BC-1",
    )
    await send(channel, stack, event)
    [rejected] = await spy.wait_for("order.rejected")
    assert rejected["causationid"] == "x-bad"
    fields = {r["field"] for r in rejected["data"]["reasons"]}
    assert {"order_id", "reason", "cancelled_at"} <= fields, fields
    assert spy.of_type("credit_note.issued") == []
