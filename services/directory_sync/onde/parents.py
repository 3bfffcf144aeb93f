"""The parents file (``CSVExtraction-responsables.csv``), in ONDE's layouts:

- BE1D: ``Civilité Responsable;Nom usage responsable;Nom responsable;Prénom responsable;
  Adresse responsable;CP responsable;Commune responsable;Pays;Courriel;Téléphone domicile;
  Téléphone travail;[Numéro de poste;]Téléphone portable;`` then ``Nom d'usage enfant;Nom de
  famille enfant;Prénom enfant;Classes enfants`` three times (24 or 25 header fields); a row
  stops after its last child; a parent of more children, or at two addresses, has more rows;
- since 2021: the child columns are ``Nom d'usage élève;Nom de famille élève;Prénom élève;
  Date de naissance élève;Classes élèves`` (later ``Nom de l'élève;Prénom de l'élève;Classes
  de l'élève``), with ``PCS`` and ``Communication adresses``; often one row per parent and
  child.

The rows of one parent make one person: same names and same email; without an email, same
names and same address (two addresses: two persons), with a possible-duplicate warning
either way. Children are matched to pupils by ``children.link_children``.
"""

from collections.abc import Sequence

from services.directory_sync.onde import families
from services.directory_sync.onde.columns import Columns, column, locate
from services.directory_sync.onde.families import ParentRows
from services.directory_sync.onde.model import ChildRef, Limits, Parent, Problem, person
from services.directory_sync.onde.table import Table, cells, optional
from services.directory_sync.onde.values import (
    email,
    names_of,
    parse_date,
    too_long,
    too_long_problem,
)

COLUMNS: Columns = {
    "civility": column("Civilité Responsable", "civiliteresponsable", "civilite"),
    "usage_name": column("Nom usage responsable", "nomusageresponsable", "nomdusageresponsable"),
    "last_name": column(
        "Nom responsable", "nomresponsable", "nomdefamilleresponsable", mandatory=True
    ),
    "first_name": column("Prénom responsable", "prenomresponsable", mandatory=True),
    "email": column(
        "Courriel",
        "courriel",
        "courrielresponsable",
        "email",
        "mail",
        "mel",
        "adressemail",
        "adressecourriel",
    ),
    "address": column("Adresse responsable", "adresseresponsable", "adresse"),
    "postal_code": column("CP responsable", "cpresponsable", "codepostalresponsable", "cp"),
    "city": column("Commune responsable", "communeresponsable", "commune"),
}
# The columns repeated for each child on a row, under the names of every layout.
CHILD_COLUMNS: Columns = {
    "usage_name": column(
        "Nom d'usage enfant",
        "nomdusageenfant",
        "nomusageenfant",
        "nomdusageeleve",
        "nomusageeleve",
        "nomdusagedeleleve",
    ),
    "last_name": column(
        "Nom de famille enfant",
        "nomdefamilleenfant",
        "nomfamilleenfant",
        "nomenfant",
        "nomdefamilleeleve",
        "nomfamilleeleve",
        "nomeleve",
        "nomdeleleve",
        "nomdefamilledeleleve",
        mandatory=True,
    ),
    "first_name": column(
        "Prénom enfant", "prenomenfant", "prenomeleve", "prenomdeleleve", mandatory=True
    ),
    "birth_date": column(
        "Date de naissance élève",
        "datedenaissanceeleve",
        "datenaissanceeleve",
        "datedenaissanceenfant",
        "datenaissanceenfant",
        "datedenaissancedeleleve",
        "datedenaissance",
        "datenaissance",
    ),
    "class_name": column(
        "Classes enfants",
        "classesenfants",
        "classesenfant",
        "classeenfants",
        "classeenfant",
        "classeseleves",
        "classeseleve",
        "classeeleve",
        "classesdeleleve",
        "classedeleleve",
    ),
}


def child_groups(table: Table) -> list[dict[str, int]]:
    """Column positions of each child's group, in order.

    The groups' columns share their names, so they are told apart by position: a column
    whose kind the current group already has starts the next group.
    """
    groups: list[dict[str, int]] = []
    current: dict[str, int] = {}
    for index, name in enumerate(table.folded):
        kind = next((k for k, spec in CHILD_COLUMNS.items() if name in spec.names), None)
        if kind is None:
            continue
        if kind in current:
            groups.append(current)
            current = {}
        current[kind] = index
    if current:
        groups.append(current)
    return groups


def parse_parents(
    table: Table, limits: Limits
) -> tuple[list[Parent], list[Problem], list[Problem]]:
    """(parents, errors, warnings) of a parents file, its children not yet matched."""
    at, errors = locate(table, COLUMNS)
    groups = child_groups(table)
    for kind, spec in CHILD_COLUMNS.items():
        if spec.mandatory and not any(kind in group for group in groups):
            errors.append(
                Problem(table.file, table.header_line, f"mandatory column '{spec.label}' missing")
            )
    if errors:
        return [], errors, []
    warnings: list[Problem] = []
    if at["email"] == table.width:
        warnings.append(
            Problem(table.file, table.header_line, "column 'Courriel' missing: no parent email")
        )
    width = table.width
    child_at = [{k: group.get(k, width) for k in CHILD_COLUMNS} for group in groups]
    drafts: dict[families.Key, ParentRows] = {}
    for line, row in table.rows:
        c = cells(row, width)
        draft = _row(c, at, child_at, table.file, line, limits, errors, warnings)
        if draft is None:
            continue
        key = families.key(draft)
        known = drafts.get(key)
        if known is None:
            drafts[key] = draft
        else:
            known.children.extend(draft.children)
            known.lines.extend(draft.lines)
    warnings.extend(families.homonyms_without_email(drafts.values(), table.file))
    return families.parents(drafts.values(), table.file, warnings), errors, warnings


def _row(
    c: list[str],
    at: dict[str, int],
    child_at: Sequence[dict[str, int]],
    file: str,
    line: int,
    limits: Limits,
    errors: list[Problem],
    warnings: list[Problem],
) -> ParentRows | None:
    names = names_of(
        c,
        at,
        who="parent",
        needed="Nom responsable or Prénom responsable",
        limit=limits.max_name_length,
        where=(file, line),
        errors=errors,
    )
    if names is None:
        return None
    last, first, usage = names
    children: list[ChildRef] = []
    for number, group in enumerate(child_at, start=1):
        child = _child(c, group, line)
        if child is None:
            continue
        if not child.first_name or not child.last_name:
            errors.append(
                Problem(
                    file,
                    line,
                    f"parent {person(first, last)}: child {number} has no name or first name",
                )
            )
        elif too_long(
            limits.max_name_length, child.last_name, child.first_name, child.usage_name or ""
        ):
            errors.append(too_long_problem(file, line, "child", limits.max_name_length))
        else:
            children.append(child)
    mail = email(c[at["email"]], file, line, warnings)
    return ParentRows(
        civility=optional(c[at["civility"]]),
        last_name=last,
        usage_name=optional(usage),
        first_name=first,
        email=mail,
        address=None if mail else _address(c, at),
        children=children,
        lines=[line],
    )


def _address(c: list[str], at: dict[str, int]) -> str | None:
    town = f"{c[at['postal_code']]} {c[at['city']]}".strip()
    return ", ".join(part for part in (c[at["address"]], town) if part) or None


def _child(c: list[str], group: dict[str, int], line: int) -> ChildRef | None:
    last, first = c[group["last_name"]], c[group["first_name"]]
    usage, class_name = c[group["usage_name"]], c[group["class_name"]]
    if not (last or first or usage or class_name):
        return None  # a row lists as many children as it has
    return ChildRef(
        last_name=last or usage,
        usage_name=optional(usage),
        first_name=first,
        class_name=optional(class_name),
        birth_date=parse_date(birth) if (birth := c[group["birth_date"]]) else None,
        line=line,
    )
