"""What making an invoice Factur-X costs: credential_dispatch's Chromium page turned into
PDF/A-3 by Ghostscript and given its CII XML, for invoices one at a time (as a delivery
rendered on its own is) and for a batch made PDF/A-3 in one Ghostscript run and split (as
the delivery loop's batches are). Prints CPU ms an invoice (this process and
Ghostscript's) beside the same run's baseline: Chromium's own ``page.pdf`` of the batch.

    python -m bench.facturx [--invoices 16]
"""

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bench.common import CHROMIUM
from services.credential_dispatch import einvoice
from services.credential_dispatch.documents import Documents
from services.credential_dispatch.renderer import PdfRenderer
from shared.contracts.orders import InvoiceIssued

GHOSTSCRIPT = "/usr/bin/gs"


def sample_invoice(n: int) -> InvoiceIssued:
    return InvoiceIssued.model_validate(
        {
            "invoice_number": f"ONE-2026-{n:06d}",
            "order_id": f"BC-{n}",
            "order_reference": "EJ-123",
            "school_id": "6f1c3e0a-7d1e-4c3b-9a51-1b2c3d4e5f60",
            "school_name": "École primaire du Lac",
            "uai": "0741234P",
            "issued_at": "2026-09-01T08:30:00Z",
            "due_on": "2026-10-01",
            "seller": {
                "name": "Open Digital Education",
                "address": {"line1": "2 rue du Port", "postal_code": "75001", "city": "Paris"},
                "siret": "81234567800011",
                "vat_number": "FR12812345678",
            },
            "billing": {
                "name": "Mairie d'Annecy",
                "address": {
                    "line1": "1 place de l'Hôtel de Ville",
                    "postal_code": "74000",
                    "city": "Annecy",
                },
                "siret": "21740010600019",
            },
            "lines": [
                {
                    "sku": "ONE-SCHOOL-1Y",
                    "label": "Abonnement ONE — 1 an",
                    "quantity": 1,
                    "unit_price": "150.00",
                    "vat_rate": "0.20",
                    "total_excl_tax": "150.00",
                }
            ],
            "vat": [{"rate": "0.20", "base": "150.00", "amount": "30.00"}],
            "total_excl_tax": "150.00",
            "total_vat": "30.00",
            "total_incl_tax": "180.00",
        }
    )


def cpu_s() -> float:
    """This process's CPU seconds and its finished children's (Ghostscript)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def cpu_ms_each(count: int, work: Callable[[], Awaitable[Any]]) -> float:
    before = cpu_s()
    await work()
    return (cpu_s() - before) / count * 1000


async def run(count: int) -> None:
    invoices = [sample_invoice(n) for n in range(1, count + 1)]
    documents = Documents(ent_url="https://ent.example.org")
    async with PdfRenderer(CHROMIUM, concurrency=1) as renderer:
        started = time.perf_counter()
        pages = await renderer.render_one_page_each(documents.invoices_html(invoices), count)
        page_pdf_ms = (time.perf_counter() - started) / count * 1000
        merged = await renderer.render(documents.invoices_html(invoices))
    assert pages is not None

    async def one_at_a_time() -> None:
        for invoice, page in zip(invoices, pages, strict=True):
            await einvoice.facturx_pdf(page, invoice, ghostscript=GHOSTSCRIPT)

    async def batch() -> None:
        parts = await einvoice.pdf_a3_each(merged, count, ghostscript=GHOSTSCRIPT)
        assert parts is not None
        for invoice, part in zip(invoices, parts, strict=True):
            einvoice.attach(part, einvoice.invoice_xml(invoice), invoice)

    print(
        f"\nFactur-X — {count} invoices, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC;"
        f" baseline: Chromium's page.pdf of the batch, {page_pdf_ms:.0f} ms wall an invoice"
    )
    for turn in (1, 2):
        single = await cpu_ms_each(count, one_at_a_time)
        batched = await cpu_ms_each(count, batch)
        print(
            f"  turn {turn}: one at a time {single:6.0f} ms CPU an invoice,"
            f" a batch {batched:6.0f} ms ({single / batched:.1f}× less);"
            f" ÷ page.pdf: {single / page_pdf_ms:.1f} / {batched / page_pdf_ms:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=16)
    asyncio.run(run(parser.parse_args().invoices))


if __name__ == "__main__":
    main()
