"""A ``;``-separated file as a table: its header, its data rows with their line numbers, and
what in its shape shows real damage.

Rows of varying length are normal in ONDE's files (a parents row stops after its last
child, a pupils row ends with an extra ``;``), and so is a file without a final line break:
neither is suspicious. What is: a quoted field that holds a line break or never closes (the
copy stopped inside it, or a quote went missing), and a row with more fields than its header
(columns shifted). The partner organisations listed at the end of a parents file, from their
own header on (``"Intitulé";"Adresse Organisme";…``), are a section apart.
"""

import csv
import io
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.directory_sync.onde.model import Problem
from shared.names import fold_name

Row = tuple[int, list[str]]  # (line where the row starts, its cells as written)
MAX_COLUMNS = 500  # ONDE's widest files have 25
_NUMBERED = re.compile("[0-9]+$")


def fold_header(name: str) -> str:
    """A column name folded, without a trailing number (``"Nom de famille élève 2"`` and
    ``"Classe 1"`` name the same column as their unnumbered twins):
    ``"Nom d'usage Elève"`` -> ``"nomdusageeleve"``."""
    return _NUMBERED.sub("", fold_name(name))


@dataclass(frozen=True)
class Table:
    file: str
    header: tuple[str, ...]  # as written, stripped
    folded: tuple[str, ...]  # fold_header of each
    header_line: int
    rows: tuple[Row, ...]  # non-blank data rows before the organisations section
    width: int  # the header's fields, up to its last named one
    final_break: bool  # the text ends with a line break

    def find(self, names: Iterable[str]) -> int | None:
        """The first column whose folded name is one of ``names``."""
        wanted = frozenset(names)
        return next((i for i, name in enumerate(self.folded) if name in wanted), None)


def unmangled(name: str) -> str:
    """A column name as written before UTF-8 was read as Latin-1 (``ElÃ¨ve`` -> ``Elève``),
    so that such a file is still recognised, and held for its encoding rather than lost."""
    if not name.isascii():
        for encoding in ("cp1252", "latin-1"):
            try:
                return name.encode(encoding).decode("utf-8")
            except UnicodeError:
                continue
    return name


def _blank(row: Sequence[str]) -> bool:
    return not any(map(str.strip, row))


def _named_width(header: Sequence[str]) -> int:
    width = len(header)
    while width and not header[width - 1].strip():
        width -= 1
    return width


def _filled_width(row: Sequence[str]) -> int:
    width = len(row)
    while width and not row[width - 1].strip():
        width -= 1
    return width


def is_organisation_header(row: Sequence[str]) -> bool:
    """The header of the partner organisations section: ``"Intitulé";"Adresse Organisme";…``."""
    return (
        len(row) >= 1
        and fold_name(row[0]) == "intitule"
        and (len(row) == 1 or fold_name(row[1]).startswith("adresse"))
    )


@dataclass
class _Reading:
    records: list[tuple[int, int, list[str]]]  # (first line, last line, cells)
    error: Problem | None
    open_at_end: bool  # the last record ends inside a quoted field


def _read(text: str, file: str) -> _Reading:
    lines = list(io.StringIO(text, newline=""))  # split at \r\n, \n and \r only
    reader = csv.reader(lines, delimiter=";", quotechar='"')
    records: list[tuple[int, int, list[str]]] = []
    first = 1
    try:
        for row in reader:
            records.append((first, reader.line_num, row))
            first = reader.line_num + 1
    except csv.Error as exc:
        return _Reading(records, Problem(file, first, f"unreadable CSV: {exc}"), False)
    open_at_end = False
    if records:
        # csv reads a quote never closed to the end of the file without a word: read the
        # last record again strictly, alone (a line, mostly).
        start = records[-1][0]
        try:
            for _ in csv.reader(lines[start - 1 :], delimiter=";", strict=True):
                pass
        except csv.Error as exc:
            open_at_end = "unexpected end of data" in str(exc)
    return _Reading(records, None, open_at_end)


def _shape_problems(reading: _Reading, file: str, widths: Mapping[int, int]) -> list[Problem]:
    """Quoted fields over several lines, a last field never closed, rows wider than the
    header of their section (``widths``: the first line of each section -> its width)."""
    problems: list[Problem] = []
    spanning = [(first, last) for first, last, _ in reading.records if last > first]
    if reading.open_at_end:
        first = reading.records[-1][0]
        problems.append(
            Problem(file, first, "the file ends inside a quoted field: file truncated?")
        )
        spanning = [s for s in spanning if s[0] != first]
    if spanning:
        first, last = spanning[0]
        more = f" (and {len(spanning) - 1} other rows)" if len(spanning) > 1 else ""
        problems.append(
            Problem(
                file,
                first,
                f"a quoted field runs from line {first} to line {last}{more}: a quote "
                "missing, or rows glued together?",
            )
        )
    wider: list[tuple[int, int, int]] = []
    width = sys.maxsize  # the header itself, and the blank lines before it
    starts = sorted(widths)
    for first, _, row in reading.records:
        while starts and starts[0] <= first:
            width = widths[starts.pop(0)]
        if len(row) > width and (filled := _filled_width(row)) > width:
            wider.append((first, filled, width))
    if wider:
        line, filled, width = wider[0]
        more = f" (and {len(wider) - 1} other rows)" if len(wider) > 1 else ""
        problems.append(
            Problem(
                file,
                line,
                f"row with {filled} fields where the header has {width}{more}: columns shifted?",
            )
        )
    return problems


def read_table(text: str, file: str) -> tuple[Table | None, list[Problem], list[Problem]]:
    """(table, errors, suspicious) of a file's text. No table when nothing can be read."""
    reading = _read(text, file)
    if reading.error is not None:
        return None, [reading.error], []
    data = [(first, row) for first, _, row in reading.records if not _blank(row)]
    if not data:
        return None, [Problem(file, None, "empty file")], []
    header_line, header = data[0]
    if len(header) > MAX_COLUMNS:
        # Every row is read as wide as its header: a header of a million ";" would make
        # each short row a list of a million cells.
        message = f"a header of {len(header)} columns, more than {MAX_COLUMNS}: not read"
        return None, [Problem(file, header_line, message)], []
    widths = {header_line + 1: _named_width(header)}
    rows: list[Row] = []
    for line, row in data[1:]:
        if is_organisation_header(row):
            widths[line + 1] = _named_width(row)
            break
        rows.append((line, row))
    stripped = tuple(name.strip() for name in header)
    table = Table(
        file=file,
        header=stripped,
        folded=tuple(fold_header(unmangled(name)) for name in stripped),
        header_line=header_line,
        rows=tuple(rows),
        width=_named_width(header),
        final_break=text.endswith(("\n", "\r")),
    )
    return table, [], _shape_problems(reading, file, widths)


def cells(row: Sequence[str], width: int) -> list[str]:
    """The row's cells stripped, as many as the header has (missing ones empty), and one
    empty cell more: a column the file lacks is read at position ``width``, always empty."""
    found = list(map(str.strip, row[:width]))
    found.extend([""] * (width + 1 - len(found)))
    return found


def optional(value: str) -> str | None:
    return value or None
