"""The invoice PDF as Factur-X: Chromium's page made PDF/A-3 by the real Ghostscript, the
CII XML attached, read back with the ``factur-x`` library and compared with invoice.issued."""

import os
import re
import shutil
from decimal import Decimal
from io import BytesIO

import facturx
import pytest
from facturx.parse_xml import parse_ubl_cii_xml
from lxml import etree
from pypdf import PdfReader

from services.credential_dispatch import einvoice
from services.credential_dispatch.documents import Documents, format_date
from services.credential_dispatch.renderer import PdfRenderer
from tests.support.pdf import pdf_text
from tools.samples import invoice

CHROMIUM = os.environ.get("ONE_CHROMIUM_PATH", "/usr/bin/chromium")
GHOSTSCRIPT = shutil.which("gs") or "/usr/bin/gs"
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}


@pytest.fixture(scope="module")
async def facturx_pdf() -> bytes:
    issued = invoice()
    async with PdfRenderer(CHROMIUM, concurrency=1) as renderer:
        page = await renderer.render(
            Documents(ent_url="https://ent.example.org").invoice_html(issued)
        )
    return await einvoice.facturx_pdf(page, issued, ghostscript=GHOSTSCRIPT)


def values(tree: etree._Element, path: str) -> list[str]:
    return [str(v).strip() for v in tree.xpath(path, namespaces=NS)]


async def test_the_attached_xml_is_valid_en16931_with_the_invoice_s_figures(facturx_pdf):
    issued = invoice()
    name, xml = facturx.get_xml_from_pdf(facturx_pdf, check_xsd=True)
    assert name == "factur-x.xml"
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"
    tree = etree.fromstring(xml)
    root = "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction"
    agreement, settlement = (
        f"{root}/ram:ApplicableHeaderTradeAgreement",
        (f"{root}/ram:ApplicableHeaderTradeSettlement"),
    )
    totals = f"{settlement}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert values(tree, "//rsm:ExchangedDocument/ram:ID/text()") == [issued.invoice_number]
    assert values(tree, "//rsm:ExchangedDocument/ram:TypeCode/text()") == ["380"]
    assert values(tree, "//ram:IssueDateTime/udt:DateTimeString/text()") == [
        f"{einvoice.issue_date(issued):%Y%m%d}"
    ]
    assert values(tree, f"{settlement}//ram:DueDateDateTime/udt:DateTimeString/text()") == [
        f"{issued.due_on:%Y%m%d}"
    ]
    [terms] = values(tree, f"{settlement}/ram:SpecifiedTradePaymentTerms/ram:Description/text()")
    assert format_date(issued.due_on) in terms and issued.invoice_number in terms
    assert values(
        tree, f"{agreement}/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID/text()"
    ) == [issued.order_reference]
    seller, buyer = f"{agreement}/ram:SellerTradeParty", f"{agreement}/ram:BuyerTradeParty"
    assert values(tree, f"{seller}/ram:Name/text()") == [issued.seller.name]
    assert issued.seller.siret is not None and issued.billing.siret is not None
    assert values(tree, f"{seller}/ram:SpecifiedLegalOrganization/ram:ID/text()") == [
        issued.seller.siret[:9]
    ]
    assert values(tree, f"{seller}/ram:SpecifiedTaxRegistration/ram:ID/text()") == [
        issued.seller.vat_number
    ]
    assert values(tree, f"{buyer}/ram:Name/text()") == [issued.billing.name]
    assert values(tree, f"{buyer}/ram:SpecifiedLegalOrganization/ram:ID/@schemeID") == ["0009"]
    assert values(tree, f"{buyer}/ram:SpecifiedLegalOrganization/ram:ID/text()") == [
        issued.billing.siret
    ]
    assert values(tree, f"{buyer}/ram:PostalTradeAddress/ram:PostcodeCode/text()") == [
        issued.billing.address.postal_code
    ]
    lines = tree.xpath(f"{root}/ram:IncludedSupplyChainTradeLineItem", namespaces=NS)
    assert [
        (
            values(line, ".//ram:SellerAssignedID/text()")[0],
            int(values(line, ".//ram:BilledQuantity/text()")[0]),
            Decimal(values(line, ".//ram:NetPriceProductTradePrice/ram:ChargeAmount/text()")[0]),
            Decimal(values(line, ".//ram:RateApplicablePercent/text()")[0]) / 100,
            Decimal(values(line, ".//ram:LineTotalAmount/text()")[0]),
        )
        for line in lines
    ] == [
        (line.sku, line.quantity, line.unit_price, line.vat_rate, line.total_excl_tax)
        for line in issued.lines
    ]
    breakdown = tree.xpath(f"{settlement}/ram:ApplicableTradeTax", namespaces=NS)
    assert [
        (
            Decimal(values(tax, "ram:RateApplicablePercent/text()")[0]) / 100,
            Decimal(values(tax, "ram:BasisAmount/text()")[0]),
            Decimal(values(tax, "ram:CalculatedAmount/text()")[0]),
        )
        for tax in breakdown
    ] == [(vat.rate, vat.base, vat.amount) for vat in issued.vat]
    assert [
        Decimal(values(tree, f"{totals}/ram:{field}/text()")[0])
        for field in (
            "TaxBasisTotalAmount",
            "TaxTotalAmount",
            "GrandTotalAmount",
            "DuePayableAmount",
        )
    ] == [issued.total_excl_tax, issued.total_vat, issued.total_incl_tax, issued.total_incl_tax]
    # The library's own reading agrees.
    parsed = parse_ubl_cii_xml(xml)
    assert Decimal(str(parsed["BT-112"])) == issued.total_incl_tax


async def test_the_pdf_is_pdf_a3_with_its_fonts_and_output_intent(facturx_pdf):
    reader = PdfReader(BytesIO(facturx_pdf))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert re.search(r"pdfaid:part(>|=\")3", xmp), xmp
    assert re.search(r"pdfaid:conformance(>|=\")B", xmp), xmp
    assert re.search(r"fx:ConformanceLevel(>|=\")EN 16931", xmp), xmp
    assert re.search(r"fx:DocumentFileName(>|=\")factur-x.xml", xmp), xmp
    intents = reader.trailer["/Root"]["/OutputIntents"]
    assert [i.get_object()["/S"] for i in intents] == ["/GTS_PDFA1"]
    fonts = [
        font.get_object() for page in reader.pages for font in page["/Resources"]["/Font"].values()
    ]
    assert fonts
    for font in fonts:
        descendants = font.get("/DescendantFonts")
        described = descendants[0].get_object() if descendants else font
        descriptor = described["/FontDescriptor"].get_object()
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor), font
    # Ghostscript's rewrite keeps the page's text: what the XML says is still printed.
    [page] = pdf_text(facturx_pdf)
    assert "Total TTC 1 524,78 €" in page and "ONE-2026-000001" in page


async def test_a_batch_made_pdf_a3_at_once_splits_into_one_factur_x_each():
    """The delivery loop renders a batch of invoices in one Chromium call and makes it
    PDF/A-3 in one Ghostscript run: each part keeps its page, its fonts and the output
    intent, and takes its own XML."""
    issued = [invoice(invoice_number=f"ONE-2026-00000{n}") for n in (1, 2, 3)]
    async with PdfRenderer(CHROMIUM, concurrency=1) as renderer:
        whole = await renderer.render(
            Documents(ent_url="https://ent.example.org").invoices_html(issued)
        )
    parts = await einvoice.pdf_a3_each(whole, 3, ghostscript=GHOSTSCRIPT)
    assert parts is not None and len(parts) == 3
    assert await einvoice.pdf_a3_each(whole, 2, ghostscript=GHOSTSCRIPT) is None
    for part, one in zip(parts, issued, strict=True):
        made = einvoice.attach(part, einvoice.invoice_xml(one), one)
        reader = PdfReader(BytesIO(made))
        assert len(reader.pages) == 1
        assert [i.get_object()["/S"] for i in reader.root_object["/OutputIntents"]] == [
            "/GTS_PDFA1"
        ]
        _, xml = facturx.get_xml_from_pdf(made, check_xsd=True)
        assert values(etree.fromstring(xml), "//rsm:ExchangedDocument/ram:ID/text()") == [
            one.invoice_number
        ]
        [page] = pdf_text(made)
        assert one.invoice_number in page
