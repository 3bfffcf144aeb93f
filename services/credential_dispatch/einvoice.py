"""An invoice or a credit note as Factur-X at the EN 16931 level, the form Chorus Pro
takes a public buyer's invoices in: the printed page made PDF/A-3 by Ghostscript, with the
document's UN/CEFACT CII XML attached as ``factur-x.xml`` and declared in its XMP metadata.

The XML is built by the ``factur-x`` library from the very ``invoice.issued`` or
``credit_note.issued`` the page is printed from (the same Decimals), and checked against
the Factur-X XSD before it is attached; the library's Schematron checks need a Saxon
server and are not run here.
"""

import asyncio
import tempfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import facturx
from facturx.generate_xml import generate_xml

from services.credential_dispatch.documents import billing_title, format_date
from services.credential_dispatch.renderer import split_pages
from shared.contracts.common import Address
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued, Party
from shared.errors import TransientError

LEVEL = "en16931"
INVOICE = "380"  # UNTDID 1001: commercial invoice
CREDIT_NOTE = "381"  # UNTDID 1001: credit note
UNIT = "C62"  # UN/ECE rec. 20: one (a unit of service)
SIRENE_SIREN = "0002"  # ISO 6523 ICD of a SIREN
SIRENE_SIRET = "0009"  # ISO 6523 ICD of a SIRET
PARIS = ZoneInfo("Europe/Paris")
SRGB = Path("/usr/share/color/icc/ghostscript/srgb.icc")

# The output intent PDF/A asks for, in Ghostscript's pdfmark operators: the sRGB profile
# every colour of the page is converted to.
_OUTPUT_INTENT = """%!
[/_objdef {{icc_PDFA}} /type /stream /OBJ pdfmark
[{{icc_PDFA}} << /N 3 >> /PUT pdfmark
[{{icc_PDFA}} ({profile}) (r) file /PUT pdfmark
[/_objdef {{OutputIntent_PDFA}} /type /dict /OBJ pdfmark
[{{OutputIntent_PDFA}} <<
  /Type /OutputIntent /S /GTS_PDFA1 /DestOutputProfile {{icc_PDFA}}
  /OutputConditionIdentifier (sRGB IEC61966-2.1) /Info (sRGB IEC61966-2.1)
>> /PUT pdfmark
[{{Catalog}} << /OutputIntents [ {{OutputIntent_PDFA}} ] >> /PUT pdfmark
"""


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"


def _percent(rate: Decimal) -> str:
    """A VAT rate of invoice.issued (0.2) as the percentage EN 16931 writes (20.00)."""
    return f"{(rate * 100).quantize(Decimal('0.01'))}"


def _category(rate: Decimal) -> str:
    """UNCL 5305: standard rate, or zero-rated."""
    return "S" if rate > 0 else "Z"


def _address(address: Address) -> dict[str, str]:
    found = {"addr_l1": address.line1, "postcode": address.postal_code, "city": address.city}
    if address.line2:
        found["addr_l2"] = address.line2
    return {**found, "country_code": "FR"}


def _seller(party: Party) -> dict[str, Any]:
    found: dict[str, Any] = {"name": party.name, **_address(party.address)}
    if party.siret:
        # The seller's legal registration is his SIREN, the first nine digits of a SIRET.
        found |= {"legal_identifier": party.siret[:9], "legal_identifier_schemeid": SIRENE_SIREN}
    if party.vat_number:
        found["vat_identifier"] = party.vat_number
    if party.email:
        found |= {"einvoicing_addr": party.email, "einvoicing_addr_schemeid": "EM"}
    return found


def _buyer(party: Party) -> dict[str, Any]:
    found: dict[str, Any] = {"name": party.name, **_address(party.address)}
    if party.siret:
        # Chorus Pro files a public buyer's invoices under his SIRET.
        found |= {"legal_identifier": party.siret, "legal_identifier_schemeid": SIRENE_SIRET}
    if party.email:
        found |= {"einvoicing_addr": party.email, "einvoicing_addr_schemeid": "EM"}
    return found


Billing = InvoiceIssued | CreditNoteIssued


def issue_date(invoice: Billing) -> date:
    """The day of issue as printed: in Paris, where a late-evening invoice is dated."""
    return issue_date_of(invoice.issued_at)


def issue_date_of(moment: datetime) -> date:
    return moment.astimezone(PARIS).date()


def payment_terms(invoice: Billing) -> str:
    """The printed page's conditions of payment, in one paragraph."""
    if isinstance(invoice, CreditNoteIssued):
        return (
            f"Avoir annulant la facture {invoice.invoice_number}, à déduire de celle-ci ou"
            " remboursé si elle a été réglée."
        )
    return (
        f"Au plus tard le {format_date(invoice.due_on)}, par virement ou mandat administratif,"
        f" en rappelant le numéro de facture {invoice.invoice_number}. Pas d'escompte pour"
        " paiement anticipé. En cas de retard : intérêts moratoires au taux de la BCE majoré"
        " de 8 points et indemnité forfaitaire de 40 € pour frais de recouvrement."
    )


def invoice_data(invoice: Billing) -> dict[str, Any]:
    """The invoice or credit note in the ``factur-x`` library's terms (keys are EN
    16931's business terms), every amount the one of ``invoice``."""
    data: dict[str, Any] = {
        "BT-1": invoice.document_number,
        "BT-2": issue_date(invoice),
        "BT-3": CREDIT_NOTE if isinstance(invoice, CreditNoteIssued) else INVOICE,
        "BT-5": invoice.currency,
        # The service is delivered when the school's space opens, the day it is invoiced.
        "BT-72": issue_date(invoice),
        "BT-20": payment_terms(invoice),
        "BT-83": invoice.document_number,  # what the transfer recalls
        "BG-4": _seller(invoice.seller),
        "BG-7": _buyer(invoice.billing),
        "BG-25": [
            {
                "BT-126": str(n),
                "BT-129": str(line.quantity),
                "BT-130": UNIT,
                "BT-131": _money(line.total_excl_tax),
                "BT-146": f"{line.unit_price}",
                "BT-151": _category(line.vat_rate),
                "BT-152": _percent(line.vat_rate),
                "BT-153": line.label,
                "BT-155": line.sku,
            }
            for n, line in enumerate(invoice.lines, start=1)
        ],
        "BG-23": [
            {
                "BT-116": _money(vat.base),
                "BT-117": _money(vat.amount),
                "BT-118": _category(vat.rate),
                "BT-119": _percent(vat.rate),
            }
            for vat in invoice.vat
        ],
        "BT-106": _money(sum((line.total_excl_tax for line in invoice.lines), Decimal(0))),
        "BT-109": _money(invoice.total_excl_tax),
        "BT-110": _money(invoice.total_vat),
        "BT-112": _money(invoice.total_incl_tax),
        "BT-115": _money(invoice.total_incl_tax),
    }
    if isinstance(invoice, InvoiceIssued):
        data["BT-9"] = invoice.due_on
    else:  # the invoice it cancels
        data["BG-3"] = [
            {"BT-25": invoice.invoice_number, "BT-26": issue_date_of(invoice.invoice_issued_at)}
        ]
    if invoice.service_code:  # the public buyer's service, which Chorus Pro routes to
        data["BT-10"] = invoice.service_code
    if invoice.order_reference:
        # The buyer's purchase order: the "engagement juridique" Chorus Pro asks for.
        data["BT-13"] = invoice.order_reference
    return data


def invoice_xml(invoice: Billing) -> bytes:
    """The document's CII XML, checked against the Factur-X EN 16931 XSD."""
    xml: bytes = generate_xml(
        invoice_data(invoice),
        flavor="factur-x",
        level=LEVEL,
        check_xsd=True,
        check_schematron=False,
    )
    return xml


async def pdf_a3(pdf: bytes, *, ghostscript: str, timeout: float = 60.0) -> bytes:
    """``pdf`` rewritten as PDF/A-3b by Ghostscript: fonts embedded, colours in sRGB with
    its output intent. Chromium's PDFs are not PDF/A."""
    with tempfile.TemporaryDirectory(prefix="one-pdfa-") as folder:
        source, target, intent = (Path(folder) / n for n in ("in.pdf", "out.pdf", "intent.ps"))
        source.write_bytes(pdf)
        intent.write_text(_OUTPUT_INTENT.format(profile=SRGB))
        process = await asyncio.create_subprocess_exec(
            ghostscript,
            "-q",
            "-dSAFER",
            f"--permit-file-read={SRGB}",
            # Ghostscript 10.0's former PDF interpreter reads Chromium's pages for a
            # fraction of the new one's CPU (bench/facturx.py). It is deprecated: with a
            # Ghostscript that no longer has it, drop this switch and measure again.
            "-dNEWPDF=false",
            "-dPDFA=3",
            "-dPDFACompatibilityPolicy=1",
            "-dBATCH",
            "-dNOPAUSE",
            "-dNOOUTERSAVE",
            "-sDEVICE=pdfwrite",
            "-sColorConversionStrategy=RGB",
            f"-sOutputFile={target}",
            str(intent),
            str(source),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise TransientError(f"Ghostscript took more than {timeout:.0f} s") from None
        if process.returncode != 0 or not target.exists():
            # Tried again later: a Ghostscript missing or broken on this host is put right
            # within the delivery's retries, and the invoice goes out then.
            tail = output.decode(errors="replace").strip()[-300:]
            raise TransientError(f"Ghostscript could not make the PDF/A-3 ({tail})")
        return target.read_bytes()


def attach(pdf_a: bytes, xml: bytes, invoice: Billing) -> bytes:
    """``xml`` attached to the PDF/A-3 as ``factur-x.xml``, declared in its XMP."""
    made: bytes = facturx.generate_from_binary(
        pdf_a,
        xml,
        flavor="factur-x",
        level=LEVEL,
        check_xsd=True,
        pdf_metadata={
            "author": invoice.seller.name,
            "keywords": "Factur-X, facture",
            "title": f"{billing_title(invoice)} {invoice.document_number}",
            "subject": (
                f"{billing_title(invoice)} {invoice.document_number} — {invoice.school_name}"
            ),
        },
        lang="fr-FR",
    )
    return made


async def facturx_pdf(pdf: bytes, invoice: Billing, *, ghostscript: str) -> bytes:
    """The printed invoice or credit note as a Factur-X PDF."""
    xml = invoice_xml(invoice)
    return attach(await pdf_a3(pdf, ghostscript=ghostscript), xml, invoice)


async def pdf_a3_each(
    pdf: bytes, documents: int, *, ghostscript: str, timeout: float = 120.0
) -> list[bytes] | None:
    """A batch of one-page documents (``PdfRenderer.render_one_page_each``'s merged PDF)
    made PDF/A-3 in one Ghostscript run, then split into one PDF/A-3 each, the output
    intent carried into every part; None when the page count is not ``documents``.
    Ghostscript's cost is mostly per page, but Chromium's pages cost it less together."""
    whole = await pdf_a3(pdf, ghostscript=ghostscript, timeout=timeout)
    return await asyncio.to_thread(split_pages, whole, documents, keep=("/OutputIntents",))
