"""Reading ONDE drops (services.directory_sync.onde) and generating them (tools.onde_generator)."""

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.directory_sync.onde import Drop, Export, Limits, Problem, read_drop
from services.directory_sync.onde import decode as decoding
from services.directory_sync.onde.decode import decode
from services.directory_sync.onde.parents import parse_parents
from services.directory_sync.onde.pupils import parse_pupils
from services.directory_sync.onde.table import fold_header, read_table
from services.directory_sync.onde.teachers import parse_teachers
from shared.names import fold_name
from tools.onde_generator import (
    LAYOUTS,
    PARENTS_FILE,
    PUPILS_FILE,
    TEACHERS_FILE,
    Layout,
    School,
    build_school,
    generate_school,
    main,
    uai_for,
)

UAI = "0741234P"  # 0741234 % 23 = 14 -> P


def cells(line: str) -> list[str]:
    return line.split(";")


PUPILS_HEADER = cells(
    "Nom Elève;Nom d'usage Elève;Prénom Elève;Date naissance;Sexe;Adresse1;Cp1;Commune1;"
    " Cycle;Niveau;Classe;Autorisations photos"
)
PUPILS = [
    cells("LEFÈVRE;;Éloïse;04/02/2019;F;1 rue du Lac;74000;Annecy;CYCLE II;CP;CP A;Oui"),
    cells(
        "N'DIAYE;;Jean-Noël;17/09/2018;M;8 chemin des Écoliers;74000;Annecy;CYCLE II;CE1;"
        "CE1-CE2;Non"
    ),
    cells(
        "LE GALL;LE GALL-MARTIN;Maëlys;30/11/2017;F;3 place de l'Église;74230;Thônes;"
        "CYCLE II;CE2;CE1-CE2;Oui"
    ),
    cells(
        "LE GALL;;Côme;12/05/2015;M;3 place de l'Église;74230;Thônes;CYCLE III;CM2;"
        "CM2 Mme Durand;Oui"
    ),
    cells("MARTIN;;Zoé;02/03/2016;F;;;;CYCLE III;CM1;CM1;Non"),
]
PARENTS_HEADER = (
    cells(
        "Civilité Responsable;Nom usage responsable;Nom responsable;Prénom responsable;"
        "Adresse responsable;Courriel;Téléphone portable"
    )
    + cells("Nom d'usage enfant;Nom de famille enfant;Prénom enfant;Classes enfants") * 3
)
NO_CHILD = [""] * 4
PARENTS = [
    cells(
        "MME;LE GALL;MARTIN;Hélène;3 place de l'Église;helene@example.org;06 12 34 56 78;"
        "LE GALL-MARTIN;LE GALL;Maëlys;CE1-CE2;;LE GALL;Côme;CM2 Mme Durand"
    )
    + NO_CHILD,
    cells("M.;;N'DIAYE;Mamadou;8 chemin des Écoliers;;07 12 34 56 78;;N'DIAYE;Jean-Noël;CE1-CE2")
    + NO_CHILD * 2,
]
ORGANISATIONS = [
    cells("Intitulé;Adresse Organisme;CP Organisme;Commune Organisme"),
    cells("Mairie d'Annecy;1 place de l'Hôtel de Ville;74000;Annecy"),
]
TEACHERS_HEADER = cells("Civilité;Nom usage;Nom;Prénom;Courriel;Directeur;Classe")
TEACHERS = [
    cells("MME;DURAND;ROUX;Anne-Laure;al.durand@example.org;Oui;CM2 Mme Durand"),
    cells("M.;;BÉRANGER;Gaël;;Non;CP A"),
]


def csv_text(
    header: list[str], rows: list[list[str]], *, trailer: list[list[str]] | None = None
) -> str:
    """A CSV as ONDE writes it: ';', non-empty fields quoted, CRLF."""

    def line(cells: list[str]) -> str:
        return ";".join(f'"{c}"' if c else "" for c in cells)

    return "".join(line(cells) + "\r\n" for cells in [header, *rows, *(trailer or [])])


def shuffled(
    header: list[str], rows: list[list[str]], seed: int, extra: int = 3
) -> tuple[list[str], list[list[str]]]:
    """The same table with its columns in another order and unknown columns added."""
    rng = random.Random(seed)
    header = header + [f"Colonne inconnue {i}" for i in range(extra)]
    rows = [row + [f"x{i}" for i in range(extra)] for row in rows]
    order = list(range(len(header)))
    rng.shuffle(order)
    return [header[i] for i in order], [[row[i] for i in order] for row in rows]


def read(files: dict[str, bytes], uai: str = UAI) -> Export:
    """The export of a drop holding ``files``."""
    return read_drop(Drop(uai, tuple(sorted(files.items()))))


def parsed(parse: Callable[..., Any], text: str, file: str) -> tuple[Any, Any, Any]:
    """(rows, errors, warnings) of ``parse`` on a file's text; a file that cannot be read as
    a table at all gives its errors."""
    table, errors, _ = read_table(text, file)
    if table is None:
        return [], errors, []
    return parse(table, Limits())


def shape(text: str, file: str) -> list[Problem]:
    """What in a file's shape is suspicious."""
    return read_table(text, file)[2]


def small_drop(encoding: str = "iso-8859-1") -> dict[str, bytes]:
    return {
        "CSVExtraction-eleves.csv": csv_text(PUPILS_HEADER, PUPILS).encode(encoding),
        "CSVExtraction-responsables.csv": csv_text(
            PARENTS_HEADER, PARENTS, trailer=ORGANISATIONS
        ).encode(encoding),
        "enseignants.csv": csv_text(TEACHERS_HEADER, TEACHERS).encode(encoding),
    }


def messages(problems: tuple[Problem, ...] | list[Problem]) -> str:
    return " | ".join(p.message for p in problems)


# ---------------------------------------------------------------------------------------
# Folding
# ---------------------------------------------------------------------------------------


def test_fold_header_and_fold_name() -> None:
    assert fold_header("Nom d'usage Elève") == "nomdusageeleve"
    assert fold_header(" Cycle") == "cycle"
    assert fold_header("PRÉNOM_ÉLÈVE") == "prenomeleve"
    assert fold_name("Jean-Noël") == "jeannoel"
    assert fold_name("N'Diaye") == "ndiaye"
    assert fold_name("Cœur") == "coeur"
    assert fold_name("LE GALL") == fold_name("Le Gall") == "legall"


# ---------------------------------------------------------------------------------------
# A small hand-written drop
# ---------------------------------------------------------------------------------------


def test_small_drop_reads_as_written(tmp_path: Path) -> None:
    export = read(small_drop())

    assert export.ok, export.errors
    assert export.warnings == ()
    assert export.suspicious == ()
    assert export.uai == UAI
    first = export.pupils[0]
    assert (first.last_name, first.first_name, first.birth_date) == (
        "LEFÈVRE",
        "Éloïse",
        date(2019, 2, 4),
    )
    assert (first.sex, first.cycle, first.level, first.class_name, first.line) == (
        "F",
        "CYCLE II",
        "CP",
        "CP A",
        2,
    )
    assert first.usage_name is None
    assert export.pupils[2].usage_name == "LE GALL-MARTIN"
    # A class of two levels has no single level.
    assert [(c.name, c.level) for c in export.classes] == [
        ("CE1-CE2", None),
        ("CM1", "CM1"),
        ("CM2 Mme Durand", "CM2"),
        ("CP A", "CP"),
    ]
    helene, mamadou = export.parents
    assert (helene.civility, helene.usage_name, helene.last_name, helene.email) == (
        "MME",
        "LE GALL",
        "MARTIN",
        "helene@example.org",
    )
    assert [(c.first_name, c.pupil_line) for c in helene.children] == [("Maëlys", 4), ("Côme", 5)]
    assert mamadou.email is None
    assert [c.pupil_line for c in mamadou.children] == [3]
    durand, beranger = export.teachers
    assert (durand.usage_name, durand.last_name, durand.director, durand.classes) == (
        "DURAND",
        "ROUX",
        True,
        ("CM2 Mme Durand",),
    )
    assert (beranger.director, beranger.email, beranger.line) == (False, None, 3)


def test_latin1_and_utf8_with_bom_give_the_same_export(tmp_path: Path) -> None:
    latin1 = read(small_drop("iso-8859-1"))
    utf8 = read(small_drop("utf-8-sig"))
    plain_utf8 = read(small_drop("utf-8"))

    assert latin1.ok and latin1.suspicious == ()
    assert utf8 == latin1
    assert plain_utf8 == latin1
    assert latin1.pupils[0].first_name == "Éloïse"


def test_generated_drop_parses_identically_in_utf8_with_bom(tmp_path: Path) -> None:
    files = generate_school(UAI, classes=4, pupils_per_class=10, seed=3)
    as_utf8 = {
        name: b"\xef\xbb\xbf" + content.decode("iso-8859-1").encode("utf-8")
        for name, content in files.items()
    }
    latin1 = read(files)
    utf8 = read(as_utf8)
    assert latin1.ok and latin1.suspicious == ()
    assert utf8 == latin1


def test_shuffled_columns_and_unknown_columns_still_parse() -> None:
    pupils, errors, warnings = parsed(parse_pupils, csv_text(PUPILS_HEADER, PUPILS), "e.csv")
    assert errors == [] and warnings == [] and len(pupils) == 5
    for seed in range(5):
        header, rows = shuffled(PUPILS_HEADER, PUPILS, seed)
        assert parsed(parse_pupils, csv_text(header, rows), "e.csv") == (pupils, [], [])

    teachers, errors, _ = parsed(parse_teachers, csv_text(TEACHERS_HEADER, TEACHERS), "t.csv")
    assert errors == [] and len(teachers) == 2
    header, rows = shuffled(TEACHERS_HEADER, TEACHERS, 7)
    assert parsed(parse_teachers, csv_text(header, rows), "t.csv") == (teachers, [], [])


def test_parent_columns_in_another_order_and_unknown_columns_still_parse() -> None:
    """The repeated child groups are told apart by position, wherever they stand."""
    parents, errors, _ = parsed(parse_parents, csv_text(PARENTS_HEADER, PARENTS), "r.csv")
    assert errors == []
    # Parent columns moved after the children, unknown columns everywhere; groups keep order.
    parent_part, child_part = PARENTS_HEADER[:7], PARENTS_HEADER[7:]
    header = ["INE", *child_part, "Pays", *parent_part[::-1]]
    rows = [["1", *row[7:], "FRANCE", *row[:7][::-1]] for row in PARENTS]
    assert parsed(parse_parents, csv_text(header, rows), "r.csv") == (parents, [], [])


def test_header_names_with_other_case_accents_and_spaces_are_recognised() -> None:
    header = [
        "NOM ELEVE",
        "nom_d_usage_eleve",
        "  Prénom   élève ",
        "DATE NAISSANCE",
        "sexe",
        "CYCLE",
        "niveau",
        "CLASSE",
    ]
    rows = [["DUPONT", "", "Léa", "1/9/2018", "F", "CYCLE II", "CE1", "CE1"]]
    pupils, errors, _ = parsed(parse_pupils, csv_text(header, rows), "e.csv")
    assert errors == []
    assert [(p.last_name, p.first_name, p.birth_date, p.class_name) for p in pupils] == [
        ("DUPONT", "Léa", date(2018, 9, 1), "CE1")
    ]
    teachers, errors, _ = parsed(
        parse_teachers,
        "CIVILITE;NOM USAGE;nom;PRENOM;COURRIEL;directeur;classe\r\nM.;;Durand;Luc;;OUI;CP\r\n",
        "t.csv",
    )
    assert errors == [] and teachers[0].director is True and teachers[0].classes == ("CP",)


# ---------------------------------------------------------------------------------------
# Parents: organisations, several rows for one parent
# ---------------------------------------------------------------------------------------


def test_trailing_organisation_rows_are_not_parents() -> None:
    text = csv_text(PARENTS_HEADER, PARENTS, trailer=ORGANISATIONS)
    parents, errors, warnings = parsed(parse_parents, text, "r.csv")
    assert errors == [] and warnings == []
    assert [p.first_name for p in parents] == ["Hélène", "Mamadou"]
    assert all("Mairie" not in p.last_name + p.first_name for p in parents)
    # Without its section header, the organisation would be read as a parent (with no child).
    text = csv_text(PARENTS_HEADER, PARENTS + ORGANISATIONS[1:])
    _, _, warnings = parsed(parse_parents, text, "r.csv")
    assert [(w.line, "no child" in w.message) for w in warnings] == [(4, True)]


def test_a_parent_with_four_children_spans_two_rows_and_is_one_parent() -> None:
    identity = cells("M.;;LEFÈVRE;Jean-Noël;1 rue du Lac;jn@example.org;06 12 34 56 78")
    eloise, come, zoe, adam = (
        cells(";LEFÈVRE;Éloïse;CP A"),
        cells(";LEFÈVRE;Côme;CE1-CE2"),
        cells(";LEFÈVRE;Zoé;CM1"),
        cells(";LEFÈVRE;Adam;CM2 Mme Durand"),
    )
    rows = [
        identity + eloise + come + zoe,
        identity + adam + NO_CHILD * 2,
        cells("MME;;LEFÈVRE;Hélène;9 rue du Port;;") + eloise + NO_CHILD * 2,
    ]
    parents, errors, warnings = parsed(parse_parents, csv_text(PARENTS_HEADER, rows), "r.csv")
    assert errors == [] and warnings == []
    assert len(parents) == 2
    father = parents[0]
    assert father.lines == (2, 3)
    assert [c.first_name for c in father.children] == ["Éloïse", "Côme", "Zoé", "Adam"]
    assert [c.line for c in father.children] == [2, 2, 2, 3]
    assert parents[1].lines == (4,)


def test_same_names_with_different_emails_are_two_parents() -> None:
    child = cells(";MARTIN;Zoé;CM1") + NO_CHILD * 2
    rows = [cells(f"M.;;MARTIN;Jean;;{email};") + child for email in ("a@ex.org", "b@ex.org")]
    parents, _, _ = parsed(parse_parents, csv_text(PARENTS_HEADER, rows), "r.csv")
    assert len(parents) == 2


# ---------------------------------------------------------------------------------------
# Errors, located
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "header", "rows", "missing"),
    [
        (parse_pupils, PUPILS_HEADER, PUPILS, "Prénom Elève"),
        (parse_pupils, PUPILS_HEADER, PUPILS, "Date naissance"),
        (parse_pupils, PUPILS_HEADER, PUPILS, "Classe"),
        (parse_parents, PARENTS_HEADER, PARENTS, "Nom responsable"),
        (parse_parents, PARENTS_HEADER, PARENTS, "Prénom enfant"),
        (parse_teachers, TEACHERS_HEADER, TEACHERS, "Prénom"),
    ],
)
def test_a_missing_mandatory_column_is_an_error_naming_it_on_line_1(
    parse: Callable[[str, str], tuple[list[Any], list[Problem], list[Problem]]],
    header: list[str],
    rows: list[list[str]],
    missing: str,
) -> None:
    keep = [i for i, name in enumerate(header) if name != missing]
    text = csv_text([header[i] for i in keep], [[row[i] for i in keep] for row in rows])
    result, errors, _ = parsed(parse, text, "some-file.csv")
    assert result == []
    assert Problem("some-file.csv", 1, f"mandatory column '{missing}' missing") in errors


def test_missing_mandatory_column_through_read_drop(tmp_path: Path) -> None:
    files = small_drop()
    keep = [i for i, name in enumerate(PUPILS_HEADER) if name != "Nom Elève"]
    files["CSVExtraction-eleves.csv"] = csv_text(
        [PUPILS_HEADER[i] for i in keep], [[r[i] for i in keep] for r in PUPILS]
    ).encode("iso-8859-1")
    export = read(files)
    assert not export.ok
    assert (
        Problem("CSVExtraction-eleves.csv", 1, "mandatory column 'Nom Elève' missing")
        in export.errors
    )


@pytest.mark.parametrize(
    "bad", ["31/02/2018", "2018/02/01", "demain", "12/13/2018", "01/01/1850", ""]
)
def test_an_invalid_or_missing_birth_date_is_an_error_with_its_line(bad: str) -> None:
    rows = [list(row) for row in PUPILS]
    rows[2][3] = bad  # file line 4
    pupils, errors, _ = parsed(parse_pupils, csv_text(PUPILS_HEADER, rows), "e.csv")
    assert [(e.file, e.line) for e in errors] == [("e.csv", 4)]
    assert "birth date" in errors[0].message and "Maëlys" in errors[0].message
    assert len(pupils) == 4


def test_a_child_matching_no_pupil_is_a_warning_and_his_parent_is_kept() -> None:
    """Not an error: the school's run goes on; the parent comes without that link."""
    files = small_drop()
    rows = [*PARENTS, cells("MME;;DUBOIS;Léa;;;;;DUBOIS;Noé;CP A") + NO_CHILD * 2]
    files["CSVExtraction-responsables.csv"] = csv_text(PARENTS_HEADER, rows).encode("latin-1")
    export = read(files)
    assert export.ok
    [warning] = export.warnings
    assert (warning.file, warning.line) == ("CSVExtraction-responsables.csv", 4)
    assert "Noé DUBOIS" in warning.message and "no pupil" in warning.message
    assert "Léa DUBOIS created without this link" in warning.message
    lea = export.parents[-1]
    assert lea.first_name == "Léa" and [c.pupil_line for c in lea.children] == [None]


def test_a_child_matching_several_pupils_is_a_warning(tmp_path: Path) -> None:
    files = small_drop()
    homonym = cells("MARTIN;;Zoé;03/03/2016;F;;;;CYCLE III;CM1;CM1;")
    files["CSVExtraction-eleves.csv"] = csv_text(PUPILS_HEADER, [*PUPILS, homonym]).encode(
        "latin-1"
    )
    rows = [*PARENTS, cells("M.;;MARTIN;Paul;;;;;MARTIN;Zoé;CM1") + NO_CHILD * 2]
    files["CSVExtraction-responsables.csv"] = csv_text(PARENTS_HEADER, rows).encode("latin-1")
    export = read(files)
    assert export.ok
    [warning] = export.warnings
    assert (warning.file, warning.line) == ("CSVExtraction-responsables.csv", 4)
    assert "matches 2 pupils" in warning.message
    assert export.parents[-1].children[0].pupil_line is None


def test_a_child_is_matched_by_usage_name_and_class_tells_homonyms_apart(tmp_path: Path) -> None:
    files = small_drop()
    homonym = cells("N'DIAYE;;Jean-Noël;01/01/2016;M;;;;CYCLE III;CM1;CM1;")
    files["CSVExtraction-eleves.csv"] = csv_text(PUPILS_HEADER, [*PUPILS, homonym]).encode(
        "latin-1"
    )
    rows = [list(row) for row in PARENTS]
    rows[0][8] = ""  # Maëlys named by her usage name only
    files["CSVExtraction-responsables.csv"] = csv_text(PARENTS_HEADER, rows).encode("latin-1")
    export = read(files)
    assert export.ok and export.warnings == ()
    assert [c.pupil_line for c in export.parents[0].children] == [4, 5]
    assert [c.pupil_line for c in export.parents[1].children] == [3]  # not line 7 (CM1)


def test_a_child_named_in_another_class_is_linked_with_a_warning(tmp_path: Path) -> None:
    """His name is found once in the school: it is him, the class was written differently."""
    files = small_drop()
    rows = [list(row) for row in PARENTS]
    rows[1][10] = "CM1"  # Jean-Noël N'DIAYE is in CE1-CE2
    files["CSVExtraction-responsables.csv"] = csv_text(PARENTS_HEADER, rows).encode("latin-1")
    export = read(files)
    assert export.ok
    [warning] = export.warnings
    assert warning.line == 3 and "differs" in warning.message
    assert [c.pupil_line for c in export.parents[1].children] == [3]


def test_drop_level_errors_and_warnings() -> None:
    only_pupils = {"CSVExtraction-eleves.csv": small_drop()["CSVExtraction-eleves.csv"]}
    export = read(only_pupils)
    assert export.ok and len(export.pupils) == 5
    assert len(export.warnings) == 2  # no parents file, no teachers file

    no_pupils = {k: v for k, v in small_drop().items() if "eleves" not in k}
    export = read(no_pupils)
    assert not export.ok and "no pupils file" in messages(export.errors)

    empty = small_drop() | {"enseignants.csv": b"\r\n"}
    export = read(empty)
    assert Problem("enseignants.csv", None, "empty file") in export.errors

    header_only = small_drop() | {"CSVExtraction-eleves.csv": csv_text(PUPILS_HEADER, []).encode()}
    export = read(header_only)
    assert not export.ok and "no pupil" in messages(export.errors)

    # Files are known by their header, whatever their names.
    renamed = {
        "CSVExtraction(1).csv": small_drop()["CSVExtraction-eleves.csv"],
        "CSVExtraction.csv": small_drop()["CSVExtraction-responsables.csv"],
        "liste.txt": small_drop()["enseignants.csv"],
    }
    export = read(renamed)
    assert export.ok and len(export.pupils) == 5 and len(export.parents) == 2
    assert export.files == {
        "pupils": "CSVExtraction(1).csv",
        "parents": "CSVExtraction.csv",
        "teachers": "liste.txt",
    }

    not_a_uai = read(small_drop(), "0741234A")
    assert not not_a_uai.ok and "not a UAI" in messages(not_a_uai.errors)


# ---------------------------------------------------------------------------------------
# Suspicious files: truncation and encoding
# ---------------------------------------------------------------------------------------


def test_a_file_cut_in_the_middle_of_a_row_is_suspicious() -> None:
    files = generate_school(UAI, classes=3, pupils_per_class=10, seed=1, layout=LAYOUTS["be1d"])
    content = files[PUPILS_FILE]
    last_row = content.rindex(b"\n") + 1
    # The copy stopped after the birth date of the last pupil, before his class.
    cut = content[: last_row + content[last_row:].index(b";", content[last_row:].index(b"-"))]
    export = read(files | {PUPILS_FILE: cut})
    [problem] = export.suspicious
    assert (problem.file, problem.line) == (PUPILS_FILE, content.count(b"\n") + 1)
    assert "truncated" in problem.message and "'Classe'" in problem.message


def test_a_file_cut_inside_a_quoted_field_is_suspicious() -> None:
    files = generate_school(UAI, classes=2, pupils_per_class=5, seed=2)
    content = files[TEACHERS_FILE]
    files[TEACHERS_FILE] = content[: content.rindex(b'"Non"') + 2]
    export = read(files)
    [problem] = export.suspicious
    assert problem.file == TEACHERS_FILE and "ends inside a quoted field" in problem.message


def test_what_real_damage_looks_like() -> None:
    # Rows that leave out their trailing empty fields are a habit, not a truncation, with
    # or without a final line break...
    assert shape("Nom;Prénom;Classe\r\nMARTIN;Léa\r\nDUPONT;Noé\r\n", "t") == []
    assert shape("Nom;Prénom;Classe\r\nMARTIN;Léa;CP\r\nDUPONT;Noé", "t") == []
    # ...and so is a last row shorter than all others, ending with a line break.
    text = csv_text(TEACHERS_HEADER, TEACHERS) + '"M.";;"DURAND";"Luc"\r\n'
    assert shape(text, "t.csv") == []
    # A quoted field never closed swallows the end of the file, whatever the field count.
    [problem] = shape('Nom;Prénom;Classe\r\nMARTIN;Léa;"CP\r\n', "t")
    assert problem.line == 2 and "ends inside a quoted field" in problem.message
    [problem] = shape('Nom;Prénom;Classe\r\nMARTIN;Léa;"CP', "t")
    assert problem.line == 2 and "ends inside a quoted field" in problem.message
    # A quote missing glues rows together: a field over several lines.
    [problem] = shape('Nom;Prénom;Classe\nMARTIN;"Léa;CP\nDUPONT;Noé";CP\nROY;Léo;CE1\n', "t")
    assert problem.line == 2 and "from line 2 to line 3" in problem.message
    # A row wider than its header: columns shifted (its trailing empty fields aside).
    [problem] = shape("Nom;Prénom;Classe\nMARTIN;Léa;CP;;\nDUPONT;Noé;CP;1;2\n", "t")
    assert problem.line == 3 and "5 fields where the header has 3" in problem.message


def test_complete_files_are_not_suspicious() -> None:
    assert shape(csv_text(TEACHERS_HEADER, TEACHERS), "t.csv") == []
    # No final line break but a complete last row: a school's hand-written file.
    assert shape(csv_text(TEACHERS_HEADER, TEACHERS).rstrip(), "t.csv") == []
    # Organisation rows are shorter than parent rows: they have their own header.
    text = csv_text(PARENTS_HEADER, PARENTS, trailer=ORGANISATIONS)
    assert shape(text, "r.csv") == []


def test_mojibake_is_suspicious(tmp_path: Path) -> None:
    files = small_drop("utf-8")
    # UTF-8 bytes read as Latin-1 then written again as UTF-8: "é" becomes "Ã©".
    files["CSVExtraction-eleves.csv"] = (
        files["CSVExtraction-eleves.csv"].decode("latin-1").encode("utf-8")
    )
    export = read(files)
    assert [p.file for p in export.suspicious] == ["CSVExtraction-eleves.csv"] * len(
        export.suspicious
    )
    assert export.suspicious and "mojibake" in messages(export.suspicious)
    assert export.suspicious[0].line == 1  # "Elève" in the header already


def test_decode_flags_encoding_problems() -> None:
    assert decode("Prénom;Nom\r\n".encode("latin-1"), "f") == ("Prénom;Nom\r\n", [])
    assert decode(b"\xef\xbb\xbfPr\xc3\xa9nom", "f") == ("Prénom", [])
    # Windows-1252 letters in a "Latin-1" file are letters, not controls.
    assert decode("Cœur’s".encode("cp1252") + b"\xe9", "f") == ("Cœur’sé", [])

    for raw, line in [
        ("a\r\nAndré".encode().decode("cp1252").encode(), 2),  # double-encoded, via cp1252
        ("a\nb\nD’Arc".encode().decode("cp1252").encode(), 3),
        (b"Andr\xe9\r\nx\x81y", 2),  # a byte neither Latin-1 nor Windows-1252 letter
        (b"\xef\xbb\xbfAndr\xe9", 1),  # a byte order mark, then Latin-1
        ("Nom\r\nAndr\ufffd".encode(), 2),
        (b"Nom\x00;x", 1),
    ]:
        _, problems = decode(raw, "f.csv")
        assert problems, raw
        assert problems[0].file == "f.csv" and problems[0].line == line, (raw, problems)
        assert problems[0].message.startswith("suspicious encoding")
    assert decode("Nom".encode("utf-16"), "f")[1]


# ---------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------


def test_generator_output_is_onde_like_bytes() -> None:
    files = generate_school(UAI)
    assert set(files) == {PUPILS_FILE, PARENTS_FILE, TEACHERS_FILE}
    for name, content in files.items():
        text = content.decode("iso-8859-1")
        assert content.endswith(b"\r\n") and "\n" not in text.replace("\r\n", ""), name
        with pytest.raises(UnicodeDecodeError):  # really Latin-1, with accents
            content.decode("utf-8")
    parents = files[PARENTS_FILE].decode("iso-8859-1").splitlines()
    assert parents[0].count("Prénom enfant") == 3
    section = [i for i, line in enumerate(parents) if line.startswith('"Intitulé";"Adresse')]
    assert len(section) == 1 and 1 <= len(parents) - section[0] - 1 <= 5


def rows_without_email(school: School, layout: Layout) -> int:
    """Parents without email whose rows are several: each gives a possible-duplicate
    warning (a parent of four children in the classic layout; of two in that of 2021)."""
    per_row = 1 if layout.parents in ("2021", "2022") else 3
    return sum(1 for p in school.parents if not p.email and len(p.children) > per_row)


def assert_only_expected_warnings(export: Export, school: School, layout: Layout) -> None:
    duplicates = [w for w in export.warnings if w.message.startswith("possible duplicate")]
    labels = [w for w in export.warnings if "is not a class of the pupils file" in w.message]
    assert len(duplicates) == rows_without_email(school, layout)
    levels = {p.level for p in school.pupils}
    assert len(labels) == (len(levels) if layout.parent_class_labels == "level" else 0)
    assert len(duplicates) + len(labels) == len(export.warnings), export.warnings


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_generator_round_trips_through_read_drop_in_every_layout(name: str) -> None:
    layout = LAYOUTS[name]
    school = build_school(UAI, classes=6, pupils_per_class=25, seed=0, layout=layout)
    export = read(generate_school(UAI, classes=6, pupils_per_class=25, seed=0, layout=layout))

    assert export.ok, export.errors[:5]
    assert export.suspicious == ()
    assert_only_expected_warnings(export, school, layout)
    assert len(export.pupils) == 150
    assert len(export.parents) == len(school.parents)
    assert len(export.teachers) == len(school.teachers) == 7  # one without a class or two
    assert {t.classes for t in export.teachers} == {t.classes for t in school.teachers}
    if layout.pupils == "ine":
        assert {p.ine for p in export.pupils} == {p.ine for p in school.pupils}
        assert {(c.name, c.onde_id) for c in export.classes} == set(school.class_ids.items())
    assert len(export.classes) == 6
    assert sum(t.director for t in export.teachers) == 1
    assert {p.level for p in export.pupils} == {"CP", "CE1", "CE2", "CM1", "CM2"}
    # Every child of every parent is one pupil; every pupil has a parent.
    children = [c for parent in export.parents for c in parent.children]
    assert all(c.pupil_line is not None for c in children)
    assert {c.pupil_line for c in children} == {p.line for p in export.pupils}
    assert_realistic(export)
    # The four-children family: one parent per row pair, four children, both parents.
    [four] = school.four_children
    assert [len(p.children) for p in school.parents if p.family == four] == [4, 4]
    # Separated parents: one row each, at two addresses, both parents of the same children.
    [family] = school.separated
    father, mother = (p for p in school.parents if p.family == family)
    assert father.address != mother.address
    linked = [
        {c.pupil_line for c in p.children}
        for p in export.parents
        if (fold_name(p.last_name), fold_name(p.first_name))
        in {(fold_name(q.last_name), fold_name(q.first_name)) for q in (father, mother)}
    ]
    assert len(linked) == 2 and linked[0] == linked[1]


def assert_realistic(export: Export) -> None:
    pupils = {p.line: p for p in export.pupils}
    parents_of: dict[int, set[int]] = {}
    for i, parent in enumerate(export.parents):
        for child in parent.children:
            assert child.pupil_line is not None
            parents_of.setdefault(child.pupil_line, set()).add(i)

    # Twins: same parents, same birth date, different first names.
    twins = [
        (a, b)
        for a in export.pupils
        for b in export.pupils
        if a.line < b.line
        and a.birth_date == b.birth_date
        and fold_name(a.last_name) == fold_name(b.last_name)
        and parents_of[a.line] == parents_of[b.line]
    ]
    assert twins and all(a.first_name != b.first_name for a, b in twins)
    # Homonyms: same first and last name, different classes, different parents.
    by_name: dict[tuple[str, str], list[int]] = {}
    for p in export.pupils:
        by_name.setdefault((fold_name(p.first_name), fold_name(p.last_name)), []).append(p.line)
    homonyms = [lines for lines in by_name.values() if len(lines) > 1]
    assert any(
        len({pupils[line].class_name for line in lines}) == len(lines)
        and not set.intersection(*(parents_of[line] for line in lines))
        for lines in homonyms
    )
    # Siblings sharing both parents, in several classes.
    families = Counter(frozenset(parents) for parents in parents_of.values())
    assert any(len(family) == 2 and count >= 2 for family, count in families.items())
    assert any(
        len({pupils[c.pupil_line].class_name for c in parent.children if c.pupil_line}) >= 2
        for parent in export.parents
    )
    # A parent with four children on two rows (four in the layouts of one row a child);
    # parents without email; names with
    # accents, hyphens, apostrophes and spaces.
    assert any(len(p.children) == 4 and len(p.lines) in (2, 4) for p in export.parents)
    assert any(p.email is None for p in export.parents)
    assert any(p.email is not None for p in export.parents)
    people = [*export.pupils, *export.parents]
    first_names = {p.first_name for p in people}
    last_names = {p.last_name for p in people}
    assert any(set(name) & set("éèëïçÉÈ") for name in first_names | last_names)
    assert any("-" in name for name in first_names)
    assert any("'" in name for name in last_names)
    assert any(" " in name for name in last_names)


def test_generator_is_deterministic_by_seed() -> None:
    assert generate_school(UAI, seed=4) == generate_school(UAI, seed=4)
    assert generate_school(UAI, seed=4) != generate_school(UAI, seed=5)
    assert generate_school(UAI, seed=4) != generate_school("0741235R", seed=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    classes=st.integers(1, 14),
    pupils_per_class=st.integers(1, 32),
    seed=st.integers(0, 10**6),
    department=st.sampled_from(["074", "054", "057", "008", "051", "075"]),
    name=st.sampled_from(sorted(LAYOUTS)),
)
def test_any_generated_school_reads_back_cleanly(
    classes: int, pupils_per_class: int, seed: int, department: str, name: str
) -> None:
    uai = uai_for(department, seed % 10_000)
    layout = LAYOUTS[name]
    shape_ = {"classes": classes, "pupils_per_class": pupils_per_class, "seed": seed}
    school = build_school(uai, **shape_, layout=layout)
    files = generate_school(uai, **shape_, layout=layout)
    export = read(files, uai)
    assert export.errors == () and export.suspicious == ()
    assert_only_expected_warnings(export, school, layout)
    assert len(export.pupils) == classes * pupils_per_class
    assert len(export.parents) == len(school.parents)
    assert len(export.teachers) == len(school.teachers)
    for file, content in files.items():
        assert decode(content, file)[1] == []


def test_uais_are_valid() -> None:
    assert uai_for("001", 1) == "0010001W"  # DESIGN §3
    assert uai_for("074", 1234) == UAI


def test_generator_command_line_writes_valid_drops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--out", str(tmp_path), "--schools", "3", "--first-uai-number", "41"])
    main(["--out", str(tmp_path / "x"), "--schools", "1", "--department", "057", "--seed", "2"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "x") == [
        uai_for("074", 41),
        uai_for("074", 42),
        uai_for("074", 43),
    ]
    assert [p.name for p in (tmp_path / "x").iterdir()] == [uai_for("057", 1)]
    main(["--out", str(tmp_path / "y"), "--schools", "1", "--layout", "2021"])
    for folder in [*tmp_path.glob("074*"), *(tmp_path / "x").iterdir()]:
        export = read({p.name: p.read_bytes() for p in folder.iterdir()}, folder.name)
        assert export.ok and export.suspicious == () and len(export.pupils) == 150
    [folder] = (tmp_path / "y").iterdir()
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["CSVExtraction(1).csv", "CSVExtraction.csv", "Enseignants.csv"]
    export = read({p.name: p.read_bytes() for p in folder.iterdir()}, folder.name)
    assert export.ok and export.files["parents"] == "CSVExtraction(1).csv"
    assert "3 school(s) written" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--schools", "2", "--first-uai-number", "9999"])


def test_generator_is_fast() -> None:
    started = time.perf_counter()
    for number in range(100):
        generate_school(uai_for("074", number), classes=4, pupils_per_class=25)
    # 2,000 such schools must take well under a minute: 100 in well under 3 s.
    assert time.perf_counter() - started < 3.0


# The encoding checks as plain regular expressions: slow, obviously right. decode's single
# scan must find what they find.
_REFERENCE_CHECKS = {
    "mojibake": re.compile(f"[ÂÃÅ][{re.escape(decoding._CONTINUATIONS)}]|â€"),
    "c1": re.compile("[\u0080-\u009f]"),
    "nul": re.compile("\x00"),
    "replacement": re.compile("\ufffd"),
}
_SUSPECT_TEXT = st.text(
    alphabet=st.sampled_from(list('aé;\n"ÂÃÅâ€©™\x80\x81\x9f\xa0\xbf\x00\ufffdœ’')), max_size=60
)


@settings(max_examples=400, deadline=None)
@given(_SUSPECT_TEXT)
def test_encoding_findings_match_the_plain_regular_expressions(text: str) -> None:
    expected = {}
    for kind, pattern in _REFERENCE_CHECKS.items():
        if (first := pattern.search(text)) is not None:
            expected[kind] = (len(pattern.findall(text)), first.start(), first.group())
    found = {
        kind: (f.count, f.position, f.sample)
        for kind, f in decoding._encoding_findings(text).items()
    }
    assert found == expected
