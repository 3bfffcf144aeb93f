"""Step 3 under load: connection sheets printed and mailed, with credential_dispatch's own
Documents, PdfRenderer and Mailer (one Chromium, as in the worker), without the broker.

- detailed sheets for 1,000 accounts in one print job (40 classes of 25, a cover each);
- 10,000 compact cards in one print job (100 classes of 100, a cover each);
- 1,000 emails, each with its one-page sheet (rendered 16 at a time with
  ``render_one_page_each``), through ``Mailer`` to a local aiosmtpd sink (in a process of
  its own, as a real server would be);
- memory after 10 and after 100 print jobs of a class (25 accounts, detailed and compact
  in turn): RSS and PSS of this process and PSS of its Chromium (browser and every
  process under it), and the ratio.

A print job is timed from the accounts to the merged PDF (HTML and QR codes included).
Baseline measured in the same run: a bare Chromium page.pdf of a one-line page.

    python -m bench.sheets [--quick]
"""

import argparse
import asyncio
import io
import multiprocessing
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from pypdf import PdfReader

from bench.common import CHROMIUM, bare_pdf_ms, report_rows
from services.credential_dispatch.documents import (
    ClassGroup,
    Documents,
    Layout,
    SheetAccount,
    fold,
)
from services.credential_dispatch.mailer import Mailer, build_message
from services.credential_dispatch.renderer import PdfRenderer
from services.credential_dispatch.settings import CredentialDispatchSettings

ENT = "https://ent.example.org"
SCHOOL = "École élémentaire publique Jules Ferry"
NOW = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
FIRST = ["Zoé", "Léo", "Inès", "Jules", "Chloé", "Noé", "Anaïs", "Raphaël", "Maëlys", "Timothée"]
LAST = ["Lefèvre", "N'Diaye", "Ébert", "Martin", "Dupont-Durand", "Nguyễn", "Le Gall", "Øberg"]
PROFILES = ["student", "student", "relative", "relative", "teacher"]
TARGETS = {"detailed_s": 10.0, "compact_s": 30.0, "emails_s": 60.0, "memory_ratio": 1.2}


def accounts(count: int, per_class: int, tag: str = "") -> list[SheetAccount]:
    made = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], f"{LAST[i % len(LAST)]}-{i:05d}"
        made.append(
            SheetAccount(
                account_id=f"{tag}a{i}",
                profile=PROFILES[i % len(PROFILES)],
                first_name=first,
                last_name=last,
                login=f"{tag}{fold(first)[:3]}.user{i}",
                activation_code=None if i % 23 == 0 else "abcd3456",
                activation_expires_at=NOW + timedelta(days=30),
                activated=i % 23 == 0,
                school_name=SCHOOL,
                classes=(f"CM{i // per_class % 2 + 1} — classe {i // per_class + 1}",),
                children=("Léa Martin",) if PROFILES[i % len(PROFILES)] == "relative" else (),
            )
        )
    return made


def by_class(members: Sequence[SheetAccount]) -> list[ClassGroup]:
    groups: dict[str, list[SheetAccount]] = {}
    for account in members:
        groups.setdefault(account.classes[0], []).append(account)
    return [ClassGroup(name, group) for name, group in groups.items()]


def pages_of(pdf: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf)).pages)


# --- print jobs ------------------------------------------------------------------------------


async def print_job(
    renderer: PdfRenderer, documents: Documents, groups: list[ClassGroup], layout: Layout
) -> bytes:
    parts = documents.print_parts(groups, layout, school_name=SCHOOL, requested_at=NOW)
    return await renderer.render_parts(parts)


async def timed_print(
    renderer: PdfRenderer, documents: Documents, groups: list[ClassGroup], layout: Layout
) -> tuple[float, int, int]:
    started = time.perf_counter()
    pdf = await print_job(renderer, documents, groups, layout)
    elapsed = time.perf_counter() - started
    return elapsed, pages_of(pdf), len(pdf)


# --- emails ------------------------------------------------------------------------------------


def _sink_process(port: int, received: Any, with_pdf: Any, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data = envelope.original_content or b""
            with received.get_lock():
                received.value += 1
            if b"Content-Type: application/pdf" in data:
                with with_pdf.get_lock():
                    with_pdf.value += 1
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


async def emails(
    renderer: PdfRenderer, documents: Documents, members: list[SheetAccount], batch: int = 16
) -> dict[str, Any]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    received, with_pdf, ready = context.Value("i", 0), context.Value("i", 0), context.Event()
    sink = context.Process(
        target=_sink_process, args=(port, received, with_pdf, ready), daemon=True
    )
    sink.start()
    ready.wait(30)
    mailer = Mailer("127.0.0.1", port, pool_size=4, timeout=30)
    lanes = asyncio.Semaphore(renderer.concurrency + 1)
    sender = "ONE <ne-pas-repondre@one.example.org>"

    async def one_batch(start: int) -> None:
        group = members[start : start + batch]
        async with lanes:
            pdfs = await renderer.render_one_page_each(
                documents.detailed_sheets_html(group), len(group)
            )
        assert pdfs is not None, "a sheet overflowed its page"
        messages = []
        for account, pdf in zip(group, pdfs, strict=True):
            content = documents.first_access_email(account)
            filename = f"fiche-de-connexion-{account.login}.pdf"
            messages.append(
                build_message(
                    sender=sender,
                    to=f"{account.login}@bench.example.org",
                    subject=content.subject,
                    content=content,
                    attachments=[(filename, pdf, "application/pdf")],
                    message_id=f"{account.account_id}@bench.example.org",
                )
            )
        await asyncio.gather(*(mailer.send(message) for message in messages))

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one_batch(i) for i in range(0, len(members), batch)))
        while received.value < len(members):
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        await mailer.close()
        sink.kill()
        sink.join(5)
    return {
        "emails": len(members),
        "emails_s": elapsed,
        "emails_received": received.value,
        "emails_with_pdf": with_pdf.value,
        "smtp_connections": mailer.connections_opened,
    }


# --- memory ------------------------------------------------------------------------------------


def chromium_pss_mib(renderer: PdfRenderer) -> float:
    """PSS of the Chromium browser of ``renderer`` and of every process under it."""
    me = psutil.Process()
    total = 0
    for child in me.children(recursive=True):
        try:
            if os.path.basename(child.cmdline()[0]).startswith("chrom"):
                total += child.memory_full_info().pss
        except (psutil.Error, IndexError):
            continue
    return total / 2**20


def own_memory_mib() -> tuple[float, float]:
    info = psutil.Process().memory_full_info()
    return info.rss / 2**20, info.pss / 2**20


async def memory(renderer: PdfRenderer, documents: Documents, jobs: int = 100) -> dict[str, Any]:
    classes = [by_class(accounts(25, 25, tag=f"m{n}-")) for n in range(10)]
    results: dict[str, Any] = {}

    async def run(first: int, last: int) -> None:
        for n in range(first, last):
            layout: Layout = "compact" if n % 2 else "detailed"
            await print_job(renderer, documents, classes[n % len(classes)], layout)

    async def measure(label: str) -> None:
        await asyncio.sleep(0.5)  # let the page's purge after the last job finish
        rss, pss = own_memory_mib()
        results[label] = {
            "python_rss": rss,
            "python_pss": pss,
            "chromium_pss": chromium_pss_mib(renderer),
        }

    started = time.perf_counter()
    await run(0, 10)
    await measure("after_10")
    await run(10, jobs)
    await measure(f"after_{jobs}")
    results["memory_s"] = time.perf_counter() - started
    after = results[f"after_{jobs}"]
    before = results["after_10"]
    results["ratio_python_rss"] = after["python_rss"] / before["python_rss"]
    results["ratio_chromium_pss"] = after["chromium_pss"] / before["chromium_pss"]
    return results


# --- run -----------------------------------------------------------------------------------------


async def run(quick: bool) -> dict[str, Any]:
    scale = 10 if quick else 1
    documents = Documents(ENT)
    concurrency = CredentialDispatchSettings().render_concurrency
    results: dict[str, Any] = {"render_concurrency": concurrency, "cores": psutil.cpu_count()}
    results["load_average_before"] = os.getloadavg()[0]
    async with PdfRenderer(CHROMIUM, concurrency=concurrency) as renderer:
        await asyncio.gather(*(renderer.render("<p>warm</p>") for _ in range(concurrency)))

        detailed = by_class(accounts(1000 // scale, 25))
        seconds, pages, size = await timed_print(renderer, documents, detailed, "detailed")
        results.update(detailed_s=seconds, detailed_pages=pages, detailed_mb=size / 1e6)
        print(f"detailed: {seconds:.1f} s, {pages} pages", flush=True)

        compact = by_class(accounts(10_000 // scale, 100))
        seconds, pages, size = await timed_print(renderer, documents, compact, "compact")
        results.update(compact_s=seconds, compact_pages=pages, compact_mb=size / 1e6)
        print(f"compact: {seconds:.1f} s, {pages} pages", flush=True)

        results.update(await emails(renderer, documents, accounts(1000 // scale, 25, tag="e")))
        print(f"emails: {results['emails_s']:.1f} s", flush=True)

        results.update(await memory(renderer, documents, jobs=100 // (5 if quick else 1)))
        results["browser_launches"] = renderer.launches
        results["pages_opened"] = renderer.pages_opened
    results["baseline_bare_page_pdf_ms"] = await bare_pdf_ms()
    results["load_average_after"] = os.getloadavg()[0]
    return results


def report(r: dict[str, Any]) -> None:
    bare = r["baseline_bare_page_pdf_ms"]
    jobs = next(k for k in r if k.startswith("after_") and k != "after_10")

    def per_page(seconds: float, pages: int) -> str:
        return f"{seconds * 1000 / pages / bare:.2f}"

    print(
        f"\nStep 3 benchmark — sheets, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {r['cores']} cores, "
        f"render concurrency {r['render_concurrency']}, load average "
        f"{r['load_average_before']:.1f} before / {r['load_average_after']:.1f} after"
    )
    rows: list[tuple[str, str, str]] = [
        ("detailed, 1,000 accounts, one print job (s)", f"{r['detailed_s']:.1f}", "≤ 10"),
        (
            "  pages (40 covers + sheets) / MB",
            f"{r['detailed_pages']} / {r['detailed_mb']:.1f}",
            "",
        ),
        ("  ms per page ÷ bare page.pdf ms", per_page(r["detailed_s"], r["detailed_pages"]), ""),
        ("compact, 10,000 cards, one print job (s)", f"{r['compact_s']:.1f}", "≤ 30"),
        ("  pages (100 covers + cards) / MB", f"{r['compact_pages']} / {r['compact_mb']:.1f}", ""),
        ("  ms per page ÷ bare page.pdf ms", per_page(r["compact_s"], r["compact_pages"]), ""),
        (f"{r['emails']:,} emails with their PDF, via SMTP (s)", f"{r['emails_s']:.1f}", "≤ 60"),
        (
            "  received / with a PDF / SMTP connections",
            f"{r['emails_received']} / {r['emails_with_pdf']} / {r['smtp_connections']}",
            "",
        ),
        (
            "  ms per email ÷ bare page.pdf ms",
            f"{r['emails_s'] * 1000 / r['emails'] / bare:.2f}",
            "",
        ),
    ]
    for label in ("after_10", jobs):
        m = r[label]
        rows.append(
            (
                f"memory {label.replace('_', ' ')} print jobs (MiB)",
                f"{m['python_rss']:.0f} / {m['python_pss']:.0f} / {m['chromium_pss']:.0f}",
                "Python RSS / Python PSS / Chromium PSS",
            )
        )
    rows += [
        (
            f"  ratio {jobs.replace('_', ' ')} ÷ after 10: Python RSS",
            f"{r['ratio_python_rss']:.2f}",
            "≤ 1.2",
        ),
        (
            f"  ratio {jobs.replace('_', ' ')} ÷ after 10: Chromium PSS",
            f"{r['ratio_chromium_pss']:.2f}",
            "≤ 1.2",
        ),
        ("  browser launches / pages opened", f"{r['browser_launches']} / {r['pages_opened']}", ""),
        ("baseline: bare Chromium page.pdf (ms)", f"{bare:.1f}", ""),
    ]
    report_rows("sheets", rows, r, widths=(52, 16))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the load, to try it")
    args = parser.parse_args()
    report(asyncio.run(run(args.quick)))


if __name__ == "__main__":
    main()
