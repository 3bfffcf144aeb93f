"""Sheets as a parent reads them, with the real Chromium: a login and an activation code
on one line whatever their length, links broken only after "/", "?" or "&", and the
compact layout's cut lines ending with its last row of cards."""

import os
from datetime import UTC, datetime

import pytest

from services.credential_dispatch.documents import Documents, SheetAccount, activation_url
from services.credential_dispatch.renderer import PdfRenderer
from tests.support.pdf import _gray_pages, decode_qr_codes, pdf_text

CHROMIUM = os.environ.get("ONE_CHROMIUM_PATH", "/usr/bin/chromium")
ENT = "https://ent.example.org"
EXPIRES = datetime(2026, 10, 15, 6, 30, tzinfo=UTC)
LOGINS = [  # 40 characters, one part very long, and a short one
    "eloiseberenice.saintjeandelacotedazurmon",
    "e.abcdefghijklmnopqrstuvwxyzabcdefghijkl",
    "lea.martin",
]
docs = Documents(ent_url=ENT)


def account(n: int, login: str) -> SheetAccount:
    return SheetAccount(
        f"a-{n}",
        "relative",
        "Éloïse-Bérénice",
        "Saint-Jean de la Côte-d'Azur-Montmorency",
        login,
        f"kmnp789{n}",
        EXPIRES,
        False,
        "École élémentaire publique Jules Ferry de Saint-Étienne-de-Saint-Geoirs",
        classes=("CM1 — Mme Dupont",),
        children=("Léa Saint-Jean",),
    )


ACCOUNTS = [account(n, login) for n, login in enumerate(LOGINS, start=2)]


@pytest.fixture(scope="module")
async def renderer():
    async with PdfRenderer(CHROMIUM, concurrency=1) as started:
        yield started


def lines(pdf: bytes) -> list[str]:
    return [line.strip() for page in pdf_text(pdf) for line in page.splitlines()]


@pytest.mark.parametrize("layout", ["detailed", "compact"])
async def test_every_login_and_code_is_one_token_on_one_line(renderer, layout):
    html = (docs.detailed_sheets_html if layout == "detailed" else docs.compact_sheets_html)(
        ACCOUNTS
    )
    pdf = await renderer.render(html)
    found = lines(pdf)
    for a in ACCOUNTS:
        assert a.login in found, (a.login, found)
        assert a.activation_code in found, a.activation_code
    assert decode_qr_codes(pdf) == [
        activation_url(ENT, a.login, a.activation_code) for a in ACCOUNTS
    ]


async def test_the_activation_link_breaks_only_after_a_slash_a_question_mark_or_an_ampersand(
    renderer,
):
    pdf = await renderer.render(docs.detailed_sheets_html(ACCOUNTS[:1]))
    [page] = pdf_text(pdf)
    url = activation_url(ENT, ACCOUNTS[0].login, ACCOUNTS[0].activation_code)
    link = page.split("Lien d'activation", 1)[1].strip().splitlines()
    pieces = []
    for line in link:
        pieces.append(line.strip())
        if "".join(pieces) == url:
            break
    assert "".join(pieces) == url and len(pieces) > 1  # long enough to wrap, and it did
    assert all(piece[-1] in "/?&" for piece in pieces[:-1]), pieces


async def test_the_compact_cut_lines_end_with_the_last_row_of_cards(renderer):
    full = await renderer.render(docs.compact_sheets_html(ACCOUNTS * 3))  # 9: 8 + 1
    [(first, _, height, stride), (last, *_)] = _gray_pages(full, 1.0)

    def lowest_dark_row(buffer: bytes) -> int:
        """The lowest pixel row of the left cut line (15 mm in, at 72 dpi)."""
        x = round(15 / 25.4 * 72)
        dark = [
            y for y in range(height) if min(buffer[y * stride + x - 2 : y * stride + x + 3]) < 200
        ]
        return max(dark)

    millimetre = 72 / 25.4
    assert lowest_dark_row(first) > (15 + 4 * 66.375 - 3) * millimetre  # four rows
    assert lowest_dark_row(last) < (15 + 66.375 + 3) * millimetre  # one row, not four
