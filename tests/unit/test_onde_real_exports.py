"""The reader on exports written the way real ones are (tests/support/onde_exports.py), one
school per layout, read field by field."""

from datetime import date

from services.directory_sync.onde import DEFAULT_LIMITS, Drop, Export, Limits, read_drop
from tests.support import onde_exports as real

UAI = "0741234P"


def read(files: dict[str, bytes], uai: str = UAI, limits: Limits = DEFAULT_LIMITS) -> Export:
    return read_drop(Drop(uai, tuple(sorted(files.items()))), limits)


def linked(export: Export) -> dict[str, list[tuple[str, str | None]]]:
    """Each parent (first name) -> his children: (first name, class of the pupil linked)."""
    pupils = {p.line: p for p in export.pupils}
    return {
        parent.first_name: [
            (c.first_name, pupils[c.pupil_line].class_name if c.pupil_line else "unlinked")
            for c in parent.children
        ]
        for parent in export.parents
    }


def test_a_be1d_export_is_read_whole() -> None:
    export = read(real.BE1D)

    assert export.errors == () and export.suspicious == ()
    assert export.files == {
        "pupils": "CSVExtraction-eleves.csv",
        "parents": "CSVExtraction-responsables.csv",
        "teachers": "Enseignants.csv",
    }
    lea, noe, aissatou, zoe, other_zoe, hugo = export.pupils
    assert lea == (
        "BELMONDO",
        None,
        "Léa",
        date(2018, 3, 14),
        "F",
        None,
        "CYCLE II",
        "CE1",
        "CE1 Mme Favre",
        None,
        None,
        2,
    )
    assert (noe.sex, noe.level, noe.class_name, noe.birth_date) == (
        "H",
        "CM2",
        "CM1-CM2",
        date(2015, 11, 2),
    )
    assert (aissatou.usage_name, aissatou.birth_date) == ("N'DIAYE-FALL", date(2019, 8, 17))
    assert (zoe.class_name, other_zoe.class_name) == ("CM1-CM2", "CE1 Mme Favre")
    assert hugo.class_name is None  # an account at school level
    assert [(c.name, c.level) for c in export.classes] == [
        ("CE1 Mme Favre", "CE1"),
        ("CM1-CM2", None),
        ("CP", "CP"),
    ]

    sophie, marc, awa, _, _ = export.parents
    assert (sophie.civility, sophie.email, sophie.lines) == (
        "MME",
        "sophie.belmondo@example.org",
        (2,),
    )
    # One parent on two rows at two addresses, with his email: one person.
    assert (marc.email, marc.lines) == ("marc.belmondo@example.org", (3, 4))
    assert (awa.civility, awa.email, awa.address) == (
        "MLLE",
        None,
        "8 chemin des Écoliers, 74000 Annecy",
    )
    assert linked(export) == {
        "Sophie": [("Léa", "CE1 Mme Favre"), ("Noé", "CM1-CM2")],
        "Marc": [("Noé", "CM1-CM2"), ("Léa", "CE1 Mme Favre")],
        "Awa": [("Aïssatou", "CP")],
        "Julie": [("Zoé", "CM1-CM2")],  # the homonym of her class, not the CE1 one
        "Paul": [("Hugo", None)],  # a pupil without a class is linked all the same
    }
    assert [c.usage_name for c in awa.children] == ["N'DIAYE-FALL"]

    favre, roux = export.teachers
    assert (favre.email, favre.director, favre.classes) == (
        "claire.favre@ac-grenoble.example.org",
        False,
        ("CE1 Mme Favre",),
    )
    assert (roux.director, roux.classes, roux.line) == (True, ("CM1-CM2", "CP"), 3)
    [no_class] = export.warnings
    assert (no_class.file, no_class.line) == ("CSVExtraction-eleves.csv", 7)
    assert "Hugo DURAND has no class: account at school level" in no_class.message


def test_an_export_with_ine_and_other_class_labels_is_read_whole() -> None:
    export = read(real.WITH_INE)

    assert export.errors == () and export.suspicious == ()
    martin, martine, chloe = export.pupils
    assert (martin.ine, martin.class_name, martin.class_id, martin.sex) == (
        "1111111111A",
        "Classe de M. Machin",
        "99999",
        "M",
    )
    assert (martine.ine, martine.class_id, martine.birth_date) == (
        "1111111112A",
        "99998",
        date(2018, 1, 1),
    )
    assert (chloe.last_name, chloe.first_name) == ("LŒUILLET", "Chloé")  # Windows-1252
    assert [(c.name, c.level, c.onde_id) for c in export.classes] == [
        ("Classe de M. Machin", "CE2", "99999"),
        ("Classe de Mme Curie", "CM1", "99997"),
        ("Classe de Mme Truc", "CE1", "99998"),
    ]
    # "CLASSE  CE2" is no class of the pupils file: the children are found by name.
    assert linked(export) == {
        "Jean": [("Martin", "Classe de M. Machin"), ("Martine", "Classe de Mme Truc")],
        "Jeanne": [("Martin", "Classe de M. Machin")],
        "Anne": [("Chloé", "Classe de Mme Curie")],
    }
    assert export.parents[2].usage_name == "LŒUILLET"
    labels = sorted(w.message for w in export.warnings)
    assert labels == [
        f"class 'CLASSE  {level}' is not a class of the pupils file: its {n} child(ren) "
        "were matched by name"
        for level, n in (("CE1", 1), ("CE2", 2), ("CM1", 1))
    ]
    machin, truc = export.teachers  # UTF-8 with a byte order mark
    assert (machin.director, machin.classes, truc.first_name) == (
        True,
        ("Classe de M. Machin",),
        "Hélène",
    )


def test_the_parents_layout_of_2021_is_read_whole() -> None:
    export = read(real.PARENTS_2021_DROP)

    assert export.errors == () and export.suspicious == ()
    assert export.files == {
        "pupils": "CSVExtraction.csv",
        "parents": "CSVExtraction(1).csv",
        "teachers": "CSVExtraction-enseignants.csv",
    }
    karim, nadia, _, marie = export.parents
    # One row per parent and child: Karim's two rows are one parent of two children.
    assert (karim.lines, karim.email) == ((2, 3), "karim.roy@example.org")
    assert [(c.first_name, c.birth_date) for c in karim.children] == [
        ("Léo", date(2018, 3, 4)),
        ("Inès", date(2016, 6, 10)),
    ]
    # Two Léo ROY in CE1, which the parents file calls "CLASSE  CE1": the birth date says
    # which is whose; the grandmother gives none, and is created without that link.
    assert linked(export) == {
        "Karim": [("Léo", "CE1 A"), ("Inès", "CM1")],
        "Nadia": [("Léo", "CE1 B")],
        "Simone": [("Léo", "unlinked")],
        "Marie": [("Éloïse", "CP")],
    }
    assert (marie.usage_name, marie.last_name) == ("DUBOIS", "SAINT-JEAN")
    assert [(c.usage_name, c.last_name) for c in marie.children] == [("DUBOIS", "SAINT-JEAN")]
    assert nadia.email is None
    [ambiguous] = [w for w in export.warnings if "matches" in w.message]
    assert (ambiguous.file, ambiguous.line) == ("CSVExtraction(1).csv", 5)
    assert ambiguous.message == (
        "child Léo ROY in class 'CLASSE  CE1' matches 2 pupils (pupils file lines 2, 3): "
        "parent Simone ROY created without this link"
    )
    assert [p.ine for p in export.pupils] == [
        "3333333333C",
        "3333333334D",
        "3333333335E",
        "3333333336F",
    ]
    lemaire, henry = export.teachers  # "Classe 1" and "Classe 2"
    assert (lemaire.classes, henry.classes) == (("CE1 A", "CE1 B"), ("CM1",))


def test_the_later_child_columns_are_read() -> None:
    export = read(real.PARENTS_LATER_DROP)

    assert export.errors == ()
    assert len(export.parents) == 1
    assert linked(export) == {"Karim": [("Léo", "CE1 A"), ("Inès", "CM1")]}
    assert [w.message for w in export.warnings] == ["no teachers file (enseignants) in the drop"]


def test_every_real_layout_reads_the_same_under_another_encoding() -> None:
    """A spreadsheet that saves a file again changes its encoding, not its content."""
    for files in (real.BE1D, real.PARENTS_2021_DROP):
        export = read(files)
        for encoding in ("utf-8-sig", "cp1252"):
            again = {
                name: content.removeprefix(real.BOM)
                .decode("utf-8" if content.startswith(real.BOM) else "cp1252")
                .encode(encoding)
                for name, content in files.items()
            }
            assert read(again) == export
