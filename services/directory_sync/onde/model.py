"""What the reader gives: the persons of a school's drop, and every problem found, located.

The rows are NamedTuples: a school's export makes ~700 of them a run, and a tuple is built
in a third of a frozen dataclass's time.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, NamedTuple

Kind = Literal["pupils", "parents", "teachers"]
KINDS: tuple[Kind, ...] = ("pupils", "parents", "teachers")


@dataclass(frozen=True)
class Problem:
    """An error or a warning, located."""

    file: str  # file name (not the full path)
    line: int | None  # 1-based line in the file (header = line 1); None for a whole file
    message: str


@dataclass(frozen=True)
class Drop:
    """A school's drop as its folder held it, read once: what the run digests and parses."""

    uai: str
    files: tuple[tuple[str, bytes], ...]  # (name, bytes) of each regular file, by name
    refused: tuple[Problem, ...] = ()  # other entries, refused: the run is rejected
    ignored: tuple[Problem, ...] = ()  # other entries, left aside: the run goes on

    def digest(self) -> str:
        """sha256 of what the drop holds: equal digests, equal exports. The files' names are
        left out (a download's name changes from night to night, ``CSVExtraction(3).csv``,
        and files are known by their header); the entries refused or ignored are in."""
        hashed = hashlib.sha256()
        for content in sorted(content for _, content in self.files):
            hashed.update(len(content).to_bytes(8, "big") + content)
        for entry in sorted(f"{p.file}: {p.message}" for p in (*self.refused, *self.ignored)):
            hashed.update(b"\0" + entry.encode())
        return hashed.hexdigest()


@dataclass(frozen=True)
class Limits:
    """What a drop may hold before it is refused rather than read (a worker stays alive
    and its memory bounded whatever an académie or an attacker drops)."""

    max_file_bytes: int = 20 * 1024 * 1024
    max_rows: int = 100_000
    max_name_length: int = 120


DEFAULT_LIMITS = Limits()


class Pupil(NamedTuple):
    last_name: str
    usage_name: str | None
    first_name: str
    birth_date: date
    sex: str | None
    ine: str | None  # national pupil id, in the layouts that give it
    cycle: str | None
    level: str | None
    class_name: str | None  # None: no class in the export (an account at school level)
    class_id: str | None  # ONDE's "Identifiant classe", in the layouts that give it
    decision: str | None  # "Décision de passage"
    line: int


class ChildRef(NamedTuple):
    """A child as a parents row names him.

    ``line`` is the parents-file line naming this child; ``pupil_line`` is the line, in the
    pupils file, of the one pupil he was matched to (``None`` when no pupil or several
    matched: a warning says which).
    """

    last_name: str
    usage_name: str | None
    first_name: str
    class_name: str | None
    birth_date: date | None
    line: int | None = None
    pupil_line: int | None = None

    def matched(self, pupil_line: int) -> "ChildRef":
        # Spelt out: NamedTuple._replace costs more than the rest of the matching.
        return ChildRef(
            self.last_name,
            self.usage_name,
            self.first_name,
            self.class_name,
            self.birth_date,
            self.line,
            pupil_line,
        )


class Parent(NamedTuple):
    civility: str | None
    last_name: str
    usage_name: str | None
    first_name: str
    email: str | None
    address: str | None  # his first row's, when he has no email: tells homonyms apart
    children: tuple[ChildRef, ...]
    lines: tuple[int, ...]  # one row per child, or per three children, in ONDE's layouts

    def with_children(self, children: tuple[ChildRef, ...]) -> "Parent":
        return Parent(
            self.civility,
            self.last_name,
            self.usage_name,
            self.first_name,
            self.email,
            self.address,
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
    classes: tuple[str, ...]  # one per "Classe" column he fills (none: left to the admin)
    line: int


class ClassRef(NamedTuple):
    name: str
    level: str | None  # None for a class of several levels ("CE1-CE2")
    onde_id: str | None  # ONDE's "Identifiant classe", when the export gives it


@dataclass(frozen=True)
class Export:
    uai: str
    pupils: tuple[Pupil, ...] = ()
    parents: tuple[Parent, ...] = ()
    teachers: tuple[Teacher, ...] = ()
    classes: tuple[ClassRef, ...] = ()  # sorted by name
    files: Mapping[Kind, str] = field(default_factory=dict)  # the file read for each kind
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    suspicious: tuple[Problem, ...] = ()  # looks truncated or wrongly encoded: hold the run

    @property
    def ok(self) -> bool:
        return not self.errors


def person(first: str, last: str) -> str:
    """A person's name as messages write it."""
    return f"{first} {last}".strip()
