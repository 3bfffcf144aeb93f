"""Which file a table is, by its header: downloads from ONDE are all named
``CSVExtraction.csv``, ``CSVExtraction(1).csv``…, so the name says nothing."""

import csv
from collections.abc import Mapping

from services.directory_sync.onde import parents, pupils, teachers
from services.directory_sync.onde.columns import Columns, missing
from services.directory_sync.onde.model import Kind, Problem
from services.directory_sync.onde.table import Table, fold_header

SPECS: Mapping[Kind, Columns] = {
    "pupils": pupils.COLUMNS,
    "parents": {**parents.COLUMNS, **{f"child_{k}": c for k, c in parents.CHILD_COLUMNS.items()}},
    "teachers": {**teachers.COLUMNS, "class_name": teachers.CLASS},
}
LABELS: Mapping[Kind, str] = {
    "pupils": "pupils file (élèves)",
    "parents": "parents file (responsables)",
    "teachers": "teachers file (enseignants)",
}
# What only a file of each kind has.
_PARENT = parents.COLUMNS["last_name"].names | parents.COLUMNS["first_name"].names
_PUPIL = pupils.COLUMNS["first_name"].names
_BIRTH = pupils.COLUMNS["birth_date"].names
_TEACHER = frozenset({"civilite", "directeur", "directrice", "classe", "courriel"})


def kind_of(folded: set[str]) -> Kind | None:
    """parents: a parent's name column; pupils: a pupil's first name column (a parents file
    of 2021 has one too, for the children); teachers: ``Nom`` and ``Prénom`` with one of
    their other columns, and no birth date (a list of pupils written by hand is not one)."""
    if folded & _PARENT:
        return "parents"
    if folded & _PUPIL:
        return "pupils"
    if (
        "prenom" in folded
        and folded & {"nom", "nomusage", "nomdefamille"}
        and folded & _TEACHER
        and not folded & _BIRTH
    ):
        return "teachers"
    return None


def recognise(table: Table) -> Kind | None:
    return kind_of(set(table.folded))


def _split_header(table: Table) -> tuple[str, set[str]] | None:
    """The separator a one-column header really uses (``,`` or a tab), and its folded
    column names split at it."""
    if len(table.header) != 1:
        return None
    [header] = table.header
    for separator, name in ((",", "','"), ("\t", "a tab")):
        if separator in header:
            names = next(csv.reader([header], delimiter=separator))
            return name, {fold_header(n) for n in names}
    return None


def refusal(table: Table) -> tuple[Problem, bool]:
    """Why a table is none of the three kinds, and whether that is an error (a file of the
    school in a form that cannot be read) rather than a file to ignore."""
    split = _split_header(table)
    if split is not None:
        separator, folded = split
        kind = kind_of(folded)
        if kind is not None:
            return (
                Problem(
                    table.file,
                    table.header_line,
                    f"this {LABELS[kind]} uses {separator} where ONDE uses ';': export it "
                    "again from ONDE, or save it again with ';' as separator",
                ),
                True,
            )
    folded = set(table.folded) if split is None else split[1]
    separator_note = f", its columns separated by {split[0]}" if split else ""
    return (
        Problem(
            table.file,
            None,
            f"file ignored: not an ONDE pupils, parents or teachers file{separator_note} "
            f"({_what_each_needs(folded)})",
        ),
        False,
    )


def _labels(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _what_each_needs(folded: set[str]) -> str:
    """What the file would need to be each kind: the mandatory columns it lacks."""
    needs = [
        f"a {LABELS[kind]} would have the columns {_labels(lacking)}"
        for kind in ("pupils", "parents")
        if (lacking := missing(folded, SPECS[kind]))
    ]
    needs.append(
        f"a {LABELS['teachers']} has 'Nom' and 'Prénom', one of 'Civilité', 'Courriel', "
        "'Directeur' or 'Classe', and no birth date"
    )
    return "; ".join(needs)
