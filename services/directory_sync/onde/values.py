"""Cells read as values: dates as ONDE and spreadsheets write them, emails, names' length."""

import re
from datetime import date

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


def too_long_problem(file: str, line: int, what: str, limit: int) -> Problem:
    return Problem(file, line, f"{what}: a name longer than {limit} characters, row refused")
