"""The pupils file (``CSVExtraction-eleves.csv``), in both of ONDE's layouts:

- BE1D: ``Nom Elève;Nom d'usage Elève;Prénom Elève;Date naissance;Sexe;Adresse1;…;Pays2;
  Cycle;Niveau;Classe;Attestation fournie;…;Décision de passage`` (every row ends with ``;``);
- with INE: ``Nom élève;Nom d'usage élève;Prénom élève;Date naissance;Sexe;INE;…; Cycle;
  Niveau;Libellé classe;Identifiant classe;…;Décision de passage`` (sometimes
  ``Dispositif(s)`` too).

A pupil always has a birth date; one without a class gets an account at school level.
"""

from datetime import date

from services.directory_sync.onde.columns import Columns, column, locate
from services.directory_sync.onde.model import Limits, Problem, Pupil, person
from services.directory_sync.onde.table import Table, cells, optional
from services.directory_sync.onde.values import names_of, parse_date
from shared.names import fold_name

COLUMNS: Columns = {
    "last_name": column(
        "Nom Elève",
        "nomeleve",
        "nomdefamilleeleve",
        "nomfamilleeleve",
        "nomdeleleve",
        "nomdefamilledeleleve",
        mandatory=True,
    ),
    "usage_name": column(
        "Nom d'usage Elève", "nomdusageeleve", "nomusageeleve", "nomdusagedeleleve"
    ),
    "first_name": column(
        "Prénom Elève", "prenomeleve", "prenomdeleleve", "prenomseleve", mandatory=True
    ),
    "birth_date": column(
        "Date naissance",
        "datenaissance",
        "datedenaissance",
        "datenaissanceeleve",
        "datedenaissanceeleve",
        mandatory=True,
    ),
    "sex": column("Sexe", "sexe"),
    "ine": column("INE", "ine", "identifiantnationaleleve", "numeroine"),
    "cycle": column("Cycle", "cycle"),
    "level": column("Niveau", "niveau"),
    "class_name": column("Classe", "classe", "libelleclasse", "classeeleve", mandatory=True),
    "class_id": column("Identifiant classe", "identifiantclasse", "idclasse"),
    "decision": column("Décision de passage", "decisiondepassage", "decisionpassage"),
}
_INE_LENGTH = 20  # an INE is 11 characters; anything much longer is not one


def parse_pupils(table: Table, limits: Limits) -> tuple[list[Pupil], list[Problem], list[Problem]]:
    """(pupils, errors, warnings) of a pupils file."""
    at, errors = locate(table, COLUMNS)
    if errors:
        return [], errors, []
    file, width = table.file, table.width
    pupils: list[Pupil] = []
    warnings: list[Problem] = []
    seen: dict[tuple[str, str, date], int] = {}
    ines: dict[str, int] = {}
    for line, row in table.rows:
        c = cells(row, width)
        names = names_of(
            c,
            at,
            who="pupil",
            needed="Nom Elève or Prénom Elève",
            limit=limits.max_name_length,
            where=(file, line),
            errors=errors,
        )
        if names is None:
            continue
        last, first, usage = names
        who = person(first, last)
        raw_birth = c[at["birth_date"]]
        birth = parse_date(raw_birth)
        if birth is None:
            what = (
                f"invalid birth date {raw_birth[:40]!r} (dd/mm/yyyy)"
                if raw_birth
                else ("birth date missing")
            )
            errors.append(Problem(file, line, f"pupil {who}: {what}"))
            continue
        class_name = optional(c[at["class_name"]])
        if class_name is None:
            warnings.append(
                Problem(file, line, f"pupil {who} has no class: account at school level")
            )
        key = (fold_name(last), fold_name(first), birth)
        if key in seen:
            warnings.append(
                Problem(file, line, f"pupil {who} born {raw_birth} already on line {seen[key]}")
            )
        seen.setdefault(key, line)
        pupils.append(
            Pupil(
                last_name=last,
                usage_name=optional(usage),
                first_name=first,
                birth_date=birth,
                sex=optional(c[at["sex"]]),
                ine=_ine(c[at["ine"]], ines, file, line, warnings),
                cycle=optional(c[at["cycle"]]),
                level=optional(c[at["level"]]),
                class_name=class_name,
                class_id=optional(c[at["class_id"]]) if class_name else None,
                decision=optional(c[at["decision"]]),
                line=line,
            )
        )
    if not pupils and not errors:
        errors.append(Problem(file, None, "no pupil in the pupils file"))
    return pupils, errors, warnings


def _ine(
    value: str, seen: dict[str, int], file: str, line: int, warnings: list[Problem]
) -> str | None:
    """The INE, once per file: a second pupil with the same one keeps none (he is then
    matched by his names), with a warning."""
    if not value:
        return None
    ine = value.upper()
    if len(ine) > _INE_LENGTH or not ine.isalnum():
        warnings.append(Problem(file, line, f"INE {value[:40]!r} is not an INE: ignored"))
        return None
    if ine in seen:
        warnings.append(Problem(file, line, f"INE {ine} already on line {seen[ine]}: ignored"))
        return None
    seen[ine] = line
    return ine
