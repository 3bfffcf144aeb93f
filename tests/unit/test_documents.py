"""Sheets, invoice and mails as HTML and text: escaping, French formats, what each says."""

from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from uuid import uuid4

import pytest

from services.credential_dispatch.documents import (
    Documents,
    SheetAccount,
    activation_url,
    format_date,
    format_datetime,
    format_eur,
    format_rate,
)
from shared.contracts.orders import InvoiceIssued

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


def invoice(**overrides) -> InvoiceIssued:
    data = {
        "invoice_number": "ONE-2026-000001",
        "order_id": "BC-2026-00042",
        "order_reference": "EJ-123",
        "school_id": str(uuid4()),
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
            },
            {
                "sku": "ONE-USERS",
                "label": "Comptes supplémentaires",
                "quantity": 1210,
                "unit_price": "0.9",
                "vat_rate": "0.20",
                "total_excl_tax": "1089.00",
            },
            {
                "sku": "ONE-BOOK",
                "label": "Guide imprimé",
                "quantity": 3,
                "unit_price": "12.00",
                "vat_rate": "0.055",
                "total_excl_tax": "36.00",
            },
        ],
        "vat": [
            {"rate": "0.20", "base": "1239.00", "amount": "247.80"},
            {"rate": "0.055", "base": "36.00", "amount": "1.98"},
        ],
        "total_excl_tax": "1275.00",
        "total_vat": "249.78",
        "total_incl_tax": "1524.78",
    }
    return InvoiceIssued.model_validate({**data, **overrides})


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


def visible(html: str) -> tuple[str, list[str]]:
    parser = _Visible()
    parser.feed(html)
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
    assert url in html
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
