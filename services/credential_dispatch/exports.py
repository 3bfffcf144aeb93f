"""Logins and activation codes as a CSV file that opens cleanly in a spreadsheet.

What French spreadsheets expect: UTF-8 with a byte order mark (without it Excel reads the
file as Windows-1252 and mangles every accent), ``;`` as the separator (the list separator
of a French locale, where ``,`` is the decimal mark), CRLF line ends, quotes doubled by the
csv module when a value holds ``;``, a quote or a line break.

A name typed by a user is data, never a formula: a cell that a spreadsheet would evaluate
(starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, or a line feed or a
full-width ``＝ ＋ － ＠`` that some spreadsheets also read as formulas) gets a leading
apostrophe, which makes it text (OWASP, "CSV injection"). ``+33…`` thus reads ``'+33…``.
"""

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from services.credential_dispatch.documents import PROFILE_LABELS

HEADER = ("Nom", "Prénom", "Profil", "Classes", "Identifiant", "Code d'activation", "État")
ACTIVATED = "Compte activé"
TO_ACTIVATE = "À activer"
NO_CODE = "Code à renouveler"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


@dataclass(frozen=True)
class ExportRow:
    """One account in the export."""

    last_name: str
    first_name: str
    profile: str  # administrator|teacher|personnel|student|relative
    classes: tuple[str, ...]
    login: str
    activation_code: str | None
    activated: bool


def safe_cell(value: str) -> str:
    """``value`` as a spreadsheet shows it as text: an apostrophe before a formula start."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _cells(row: ExportRow) -> list[str]:
    if row.activated:
        code, state = "", ACTIVATED
    elif row.activation_code:
        code, state = row.activation_code, TO_ACTIVATE
    else:
        code, state = "", NO_CODE
    values = (
        row.last_name,
        row.first_name,
        PROFILE_LABELS.get(row.profile, row.profile),
        ", ".join(row.classes),
        row.login,
        code,
        state,
    )
    return [safe_cell(value) for value in values]


def credentials_csv(rows: Sequence[ExportRow]) -> bytes:
    """The export, rows in the given order: UTF-8 with BOM, ``;``, CRLF, French header.

    An activated account has no code (it is spent) and reads "Compte activé"; an account
    whose code is missing reads "Code à renouveler".
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", quotechar='"', lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(_cells(row) for row in rows)
    return out.getvalue().encode("utf-8-sig")


__all__ = ["HEADER", "ExportRow", "credentials_csv", "safe_cell"]
