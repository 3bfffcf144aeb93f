"""What credential_dispatch prints and mails, as HTML and plain text.

Pure building, no I/O beyond reading the templates once: connection sheets (one A4 page per
account, with the activation link as text and as a QR code), the invoice, and the two mails
of step 1 (the administrator's first access, the invoice). Every template is a jinja2 file
under ``templates/``; HTML templates are autoescaped, so a hostile name prints as text.

The HTML is self-contained (inline CSS, inline SVG, system fonts only) so that the renderer
can refuse every network request.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2
import segno
from markupsafe import Markup

from shared.contracts.orders import InvoiceIssued, Party

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
LONG_LOGIN = 26

Provisioning = Literal["automatic", "manual"]


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


# --- Documents ---------------------------------------------------------------------------


class Documents:
    """Builds sheets, invoices and mails for one ENT (``ent_url``, e.g. ``https://one.fr``)."""

    def __init__(self, ent_url: str, *, support_email: str = SUPPORT_EMAIL) -> None:
        self.ent_url = ent_url.rstrip("/")
        self.support_email = support_email
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
        return self._env.get_template(name).render(ent_url=self.ent_url, **context)

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
            "long_login": len(account.login) > LONG_LOGIN,
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
        return self._render(
            "sheets_detailed.html.j2", sheets=[self._sheet(account) for account in accounts]
        )

    def compact_sheets_html(self, accounts: Sequence[SheetAccount]) -> str:
        """Eight cards per A4 page (2 x 4, to cut out), with login, code and QR code."""
        sheets = [self._sheet(account) for account in accounts]
        pages = [sheets[i : i + CARDS_PER_PAGE] for i in range(0, len(sheets), CARDS_PER_PAGE)]
        return self._render("sheets_compact.html.j2", pages=pages)

    # Invoice -----------------------------------------------------------------------------

    def invoice_html(self, invoice: InvoiceIssued) -> str:
        return self.invoices_html([invoice])

    def invoices_html(self, invoices: Sequence[InvoiceIssued]) -> str:
        """Each invoice from a new page, in the given order."""
        documents = [
            {
                "invoice": invoice,
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

    def invoice_email(self, invoice: InvoiceIssued) -> MailContent:
        context = {"invoice": invoice, "support_email": self.support_email}
        return MailContent(
            subject=_one_line(f"Facture {invoice.invoice_number} — {invoice.school_name}"),
            text=self._render("mail_invoice.txt.j2", **context),
            html=self._render("mail_invoice.html.j2", **context),
        )


def _qr_svg(url: str) -> Markup:
    """The QR code of ``url`` as inline SVG, sized by CSS (viewBox only).

    Error correction M exactly, a quiet zone of 4 modules painted white. The SVG holds only
    geometry generated by segno, never the URL text, so it is safe to mark as markup.
    """
    qr = segno.make(url, error="m", boost_error=False, micro=False)
    svg = qr.svg_inline(border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr")
    return Markup(svg)  # noqa: S704 - segno output, no user text


def _address_lines(party: Party) -> list[str]:
    address = party.address
    lines = [address.line1]
    if address.line2:
        lines.append(address.line2)
    lines.append(f"{address.postal_code} {address.city}")
    return lines


__all__ = [
    "PROFILE_LABELS",
    "Documents",
    "MailContent",
    "SheetAccount",
    "activation_url",
    "format_date",
    "format_datetime",
    "format_eur",
    "format_quantity",
    "format_rate",
]
