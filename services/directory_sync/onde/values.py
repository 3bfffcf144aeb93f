"""Cells read as values: dates as ONDE and spreadsheets write them, emails, names' length."""

import re
from collections.abc import Mapping
from datetime import date
from typing import NamedTuple

from services.directory_sync.onde.model import Problem

# 17/08/2006, 17-08-2006, 17.08.2006 and 2006-08-17 (ONDE's two), with a time of day after
# them when a spreadsheet saved the cell as a date-time.
_DATE = re.compile(
    r"(?:([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})|([0-9]{4})-([0-9]{1,2})-([0-9]{1,2}))"
    r"(?:[ T]0?0:00(?::00)?)?"
)


def parse_date(text: str) -> date | None:
    found = _DATE.fullmatch(text)
    if found is None:
        return None
    if found.group(1) is not None:
        day, month, year = found.group(1, 2, 3)
    else:
        year, month, day = found.group(4, 5, 6)
    try:
        parsed = date(int(year), int(month), int(day))
    except ValueError:
        return None
    return parsed if parsed.year >= 1900 else None


_EMAIL = re.compile(r"[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+")


def email(value: str, file: str, line: int, warnings: list[Problem]) -> str | None:
    """The cell as an email, or None (with a warning when it is not one)."""
    if not value:
        return None
    if _EMAIL.fullmatch(value) is None or len(value) > 254:
        warnings.append(Problem(file, line, f"invalid email {value[:80]!r} ignored"))
        return None
    return value


def too_long(limit: int, *names: str) -> bool:
    return max(map(len, names)) > limit


class Names(NamedTuple):
    last: str  # the family name, or the usage name when the row gives no other
    first: str
    usage: str


def names_of(
    cells: list[str],
    at: Mapping[str, int],
    *,
    who: str,
    needed: str,
    limit: int,
    where: tuple[str, int],
    errors: list[Problem],
    more: tuple[str, ...] = (),
) -> Names | None:
    """The row's person's names, or None with an error: a first name and a family or usage
    name are needed, none of them (nor ``more``) longer than ``limit``."""
    last, first, usage = cells[at["last_name"]], cells[at["first_name"]], cells[at["usage_name"]]
    file, line = where
    if not first or not (last or usage):
        errors.append(Problem(file, line, f"{who} without {needed}"))
        return None
    last = last or usage
    if too_long(limit, last, first, usage, *more):
        errors.append(too_long_problem(file, line, who, limit))
        return None
    return Names(last, first, usage)


def too_long_problem(file: str, line: int, who: str, limit: int) -> Problem:
    return Problem(file, line, f"{who}: a name longer than {limit} characters, row refused")
