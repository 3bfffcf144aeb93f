"""What credential_dispatch prints and mails, as HTML and plain text.

Pure building, no I/O beyond reading the templates once: connection sheets (one A4 page per
account, with the activation link as text and as a QR code), the invoice, and the two mails
of step 1 (the administrator's first access, the invoice). Every template is a jinja2 file
under ``templates/``; HTML templates are autoescaped, so a hostile name prints as text.

The HTML is self-contained (inline CSS, inline SVG, system fonts only) so that the renderer
can refuse every network request.

A print job (``print_html``, or ``print_parts`` for a large one) lays out whole classes:
each class opens on a cover page, then its sheets sorted by name. Every page of these
documents is exactly one A4 page (content that could overflow is clamped), so a long job
can be cut between any two pages, rendered in parts and merged.
"""

import itertools
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2
import segno
from markupsafe import Markup

from shared.contracts.orders import CreditNoteIssued, InvoiceIssued, Party, Provisioning

TEMPLATES_DIR = Path(__file__).parent / "templates"
PARIS = ZoneInfo("Europe/Paris")
SUPPORT_EMAIL = "support.one@opendigitaleducation.com"

PROFILE_LABELS = {
    "administrator": "Administrateur·rice",
    "teacher": "Enseignant·e",
    "personnel": "Personnel",
    "student": "Élève",
    "relative": "Parent",
}
_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
_CENT = Decimal("0.01")
CARDS_PER_PAGE = 8
LONG_NAME = 50
# A login and a code are set in DejaVu Sans Mono, whose every glyph is 0.602 em wide: the
# type of each is the largest (up to the layout's) that keeps it on one line in the width
# it has, down to a readable minimum; a longer login then breaks at its dots only.
MONO_ADVANCE_EM = 0.602
MM_PER_PT = 25.4 / 72
LOGIN_TYPE: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {  # layout -> (width in mm, largest and smallest size in pt)
        "detailed": (104.0, 17.0, 8.0),
        "compact": (80.0, 11.0, 6.5),
    }
)
QR_MASK = 0
NO_CLASS = "Sans classe"  # the group of accounts attached to no class
PAGES_PER_PART = 100  # pages per HTML document when a print job is cut in parts

Layout = Literal["detailed", "compact"]


@dataclass(frozen=True)
class SheetAccount:
    """One account as a connection sheet shows it."""

    account_id: str
    profile: str  # administrator|teacher|personnel|student|relative
    first_name: str
    last_name: str
    login: str
    activation_code: str | None
    activation_expires_at: datetime | None
    activated: bool
    school_name: str
    classes: tuple[str, ...] = ()
    children: tuple[str, ...] = ()  # display names of a parent's children


@dataclass(frozen=True)
class ClassGroup:
    """The accounts printed together behind one cover page."""

    name: str  # the class name, or NO_CLASS ("Sans classe") for accounts without one
    accounts: Sequence[SheetAccount]


@dataclass(frozen=True)
class MailContent:
    subject: str
    text: str
    html: str


# --- French formatting -------------------------------------------------------------------


def activation_url(ent_url: str, login: str, code: str) -> str:
    """``<ENT URL>/auth/activation?login=<login>&activationCode=<code>``, values encoded."""
    query = urlencode({"login": login, "activationCode": code}, quote_via=quote)
    return f"{ent_url.rstrip('/')}/auth/activation?{query}"


def _paris(moment: datetime) -> datetime:
    # A naive datetime is taken as UTC, as every timestamp of the pipeline is.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(PARIS)


def format_date(day: date | datetime) -> str:
    """``1er septembre 2026``, ``15 octobre 2026`` (a datetime is read in Paris time)."""
    if isinstance(day, datetime):
        day = _paris(day).date()
    first = "1er" if day.day == 1 else str(day.day)
    return f"{first} {_MONTHS[day.month - 1]} {day.year}"


def format_datetime(moment: datetime) -> str:
    """``15 octobre 2026 à 8 h 30``, in Paris time."""
    local = _paris(moment)
    return f"{format_date(local)} à {local.hour} h {local.minute:02d}"


def _group(digits: str) -> str:
    return f"{int(digits):,}".replace(",", " ")


def format_eur(amount: Decimal) -> str:
    """``1 234,50 €``: rounded half up to the cent, thousands separated by a space."""
    rounded = Decimal(amount).quantize(_CENT, rounding=ROUND_HALF_UP)
    units, cents = f"{abs(rounded):.2f}".split(".")
    sign = "-" if rounded < 0 else ""
    return f"{sign}{_group(units)},{cents} €"


def format_rate(rate: Decimal) -> str:
    """A VAT rate given as a fraction, in percent: ``0.20`` -> ``20 %``, ``0.055`` -> ``5,5 %``."""
    percent = (Decimal(rate) * 100).normalize()
    return f"{percent:f}".replace(".", ",") + " %"


def format_quantity(quantity: int) -> str:
    return _group(str(quantity))


def _one_line(text: str) -> str:
    """Collapse every run of whitespace (CR and LF included): safe in a mail header."""
    return " ".join(text.split())


# --- French order ------------------------------------------------------------------------

_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ø": "o", "đ": "d", "ł": "l", "ı": "i"})
_PUNCTUATION = re.compile(r"[\W_]+")
_NUMBERS = re.compile(r"(\d+)")


def fold(text: str) -> str:
    """Lowercase, accents and ligatures folded: ``Œillet-Élodie`` -> ``oeillet-elodie``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def collation_key(text: str) -> tuple[tuple[tuple[str, int], ...], str, str]:
    """Sort key close to French dictionary order.

    Accents and case do not count, punctuation counts as a space (``N'Diaye`` sorts as
    ``N Diaye``, before ``Nadal``), and numbers compare as numbers (``Classe 2`` before
    ``Classe 10``). Ties are broken by the folded text, then the text itself, so that the
    order is total and stable.
    """
    folded = fold(text)
    spaced = " ".join(_PUNCTUATION.sub(" ", folded).split())
    chunks = _NUMBERS.split(spaced)  # text, number, text, number, ..., text
    primary = tuple(
        (chunks[i], int(chunks[i + 1]) if i + 1 < len(chunks) else -1)
        for i in range(0, len(chunks), 2)
    )
    return primary, folded, text


def _by_name(account: "SheetAccount") -> tuple[Any, ...]:
    return (
        collation_key(account.last_name),
        collation_key(account.first_name),
        account.login,
        account.account_id,
    )


# --- Documents ---------------------------------------------------------------------------


class Documents:
    """Builds sheets, invoices and mails for one ENT (``ent_url``, e.g. ``https://one.fr``)."""

    def __init__(self, ent_url: str, *, support_email: str = SUPPORT_EMAIL) -> None:
        self.ent_url = ent_url.rstrip("/")
        self.support_email = support_email
        # The activation page as a compact card names it: the same on every card.
        self._activation_page = breakable(f"{self.ent_url}/auth/activation", after="/?&")
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",),
                disabled_extensions=("txt.j2",),
                default=True,
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters.update(
            eur=format_eur,
            rate=format_rate,
            quantity=format_quantity,
            date_fr=format_date,
            datetime_fr=format_datetime,
        )

    def _render(self, name: str, **context: Any) -> str:
        return self._env.get_template(name).render(
            ent_url=self.ent_url, activation_page=self._activation_page, **context
        )

    # Sheets ------------------------------------------------------------------------------

    def _sheet(self, account: SheetAccount) -> dict[str, Any]:
        code = None if account.activated else account.activation_code
        url = activation_url(self.ent_url, account.login, code) if code else None
        full_name = f"{account.first_name} {account.last_name}"
        return {
            "account": account,
            "full_name": full_name,
            # Extreme lengths get a smaller type, so that a sheet always fits its page.
            "long_name": len(full_name) > LONG_NAME,
            "login_pt": {layout: fitting_pt(account.login, *t) for layout, t in LOGIN_TYPE.items()},
            "login_html": breakable(account.login, after="."),
            "url_html": breakable(url, after="/?&") if url else None,
            "profile_label": PROFILE_LABELS.get(account.profile, account.profile),
            "code": code,
            "url": url,
            "qr_svg": _qr_svg(url) if url else None,
            "expires": (
                format_datetime(account.activation_expires_at)
                if code and account.activation_expires_at
                else None
            ),
        }

    def detailed_sheets_html(self, accounts: Sequence[SheetAccount]) -> str:
        """One A4 page per account, in the given order."""
        return self._sheets_document("detailed", self._sheet_pages(accounts, "detailed"))

    def compact_sheets_html(self, accounts: Sequence[SheetAccount]) -> str:
        """Eight cards per A4 page (2 x 4, to cut out), with login, code and QR code."""
        return self._sheets_document("compact", self._sheet_pages(accounts, "compact"))

    def print_html(
        self,
        groups: Sequence[ClassGroup],
        layout: Layout,
        *,
        school_name: str,
        requested_at: datetime,
    ) -> str:
        """A print job as one document: for each class (in French order of names), a cover
        page then its sheets sorted by last name and first name, one per page (detailed)
        or eight cards per page (compact). Each class starts on a new page; a class
        without accounts is left out.

        For a large job, ``print_parts`` gives the same pages cut in several documents,
        cheaper to render (in parallel) and merge.
        """
        pages = self._print_pages(groups, layout, school_name, requested_at)
        return self._sheets_document(layout, pages)

    def print_parts(
        self,
        groups: Sequence[ClassGroup],
        layout: Layout,
        *,
        school_name: str,
        requested_at: datetime,
        pages_per_part: int = PAGES_PER_PART,
    ) -> Iterator[str]:
        """The pages of ``print_html`` in documents of at most ``pages_per_part`` pages each,
        built lazily (the QR codes of a part are computed when that part is asked for):
        rendering each and merging the PDFs in order gives the same pages as
        ``print_html``. At least one document is given, even for an empty job."""
        if pages_per_part < 1:
            raise ValueError("pages_per_part must be at least 1")
        pages = self._print_pages(groups, layout, school_name, requested_at)
        first = True
        while chunk := list(itertools.islice(pages, pages_per_part)):
            first = False
            yield self._sheets_document(layout, chunk)
        if first:
            yield self._sheets_document(layout, [])

    def _sheets_document(self, layout: Layout, pages: Iterator[dict[str, Any]] | list[Any]) -> str:
        template = "sheets_compact.html.j2" if layout == "compact" else "sheets_detailed.html.j2"
        return self._render(template, pages=pages)

    def _sheet_pages(
        self, accounts: Sequence[SheetAccount], layout: Layout
    ) -> Iterator[dict[str, Any]]:
        """The pages of ``accounts``' sheets, in the given order (QR codes computed lazily)."""
        per_page = CARDS_PER_PAGE if layout == "compact" else 1
        for start in range(0, len(accounts), per_page):
            sheets = [self._sheet(account) for account in accounts[start : start + per_page]]
            if layout == "compact":
                # The grid (and its cut lines) as tall as its rows of cards.
                yield {"kind": "cards", "cards": sheets, "rows": -(-len(sheets) // 2)}
            else:
                yield {"kind": "sheet", "sheet": sheets[0]}

    def _print_pages(
        self,
        groups: Sequence[ClassGroup],
        layout: Layout,
        school_name: str,
        requested_at: datetime,
    ) -> Iterator[dict[str, Any]]:
        if layout not in ("detailed", "compact"):
            raise ValueError(f"unknown layout {layout!r}: detailed or compact")
        per_page = CARDS_PER_PAGE if layout == "compact" else 1
        printed = format_datetime(requested_at)
        for group in sorted(groups, key=lambda g: collation_key(g.name)):
            accounts = sorted(group.accounts, key=_by_name)
            if not accounts:
                continue
            yield {
                "kind": "cover",
                "school_name": school_name,
                "name": group.name,
                "count": len(accounts),
                "activated": sum(1 for a in accounts if a.activated),
                "pages": -(-len(accounts) // per_page),
                "per_page": per_page,
                "compact": layout == "compact",
                "requested_at": printed,
            }
            yield from self._sheet_pages(accounts, layout)

    # Invoice -----------------------------------------------------------------------------

    def invoice_html(self, invoice: InvoiceIssued) -> str:
        return self.invoices_html([invoice])

    def invoices_html(self, invoices: Sequence[InvoiceIssued | CreditNoteIssued]) -> str:
        """Each invoice or credit note from a new page, in the given order."""
        documents = [
            {
                "invoice": invoice,
                "credit_note": isinstance(invoice, CreditNoteIssued),
                "title": billing_title(invoice),
                "number": invoice.document_number,
                "seller_lines": _address_lines(invoice.seller),
                "buyer_lines": _address_lines(invoice.billing),
            }
            for invoice in invoices
        ]
        return self._render("invoice.html.j2", invoices=documents)

    # Mails -------------------------------------------------------------------------------

    def first_access_email(
        self, account: SheetAccount, *, provisioning: Provisioning | None = None
    ) -> MailContent:
        """The school administrator's first access: login, code, link, what comes next.

        ``provisioning`` picks the next steps to describe (automatic feed from ONDE or
        manual creation); when unknown, both are described.
        """
        context = {
            **self._sheet(account),
            "provisioning": provisioning,
            "support_email": self.support_email,
        }
        return MailContent(
            subject=_one_line(f"Votre accès à ONE — {account.school_name}"),
            text=self._render("mail_first_access.txt.j2", **context),
            html=self._render("mail_first_access.html.j2", **context),
        )

    def sheet_email(self, account: SheetAccount, *, for_parent: bool) -> MailContent:
        """A user's connection sheet, to himself, or to a parent for his child."""
        context = {
            **self._sheet(account),
            "for_parent": for_parent,
            "support_email": self.support_email,
        }
        whose = f" de {account.first_name} {account.last_name}" if for_parent else ""
        return MailContent(
            subject=_one_line(f"Informations de connexion à ONE{whose} — {account.school_name}"),
            text=self._render("mail_sheet.txt.j2", **context),
            html=self._render("mail_sheet.html.j2", **context),
        )

    def print_email(
        self,
        *,
        school_name: str,
        count: int,
        classes: Sequence[str],
        layout: str,
        document_id: str,
    ) -> MailContent:
        """The requester's printed document (or CSV export), attached."""
        what = (
            "l'export des identifiants et codes" if layout == "csv" else ("les fiches de connexion")
        )
        context = {
            "school_name": school_name,
            "count": count,
            "classes": ", ".join(classes),
            "what": what,
            "plural": layout != "csv",
            "document_id": document_id,
            "support_email": self.support_email,
        }
        return MailContent(
            subject=_one_line(f"Fiches de connexion ONE — {school_name}"),
            text=self._render("mail_print.txt.j2", **context),
            html=self._render("mail_print.html.j2", **context),
        )

    def year_turned_email(
        self,
        *,
        school_name: str,
        classes: Sequence[str],
        without_teacher: Sequence[str],
        closed_by_hand: bool = False,
    ) -> MailContent:
        """The administrator's notice that the new school year is in place, with the
        classes that still wait for their teachers; ``closed_by_hand``: a manual school's
        year, closed by its administrator (its new classes are empty, its teachers place
        their pupils), else a fed school's, turned by its September export."""
        context = {
            "closed_by_hand": closed_by_hand,
            "school_name": school_name,
            "classes": sorted(classes, key=collation_key),
            "without_teacher": sorted(without_teacher, key=collation_key),
            "support_email": self.support_email,
        }
        return MailContent(
            subject=_one_line(f"Nouvelle année scolaire dans ONE — {school_name}"),
            text=self._render("mail_year_turned.txt.j2", **context),
            html=self._render("mail_year_turned.html.j2", **context),
        )

    def credit_note_email(self, note: CreditNoteIssued) -> MailContent:
        context = {"note": note, "support_email": self.support_email}
        return MailContent(
            subject=_one_line(f"Avoir {note.credit_note_number} — {note.school_name}"),
            text=self._render("mail_credit_note.txt.j2", **context),
            html=self._render("mail_credit_note.html.j2", **context),
        )

    def invoice_email(self, invoice: InvoiceIssued) -> MailContent:
        context = {"invoice": invoice, "support_email": self.support_email}
        return MailContent(
            subject=_one_line(f"Facture {invoice.invoice_number} — {invoice.school_name}"),
            text=self._render("mail_invoice.txt.j2", **context),
            html=self._render("mail_invoice.html.j2", **context),
        )


class _PathSteps(dict[tuple[str, str], str]):
    """``(gap, run)`` -> ``m<len(gap)> 0h<len(run)>``, filled on first use: once warm, a
    row of a QR code becomes path text without a Python call per run of modules."""

    def __missing__(self, key: tuple[str, str]) -> str:
        gap, run = key
        step = self[key] = f"m{len(gap)} 0h{len(run)}"
        return step


_PATH_STEPS = _PathSteps()
_MODULE_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_DARK_RUNS = re.compile("(0*)(1+)")
QR_BORDER = 4  # modules of light quiet zone around the symbol


def billing_title(document: InvoiceIssued | CreditNoteIssued) -> str:
    """What a billing document is called on its page and in its PDF's metadata."""
    return "Avoir" if isinstance(document, CreditNoteIssued) else "Facture"


def fitting_pt(text: str, width_mm: float, largest: float, smallest: float) -> float:
    """The largest type size, in half points from ``largest`` down to ``smallest``, at
    which ``text`` in the monospaced face fits on one line ``width_mm`` wide."""
    fits = width_mm / (max(len(text), 1) * MONO_ADVANCE_EM * MM_PER_PT)
    return max(smallest, min(largest, math.floor(fits * 2) / 2))


def breakable(text: str, *, after: str) -> Markup:
    """``text`` that a line may break only after one of the characters of ``after``: the
    pieces between are kept whole (``nowrap``), with a break opportunity between them."""
    pieces = re.findall(rf"[^{re.escape(after)}]*[{re.escape(after)}]|[^{re.escape(after)}]+", text)
    return Markup("<wbr>").join(
        Markup('<span class="nobr">{}</span>').format(piece) for piece in pieces
    )


def _qr_svg(url: str) -> Markup:
    """The QR code of ``url`` as inline SVG, sized by CSS (viewBox only).

    Error correction M exactly, a quiet zone of 4 modules painted white, the dark modules as
    one stroked path of horizontal runs (cheaper for Chromium to print than many shapes).
    The mask is fixed: choosing the best of eight is most of segno's cost (about 15 ms a
    code, 4 ms with a fixed mask) and any mask gives a conforming, scannable code. The path
    is written here rather than by segno's SVG writer, which costs about 1.2 ms a code
    against 0.3 ms. The SVG holds only geometry, never the URL text, so it is safe to mark
    as markup.
    """
    code = segno.make(url, error="m", boost_error=False, micro=False, mask=QR_MASK)
    side = code.symbol_size(border=QR_BORDER)[0]
    steps = _PATH_STEPS.__getitem__
    path = "".join(
        f"M{QR_BORDER} {y}.5"
        + "".join(map(steps, _DARK_RUNS.findall(row.translate(_MODULE_DIGITS).decode())))
        for y, row in enumerate(code.matrix, start=QR_BORDER)
    )
    return Markup(  # noqa: S704 - geometry only, no user text
        f'<svg viewBox="0 0 {side} {side}" class="qr">'
        f'<path fill="#fff" d="M0 0h{side}v{side}h-{side}z"/>'
        f'<path stroke="#000" d="{path}"/></svg>'
    )


def _address_lines(party: Party) -> list[str]:
    address = party.address
    lines = [address.line1]
    if address.line2:
        lines.append(address.line2)
    lines.append(f"{address.postal_code} {address.city}")
    return lines


__all__ = [
    "CARDS_PER_PAGE",
    "NO_CLASS",
    "PROFILE_LABELS",
    "ClassGroup",
    "Documents",
    "Layout",
    "MailContent",
    "SheetAccount",
    "activation_url",
    "collation_key",
    "fold",
    "format_date",
    "format_datetime",
    "format_eur",
    "format_quantity",
    "format_rate",
]
