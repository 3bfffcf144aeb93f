"""The teachers file, which the school writes itself (``Enseignants.csv``,
``CSVExtraction-enseignants.csv``…): ``Civilité;Nom usage;Nom;Prénom;Adresse;CP;Commune;
Pays;Courriel;Téléphone domicile;Téléphone portable;Directeur;Classe``. A teacher of several
classes has one row with several ``Classe`` columns (``Classe;Classe`` or ``Classe 1;
Classe 2``).
"""

from services.directory_sync.onde.columns import Columns, all_of, column, locate
from services.directory_sync.onde.model import Limits, Problem, Teacher, person
from services.directory_sync.onde.table import Table, cells, optional
from services.directory_sync.onde.values import email, names_of
from shared.names import fold_name

COLUMNS: Columns = {
    "civility": column("Civilité", "civilite"),
    "usage_name": column("Nom usage", "nomusage", "nomdusage"),
    "last_name": column("Nom", "nom", "nomdefamille", mandatory=True),
    "first_name": column("Prénom", "prenom", mandatory=True),
    "email": column(
        "Courriel",
        "courriel",
        "email",
        "mail",
        "mel",
        "adressemail",
        "courrielacademique",
        "mailacademique",
    ),
    "director": column("Directeur", "directeur", "directrice", "direction"),
}
CLASS = column("Classe", "classe", "classes", "libelleclasse")
_YES = frozenset({"oui", "o", "yes", "y", "1", "true", "vrai", "x", "directeur", "directrice"})
_NO = frozenset({"", "non", "n", "no", "0", "false", "faux"})


def parse_teachers(
    table: Table, limits: Limits
) -> tuple[list[Teacher], list[Problem], list[Problem]]:
    """(teachers, errors, warnings) of the teachers file."""
    at, errors = locate(table, COLUMNS)
    if errors:
        return [], errors, []
    file, width = table.file, table.width
    class_columns = all_of(table, CLASS)
    teachers: list[Teacher] = []
    warnings: list[Problem] = []
    for line, row in table.rows:
        c = cells(row, width)
        classes = tuple(dict.fromkeys(c[i] for i in class_columns if c[i]))
        names = names_of(
            c,
            at,
            who="teacher",
            needed="Nom or Prénom",
            limit=limits.max_name_length,
            where=(file, line),
            errors=errors,
            more=classes,
        )
        if names is None:
            continue
        last, first, usage = names
        raw_director = c[at["director"]]
        director = fold_name(raw_director) in _YES
        if not director and fold_name(raw_director) not in _NO:
            warnings.append(
                Problem(
                    file,
                    line,
                    f"Directeur {raw_director[:40]!r} is neither Oui nor Non: taken as Non",
                )
            )
        teachers.append(
            Teacher(
                civility=optional(c[at["civility"]]),
                last_name=last,
                usage_name=optional(usage),
                first_name=first,
                email=email(c[at["email"]], file, line, warnings),
                director=director,
                classes=classes,
                line=line,
            )
        )
    return teachers, errors, warnings


def unknown_classes(teachers: list[Teacher], known: set[str], file: str) -> list[Problem]:
    """A warning for each class a teacher names that no pupil is in (``known``: folded)."""
    return [
        Problem(
            file,
            teacher.line,
            f"teacher {person(teacher.first_name, teacher.last_name)}: class {name!r} has no "
            "pupil in the pupils file",
        )
        for teacher in teachers
        for name in teacher.classes
        if fold_name(name) not in known
    ]
