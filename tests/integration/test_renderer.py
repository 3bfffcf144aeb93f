"""PDF rendering with the real Chromium: pages, text, QR codes, and a browser that dies."""

import asyncio
import os
import signal
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from services.credential_dispatch.documents import (
    ClassGroup,
    Documents,
    SheetAccount,
    activation_url,
)
from services.credential_dispatch.renderer import PdfRenderer
from shared.errors import TransientError
from tests.support.pdf import (
    chromium_browser_pids,
    decode_qr_codes,
    page_count,
    pdf_text,
    squash,
    write_png,
)
from tools.samples import invoice

CHROMIUM = os.environ.get("ONE_CHROMIUM_PATH", "/usr/bin/chromium")
ENT = "https://ent.example.org"
EXPIRES = datetime(2026, 10, 15, 6, 30, tzinfo=UTC)

ACCOUNTS = [
    SheetAccount(
        "a-1",
        "administrator",
        "Claire",
        "Martin",
        "claire.martin",
        "abcd3456",
        EXPIRES,
        False,
        "École primaire du Lac",
    ),
    SheetAccount(
        "a-2",
        "relative",
        "Jean-Noël",
        "N'Diaye-Éléonore de la Côte-Saint-André",
        "jeannoel.ndiayeeleonoredelacotesaintandre",
        "kmnp7892",
        EXPIRES,
        False,
        "École élémentaire publique Jules Ferry de Saint-Étienne-de-Saint-Geoirs",
        classes=("CM1 — Mme Dupont",),
        children=("Léa N'Diaye", "Zoé N'Diaye"),
    ),
    SheetAccount(
        "a-3",
        "student",
        "Zoé",
        "Lefèvre",
        "zoe.lefevre",
        "rstv3456",
        None,
        False,
        "École primaire du Lac",
        classes=("CE2 A",),
    ),
]
docs = Documents(ENT)


@pytest.fixture(scope="module")
async def renderer():
    async with PdfRenderer(CHROMIUM, concurrency=3) as started:
        yield started


async def test_three_sheets_three_pages_with_text_and_qr_codes(renderer):
    pdf = await renderer.render(docs.detailed_sheets_html(ACCOUNTS))
    assert pdf.startswith(b"%PDF-")
    assert page_count(pdf) == 3
    pages = pdf_text(pdf)
    for account, page in zip(ACCOUNTS, pages, strict=True):
        flat = squash(page)
        assert squash(f"{account.first_name} {account.last_name}") in flat
        assert account.login in flat
        assert account.activation_code in page  # on one line, no spaces inserted
        assert "Fiche de connexion" in page and "Code d'activation" in page
        assert squash(account.school_name) in flat
        assert squash(activation_url(ENT, account.login, account.activation_code)) in flat
    assert "Léa N'Diaye, Zoé N'Diaye" in pages[1] and "Parent" in pages[1]
    assert "Élève" in pages[2] and "15 octobre 2026 à 8 h 30" in pages[0]
    assert decode_qr_codes(pdf, scale=2) == [
        activation_url(ENT, a.login, a.activation_code) for a in ACCOUNTS
    ]
    if os.environ.get("ONE_KEEP_PDF"):  # to look at it: ONE_KEEP_PDF=/tmp
        folder = Path(os.environ["ONE_KEEP_PDF"])
        (folder / "sheets.pdf").write_bytes(pdf)
        for index in range(3):
            write_png(pdf, index, folder / f"sheet-{index}.png")


async def test_qr_code_is_large_enough_to_scan_from_paper(renderer):
    # At 72 dpi (scale 1) each module of a ~46 mm code is still about 2.5 pixels.
    pdf = await renderer.render(docs.detailed_sheets_html(ACCOUNTS[:1]))
    assert decode_qr_codes(pdf, scale=1) == [activation_url(ENT, "claire.martin", "abcd3456")]


async def test_compact_sheets_eight_per_page(renderer):
    cards = [
        SheetAccount(
            f"c-{n}",
            "student",
            "Zoé",
            f"Élève{n}",
            f"zoe.eleve{n}",
            f"abcd{n % 6 + 3}xyz",
            EXPIRES,
            n == 4,
            "École primaire du Lac",
            classes=("CE2 A",),
        )
        for n in range(11)
    ]
    pdf = await renderer.render(docs.compact_sheets_html(cards))
    assert page_count(pdf) == 2
    pages = pdf_text(pdf)
    assert "zoe.eleve0" in pages[0] and "zoe.eleve7" in pages[0] and "zoe.eleve8" in pages[1]
    expected = [activation_url(ENT, c.login, c.activation_code) for c in cards if not c.activated]
    assert sorted(decode_qr_codes(pdf, scale=2)) == sorted(expected)


async def test_extreme_lengths_still_give_one_page_per_sheet(renderer):
    extreme = SheetAccount(
        "x",
        "relative",
        ("Éléonore-Marie-Thérèse " * 6)[:120],
        ("de La Côte-Saint-André " * 6)[:120],
        "a" * 60 + "." + "b" * 60,
        "abcd3456",
        EXPIRES,
        False,
        ("École élémentaire publique " * 12)[:300],
        classes=tuple(f"CM{n} — classe de Mme Dupont-Durand" for n in range(12)),
        children=tuple(f"Enfant{n} Avec Un Nom Assez Long" for n in range(6)),
    )
    url = activation_url(ENT, extreme.login, "abcd3456")
    detailed = await renderer.render(docs.detailed_sheets_html([extreme, ACCOUNTS[0]]))
    assert page_count(detailed) == 2
    assert decode_qr_codes(detailed)[0] == url
    assert "abcd3456" in pdf_text(detailed)[0] and squash(extreme.login) in squash(
        pdf_text(detailed)[0]
    )
    compact = await renderer.render(docs.compact_sheets_html([extreme] * 9))
    assert page_count(compact) == 2
    assert decode_qr_codes(compact) == [url] * 9


async def test_activated_account_sheet_has_no_code_and_no_qr(renderer):
    activated = SheetAccount(
        "a-4",
        "teacher",
        "Paul",
        "Durand",
        "paul.durand",
        None,
        None,
        True,
        "École primaire du Lac",
        classes=("CP",),
    )
    pdf = await renderer.render(docs.detailed_sheets_html([activated]))
    [page] = pdf_text(pdf)
    assert "Compte activé" in page and "paul.durand" in page
    assert "/auth/activation" not in page
    assert decode_qr_codes(pdf) == []


async def test_invoice_pdf_shows_the_totals(renderer):
    pdf = await renderer.render(docs.invoice_html(invoice()))
    [page] = pdf_text(pdf)
    for expected in (
        "Facture",
        "ONE-2026-000001",
        "Mairie d'Annecy",
        "EJ-123",
        "Total HT 1 275,00 €",
        "TVA 249,78 €",
        "Total TTC 1 524,78 €",
        "5,5 %",
        "1 089,00 €",
        "Hôtel de Ville",
    ):
        assert expected in page, expected


async def test_external_resources_are_never_fetched(renderer):
    # Nothing listens on port 9: were the request let through, the render would still
    # succeed, so the proof is that it does not hang and that the image stays blank.
    html = (
        "<html><body><p>ok</p>"
        '<img src="http://127.0.0.1:9/pixel.png">'
        '<link rel="stylesheet" href="https://example.org/style.css">'
        "<script>document.body.innerHTML = 'scripted'</script></body></html>"
    )
    started = time.perf_counter()
    pdf = await renderer.render(html)
    assert time.perf_counter() - started < 10
    [page] = pdf_text(pdf)
    assert "ok" in page and "scripted" not in page  # JavaScript is off


async def test_concurrent_renders(renderer):
    htmls = [docs.detailed_sheets_html([account]) for account in ACCOUNTS * 2]
    pdfs = await asyncio.gather(*(renderer.render(html) for html in htmls))
    assert [decode_qr_codes(pdf)[0] for pdf in pdfs] == [
        activation_url(ENT, a.login, a.activation_code) for a in ACCOUNTS * 2
    ]


async def test_a_batch_renders_once_and_splits_into_one_file_per_document(renderer):
    docs = Documents(ENT)
    pdfs = await renderer.render_one_page_each(docs.detailed_sheets_html(ACCOUNTS), 3)
    assert pdfs is not None and len(pdfs) == 3
    for account, pdf in zip(ACCOUNTS, pdfs, strict=True):
        [text] = pdf_text(pdf)
        assert account.login in text and account.activation_code in text
        assert decode_qr_codes(pdf) == [activation_url(ENT, account.login, account.activation_code)]


async def test_a_batch_with_a_document_over_one_page_is_not_split(renderer):
    docs = Documents(ENT)
    long = invoice()
    long = long.model_copy(update={"lines": long.lines * 60})
    html = docs.invoices_html([invoice(), long])
    assert await renderer.render_one_page_each(html, 2) is None


async def test_pages_are_reused_then_recycled():
    async with PdfRenderer(concurrency=1, recycle_after=3) as renderer:
        for n in range(7):
            assert page_count(await renderer.render(f"<p>{n}</p>")) == 1
        # Renders 1-3 on the first page, 4-6 on the second, 7 on a third.
        assert renderer.pages_opened == 3
    async with PdfRenderer(concurrency=2) as renderer:
        for n in range(6):
            await renderer.render(f"<p>{n}</p>")
        assert renderer.pages_opened == 1


async def test_a_page_that_laid_out_a_lot_is_replaced_in_the_background():
    big = "<p>" + "mot " * 25_000 + "</p>"  # 100 000 characters
    async with PdfRenderer(CHROMIUM, concurrency=1, recycle_after_chars=150_000) as fresh:
        await fresh.render("<p>petit</p>")
        await fresh.render(big)
        assert fresh.pages_opened == 1
        await fresh.render(big)  # over the budget: that page goes, a new one opens meanwhile
        assert not fresh._idle and len(fresh._opening) == 1
        assert page_count(await fresh.render("<p>après</p>")) == 1
        assert fresh.pages_opened == 2 and not fresh._opening  # that one served


async def test_a_killed_browser_is_relaunched_and_the_render_succeeds():
    before = chromium_browser_pids()
    async with PdfRenderer(CHROMIUM, concurrency=2) as renderer:
        await renderer.render("<p>warm</p>")
        [pid] = chromium_browser_pids() - before
        os.kill(pid, signal.SIGKILL)

        pdf = await renderer.render(docs.detailed_sheets_html(ACCOUNTS[:1]))
        assert decode_qr_codes(pdf) == [activation_url(ENT, "claire.martin", "abcd3456")]
        assert renderer.launches == 2
        [new_pid] = chromium_browser_pids() - before
        assert new_pid != pid

        # Killed again while idle, long enough for Playwright to notice: same outcome.
        os.kill(new_pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        assert page_count(await renderer.render("<p>again</p>")) == 1
        assert renderer.launches == 3
    assert chromium_browser_pids() - before == set()


async def test_a_closed_browser_is_relaunched():
    async with PdfRenderer(CHROMIUM, concurrency=1) as renderer:
        assert renderer.browser is not None
        await renderer.browser.close()
        assert page_count(await renderer.render("<p>après</p>")) == 1
        assert renderer.launches == 2


async def test_a_browser_that_cannot_start_is_a_transient_error():
    renderer = PdfRenderer("/nonexistent/chromium")
    with pytest.raises(TransientError):
        await renderer.start()
    await renderer.stop()


# --- print jobs --------------------------------------------------------------------------

PRINTED_AT = datetime(2026, 10, 15, 6, 30, tzinfo=UTC)
SCHOOL = "École élémentaire Jules Ferry"


def member(first: str, last: str, class_name: str, *, activated: bool = False) -> SheetAccount:
    login = f"{first}.{last}".lower().replace("é", "e").replace("è", "e").replace("ï", "i")
    return SheetAccount(
        f"id-{login}",
        "student",
        first,
        last,
        login,
        None if activated else f"code{len(login) % 6 + 3}xyz"[:8],
        EXPIRES,
        activated,
        SCHOOL,
        classes=(class_name,),
    )


def urls(accounts: list[SheetAccount]) -> list[str]:
    return [
        activation_url(ENT, a.login, a.activation_code)
        for a in accounts
        if a.activation_code and not a.activated
    ]


async def test_detailed_print_job_has_a_cover_per_class_then_sorted_sheets(renderer):
    cm1 = [member("Zoé", "Lefèvre", "CM1"), member("Élodie", "Ébert", "CM1")]
    cm1.append(member("Adam", "Martin", "CM1"))
    ce2 = [member("Paul", "Durand", "CE2 A"), member("Léa", "Bernard", "CE2 A", activated=True)]
    groups = [ClassGroup("CM1", cm1), ClassGroup("CE2 A", ce2)]
    html = docs.print_html(groups, "detailed", school_name=SCHOOL, requested_at=PRINTED_AT)
    pdf = await renderer.render(html)
    assert page_count(pdf) == 7  # 2 covers + 5 sheets
    pages = pdf_text(pdf)
    for cover, class_name, count in (
        (pages[0], "CE2 A", "2 fiches"),
        (pages[3], "CM1", "3 fiches"),
    ):
        assert "Fiches de connexion" in cover and class_name in cover and count in cover
        assert SCHOOL in cover and "15 octobre 2026 à 8 h 30" in cover
        assert "Distribuez" in cover and "Fiche de connexion" not in cover
    in_print_order = [ce2[1], ce2[0], cm1[1], cm1[0], cm1[2]]  # Bernard, Durand | Ébert, ...
    for page, account in zip(pages[1:3] + pages[4:], in_print_order, strict=True):
        assert squash(f"{account.first_name} {account.last_name}") in squash(page)
        assert "Fiche de connexion" in page and account.login in page
    assert "Compte activé" in pages[1] and "/auth/activation" not in pages[1]
    assert decode_qr_codes(pdf) == urls(in_print_order)


async def test_compact_print_job_starts_each_class_on_a_new_page(renderer):
    nine = [member(f"Élève{n}", f"Nom{8 - n}", "CE1") for n in range(9)]
    three = [member(f"Élève{n}", f"Autre{n}", "CM2", activated=n == 1) for n in range(3)]
    groups = [ClassGroup("CM2", three), ClassGroup("CE1", nine)]
    html = docs.print_html(groups, "compact", school_name=SCHOOL, requested_at=PRINTED_AT)
    pdf = await renderer.render(html)
    assert page_count(pdf) == 5  # cover, 8 cards, 1 card | cover, 3 cards
    pages = pdf_text(pdf)
    assert "CE1" in pages[0] and "9 fiches (2 pages, 8 cartes par page)" in pages[0]
    assert "Découpez" in pages[0] and "CM2" in pages[3] and "3 fiches" in pages[3]
    ce1 = sorted(nine, key=lambda a: a.last_name)  # Nom0 (Élève8) ... Nom8 (Élève0)
    first_page = squash(pages[1])
    assert all(a.login in first_page for a in ce1[:8]) and ce1[8].login not in first_page
    assert ce1[8].login in pages[2] and pages[2].count("Code d'activation") == 1
    positions = [first_page.find(squash(f"{a.first_name} {a.last_name}")) for a in ce1[:8]]
    assert positions == sorted(positions)  # left to right, then top to bottom
    assert "Compte activé" in pages[4] and "Élève1 Autre1" in pages[4]
    found = decode_qr_codes(pdf)
    assert sorted(found) == sorted(urls(nine + three)) and len(found) == 11


async def test_a_print_job_in_parts_gives_the_same_pages(renderer):
    groups = [
        ClassGroup(f"Classe {n}", [member(f"P{k}", f"N{n}x{k}", f"Classe {n}") for k in range(3)])
        for n in (1, 2, 10)
    ]
    whole = await renderer.render(
        docs.print_html(groups, "detailed", school_name=SCHOOL, requested_at=PRINTED_AT)
    )
    parts = docs.print_parts(
        groups, "detailed", school_name=SCHOOL, requested_at=PRINTED_AT, pages_per_part=3
    )
    merged = await renderer.render_parts(parts)
    assert page_count(merged) == page_count(whole) == 12
    assert pdf_text(merged) == pdf_text(whole)
    assert "Classe 2" in pdf_text(merged)[4] and "Classe 10" in pdf_text(merged)[8]
    assert decode_qr_codes(merged) == decode_qr_codes(whole)


def chromium_pss_mib(browser_pid: int) -> float:
    """Proportional set size of a Chromium browser and every process under it."""
    root = psutil.Process(browser_pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return total / 2**20


async def test_chromium_memory_stays_bounded_over_a_long_run():
    """100 print jobs of a class, two at a time: what Chromium holds over the last ten is no
    more than over the first ten, give or take 20 % (the highest measure of each, taken
    after every job: one measure could fall just after a page was recycled, or before a
    purge)."""
    jobs = []
    for n in range(6):
        accounts = [member(f"Prénom{k}", f"Nom{n}x{k}", f"Classe {n}") for k in range(16)]
        layout = "compact" if n % 2 else "detailed"
        group = [ClassGroup(f"Classe {n}", accounts)]
        jobs.append(docs.print_html(group, layout, school_name=SCHOOL, requested_at=PRINTED_AT))
    before = chromium_browser_pids()
    started = time.perf_counter()
    async with PdfRenderer(CHROMIUM, concurrency=2) as fresh:
        [browser_pid] = chromium_browser_pids() - before
        measures: list[float] = []
        for done in range(0, 100, 2):
            await asyncio.gather(fresh.render(jobs[done % 6]), fresh.render(jobs[(done + 1) % 6]))
            if done < 10 or done >= 90:
                measures.append(chromium_pss_mib(browser_pid))
        first, last = max(measures[:5]), max(measures[5:])
        assert fresh.launches == 1
        assert last <= 1.2 * first + 30, (first, last, statistics.mean(measures))
    assert time.perf_counter() - started < 90
