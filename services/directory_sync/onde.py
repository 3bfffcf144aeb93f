"""Reading one school's ONDE drop: pupils, parents and teachers files, as académies produce them.

Pure: no database, no broker, no await. ``read_drop`` reads a folder ``$ONE_FEED_DIR/<UAI>/``
and returns an ``Export`` holding what the files say, every error and warning located by
file and line, and the signs that a file was truncated or wrongly encoded (``suspicious``:
the caller holds the run for an operator, see DESIGN §4 "Safety hold").

What the files look like (ONDE "CSVExtraction-*.csv", ``;``-separated, ISO-8859-1, CRLF):

- pupils: ``Nom Elève;Nom d'usage Elève;Prénom Elève;Date naissance;Sexe;…;Cycle;Niveau;
  Classe;…`` (ONDE ends every data row with an extra ``;``);
- parents: ``Civilité Responsable;Nom usage responsable;Nom responsable;Prénom responsable;…;
  Courriel;…`` then ``Nom d'usage enfant;Nom de famille enfant;Prénom enfant;Classes enfants``
  repeated up to three times; a parent with more children spans several rows. The file may
  end with a section listing partner organisations, headed ``"Intitulé";"Adresse Organisme"``;
- teachers (written by the school): ``Civilité;Nom usage;Nom;Prénom;…;Courriel;…;Directeur;
  Classe``.

Columns are recognised by their folded names (accents, case, spaces and punctuation
removed), so their order does not matter and unknown columns are ignored. Names are kept
as written (stripped); folding is only for recognising columns and matching people.
"""

import codecs
import csv
import functools
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple

from shared.names import fold_name

# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """An error or a warning, located."""

    file: str  # file name (not the full path)
    line: int | None  # 1-based line in the file (header = line 1); None for a whole file
    message: str


# The rows of a file are NamedTuples: a school's export makes ~700 of them a run, and a
# tuple is built in a third of a frozen dataclass's time.
class Pupil(NamedTuple):
    last_name: str
    usage_name: str | None
    first_name: str
    birth_date: date
    sex: str | None
    cycle: str | None
    level: str | None
    class_name: str
    line: int


class ChildRef(NamedTuple):
    """A child as a parents row names him.

    ``line`` is the parents-file line naming this child; ``pupil_line`` is the line, in the
    pupils file, of the one pupil he was matched to (``None`` when no pupil or several
    matched: the error or warning says which).
    """

    last_name: str
    usage_name: str | None
    first_name: str
    class_name: str | None
    line: int | None = None
    pupil_line: int | None = None

    def matched(self, pupil_line: int) -> "ChildRef":
        # Spelt out: dataclasses.replace costs more than the rest of the matching.
        return ChildRef(
            self.last_name, self.usage_name, self.first_name, self.class_name, self.line, pupil_line
        )


class Parent(NamedTuple):
    civility: str | None
    last_name: str
    usage_name: str | None
    first_name: str
    email: str | None
    children: tuple[ChildRef, ...]
    lines: tuple[int, ...]  # a parent with more than three children spans several rows

    def with_children(self, children: tuple[ChildRef, ...]) -> "Parent":
        return Parent(
            self.civility,
            self.last_name,
            self.usage_name,
            self.first_name,
            self.email,
            children,
            self.lines,
        )


class Teacher(NamedTuple):
    civility: str | None
    last_name: str
    usage_name: str | None
    first_name: str
    email: str | None
    director: bool
    class_name: str | None
    line: int


@dataclass(frozen=True)
class Export:
    uai: str
    pupils: tuple[Pupil, ...]
    parents: tuple[Parent, ...]
    teachers: tuple[Teacher, ...]
    classes: tuple[tuple[str, str | None], ...]  # (class name, level or None), sorted by name
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    suspicious: tuple[Problem, ...]  # looks truncated or wrongly encoded: hold the run

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------------------------------
# Folding
# ---------------------------------------------------------------------------------------


def fold_header(name: str) -> str:
    """A column name folded: ``"Nom d'usage Elève"`` -> ``"nomdusageeleve"``."""
    return fold_name(name)


# ---------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------

# Bytes 0x80-0x9F are control characters in ISO-8859-1; Windows-1252, which French office
# software writes while calling it "Latin-1", puts letters there (Œ, œ, ’, €…). Those are
# taken as Windows-1252; the five bytes it leaves undefined stay C1 controls (suspicious).
_CP1252_C1 = {
    byte: char
    for byte in range(0x80, 0xA0)
    if (char := bytes([byte]).decode("cp1252", errors="ignore"))
}
_C1_TO_CP1252 = str.maketrans({chr(byte): char for byte, char in _CP1252_C1.items()})
# How a UTF-8 continuation byte (0x80-0xBF) looks once misread as Latin-1 or Windows-1252.
_CONTINUATIONS = "".join(
    sorted({chr(byte) for byte in range(0x80, 0xC0)} | set(_CP1252_C1.values()))
)
# "é" written as UTF-8 then read as Latin-1 shows as "Ã©", "É" as "Ã‰", "œ" as "Å“", "’" as
# "â€™": a lead byte's glyph followed by a continuation byte's glyph.
_CONTINUATION = frozenset(_CONTINUATIONS)
_ENCODING_CHECKS = {
    "mojibake": "text encoded twice (mojibake such as 'Ã©' for 'é')",
    "c1": "control characters U+0080-U+009F",
    "nul": "NUL bytes",
    "replacement": "replacement characters U+FFFD (data already lost)",
}
# Every suspicious sequence starts with one of these: a single scan of a character class
# (5 ns a character) finds them all, where one regular expression per check, the mojibake
# one an alternation, took ~0.4 ms a file.
_SUSPECT_CHARACTER = re.compile("[ÂÃÅâ\x00\u0080-\u009f\ufffd]")


@dataclass
class _Finding:
    count: int
    position: int
    sample: str


def _encoding_findings(text: str) -> dict[str, _Finding]:
    """Each kind of suspicious sequence found (see ``_ENCODING_CHECKS``), with its count
    and first occurrence. Mojibake is a lead glyph (Â, Ã, Å) then a continuation byte's
    glyph, or "â€"; a C1 character counts as such even inside mojibake."""
    found: dict[str, _Finding] = {}
    for hit in _SUSPECT_CHARACTER.finditer(text):
        char, at = hit.group(), hit.start()
        sample = char
        if char in "ÂÃÅâ":
            sample = text[at : at + 2]
            following = sample[1:]
            if not (following == "€" if char == "â" else following in _CONTINUATION):
                continue
            kind = "mojibake"
        else:
            kind = {"\x00": "nul", "\ufffd": "replacement"}.get(char, "c1")
        if kind in found:
            found[kind].count += 1
        else:
            found[kind] = _Finding(1, at, sample)
    return found


def _line_at(text: str, position: int) -> int:
    prefix = text[:position]
    return prefix.count("\n") + prefix.count("\r") - prefix.count("\r\n") + 1


_C1_BYTES = bytes(range(0x80, 0xA0))


def _latin1(raw: bytes) -> str:
    text = raw.decode("iso-8859-1")
    has_c1 = len(raw.translate(None, _C1_BYTES)) != len(raw)  # 16 us a file; a regex, 100
    return text.translate(_C1_TO_CP1252) if has_c1 else text


def decode(raw: bytes, file: str) -> tuple[str, list[Problem]]:
    """The file's text, and why its encoding looks wrong (if it does).

    UTF-8 (with or without a byte order mark) when the bytes decode strictly as UTF-8,
    ISO-8859-1 otherwise (0x80-0x9F read as Windows-1252). Mojibake (``Ã©``, ``Ã¨``…: UTF-8
    read as Latin-1 and written again), C1 control characters, NUL bytes, replacement
    characters and UTF-16 are reported as "suspicious encoding".
    """
    problems: list[Problem] = []
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = raw.decode("utf-16", errors="replace")
        problems.append(
            Problem(file, None, "suspicious encoding: UTF-16 file (expected ISO-8859-1)")
        )
    elif raw.startswith(codecs.BOM_UTF8):
        body = raw[len(codecs.BOM_UTF8) :]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = _latin1(body)
            problems.append(
                Problem(
                    file,
                    _line_at(text, exc.start),
                    "suspicious encoding: starts with a UTF-8 byte order mark "
                    f"but byte {exc.start + len(codecs.BOM_UTF8)} is not UTF-8",
                )
            )
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _latin1(raw)

    findings = _encoding_findings(text)
    for kind, what in _ENCODING_CHECKS.items():
        if (finding := findings.get(kind)) is not None:
            problems.append(
                Problem(
                    file,
                    _line_at(text, finding.position),
                    f"suspicious encoding: {what}, {finding.count} occurrence(s), "
                    f"first {finding.sample!r}",
                )
            )
    return text, problems
    for pattern, what in _ENCODING_CHECKS:
        found = pattern.search(text)
        if found is not None:
            count = len(pattern.findall(text))
            problems.append(
                Problem(
                    file,
                    _line_at(text, found.start()),
                    f"suspicious encoding: {what}, {count} occurrence(s), first {found.group()!r}",
                )
            )
    return text, problems


# ---------------------------------------------------------------------------------------
# CSV reading
# ---------------------------------------------------------------------------------------


class _Unreadable(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields) for every record, blank ones included."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            yield start, row
    except csv.Error as exc:
        raise _Unreadable(line, f"unreadable CSV: {exc}") from exc


@functools.lru_cache(maxsize=4)  # a drop's files, read by check_truncation then parsed
def _all_records(text: str) -> tuple[tuple[tuple[int, list[str]], ...], _Unreadable | None]:
    """Every record of ``text``, and what stopped the reading if something did."""
    records: list[tuple[int, list[str]]] = []
    try:
        records.extend(_records(text))
    except _Unreadable as exc:
        return tuple(records), exc
    return tuple(records), None


def _blank(row: Sequence[str]) -> bool:
    return not any(map(str.strip, row))


def _is_organisation_header(row: Sequence[str]) -> bool:
    """The header of the partner organisations section: ``"Intitulé";"Adresse Organisme";…``."""
    return (
        len(row) >= 1
        and fold_header(row[0]) == "intitule"
        and (len(row) == 1 or fold_header(row[1]).startswith("adresse"))
    )


@dataclass(frozen=True)
class _Sheet:
    header: list[str]  # as written
    header_line: int
    rows: list[tuple[int, list[str]]]  # non-blank data rows


def _sheet(text: str, file: str) -> tuple[_Sheet | None, list[Problem]]:
    """The header and data rows of a file, or why it cannot be read at all."""
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    records, unreadable = _all_records(text)
    if unreadable is not None:
        return None, [Problem(file, unreadable.line, str(unreadable))]
    for line, row in records:
        if _blank(row):
            continue
        if header is None:
            header, header_line = row, line
        else:
            rows.append((line, row))
    if header is None:
        return None, [Problem(file, None, "empty file")]
    if len(header) == 1 and ("," in header[0] or "\t" in header[0]):
        return None, [
            Problem(file, header_line, "columns are not separated by ';' (found ',' or a tab)")
        ]
    return _Sheet(header, header_line, rows), []


@dataclass(frozen=True)
class _Column:
    label: str  # as ONDE writes it, for messages
    names: tuple[str, ...]  # folded names accepted
    mandatory: bool = False


def _columns(
    sheet: _Sheet, specs: Mapping[str, _Column], file: str
) -> tuple[dict[str, int], list[Problem]]:
    folded = [fold_header(name) for name in sheet.header]
    found: dict[str, int] = {}
    errors: list[Problem] = []
    for key, spec in specs.items():
        index = next((i for i, name in enumerate(folded) if name in spec.names), None)
        if index is not None:
            found[key] = index
        elif spec.mandatory:
            errors.append(
                Problem(file, sheet.header_line, f"mandatory column '{spec.label}' missing")
            )
    return found, errors


def _positions(
    found: Mapping[str, int], specs: Mapping[str, "_Column"], width: int
) -> dict[str, int]:
    """Every column's position; an absent one's is ``width``: the empty cell ``_cells``
    adds after the header's width."""
    return {key: found.get(key, width) for key in specs}


def _cells(row: Sequence[str], width: int) -> list[str]:
    """The row's cells stripped, as many as the header has (missing ones empty), and one
    empty cell more (see ``_positions``): each cell is then read by position alone."""
    cells = list(map(str.strip, row[:width]))
    cells.extend([""] * (width + 1 - len(cells)))
    return cells


def _optional(value: str) -> str | None:
    return value or None


_DATE = re.compile("([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})|([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _parse_date(text: str) -> date | None:
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    day, month, year = match.group(1, 2, 3) if match.group(1) is not None else match.group(6, 5, 4)
    try:
        parsed = date(int(year), int(month), int(day))
    except ValueError:
        return None
    return parsed if parsed.year >= 1900 else None


_EMAIL = re.compile(r"[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+")


def _email(value: str, file: str, line: int, warnings: list[Problem]) -> str | None:
    if not value:
        return None
    if _EMAIL.fullmatch(value) is None:
        warnings.append(Problem(file, line, f"invalid email {value!r} ignored"))
        return None
    return value


def _person(first: str, last: str) -> str:
    return f"{first} {last}".strip()


# ---------------------------------------------------------------------------------------
# Pupils
# ---------------------------------------------------------------------------------------

PUPIL_COLUMNS: Mapping[str, _Column] = {
    "last_name": _Column("Nom Elève", ("nomeleve", "nomdefamilleeleve", "nomfamilleeleve"), True),
    "usage_name": _Column("Nom d'usage Elève", ("nomdusageeleve", "nomusageeleve")),
    "first_name": _Column("Prénom Elève", ("prenomeleve",), True),
    "birth_date": _Column("Date naissance", ("datenaissance", "datedenaissance"), True),
    "sex": _Column("Sexe", ("sexe",)),
    "cycle": _Column("Cycle", ("cycle",)),
    "level": _Column("Niveau", ("niveau",)),
    "class_name": _Column("Classe", ("classe", "libelleclasse"), True),
}


def parse_pupils(text: str, file: str) -> tuple[list[Pupil], list[Problem], list[Problem]]:
    """(pupils, errors, warnings) of a pupils file. A pupil always has a birth date."""
    sheet, errors = _sheet(text, file)
    if sheet is None:
        return [], errors, []
    col, errors = _columns(sheet, PUPIL_COLUMNS, file)
    if errors:
        return [], errors, []
    width = len(sheet.header)
    at = _positions(col, PUPIL_COLUMNS, width)
    pupils: list[Pupil] = []
    warnings: list[Problem] = []
    seen: dict[tuple[str, str, date], int] = {}
    for line, row in sheet.rows:
        cells = _cells(row, width)
        last, first = cells[at["last_name"]], cells[at["first_name"]]
        raw_birth, class_name = cells[at["birth_date"]], cells[at["class_name"]]
        missing = [
            label for label, value in (("Nom Elève", last), ("Prénom Elève", first)) if not value
        ]
        if missing:
            errors.append(Problem(file, line, f"pupil without {' and '.join(missing)}"))
            continue
        who = _person(first, last)
        if not raw_birth:
            errors.append(Problem(file, line, f"pupil {who}: birth date missing"))
            continue
        birth = _parse_date(raw_birth)
        if birth is None:
            errors.append(
                Problem(file, line, f"pupil {who}: invalid birth date {raw_birth!r} (dd/mm/yyyy)")
            )
            continue
        if not class_name:
            warnings.append(Problem(file, line, f"pupil {who} has no class: not imported"))
            continue
        key = (fold_name(last), fold_name(first), birth)
        if key in seen:
            warnings.append(
                Problem(file, line, f"pupil {who} born {raw_birth} already on line {seen[key]}")
            )
        seen.setdefault(key, line)
        pupils.append(
            Pupil(
                last_name=last,
                usage_name=_optional(cells[at["usage_name"]]),
                first_name=first,
                birth_date=birth,
                sex=_optional(cells[at["sex"]]),
                cycle=_optional(cells[at["cycle"]]),
                level=_optional(cells[at["level"]]),
                class_name=class_name,
                line=line,
            )
        )
    if not pupils and not errors:
        errors.append(Problem(file, None, "no pupil in the pupils file"))
    return pupils, errors, warnings


# ---------------------------------------------------------------------------------------
# Parents
# ---------------------------------------------------------------------------------------

PARENT_COLUMNS: Mapping[str, _Column] = {
    "civility": _Column("Civilité Responsable", ("civiliteresponsable", "civilite")),
    "usage_name": _Column("Nom usage responsable", ("nomusageresponsable", "nomdusageresponsable")),
    "last_name": _Column(
        "Nom responsable", ("nomresponsable", "nomdefamilleresponsable"), mandatory=True
    ),
    "first_name": _Column("Prénom responsable", ("prenomresponsable",), mandatory=True),
    "email": _Column("Courriel", ("courriel", "courrielresponsable", "email", "mail", "mel")),
}
# The four columns repeated for each child on a parents row.
CHILD_COLUMNS: Mapping[str, _Column] = {
    "usage_name": _Column("Nom d'usage enfant", ("nomdusageenfant", "nomusageenfant")),
    "last_name": _Column(
        "Nom de famille enfant", ("nomdefamilleenfant", "nomfamilleenfant", "nomenfant"), True
    ),
    "first_name": _Column("Prénom enfant", ("prenomenfant",), True),
    "class_name": _Column(
        "Classes enfants", ("classesenfants", "classesenfant", "classeenfants", "classeenfant")
    ),
}


def _child_groups(header: Sequence[str]) -> list[dict[str, int]]:
    """Column positions of each child's group, in order.

    The group's columns share names with the other groups, so they are told apart by
    position: a column whose kind the current group already has starts the next group.
    """
    groups: list[dict[str, int]] = []
    current: dict[str, int] = {}
    for index, name in enumerate(header):
        folded = fold_header(name)
        kind = next((k for k, spec in CHILD_COLUMNS.items() if folded in spec.names), None)
        if kind is None:
            continue
        if kind in current:
            groups.append(current)
            current = {}
        current[kind] = index
    if current:
        groups.append(current)
    return groups


@dataclass
class _ParentDraft:
    civility: str | None
    last_name: str
    usage_name: str | None
    first_name: str
    email: str | None
    children: list[ChildRef]
    lines: list[int]


def parse_parents(text: str, file: str) -> tuple[list[Parent], list[Problem], list[Problem]]:
    """(parents, errors, warnings) of a parents file.

    The rows of one parent (same folded names, same email) make one parent: ONDE writes
    a fourth child on a second row. The partner-organisation section at the end of the
    file, from its ``"Intitulé";"Adresse Organisme"`` header on, is not parents. Children
    are not matched to pupils here (``link_children`` does it).
    """
    sheet, errors = _sheet(text, file)
    if sheet is None:
        return [], errors, []
    col, errors = _columns(sheet, PARENT_COLUMNS, file)
    groups = _child_groups(sheet.header)
    for kind, spec in CHILD_COLUMNS.items():
        if spec.mandatory and not any(kind in group for group in groups):
            errors.append(
                Problem(file, sheet.header_line, f"mandatory column '{spec.label}' missing")
            )
    if errors:
        return [], errors, []
    warnings: list[Problem] = []
    if "email" not in col:
        warnings.append(
            Problem(file, sheet.header_line, "column 'Courriel' missing: no parent email")
        )
    width = len(sheet.header)
    at = _positions(col, PARENT_COLUMNS, width)
    child_positions = [_positions(group, CHILD_COLUMNS, width) for group in groups]
    drafts: dict[tuple[str, str, str, str], _ParentDraft] = {}
    for line, row in sheet.rows:
        if _is_organisation_header(row):
            break
        cells = _cells(row, width)
        last, first = cells[at["last_name"]], cells[at["first_name"]]
        usage = _optional(cells[at["usage_name"]])
        if not first or not (last or usage):
            errors.append(
                Problem(file, line, "parent without Nom responsable or Prénom responsable")
            )
            continue
        last = last or (usage or "")
        children: list[ChildRef] = []
        for number, group in enumerate(child_positions, start=1):
            child_last, child_first = (
                cells[group["last_name"]],
                cells[group["first_name"]],
            )
            child_usage = cells[group["usage_name"]]
            child_class = cells[group["class_name"]]
            if not (child_last or child_first or child_usage or child_class):
                continue
            if not child_first or not (child_last or child_usage):
                errors.append(
                    Problem(
                        file,
                        line,
                        f"parent {_person(first, last)}: child {number} has no name or first name",
                    )
                )
                continue
            children.append(
                ChildRef(
                    last_name=child_last or child_usage,
                    usage_name=_optional(child_usage),
                    first_name=child_first,
                    class_name=_optional(child_class),
                    line=line,
                )
            )
        email = _email(cells[at["email"]], file, line, warnings)
        key = (fold_name(last), fold_name(usage or ""), fold_name(first), (email or "").casefold())
        draft = drafts.get(key)
        if draft is None:
            drafts[key] = _ParentDraft(
                civility=_optional(cells[at["civility"]]),
                last_name=last,
                usage_name=usage,
                first_name=first,
                email=email,
                children=children,
                lines=[line],
            )
        else:
            draft.children.extend(children)
            draft.lines.append(line)
    parents: list[Parent] = []
    for draft in drafts.values():
        unique: dict[tuple[str, str, str, str], ChildRef] = {}
        for child in draft.children:
            child_key = (
                fold_name(child.last_name),
                fold_name(child.usage_name or ""),
                fold_name(child.first_name),
                fold_name(child.class_name or ""),
            )
            unique.setdefault(child_key, child)
        if not unique:
            warnings.append(
                Problem(
                    file,
                    draft.lines[0],
                    f"parent {_person(draft.first_name, draft.last_name)} has no child: ignored",
                )
            )
            continue
        parents.append(
            Parent(
                civility=draft.civility,
                last_name=draft.last_name,
                usage_name=draft.usage_name,
                first_name=draft.first_name,
                email=draft.email,
                children=tuple(unique.values()),
                lines=tuple(draft.lines),
            )
        )
    return parents, errors, warnings


def link_children(
    pupils: Sequence[Pupil], parents: Sequence[Parent], file: str
) -> tuple[list[Parent], list[Problem], list[Problem]]:
    """Each parent's children matched to the export's pupils: (parents, errors, warnings).

    A child is the pupil with the same folded first name, the same folded last or usage
    name, and the same class when the row gives one. No pupil: an error. Several: a
    warning, and the child is left unlinked. A child whose name matches exactly one pupil
    of the school but whose class differs is linked, with a warning.
    """
    index: dict[tuple[str, str], list[Pupil]] = {}
    for pupil in pupils:
        first = fold_name(pupil.first_name)
        for name in {fold_name(pupil.last_name), fold_name(pupil.usage_name or "")} - {""}:
            index.setdefault((first, name), []).append(pupil)
    errors: list[Problem] = []
    warnings: list[Problem] = []
    linked: list[Parent] = []
    for parent in parents:
        children: list[ChildRef] = []
        for child in parent.children:
            first = fold_name(child.first_name)
            names = {fold_name(child.last_name), fold_name(child.usage_name or "")} - {""}
            if len(names) == 1:  # the index lists pupils in file order, each once
                [name] = names
                candidates = index.get((first, name), [])
            else:
                by_line = {p.line: p for name in names for p in index.get((first, name), [])}
                candidates = sorted(by_line.values(), key=lambda p: p.line)
            wanted_class = fold_name(child.class_name or "")
            in_class = [p for p in candidates if fold_name(p.class_name) == wanted_class]
            matches = in_class if wanted_class else candidates
            if len(matches) == 1:  # most children: no message to write
                children.append(child.matched(matches[0].line))
                continue
            who = _person(child.first_name, child.last_name)
            where = f" in class {child.class_name!r}" if wanted_class else ""
            if len(matches) > 1:
                lines = ", ".join(str(p.line) for p in matches)
                warnings.append(
                    Problem(
                        file,
                        child.line,
                        f"child {who}{where} matches {len(matches)} pupils "
                        f"(pupils file lines {lines}): not linked",
                    )
                )
                children.append(child)
            elif len(candidates) == 1:
                pupil = candidates[0]
                warnings.append(
                    Problem(
                        file,
                        child.line,
                        f"child {who}: class {child.class_name!r} differs from the pupils "
                        f"file ({pupil.class_name!r}, line {pupil.line}); linked to that pupil",
                    )
                )
                children.append(child.matched(pupil.line))
            else:
                elsewhere = f" ({len(candidates)} homonyms in other classes)" if candidates else ""
                errors.append(
                    Problem(
                        file,
                        child.line,
                        f"child {who}{where} matches no pupil of the pupils file{elsewhere}",
                    )
                )
                children.append(child)
        linked.append(parent.with_children(tuple(children)))
    return linked, errors, warnings


# ---------------------------------------------------------------------------------------
# Teachers
# ---------------------------------------------------------------------------------------

TEACHER_COLUMNS: Mapping[str, _Column] = {
    "civility": _Column("Civilité", ("civilite",)),
    "usage_name": _Column("Nom usage", ("nomusage", "nomdusage")),
    "last_name": _Column("Nom", ("nom", "nomdefamille"), mandatory=True),
    "first_name": _Column("Prénom", ("prenom",), mandatory=True),
    "email": _Column("Courriel", ("courriel", "email", "mail", "mel", "adressemail")),
    "director": _Column("Directeur", ("directeur", "directrice", "direction")),
    "class_name": _Column("Classe", ("classe", "classes")),
}
_YES = frozenset({"oui", "o", "yes", "y", "1", "true", "vrai", "x", "directeur", "directrice"})
_NO = frozenset({"", "non", "n", "no", "0", "false", "faux"})


def parse_teachers(text: str, file: str) -> tuple[list[Teacher], list[Problem], list[Problem]]:
    """(teachers, errors, warnings) of the teachers file the school writes."""
    sheet, errors = _sheet(text, file)
    if sheet is None:
        return [], errors, []
    col, errors = _columns(sheet, TEACHER_COLUMNS, file)
    if errors:
        return [], errors, []
    width = len(sheet.header)
    at = _positions(col, TEACHER_COLUMNS, width)
    teachers: list[Teacher] = []
    warnings: list[Problem] = []
    for line, row in sheet.rows:
        cells = _cells(row, width)
        last, first = cells[at["last_name"]], cells[at["first_name"]]
        usage = _optional(cells[at["usage_name"]])
        if not first or not (last or usage):
            errors.append(Problem(file, line, "teacher without Nom or Prénom"))
            continue
        last = last or (usage or "")
        raw_director = cells[at["director"]]
        director = fold_name(raw_director) in _YES
        if not director and fold_name(raw_director) not in _NO:
            warnings.append(
                Problem(
                    file, line, f"Directeur {raw_director!r} is neither Oui nor Non: taken as Non"
                )
            )
        teachers.append(
            Teacher(
                civility=_optional(cells[at["civility"]]),
                last_name=last,
                usage_name=usage,
                first_name=first,
                email=_email(cells[at["email"]], file, line, warnings),
                director=director,
                class_name=_optional(cells[at["class_name"]]),
                line=line,
            )
        )
    return teachers, errors, warnings


# ---------------------------------------------------------------------------------------
# Truncation
# ---------------------------------------------------------------------------------------


def _width(header: Sequence[str]) -> int:
    """Fields a header declares, not counting empty ones after a trailing ``;``."""
    width = len(header)
    while width and not header[width - 1].strip():
        width -= 1
    return width


def check_truncation(text: str, file: str) -> list[Problem]:
    """Signs that a file was cut short: the caller holds the run ("suspicious").

    - an odd number of ``"``: a quoted field never closed;
    - the last row has fewer fields than its header and the file does not end with a line
      break, or the last row is shorter than every other row of its section.

    Sections: the header, then the partner organisations header of a parents file.
    """
    problems: list[Problem] = []
    if text.count('"') % 2:
        problems.append(Problem(file, None, "a quoted field is never closed: file truncated?"))
    all_records, unreadable = _all_records(text)
    if unreadable is not None:
        return problems
    records = [(line, row) for line, row in all_records if not _blank(row)]
    if len(records) < 2:
        return problems
    header = records[0][1]
    others: list[int] = []
    for _, row in records[1:-1]:
        if _is_organisation_header(row):
            header, others = row, []
        else:
            others.append(len(row))
    line, last = records[-1]
    width = _width(header)
    if len(last) >= width or _is_organisation_header(last):
        return problems
    ends_with_break = text.endswith(("\n", "\r"))
    if not ends_with_break:
        problems.append(
            Problem(
                file,
                line,
                f"last row has {len(last)} of {width} fields and the file does not end "
                "with a line break: file truncated?",
            )
        )
    elif not others or len(last) < min(others):
        problems.append(
            Problem(
                file,
                line,
                f"last row has {len(last)} of {width} fields, fewer than any other row: "
                "file truncated?",
            )
        )
    return problems


# ---------------------------------------------------------------------------------------
# The drop
# ---------------------------------------------------------------------------------------

_UAI = re.compile("[0-9]{7}[A-Z]")
_UAI_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
# Kinds of file, by a word of their folded name; checked in this order ("responsables
# des élèves" is a parents file).
_KINDS = (("teachers", "enseignant"), ("parents", "responsable"), ("pupils", "eleve"))
_TEMPORARY = (".part", ".tmp", ".filepart", ".crdownload", "~")


def _valid_uai(uai: str) -> bool:
    return _UAI.fullmatch(uai) is not None and _UAI_LETTERS[int(uai[:7]) % 23] == uai[7]


def _classes(
    pupils: Sequence[Pupil], file: str, warnings: list[Problem]
) -> tuple[tuple[str, str | None], ...]:
    levels: dict[str, set[str | None]] = {}
    for pupil in pupils:
        levels.setdefault(pupil.class_name, set()).add(pupil.level)
    by_fold: dict[str, str] = {}
    for name in sorted(levels):
        other = by_fold.setdefault(fold_name(name), name)
        if other != name:
            warnings.append(
                Problem(file, None, f"classes {other!r} and {name!r} differ only by spelling")
            )
    # A class of several levels ("CE1-CE2") has no single level.
    return tuple(
        (name, next(iter(found)) if len(found) == 1 else None)
        for name, found in sorted(levels.items())
    )


def read_drop(folder: Path) -> Export:
    """Read ``$ONE_FEED_DIR/<UAI>/``: the UAI is the folder name.

    Files are recognised by ``eleves``, ``responsables`` and ``enseignants`` in their names
    (case and accents ignored). The pupils file is mandatory; parents and teachers files
    are optional (a warning when absent). Hidden and temporary files are ignored.
    """
    uai = folder.name.strip().upper()
    errors: list[Problem] = []
    warnings: list[Problem] = []
    suspicious: list[Problem] = []

    def export(
        pupils: Sequence[Pupil] = (),
        parents: Sequence[Parent] = (),
        teachers: Sequence[Teacher] = (),
        classes: tuple[tuple[str, str | None], ...] = (),
    ) -> Export:
        return Export(
            uai=uai,
            pupils=tuple(pupils),
            parents=tuple(parents),
            teachers=tuple(teachers),
            classes=classes,
            errors=tuple(errors),
            warnings=tuple(warnings),
            suspicious=tuple(suspicious),
        )

    if not folder.is_dir():
        errors.append(Problem(folder.name, None, f"drop folder {str(folder)!r} missing"))
        return export()
    if not _valid_uai(uai):
        errors.append(Problem(folder.name, None, f"folder name {folder.name!r} is not a UAI"))

    found: dict[str, list[Path]] = {kind: [] for kind, _ in _KINDS}
    for path in sorted(folder.iterdir()):
        name = path.name
        if not path.is_file() or name.startswith(".") or name.lower().endswith(_TEMPORARY):
            continue
        folded = fold_name(name)
        kind = next((k for k, word in _KINDS if word in folded), None)
        if kind is None:
            warnings.append(
                Problem(name, None, "file ignored: not a pupils, parents or teachers file")
            )
        else:
            found[kind].append(path)

    texts: dict[str, tuple[str, str]] = {}  # kind -> (file name, text)
    labels = {
        "pupils": "pupils (eleves)",
        "parents": "parents (responsables)",
        "teachers": "teachers (enseignants)",
    }
    for kind, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            errors.append(Problem(folder.name, None, f"several {labels[kind]} files: {names}"))
            continue
        if not paths:
            if kind == "pupils":
                errors.append(Problem(folder.name, None, "no pupils file (…eleves…) in the drop"))
            else:
                warnings.append(Problem(folder.name, None, f"no {labels[kind]} file in the drop"))
            continue
        path = paths[0]
        raw = path.read_bytes()
        if not raw.strip():
            errors.append(Problem(path.name, None, "empty file"))
            continue
        text, problems = decode(raw, path.name)
        suspicious.extend(problems)
        suspicious.extend(check_truncation(text, path.name))
        texts[kind] = (path.name, text)

    pupils: list[Pupil] = []
    parents: list[Parent] = []
    teachers: list[Teacher] = []
    if "pupils" in texts:
        pupils_file, text = texts["pupils"]
        pupils, errs, warns = parse_pupils(text, pupils_file)
        errors.extend(errs)
        warnings.extend(warns)
    if "parents" in texts:
        parents_file, text = texts["parents"]
        parents, errs, warns = parse_parents(text, parents_file)
        errors.extend(errs)
        warnings.extend(warns)
        if pupils:
            parents, errs, warns = link_children(pupils, parents, parents_file)
            errors.extend(errs)
            warnings.extend(warns)
    classes = _classes(pupils, texts["pupils"][0], warnings) if pupils else ()
    if "teachers" in texts:
        teachers_file, text = texts["teachers"]
        teachers, errs, warns = parse_teachers(text, teachers_file)
        errors.extend(errs)
        warnings.extend(warns)
        known = {fold_name(name) for name, _ in classes}
        for teacher in teachers:
            if pupils and teacher.class_name and fold_name(teacher.class_name) not in known:
                warnings.append(
                    Problem(
                        teachers_file,
                        teacher.line,
                        f"teacher {_person(teacher.first_name, teacher.last_name)}: class "
                        f"{teacher.class_name!r} has no pupil in the pupils file",
                    )
                )
    return export(pupils, parents, teachers, classes)
