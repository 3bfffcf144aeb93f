"""Sheets, invoice and mails as HTML and text: escaping, French formats, what each says."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser

import pytest
import segno

from services.credential_dispatch.documents import (
    NO_CLASS,
    QR_MASK,
    ClassGroup,
    Documents,
    SheetAccount,
    _qr_svg,
    activation_url,
    collation_key,
    fold,
    format_date,
    format_datetime,
    format_eur,
    format_rate,
)
from tools.samples import invoice

ENT = "https://ent.example.org"
EXPIRES = datetime(2026, 10, 15, 6, 30, tzinfo=UTC)  # 8 h 30 in Paris (summer time)
HOSTILE = "<script>alert(1)</script>"


def account(**overrides) -> SheetAccount:
    values = {
        "account_id": "a-1",
        "profile": "teacher",
        "first_name": "Jean-Noël",
        "last_name": "N'Diaye",
        "login": "jeannoel.ndiaye",
        "activation_code": "abcd3456",
        "activation_expires_at": EXPIRES,
        "activated": False,
        "school_name": "École primaire du Lac",
        "classes": ("CM1",),
    }
    return SheetAccount(**{**values, **overrides})


class _Visible(HTMLParser):
    """The text a reader sees, and whether any script element exists."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("style", "script", "svg"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script", "svg"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def unbroken(html: str) -> str:
    """``html`` without the break opportunities of ``documents.breakable``: a login or a
    link read as one piece of text."""
    return re.sub(r'<span class="nobr">([^<]*)</span>(<wbr>)?', r"\1", html)


def visible(html: str) -> tuple[str, list[str]]:
    parser = _Visible()
    parser.feed(unbroken(html))
    return " ".join(" ".join(parser.text).split()), parser.tags


docs = Documents(ENT)


# --- activation URL and French formats -------------------------------------------------


def test_activation_url_encodes_values():
    assert activation_url(ENT, "claire.martin", "abcd3456") == (
        f"{ENT}/auth/activation?login=claire.martin&activationCode=abcd3456"
    )
    assert activation_url(ENT + "/", "a b&c=d", "é/+?#") == (
        f"{ENT}/auth/activation?login=a%20b%26c%3Dd&activationCode=%C3%A9%2F%2B%3F%23"
    )


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "0,00 €"),
        ("0.5", "0,50 €"),
        ("150", "150,00 €"),
        ("1234.5", "1 234,50 €"),
        ("1234567.891", "1 234 567,89 €"),
        ("0.005", "0,01 €"),  # half up, not banker's
        ("-12.3", "-12,30 €"),
    ],
)
def test_money_in_french(amount, text):
    assert format_eur(Decimal(amount)) == text


def test_rates_dates_and_times_in_french():
    assert format_rate(Decimal("0.20")) == "20 %"
    assert format_rate(Decimal("0.055")) == "5,5 %"
    assert format_rate(Decimal("0")) == "0 %"
    assert format_date(date(2026, 9, 1)) == "1er septembre 2026"
    assert format_date(date(2026, 8, 15)) == "15 août 2026"
    assert format_datetime(EXPIRES) == "15 octobre 2026 à 8 h 30"
    # A UTC timestamp late in the evening is the next day in Paris.
    assert format_date(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "1er janvier 2027"


# --- sheets ------------------------------------------------------------------------------


def test_sheet_shows_everything_needed_to_activate():
    html = docs.detailed_sheets_html([account()])
    text, tags = visible(html)
    url = f"{ENT}/auth/activation?login=jeannoel.ndiaye&amp;activationCode=abcd3456"
    assert "@page { size: A4; margin: 15mm; }" in html
    for expected in (
        "École primaire du Lac",
        "Fiche de connexion",
        "Jean-Noël N'Diaye",
        "Enseignant·e",
        "CM1",
        "Identifiant",
        "jeannoel.ndiaye",
        "Code d'activation",
        "abcd3456",
        "15 octobre 2026 à 8 h 30",
        "charte",
        "mot de passe",
    ):
        assert expected in text, expected
    assert url in unbroken(html)
    assert tags.count("svg") == 1 and html.count('class="qr"') == 1
    assert tags.count("section") == 1


def test_one_page_per_account_and_profiles_in_french():
    profiles = ["administrator", "teacher", "personnel", "student", "relative"]
    sheets = [account(profile=p, login=f"user.{p}") for p in profiles]
    html = docs.detailed_sheets_html(sheets)
    text, tags = visible(html)
    assert tags.count("section") == 5 and tags.count("svg") == 5
    assert "break-after: page" in html
    for label in ("Administrateur·rice", "Enseignant·e", "Personnel", "Élève", "Parent"):
        assert label in text


def test_parent_sheet_lists_children():
    parent = account(profile="relative", children=("Léa N'Diaye", "Tom N'Diaye"))
    text, _ = visible(docs.detailed_sheets_html([parent]))
    assert "Enfants" in text and "Léa N'Diaye, Tom N'Diaye" in text


def test_hostile_names_print_as_text():
    hostile = account(
        first_name=HOSTILE,
        last_name='"><img src=x onerror=alert(2)>',
        school_name="École <b>du Lac</b> & Cie",
        classes=("<i>CM1</i>",),
    )
    html = docs.detailed_sheets_html([hostile])
    text, tags = visible(html)
    assert "script" not in tags and "img" not in tags and "b" not in tags and "i" not in tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE in text and "École <b>du Lac</b> & Cie" in text and "<i>CM1</i>" in text


def test_activated_account_shows_no_code_url_or_qr():
    html = docs.detailed_sheets_html([account(activated=True)])
    text, tags = visible(html)
    assert "Compte activé" in text
    assert "jeannoel.ndiaye" in text  # the login is still useful
    assert "abcd3456" not in html
    assert "/auth/activation" not in html
    assert "svg" not in tags


def test_sheet_without_code_says_to_ask_for_one():
    html = docs.detailed_sheets_html([account(activation_code=None)])
    text, tags = visible(html)
    assert "/auth/activation" not in html and "svg" not in tags
    assert "Aucun code d'activation" in text


# --- invoice -----------------------------------------------------------------------------


def test_invoice_in_french_with_totals_and_references():
    html = docs.invoice_html(invoice())
    text, _ = visible(html)
    for expected in (
        "Facture",
        "ONE-2026-000001",
        "1er septembre 2026",
        "1er octobre 2026",
        "Open Digital Education",
        "SIRET : 81234567800011",
        "FR12812345678",
        "Mairie d'Annecy",
        "1 place de l'Hôtel de Ville",
        "74000 Annecy",
        "SIRET : 21740010600019",
        "Bon de commande BC-2026-00042",
        "Référence d'engagement EJ-123",
        "École primaire du Lac",
        "0741234P",
        "Abonnement ONE — 1 an",
        "1 210",
        "0,90 €",
        "1 089,00 €",
        "5,5 %",
        "Total HT 1 275,00 €",
        "TVA 249,78 €",
        "Total TTC 1 524,78 €",
        "247,80 €",
        "1,98 €",
        "Conditions de paiement",
    ):
        assert expected in text, expected


def test_invoice_escapes_and_tolerates_missing_optionals():
    html = docs.invoice_html(
        invoice(
            order_reference=None,
            school_name=HOSTILE,
            billing={
                "name": "Mairie <b>X</b>",
                "address": {"line1": "1 rue", "postal_code": "74000", "city": "Annecy"},
            },
        )
    )
    text, tags = visible(html)
    assert "script" not in tags and "b" not in tags
    assert HOSTILE in text and "Mairie <b>X</b>" in text
    assert "SIRET : 2174" not in text


# --- mails -------------------------------------------------------------------------------


def test_first_access_mail_gives_login_code_link_and_next_steps():
    admin = account(
        profile="administrator", first_name="Claire", last_name="Martin", login="claire.martin"
    )
    url = f"{ENT}/auth/activation?login=claire.martin&activationCode=abcd3456"
    mail = docs.first_access_email(admin)
    assert mail.subject == "Votre accès à ONE — École primaire du Lac"
    for body in (mail.text, mail.html):
        assert "claire.martin" in body and "abcd3456" in body
        assert "PDF" in body and "Paramétrage de la classe" in body
    assert url in mail.text
    assert url.replace("&", "&amp;") in mail.html
    assert "Bonjour Claire Martin" in mail.text
    assert "15 octobre 2026 à 8 h 30" in mail.text


def test_first_access_mail_follows_the_provisioning_mode():
    admin = account(profile="administrator")
    automatic = docs.first_access_email(admin, provisioning="automatic").text
    manual = docs.first_access_email(admin, provisioning="manual").text
    assert "ONDE" in automatic and "rattachez les enseignants" in automatic
    assert "Paramétrage de la classe" not in automatic
    assert "créez les comptes des enseignants" in manual and "ONDE" not in manual


def test_mail_subjects_cannot_carry_line_breaks_and_html_is_escaped():
    hostile = account(school_name="École\r\nBcc: evil@example.org", first_name=HOSTILE)
    mail = docs.first_access_email(hostile)
    assert "\r" not in mail.subject and "\n" not in mail.subject
    _, tags = visible(mail.html)
    assert "script" not in tags
    assert HOSTILE in mail.text  # plain text is not HTML: it stays as typed


def test_invoice_mail():
    mail = docs.invoice_email(invoice())
    assert mail.subject == "Facture ONE-2026-000001 — École primaire du Lac"
    for body in (mail.text, mail.html):
        assert "ONE-2026-000001" in body and "BC-2026-00042" in body and "EJ-123" in body
        assert "1 524,78 €" in body and "ci-joint" in body and "PDF" in body
    text, _ = visible(mail.html)
    assert "1er octobre 2026" in text


def test_compact_sheets_put_eight_cards_on_a_page():
    sheets = [
        account(login=f"user.{n}", first_name=HOSTILE if n == 3 else "Zoé") for n in range(11)
    ]
    html = docs.compact_sheets_html(sheets)
    text, tags = visible(html)
    assert tags.count("section") == 2 and tags.count("article") == 11
    assert tags.count("svg") == 11 and "script" not in tags and HOSTILE in text
    activated = docs.compact_sheets_html([account(activated=True)])
    assert "Compte activé" in activated and "abcd3456" not in activated
    assert "<svg" not in activated


# --- print jobs: classes, covers, order ---------------------------------------------------

REQUESTED = datetime(2026, 10, 15, 6, 30, tzinfo=UTC)
SCHOOL = "École primaire du Lac"


def pupil(first: str, last: str, class_name: str = "CE2", **overrides) -> SheetAccount:
    login = ".".join("".join(c for c in fold(part) if c.isalnum()) for part in (first, last))
    values = {
        "account_id": f"id-{login}",
        "profile": "student",
        "first_name": first,
        "last_name": last,
        "login": login,
        "classes": (class_name,) if class_name else (),
    }
    return account(**{**values, **overrides})


def sections(html: str) -> list[str]:
    return re.findall(r"<section.*?</section>", html, flags=re.S)


def in_order(text: str, *needles: str) -> bool:
    positions = [text.find(needle) for needle in needles]
    return -1 not in positions and positions == sorted(positions)


def test_french_order_folds_accents_case_and_punctuation_and_counts_numbers():
    names = ["Zoé", "élodie", "Eric", "Émile", "Œdipe", "Odile", "Classe 10", "Classe 2"]
    names += ["N'Diaye", "Nadal", "Ndiaye", "ÉMILE", "ce2"]
    assert sorted(names, key=collation_key) == [
        "ce2",
        "Classe 2",
        "Classe 10",
        "élodie",
        "ÉMILE",
        "Émile",
        "Eric",
        "N'Diaye",
        "Nadal",
        "Ndiaye",
        "Odile",
        "Œdipe",
        "Zoé",
    ]
    assert fold("Œillet-Élodie ÇA") == "oeillet-elodie ca"


def test_print_sorts_classes_and_sheets_with_a_cover_per_class():
    ce2 = [
        pupil("Zoé", "Lefèvre", "ce2"),
        pupil("Jean-Noël", "N'Diaye", "ce2"),
        pupil("Élodie", "Ébert", "ce2", activated=True),
        pupil("Ana", "Nadal", "ce2"),
        pupil("Adam", "ebert", "ce2"),
        pupil("Léa", "Lefèvre", "ce2"),
    ]
    groups = [
        ClassGroup("CM1", [pupil("Paul", "Durand", "CM1")]),
        ClassGroup(NO_CLASS, [pupil("Claire", "Martin", "", profile="administrator")]),
        ClassGroup("ce2", ce2),
        ClassGroup("Classe 10", [pupil("Tom", "Petit", "Classe 10")]),
        ClassGroup("Classe 2", [pupil("Mia", "Bernard", "Classe 2")]),
        ClassGroup("CP", []),  # nothing to print: no cover either
    ]
    html = docs.print_html(groups, "detailed", school_name=SCHOOL, requested_at=REQUESTED)
    text, tags = visible(html)
    pages = sections(html)
    assert len(pages) == 5 + 10 == tags.count("section")
    covers = [page for page in pages if 'class="page cover"' in page]
    assert len(covers) == 5 and "CP" not in [visible(c)[0] for c in covers]
    assert in_order(text, "ce2", "Classe 2", "Classe 10", "CM1", NO_CLASS)
    # Inside a class: last name, then first name, accents and case folded.
    assert in_order(
        text,
        "Adam ebert",
        "Élodie Ébert",
        "Léa Lefèvre",
        "Zoé Lefèvre",
        "Jean-Noël N'Diaye",
        "Ana Nadal",
        "Classe 2",
    )
    # Cover, then that class's sheets: page by page.
    kinds = ["cover" if page in covers else "sheet" for page in pages]
    assert kinds == ["cover"] + ["sheet"] * 6 + ["cover", "sheet"] * 4
    cover, _ = visible(covers[0])
    for expected in (
        SCHOOL,
        "Fiches de connexion",
        "ce2",
        "6 fiches",
        "1 compte",  # already activated
        "15 octobre 2026 à 8 h 30",
        "Distribuez les fiches",
        "nom de famille",
    ):
        assert expected in cover, expected
    assert "1 fiche (1 page)" in visible(covers[1])[0]
    assert "break-after: page" in html and "@page { size: A4; margin: 15mm; }" in html
    # The activated account's sheet says so and carries no code.
    elodie = next(page for page in pages if "Élodie Ébert" in page)
    assert "Compte activé" in elodie and "abcd3456" not in elodie


def test_compact_print_starts_each_class_on_a_new_page():
    nine = [pupil(f"Élève{n}", f"Nom{n}", "CE1") for n in range(9)]
    three = [pupil(f"Élève{n}", f"Autre{n}", "CM2") for n in range(3)]
    groups = [ClassGroup("CM2", three), ClassGroup("CE1", nine)]
    html = docs.print_html(groups, "compact", school_name=SCHOOL, requested_at=REQUESTED)
    text, tags = visible(html)
    pages = sections(html)
    assert [("cover" if 'class="page cover"' in p else p.count("<article")) for p in pages] == [
        "cover",
        8,
        1,
        "cover",
        3,
    ]
    assert tags.count("article") == 12 and tags.count("svg") == 12
    assert in_order(text, "CE1", "Élève0 Nom0", "Élève8 Nom8", "CM2", "Élève0 Autre0")
    assert "9 fiches (2 pages, 8 cartes par page)" in text
    assert "Découpez" in text


def test_print_escapes_hostile_names():
    hostile = pupil(HOSTILE, '"><img src=x onerror=alert(2)>', HOSTILE, school_name=HOSTILE)
    for layout in ("detailed", "compact"):
        html = docs.print_html(
            [ClassGroup(HOSTILE, [hostile])],
            layout,
            school_name="École <b>du Lac</b> & Cie",
            requested_at=REQUESTED,
        )
        text, tags = visible(html)
        assert "script" not in tags and "img" not in tags and "b" not in tags
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert HOSTILE in text and "École <b>du Lac</b> & Cie" in text


def test_print_parts_cut_the_same_pages_in_order():
    groups = [
        ClassGroup("CE1", [pupil(f"P{n}", f"N{n}", "CE1") for n in range(5)]),
        ClassGroup("CE2", [pupil(f"P{n}", f"M{n}", "CE2") for n in range(4)]),
    ]
    for layout in ("detailed", "compact"):
        whole = sections(
            docs.print_html(groups, layout, school_name=SCHOOL, requested_at=REQUESTED)
        )
        parts = list(
            docs.print_parts(
                groups, layout, school_name=SCHOOL, requested_at=REQUESTED, pages_per_part=3
            )
        )
        assert all(len(sections(part)) <= 3 for part in parts)
        assert [page for part in parts for page in sections(part)] == whole
    assert (
        len(list(docs.print_parts([], "compact", school_name=SCHOOL, requested_at=REQUESTED))) == 1
    )
    with pytest.raises(ValueError):
        docs.print_html(groups, "big", school_name=SCHOOL, requested_at=REQUESTED)  # type: ignore[arg-type]


# --- QR codes ------------------------------------------------------------------------------


def test_qr_code_is_geometry_only_with_its_quiet_zone():
    url = activation_url(ENT, "jeannoel.ndiaye", "abcd3456")
    svg = str(_qr_svg(url))
    assert svg.startswith("<svg") and 'class="qr"' in svg
    assert url not in svg and "login" not in svg
    code = segno.make(url, error="m", boost_error=False, micro=False, mask=QR_MASK)
    side = code.symbol_size(border=4)[0]
    assert f'viewBox="0 0 {side} {side}"' in svg


def test_qr_path_draws_exactly_the_dark_modules():
    for login in ("jeannoel.ndiaye", "a" * 60 + "." + "b" * 60):
        url = activation_url(ENT, login, "abcd3456")
        code = segno.make(url, error="m", boost_error=False, micro=False, mask=QR_MASK)
        svg = str(_qr_svg(url))
        [path] = re.findall(r'<path stroke="#000" d="([^"]+)"/>', svg)
        drawn = set()
        for row in re.findall(r"M4 (\d+)\.5([^M]*)", path):
            y, x = int(row[0]) - 4, 0
            for gap, run in re.findall(r"m(\d+) 0h(\d+)", row[1]):
                x += int(gap)
                drawn.update((y, x + k) for k in range(int(run)))
                x += int(run)
        dark = {(y, x) for y, line in enumerate(code.matrix) for x, m in enumerate(line) if m}
        assert drawn == dark


def test_year_turned_mail_lists_the_classes_without_teacher_in_french_order():
    mail = docs.year_turned_email(
        school_name="École du Lac",
        classes=["CP Lune", "CE1 Soleil", "<b>CM2</b>", "Élan"],
        without_teacher=["<b>CM2</b>", "Élan", "CE1 Soleil"],
    )
    assert mail.subject == "Nouvelle année scolaire dans ONE — École du Lac"
    assert "rattacher les enseignants à leurs classes" in mail.text
    listed = re.findall(r"^  - (.+)$", mail.text, flags=re.M)
    assert listed == ["<b>CM2</b>", "CE1 Soleil", "Élan"]  # in French order
    assert "3 classes n'ont pas encore d'enseignant" in mail.text
    assert "<li>&lt;b&gt;CM2&lt;/b&gt;</li>" in mail.html and "<b>CM2</b>" not in mail.html
    assert "CP Lune" not in listed


def test_year_turned_mail_when_every_class_has_its_teacher():
    mail = docs.year_turned_email(school_name="École", classes=["CP"], without_teacher=[])
    assert "rien à faire" in mail.text and "rattacher" not in mail.text
    assert "<li>" not in mail.html


def test_year_closed_by_hand_mail_tells_teachers_to_place_their_pupils():
    mail = docs.year_turned_email(
        school_name="École",
        classes=["Classe 1", "Classe 2"],
        without_teacher=["Classe 1", "Classe 2"],
        closed_by_hand=True,
    )
    assert "L'année scolaire est close" in mail.text and "ONDE" not in mail.text
    assert "placer ses" in mail.text and "Paramétrage de la classe" in mail.html
    assert "2 classes n'ont pas encore d'enseignant" in mail.text


def test_a_login_s_type_is_the_largest_that_keeps_it_on_one_line():
    from services.credential_dispatch.documents import MM_PER_PT, MONO_ADVANCE_EM, fitting_pt

    assert fitting_pt("lea.martin", 80.0, 11.0, 6.5) == 11.0  # short: the layout's size
    size = fitting_pt("x" * 40, 80.0, 11.0, 6.5)
    assert 6.5 < size < 11.0
    assert 40 * MONO_ADVANCE_EM * size * MM_PER_PT <= 80.0  # fits
    assert 40 * MONO_ADVANCE_EM * (size + 0.5) * MM_PER_PT > 80.0  # the largest that does
    assert fitting_pt("x" * 400, 80.0, 11.0, 6.5) == 6.5  # never below the minimum


def test_a_breakable_text_breaks_only_after_the_characters_given():
    from html import unescape

    from services.credential_dispatch.documents import breakable

    html = str(breakable("https://e.org/a?login=l<b>&code=c", after="/?&"))
    assert "&lt;b&gt;" in html and "<b>" not in html  # the text is escaped
    pieces = [
        unescape(p.removeprefix('<span class="nobr">').removesuffix("</span>"))
        for p in html.split("<wbr>")
    ]
    assert pieces == ["https:/", "/", "e.org/", "a?", "login=l<b>&", "code=c"]
