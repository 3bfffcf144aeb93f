"""Hostile input is harmless: markup in names prints as text in sheets and mails, line
breaks cannot add mail headers, feed folder names cannot leave the feed directory, and
spreadsheet formulas in names are neutralised in CSV exports."""

import csv
import io
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from services.credential_dispatch.documents import (
    ClassGroup,
    Documents,
    MailContent,
    SheetAccount,
)
from services.credential_dispatch.exports import ExportRow, credentials_csv
from services.credential_dispatch.mailer import build_message
from services.directory_sync.domain import drop_folder
from shared.errors import PermanentError

ENT = "https://ent.example.org"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE_NAMES = [SCRIPT, IMG, "<b>Léo</b>", "<svg onload=alert(1)>", "</textarea><iframe>"]
INJECTED_TAGS = {"script", "img", "b", "iframe", "textarea"}
EXPECTED_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}


class Tags(HTMLParser):
    """Every start tag of a document, with its attributes, and the text between tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


def assert_prints_as_text(html: str, hostile: str) -> None:
    parsed = parse(html)
    names = {tag for tag, _ in parsed.tags}
    assert not names & INJECTED_TAGS, names & INJECTED_TAGS
    # The only <svg> is the QR code, drawn by the template: never one from a name.
    assert all(not attrs.get("onload") for tag, attrs in parsed.tags if tag == "svg")
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    assert hostile in "".join(parsed.text)  # the reader sees the name, as typed


def account(name: str, **overrides: object) -> SheetAccount:
    values: dict[str, object] = {
        "account_id": "a-1",
        "profile": "student",
        "first_name": name,
        "last_name": name,
        "login": "leo.roy",
        "activation_code": "abcd3456",
        "activation_expires_at": datetime(2026, 10, 15, 6, 30, tzinfo=UTC),
        "activated": False,
        "school_name": name,
        "classes": (name,),
        "children": (name,),
    }
    return SheetAccount(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def docs() -> Documents:
    return Documents(ENT)


# --- HTML and script in names --------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_markup_in_names_prints_as_text_on_sheets(docs: Documents, name: str) -> None:
    hostile = account(name)
    parent = account(name, profile="relative", account_id="a-2")
    assert_prints_as_text(docs.detailed_sheets_html([hostile, parent]), name)
    assert_prints_as_text(docs.compact_sheets_html([hostile, parent]), name)
    printed = docs.print_html(
        [ClassGroup(name, [hostile, parent])],
        "detailed",
        school_name=name,
        requested_at=datetime(2026, 9, 1, tzinfo=UTC),
    )
    assert_prints_as_text(printed, name)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_markup_in_names_prints_as_text_in_mails(docs: Documents, name: str) -> None:
    hostile = account(name, profile="administrator")
    mails = [
        docs.first_access_email(hostile, provisioning="manual"),
        docs.sheet_email(hostile, for_parent=False),
        docs.sheet_email(hostile, for_parent=True),
        docs.print_email(
            school_name=name, count=2, classes=[name], layout="detailed", document_id="d-1"
        ),
    ]
    for mail in mails:
        assert_prints_as_text(mail.html, name)
        message = send_to_parser(mail)
        html = message.get_body(("html",))
        text = message.get_body(("plain",))
        assert html is not None and text is not None
        assert_prints_as_text(str(html.get_content()), name)
        # The text part is text/plain: a tag in it is shown, never interpreted.
        assert text.get_content_type() == "text/plain"


def send_to_parser(content: MailContent, **overrides: str) -> EmailMessage:
    """``content`` built into a message, serialised and read back as a receiver would."""
    fields = {"sender": "noreply@one.fr", "to": "jean.roy@example.org", "subject": content.subject}
    message = build_message(**{**fields, **overrides}, content=content)  # type: ignore[arg-type]
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --- CR/LF cannot add mail headers -------------------------------------------------------

INJECTION = "\r\nBcc: evil@example.org"


def test_a_name_with_crlf_gives_a_one_line_subject_and_no_new_header(docs: Documents) -> None:
    hostile = account("Léo" + INJECTION, last_name="Roy" + INJECTION + "\nX-Evil: 1")
    for mail in (
        docs.sheet_email(hostile, for_parent=True),
        docs.first_access_email(hostile),
        docs.print_email(
            school_name="École" + INJECTION, count=1, classes=["CM1"], layout="csv", document_id="d"
        ),
    ):
        assert "\r" not in mail.subject and "\n" not in mail.subject
        message = send_to_parser(mail)
        assert set(message.keys()) == EXPECTED_HEADERS
        assert message.get_all("Bcc") is None and message.get_all("X-Evil") is None
        assert "Bcc: evil@example.org" in str(message["Subject"])  # folded into the text
        for part in message.walk():
            assert "Bcc" not in part and "X-Evil" not in part


@pytest.mark.parametrize(
    "field",
    [
        {"subject": "Bonjour" + INJECTION},
        {"subject": "Bonjour\nBcc: evil@example.org"},
        {"subject": "Bonjour\rBcc: evil@example.org"},
        {"to": "jean.roy@example.org" + INJECTION},
        {"to": '"Roy' + INJECTION + '" <jean.roy@example.org>'},
        {"sender": "noreply@one.fr" + INJECTION},
    ],
)
def test_crlf_in_a_header_value_is_refused(field: dict[str, str]) -> None:
    content = MailContent("s", "text", "<p>html</p>")
    with pytest.raises(PermanentError, match="line break"):
        send_to_parser(content, **field)


@pytest.mark.parametrize("separator", ["\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c"])
def test_other_line_separators_in_the_subject_cannot_add_a_header(separator: str) -> None:
    # The email package refuses them (ValueError) rather than write them: no header is
    # added. (Documents' subjects never hold them: every whitespace run becomes a space.)
    content = MailContent("s", "text", "<p>html</p>")
    with pytest.raises(ValueError):
        send_to_parser(content, subject="Bonjour" + separator + "Bcc: evil@example.org")


def test_crlf_in_an_attachment_name_stays_in_its_parameter() -> None:
    content = MailContent("s", "text", "<p>html</p>")
    message = build_message(
        sender="noreply@one.fr",
        to="jean.roy@example.org",
        subject="s",
        content=content,
        attachments=[("fiche" + INJECTION + ".pdf", b"%PDF-1.7", "application/pdf")],
    )
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed.get_all("Bcc") is None
    [part] = list(parsed.iter_attachments())  # type: ignore[attr-defined]
    assert "Bcc" not in part and "\n" not in str(part.get_filename())


# --- Feed folder names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../0741234P",
        "/",
        "/etc",
        "0741234P/../x",
        "0741234P/",
        "0741234P\\..\\x",
        "..\\0741234P",
        "",
        ".",
        "0741234P\x00",
        "0741234Q",  # wrong check letter: not a UAI at all
    ],
)
def test_a_feed_folder_name_that_is_not_a_uai_is_refused(tmp_path: Path, name: str) -> None:
    assert drop_folder(tmp_path, name) is None


def test_a_uai_names_a_folder_inside_the_feed_directory(tmp_path: Path) -> None:
    folder = drop_folder(tmp_path, "0741234p")
    assert folder == tmp_path / "0741234P"
    assert folder.resolve().parent == tmp_path.resolve()


# --- Spreadsheet formulas in CSV exports ---------------------------------------------------

FORMULAS = [
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@SUM(1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    '=HYPERLINK("http://evil.example";"x")',
    "＝1+1",  # full-width equals sign
]


@pytest.mark.parametrize("value", FORMULAS)
def test_formulas_in_names_are_neutralised_in_csv_exports(value: str) -> None:
    row = ExportRow(
        last_name=value,
        first_name=value,
        profile="student",
        classes=(value,),
        login="leo.roy",
        activation_code="abcd3456",
        activated=False,
    )
    exported = credentials_csv([row]).decode("utf-8-sig")
    [_, cells] = list(csv.reader(io.StringIO(exported, newline=""), delimiter=";"))
    last_name, first_name, _, classes, *_ = cells
    for cell in (last_name, first_name, classes):
        assert cell == "'" + value  # an apostrophe first: the spreadsheet shows text
    assert exported.count("\r\n") == 2  # header and one row: a CR/LF in a name is quoted
