"""What the reader refuses, reports or takes with a warning, each with the reason it gives:
files of no known kind, two of a kind, a comma-separated file, children found by name,
class or birth date or not at all, pupils without a class, homonym parents without email,
real damage against ONDE's habits, and the limits that keep a worker alive."""

import pytest

from services.directory_sync.onde import DEFAULT_LIMITS, Drop, Export, Limits, Problem, read_drop
from tests.support import onde_exports as real

UAI = "0741234P"
PUPILS = "CSVExtraction.csv"
PARENTS = "CSVExtraction(1).csv"
PUPILS_HEADER = "Nom Elève;Nom d'usage Elève;Prénom Elève;Date naissance;Sexe;Niveau;Classe"
PARENTS_HEADER = (
    "Civilité Responsable;Nom usage responsable;Nom responsable;Prénom responsable;"
    "Adresse responsable;CP responsable;Commune responsable;Courriel;Nom d'usage élève;"
    "Nom de famille élève;Prénom élève;Date de naissance élève;Classes élèves"
)


def read(files: dict[str, bytes], limits: Limits = DEFAULT_LIMITS) -> Export:
    return read_drop(Drop(UAI, tuple(sorted(files.items()))), limits)


def csv(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("iso-8859-1")


def pupils(*rows: str) -> bytes:
    return csv(PUPILS_HEADER, *rows)


def parents(*rows: str) -> bytes:
    return csv(PARENTS_HEADER, *rows)


def messages(problems: tuple[Problem, ...]) -> list[str]:
    return [p.message for p in problems]


TWO_LEOS = pupils(
    "ROY;;Léo;04/03/2018;M;CE1;CE1 A",
    "ROY;;Léo;22/11/2018;M;CE1;CE1 B",
    "ROY;;Inès;10/06/2016;F;CM1;CM1",
)


# --- files: which kind, how many ---------------------------------------------------------


def test_a_file_of_no_known_kind_is_reported_by_name_and_ignored() -> None:
    export = read(
        {
            PUPILS: TWO_LEOS,
            "liste-cantine.csv": csv("Nom;Prénom;Date de naissance;Régime", "ROY;Léo;;Sans porc"),
            "photo.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        }
    )
    assert export.ok and len(export.pupils) == 3
    cantine, photo = (w for w in export.warnings if w.file in ("liste-cantine.csv", "photo.jpg"))
    assert cantine.message == (
        "file ignored: not an ONDE pupils, parents or teachers file (a pupils file (élèves) "
        "would have the columns 'Nom Elève', 'Prénom Elève', 'Classe'; a parents file "
        "(responsables) would have the columns 'Nom responsable', 'Prénom responsable', "
        "'Nom de famille enfant', 'Prénom enfant'; a teachers file (enseignants) has 'Nom' "
        "and 'Prénom', one of 'Civilité', 'Courriel', 'Directeur' or 'Classe', and no birth "
        "date)"
    )
    assert photo.message.startswith("file ignored: not an ONDE pupils, parents or teachers")
    assert export.suspicious == ()  # an ignored file's encoding does not hold the school


def test_two_files_of_one_kind_are_an_error_naming_both() -> None:
    export = read({PUPILS: TWO_LEOS, "CSVExtraction(2).csv": TWO_LEOS})
    assert not export.ok
    assert messages(export.errors) == [
        "several pupils file (élèves)s: CSVExtraction(2).csv, CSVExtraction.csv"
    ]


def test_a_comma_separated_file_is_refused_with_the_reason() -> None:
    comma = "Nom Elève,Prénom Elève,Date naissance,Classe\r\nROY,Léo,04/03/2018,CE1 A\r\n"
    export = read({PUPILS: comma.encode("utf-8")})
    assert not export.ok
    [refused, no_pupils] = export.errors
    assert (refused.file, refused.line) == (PUPILS, 1)
    assert refused.message.startswith("this pupils file (élèves) uses ',' where ONDE uses ';'")
    assert no_pupils.message == "no pupils file (élèves) in the drop"


def test_a_generic_csv_names_the_columns_it_lacks() -> None:
    generic = csv("first_name;last_name;class;email", "Léo;ROY;CE1;leo@example.org")
    export = read({PUPILS: TWO_LEOS, "export.csv": generic})
    [warning] = [w for w in export.warnings if w.file == "export.csv"]
    assert "'Nom Elève', 'Prénom Elève', 'Date naissance', 'Classe'" in warning.message


def test_a_mangled_header_is_still_recognised_and_held_for_its_encoding() -> None:
    """UTF-8 read as Latin-1 and saved again: the file is known, and looks wrong."""
    mangled = TWO_LEOS.decode("iso-8859-1").encode("utf-8").decode("iso-8859-1").encode("utf-8")
    export = read({PUPILS: mangled})
    assert len(export.pupils) == 3
    assert any("mojibake" in m for m in messages(export.suspicious))


# --- children -------------------------------------------------------------------------------


def test_a_child_is_found_by_name_and_class_then_name_then_birth_date() -> None:
    export = read(
        {
            PUPILS: TWO_LEOS,
            PARENTS: parents(
                "M.;;ROY;Karim;;;;k@example.org;;ROY;Léo;;CE1 B",  # name and class
                "MME;;ROY;Nadia;;;;n@example.org;;ROY;Inès;;CLASSE  CM1",  # name alone
                "MME;;ROY;Lise;;;;l@example.org;;ROY;Léo;04/03/2018;CLASSE  CE1",  # born
                "M.;;ROY;Yves;;;;y@example.org;;ROY;Léo;;CE1",  # still two: not linked
                "M.;;ROY;Marc;;;;m@example.org;;ROY;Tom;;CE1 A",  # nobody: not linked
            ),
        }
    )
    assert export.ok  # the school's run goes on
    lines = {p.first_name: [c.pupil_line for c in p.children] for p in export.parents}
    assert lines == {"Karim": [3], "Nadia": [4], "Lise": [2], "Yves": [None], "Marc": [None]}
    unlinked = [w for w in export.warnings if "created without this link" in w.message]
    assert [(w.file, w.line) for w in unlinked] == [(PARENTS, 5), (PARENTS, 6)]
    assert "matches 2 pupils (pupils file lines 2, 3)" in unlinked[0].message
    assert "Tom ROY in class 'CE1 A' matches no pupil" in unlinked[1].message


def test_a_child_in_another_class_of_the_pupils_file_is_linked_with_a_warning() -> None:
    export = read({PUPILS: TWO_LEOS, PARENTS: parents("M.;;ROY;Karim;;;;;;ROY;Inès;;CE1 A")})
    assert [c.pupil_line for c in export.parents[0].children] == [4]
    [warning] = [w for w in export.warnings if w.file == PARENTS]
    assert warning.line == 2 and "class 'CE1 A' differs from the pupils file ('CM1'" in (
        warning.message
    )


def test_a_pupil_without_a_class_is_at_school_level_and_his_parent_linked() -> None:
    export = read(
        {
            PUPILS: pupils("DURAND;;Hugo;11/02/2019;M;CP;"),
            PARENTS: parents("M.;;DURAND;Paul;;;;;;DURAND;Hugo;;CLASSE  CP"),
        }
    )
    [hugo] = export.pupils
    assert hugo.class_name is None and export.classes == ()
    assert [c.pupil_line for c in export.parents[0].children] == [2]
    assert any("has no class: account at school level" in m for m in messages(export.warnings))


# --- parents without email ------------------------------------------------------------------


def test_homonym_parents_without_email_are_one_person_at_one_address_else_two() -> None:
    export = read(
        {
            PUPILS: TWO_LEOS,
            PARENTS: parents(
                "M.;;ROY;Jean;4 rue des Écoles;51100;Reims;;;ROY;Léo;04/03/2018;CE1 A",
                "M.;;ROY;Jean;4 rue des Écoles;51100;Reims;;;ROY;Inès;;CM1",
                "MME;;ROY;Anne;1 rue Cérès;51100;Reims;;;ROY;Léo;04/03/2018;CE1 A",
                "MME;;ROY;Anne;9 avenue de Laon;51100;Reims;;;ROY;Léo;22/11/2018;CE1 B",
            ),
        }
    )
    jean, anne, other_anne = export.parents
    assert (jean.lines, [c.pupil_line for c in jean.children]) == ((2, 3), [2, 4])
    assert (anne.lines, other_anne.lines) == ((4,), (5,))
    duplicates = [w for w in export.warnings if w.message.startswith("possible duplicate")]
    assert [(w.line, w.message) for w in duplicates] == [
        (
            2,
            "possible duplicate: parent Jean ROY without email on lines 2, 3, taken as one "
            "person (same address on each row): check they are not two",
        ),
        (
            4,
            "possible duplicate: parent Anne ROY without email on lines 4, 5, taken as 2 "
            "persons (different addresses): check they are not one",
        ),
    ]


# --- what is suspicious, and what is not ----------------------------------------------------


def test_onde_habits_are_not_suspicious() -> None:
    """Rows that stop after their last child, no final line break, LF: BE1D as it comes."""
    assert read(real.BE1D).suspicious == ()
    assert read(real.WITH_INE).suspicious == ()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            csv(
                PUPILS_HEADER,
                'ROY;;Léo;04/03/2018;M;CE1;"CE1 A',
                'ROY;;Inès;10/06/2016;F;CM1;CM1"',
                "ROY;;Tom;01/02/2017;M;CE2;CE2",
            ),
            "a quoted field runs from line 2 to line 3",
        ),
        (
            csv(PUPILS_HEADER, "ROY;;Léo;04/03/2018;M;CE1;CE1 A;;", "ROY;;Inès;;F;CM1;CM1;x;y"),
            "row with 9 fields where the header has 7",
        ),
        (
            b"\xef\xbb\xbf" + PUPILS_HEADER.encode() + b"\r\nROY;;L\xe9o;04/03/2018;M;CE1;CE1\r\n",
            "starts with a UTF-8 byte order mark but byte",
        ),
        (TWO_LEOS.decode("latin-1").encode("utf-16"), "UTF-16 file"),
    ],
)
def test_real_damage_is_suspicious(content: bytes, expected: str) -> None:
    export = read({PUPILS: content})
    assert any(expected in m for m in messages(export.suspicious)), export.suspicious


# --- limits ---------------------------------------------------------------------------------


def test_a_file_of_too_many_lines_is_refused_before_it_is_parsed() -> None:
    export = read({PUPILS: TWO_LEOS}, Limits(max_rows=3))
    assert messages(export.errors)[0] == "5 lines, more than the 3 allowed: refused"
    assert export.pupils == ()


def test_names_over_the_limit_are_refused_on_their_row() -> None:
    long = "A" * 121
    export = read(
        {
            PUPILS: pupils(f"{long};;Léo;04/03/2018;M;CE1;CE1 A", "ROY;;Inès;10/06/2016;F;CM1;CM1"),
            PARENTS: parents(f"M.;;ROY;{long};;;;;;ROY;Inès;;CM1"),
            "Enseignants.csv": csv("Nom;Prénom;Classe", f"HENRY;Rémi;{long}"),
        }
    )
    assert [(e.file, e.line) for e in export.errors] == [
        (PUPILS, 2),
        (PARENTS, 2),
        ("Enseignants.csv", 2),
    ]
    assert all("longer than 120 characters, row refused" in e.message for e in export.errors)
    assert [p.first_name for p in export.pupils] == ["Inès"]


def test_a_header_of_too_many_columns_is_not_read() -> None:
    hostile = (PUPILS_HEADER + ";x" * 600 + "\r\n" + "ROY;;Léo\r\n" * 1000).encode()
    export = read({PUPILS: hostile})
    assert export.errors[0] == Problem(
        PUPILS, 1, "a header of 607 columns, more than 500: not read"
    )
    assert export.pupils == ()
