"""An order cancelled end to end: the credit note by email to the billing address, as a
Factur-X PDF (type 381, citing the invoice it cancels), and its events; the invoice
before it is Factur-X too."""

import json
from decimal import Decimal

import facturx
from aio_pika.abc import AbstractChannel
from lxml import etree

from tests.e2e.conftest import Pipeline
from tests.e2e.test_first_access import attachment
from tests.support.broker import EventSpy, publish_raw
from tests.support.orders import cloudevent, order_data
from tests.support.pdf import pdf_text
from tools.waits import eventually

RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
NS = {"ram": RAM, "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"}


async def send(channel: AbstractChannel, pipeline: Pipeline, event: dict) -> None:
    await publish_raw(channel, pipeline.stack.exchange, event["type"], json.dumps(event).encode())


def factur_x(pdf: bytes) -> etree._Element:
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert name == "factur-x.xml"
    return etree.fromstring(xml)


def text(tree: etree._Element, path: str) -> str:
    [found] = tree.xpath(path, namespaces=NS)
    return str(found).strip()


async def test_a_cancelled_order_s_credit_note_is_mailed_as_factur_x(pipeline, channel):
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    await send(channel, pipeline, cloudevent(order_data("BC-AV-1", department="075"), event_id="o"))
    [invoice] = await spy.wait_for("invoice.delivered", timeout=60)
    assert invoice["data"]["delivered"] is True
    [issued] = spy.of_type("invoice.issued")
    number = issued["data"]["invoice_number"]

    cancel = {
        "order_id": "BC-AV-1",
        "reason": "Commande passée en double",
        "cancelled_at": "2026-09-15T10:00:00Z",
    }
    await send(channel, pipeline, cloudevent(cancel, event_id="c", event_type="order.cancelled"))
    [delivered] = await spy.wait_for("credit_note.delivered", timeout=60)
    [note] = spy.of_type("credit_note.issued")
    note_number = note["data"]["credit_note_number"]
    assert delivered["data"] == {
        "credit_note_number": note_number,
        "order_id": "BC-AV-1",
        "school_id": issued["data"]["school_id"],
        "to": "factures@example.org",
        "delivered": True,
        "reason": None,
    }

    mails = {
        str(m["Subject"]): m for m in pipeline.sink.received if m["To"] == "factures@example.org"
    }
    [invoice_subject] = [s for s in mails if number in s]
    [note_subject] = [s for s in mails if note_number in s]
    assert note_subject.startswith("Avoir ")

    # The invoice: Factur-X, type 380.
    invoice_xml = factur_x(attachment(mails[invoice_subject]))
    assert text(invoice_xml, "//rsm:ExchangedDocument/ram:TypeCode/text()") == "380"

    # The credit note: Factur-X, type 381, citing the invoice, the same totals.
    pdf = attachment(mails[note_subject])
    xml = factur_x(pdf)
    assert text(xml, "//rsm:ExchangedDocument/ram:ID/text()") == note_number
    assert text(xml, "//rsm:ExchangedDocument/ram:TypeCode/text()") == "381"
    assert text(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID/text()") == number
    summation = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert Decimal(text(xml, f"{summation}/ram:GrandTotalAmount/text()")) == Decimal(
        note["data"]["total_incl_tax"]
    )
    assert note["data"]["total_incl_tax"] == issued["data"]["total_incl_tax"]
    page = "\n".join(pdf_text(pdf))
    assert "Avoir" in page and note_number in page and number in page
    assert "Commande passée en double" in page

    # The school's space is not closed by a cancellation.
    conn = await pipeline.stack.admin()
    try:
        active = await conn.fetchval(
            "SELECT count(*) FROM account_manager.accounts WHERE deactivated_at IS NULL"
        )
    finally:
        await conn.close()
    assert active == 1  # the administrator

    await eventually(pipeline.quiescent, timeout=30, what="pipeline idle")
    assert not pipeline.troubles()
