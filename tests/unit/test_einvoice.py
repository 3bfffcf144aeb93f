"""The invoice's Factur-X XML, without a PDF: valid against the EN 16931 XSD whatever the
order left out, and saying what invoice.issued says."""

from datetime import date
from decimal import Decimal

import facturx
import pytest
from facturx.parse_xml import parse_ubl_cii_xml
from lxml import etree

from services.credential_dispatch import einvoice
from tools.samples import invoice

NS = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}


def bare_invoice():
    """An order with nothing optional: no purchase order reference, no SIRET, no VAT
    number, no email, and a zero-rated line."""
    issued = invoice(order_reference=None)
    return issued.model_copy(
        update={
            "seller": issued.seller.model_copy(update={"siret": None, "vat_number": None}),
            "billing": issued.billing.model_copy(update={"siret": None, "email": None}),
            "lines": [
                issued.lines[0],
                issued.lines[0].model_copy(
                    update={
                        "sku": "ONE-FREE",
                        "vat_rate": Decimal("0"),
                        "unit_price": Decimal("0.00"),
                        "total_excl_tax": Decimal("0.00"),
                    }
                ),
            ],
            "vat": [
                issued.vat[0].model_copy(
                    update={"base": Decimal("150.00"), "amount": Decimal("30.00")}
                ),
                issued.vat[0].model_copy(
                    update={
                        "rate": Decimal("0"),
                        "base": Decimal("0.00"),
                        "amount": Decimal("0.00"),
                    }
                ),
            ],
            "total_excl_tax": Decimal("150.00"),
            "total_vat": Decimal("30.00"),
            "total_incl_tax": Decimal("180.00"),
        }
    )


@pytest.mark.parametrize("issued", [invoice(), bare_invoice()], ids=["full", "bare"])
def test_the_xml_is_valid_en16931(issued):
    xml = einvoice.invoice_xml(issued)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"


def test_the_xml_carries_the_invoice_s_amounts():
    issued = invoice()
    parsed = parse_ubl_cii_xml(einvoice.invoice_xml(issued))
    assert parsed["BT-1"] == issued.invoice_number
    assert parsed["BT-13"] == issued.order_reference
    assert [Decimal(str(parsed[bt])) for bt in ("BT-109", "BT-110", "BT-112", "BT-115")] == [
        issued.total_excl_tax,
        issued.total_vat,
        issued.total_incl_tax,
        issued.total_incl_tax,
    ]


def test_a_zero_rate_is_zero_rated_and_a_positive_one_standard():
    tree = etree.fromstring(einvoice.invoice_xml(bare_invoice()))
    codes = tree.xpath(
        "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode/text()",
        namespaces=NS,
    )
    assert codes == ["S", "Z"]


def test_an_evening_invoice_is_dated_as_printed_in_paris():
    late = invoice(issued_at="2026-09-01T22:30:00Z")  # 00:30 on 2 September in Paris
    assert einvoice.issue_date(late) == date(2026, 9, 2)
    assert "20260902" in einvoice.invoice_xml(late).decode()


def test_the_buyer_is_filed_under_his_siret_and_the_seller_under_his_siren():
    issued = invoice()
    tree = etree.fromstring(einvoice.invoice_xml(issued))
    legal = "ram:SpecifiedLegalOrganization/ram:ID"
    seller = tree.xpath(f"//ram:SellerTradeParty/{legal}", namespaces=NS)
    buyer = tree.xpath(f"//ram:BuyerTradeParty/{legal}", namespaces=NS)
    assert issued.seller.siret is not None
    assert [(e.text, e.get("schemeID")) for e in seller] == [(issued.seller.siret[:9], "0002")]
    assert [(e.text, e.get("schemeID")) for e in buyer] == [(issued.billing.siret, "0009")]


def test_the_service_code_is_the_buyer_reference_chorus_pro_routes_by():
    tree = etree.fromstring(einvoice.invoice_xml(invoice(service_code="SERV-ECOLES")))
    assert tree.xpath("//ram:BuyerReference/text()", namespaces=NS) == ["SERV-ECOLES"]
    assert (
        etree.fromstring(einvoice.invoice_xml(invoice())).xpath(
            "//ram:BuyerReference", namespaces=NS
        )
        == []
    )
