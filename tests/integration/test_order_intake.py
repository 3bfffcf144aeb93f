"""order_intake against real RabbitMQ and Postgres: accepted, rejected, duplicate and
poison orders."""

import json
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractChannel

from services.order_intake.bootstrap import build
from services.order_intake.settings import OrderIntakeSettings
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy, publish_raw, wait_for_queue
from tests.support.orders import cloudevent, order_data


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
