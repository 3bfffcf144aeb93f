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
from tools.samples import invoice

GHOSTSCRIPT = "/usr/bin/gs"


def sample_invoice(n: int) -> InvoiceIssued:
    return invoice(invoice_number=f"ONE-2026-{n:06d}", order_id=f"BC-{n}")


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
        for issued, page in zip(invoices, pages, strict=True):
            await einvoice.facturx_pdf(page, issued, ghostscript=GHOSTSCRIPT)

    async def batch() -> None:
        parts = await einvoice.pdf_a3_each(merged, count, ghostscript=GHOSTSCRIPT)
        assert parts is not None
        for issued, part in zip(invoices, parts, strict=True):
            einvoice.attach(part, einvoice.invoice_xml(issued), issued)

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
