"""Step 1 end to end: an order on the exchange gives the administrator's first access and
the invoice, by email, with their PDFs, through the four worker processes."""

import json
from email.message import EmailMessage

from aio_pika.abc import AbstractChannel

from tests.e2e.conftest import ENT_URL, Pipeline
from tests.support.broker import EventSpy, publish_raw
from tests.support.orders import cloudevent, order_data
from tests.support.pdf import decode_qr_codes, pdf_text
from tools.waits import eventually


def attachment(message: EmailMessage) -> bytes:
    [part] = list(message.iter_attachments())
    assert part.get_content_type() == "application/pdf"
    return bytes(part.get_content())


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


async def send(channel: AbstractChannel, pipeline: Pipeline, event: dict) -> None:
    await publish_raw(
        channel, pipeline.stack.exchange, "order.received", json.dumps(event).encode()
    )


async def test_order_gives_first_access_and_invoice_by_email(pipeline, channel):
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    await send(channel, pipeline, cloudevent(order_data("BC-E2E-1"), event_id="o-1"))

    [dispatched] = await spy.wait_for("credentials.dispatched", timeout=60)
    await spy.wait_for("invoice.delivered", timeout=60)
    [created] = spy.of_type("accounts.created")
    [admin] = created["data"]["accounts"]
    [invoice] = spy.of_type("invoice.issued")
    assert {e["correlationid"] for e in spy.events} == {"BC-E2E-1"}
    assert dispatched["data"]["delivered"] == [
        {"account_id": admin["account_id"], "to": "claire.martin@example.org"}
    ]
    assert dispatched["data"]["undeliverable"] == []
    assert dispatched["data"]["request_id"] is None

    by_recipient = {str(m["To"]): m for m in pipeline.sink.received}
    assert set(by_recipient) == {"claire.martin@example.org", "factures@example.org"}

    first_access = by_recipient["claire.martin@example.org"]
    text, html = bodies(first_access)
    code, login = admin["activation_code"], admin["login"]
    assert login == "claire.martin"
    for body in (text, html):
        assert login in body and code in body
    sheet = attachment(first_access)
    [page] = pdf_text(sheet)
    assert "Claire" in page and "Martin" in page and login in page and code in page
    url = f"{ENT_URL}/auth/activation?login={login}&activationCode={code}"
    assert decode_qr_codes(sheet) == [url]

    invoice_mail = by_recipient["factures@example.org"]
    number = invoice["data"]["invoice_number"]
    assert number in str(invoice_mail["Subject"])
    invoice_text = "\n".join(pdf_text(attachment(invoice_mail)))
    assert number in invoice_text
    assert "180,00" in invoice_text and "150,00" in invoice_text
    assert "EJ-123" in invoice_text and "Mairie d'Annecy" in invoice_text

    # directory_sync heard of the automatic school (074) and registered it for the feed.
    conn = await pipeline.stack.admin()
    try:
        registered = await conn.fetch("SELECT uai, academie FROM directory_sync.feed_registrations")
    finally:
        await conn.close()
    assert [(r["uai"], r["academie"]) for r in registered] == [
        (created["data"]["uai"], "Haute-Savoie")
    ]

    # JSON logs carry the correlation and causation ids of the message at hand.
    applied = [
        r for w in pipeline.workers.values() for r in w.records() if r.get("event") == "applied"
    ]
    assert {r["correlationid"] for r in applied} == {"BC-E2E-1"}
    assert {r["service"] for r in applied} == {
        "order_intake",
        "account_manager",
        "credential_dispatch",
        "directory_sync",
    }
    assert all(r["causationid"] for r in applied if r["service"] != "order_intake")

    # Secrets never reach the logs.
    assert not [line for line in pipeline.log_lines() if code in line]


async def test_same_order_twice_gives_one_school_one_invoice_one_of_each_email(pipeline, channel):
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    event = cloudevent(order_data("BC-E2E-2", department="075", classes=3), event_id="o-2")
    await send(channel, pipeline, event)
    await send(channel, pipeline, event)  # the same message again
    await send(
        channel,
        pipeline,
        cloudevent(order_data("BC-E2E-2", department="075", classes=3), event_id="o-2-resent"),
    )  # a resend
    await spy.wait_for("credentials.dispatched", timeout=60)
    await spy.wait_for("invoice.delivered", timeout=60)
    await eventually(pipeline.quiescent, timeout=30, what="pipeline idle")

    [classes] = spy.of_type("classes.created")
    assert [c["name"] for c in classes["data"]["classes"]] == ["Classe 1", "Classe 2", "Classe 3"]
    for topic in (
        "school.initialised",
        "invoice.issued",
        "accounts.created",
        "credentials.dispatched",
        "invoice.delivered",
    ):
        assert len(spy.of_type(topic)) == 1, topic
    assert sorted(str(m["To"]) for m in pipeline.sink.received) == [
        "claire.martin@example.org",
        "factures@example.org",
    ]
    conn = await pipeline.stack.admin()
    try:  # a manual school (075) is not fed from ONDE
        assert await conn.fetchval("SELECT count(*) FROM directory_sync.feed_registrations") == 0
    finally:
        await conn.close()
