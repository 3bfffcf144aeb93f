"""Realistic synthetic ONDE drops, for the tests, the demo and the benchmarks.

One school's drop is three files, as an académie and the school produce them:
``CSVExtraction-eleves.csv``, ``CSVExtraction-responsables.csv`` and ``enseignants.csv``,
``;``-separated, ISO-8859-1, CRLF line ends, fields quoted, extra columns (addresses,
phones, authorisations) that the feed ignores, and the partner organisations section at
the end of the parents file.

The content has what real schools have: accented, hyphenated and apostrophised names
(Éloïse, Jean-Noël, N'DIAYE, LE GALL, LEFÈVRE), homonyms in different classes, twins,
siblings in several classes, separated parents (one row each, two addresses), single
parents, parents without email, a parent of four children (two rows), double-level
classes ("CE1-CE2") and classes named after their teacher ("CM2 Mme Durand").

Deterministic for a given (UAI, seed). Emails use the reserved ``example.org`` domains.

Every layout schools and académies really send (``--layout``, see ``LAYOUTS``):

- ``classic``: the three files above, every value quoted, CRLF, a final line break;
- ``be1d``: ONDE's BE1D extraction as it comes: values unquoted, pupils' rows ending with
  ``;``, dates ``2006-08-17``, sex ``H``/``F``, parents' header of 25 fields (with ``Numéro
  de poste``) and rows that stop after their last child, LF, no final line break;
- ``ine``: the pupils layout with ``INE``, ``Libellé classe``, ``Identifiant classe`` and
  ``Dispositif(s)``, Windows-1252;
- ``2021``: the parents layout since 2021 (``Nom de famille élève``, ``Date de naissance
  élève``, ``Classes élèves``, ``PCS``, ``Communication adresses``, one row per parent and
  child), with the INE pupils layout, the files named as ONDE downloads them
  (``CSVExtraction.csv``, ``CSVExtraction(1).csv``), the parents file writing classes by
  their level (``CLASSE  CE2``), a teacher of two classes on one row with two ``Classe``
  columns, UTF-8 with a byte order mark (a spreadsheet saved it again);
- ``2022``: the same with the later child columns (``Nom de l'élève``, ``Prénom de
  l'élève``, ``Date de naissance de l'élève``, ``Classes de l'élève``).

    python -m tools.onde_generator --out var/feed --schools 20 --first-uai-number 1 \
        --department 074 --seed 0 --layout 2021
"""

import argparse
import functools
import hashlib
import itertools
import random
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from shared.contracts.common import UAI_LETTERS, uai_check_letter

PUPILS_FILE = "CSVExtraction-eleves.csv"
PARENTS_FILE = "CSVExtraction-responsables.csv"
TEACHERS_FILE = "enseignants.csv"
ENCODING = "iso-8859-1"
T = TypeVar("T")

LEVELS = ("CP", "CE1", "CE2", "CM1", "CM2")
CYCLES = {"CP": "CYCLE II", "CE1": "CYCLE II", "CE2": "CYCLE II", "CM1": "CYCLE III"}
CYCLES["CM2"] = "CYCLE III"
# Birth year of a pupil at the expected age for his level, school year 2025-2026.
BIRTH_YEARS = {"CP": 2019, "CE1": 2018, "CE2": 2017, "CM1": 2016, "CM2": 2015}

PUPILS_HEADER = (
    "Nom Elève",
    "Nom d'usage Elève",
    "Prénom Elève",
    "Date naissance",
    "Sexe",
    "Adresse1",
    "Cp1",
    "Commune1",
    "Pays1",
    "Adresse2",
    "Cp2",
    "Commune2",
    "Pays2",
    " Cycle",
    "Niveau",
    "Classe",
    "Attestation fournie",
    "Autorisations associations",
    "Autorisations photos",
    "Décision de passage",
)
PARENTS_HEADER = (
    "Civilité Responsable",
    "Nom usage responsable",
    "Nom responsable",
    "Prénom responsable",
    "Adresse responsable",
    "CP responsable",
    "Commune responsable",
    "Pays",
    "Courriel",
    "Téléphone domicile",
    "Téléphone travail",
    "Téléphone portable",
) + ("Nom d'usage enfant", "Nom de famille enfant", "Prénom enfant", "Classes enfants") * 3
ORGANISATIONS_HEADER = (
    "Intitulé",
    "Adresse Organisme",
    "CP Organisme",
    "Commune Organisme",
    "Téléphone",
    "Courriel",
)
# The pupils layout with INE: "Nom élève" in lower case, "Libellé classe" and its id.
PUPILS_INE_HEADER = (
    "Nom élève",
    "Nom d'usage élève",
    "Prénom élève",
    "Date naissance",
    "Sexe",
    "INE",
    "Adresse1",
    "Cp1",
    "Commune1",
    "Pays1",
    "Adresse2",
    "Cp2",
    "Commune2",
    "Pays2",
    " Cycle",
    "Niveau",
    "Libellé classe",
    "Identifiant classe",
    "Attestation fournie",
    "Autorisation associations",
    "Autorisation photo",
    "Décision de passage",
    "Dispositif(s)",
)
PARENT_IDENTITY = PARENTS_HEADER[:12]
# BE1D's parents header of 25 fields: a work phone extension before the mobile phone.
PARENTS_BE1D_HEADER = (
    PARENT_IDENTITY[:11]
    + ("Numéro de poste", "Téléphone portable")
    + ("Nom d'usage enfant", "Nom de famille enfant", "Prénom enfant", "Classes enfants") * 3
)
PARENTS_2021_HEADER = (
    *PARENT_IDENTITY,
    "PCS",
    "Communication adresses",
    "Nom d'usage élève",
    "Nom de famille élève",
    "Prénom élève",
    "Date de naissance élève",
    "Classes élèves",
)
# Later still: the class first (as some exports write it), no usage name.
PARENTS_2022_HEADER = (
    *PARENT_IDENTITY,
    "PCS",
    "Communication adresses",
    "Classes de l'élève",
    "Nom de l'élève",
    "Prénom de l'élève",
    "Date de naissance de l'élève",
)
TEACHERS_HEADER = (
    "Civilité",
    "Nom usage",
    "Nom",
    "Prénom",
    "Adresse",
    "CP",
    "Commune",
    "Pays",
    "Courriel",
    "Téléphone domicile",
    "Téléphone portable",
    "Directeur",
    "Classe",
)

LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
    "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David",
    "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier",
    "Dupont", "Lambert", "Bonnet", "François", "Legrand", "Garnier", "Faure", "Rousseau",
    "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Perrin", "Morin", "Mathieu",
    "Clément", "Gauthier", "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson",
    "Gérard", "Nguyen", "Boyer", "Denis", "Lemaire", "Duval", "Joly", "Roche", "Noël",
    "Meyer", "Meunier", "Pérez", "Marchand", "Dufour", "Blanchard", "Barbier", "Brun",
    "Dumas", "Brunet", "Schmitt", "Colin", "Fernandez", "Renard", "Arnaud", "Caron",
    "Aubert", "Giraud", "Leclerc", "Vidal", "Bourgeois", "Renaud", "Lemoine", "Picard",
    "Lacroix", "Fabre", "Dupuis", "Olivier", "Da Silva", "Hubert", "Guillot", "Rivière",
    "Le Gall", "Le Goff", "Le Bihan", "N'Diaye", "Diallo", "Traoré", "Benali", "Haddad",
    "Ben Saïd", "D'Almeida", "De La Fontaine", "Lévêque", "Béranger", "Crépin", "Desprès",
    "Héraud", "Favre", "Pollet", "Mermoud", "Bouvier", "Dupraz", "Perrissin-Fabert",
    "Burnier", "Schneider", "Weber", "Klein", "Hoffmann", "Kieffer", "Wagner", "Gaspard",
    "Saint-Jean", "L'Héritier", "D'Aubigné", "Ménard", "Châtelain", "Bréhier", "Lefèbvre",
)  # fmt: skip
GIRLS = (
    "Emma", "Jade", "Louise", "Alice", "Chloé", "Léa", "Lina", "Rose", "Anna", "Mia",
    "Inès", "Ambre", "Julia", "Léna", "Zoé", "Manon", "Agathe", "Éloïse", "Héloïse",
    "Anaïs", "Maëlys", "Noémie", "Clémence", "Margaux", "Lou", "Romane", "Camille",
    "Océane", "Salomé", "Ophélie", "Aïcha", "Fatoumata", "Yasmine", "Thaïs", "Maïwenn",
    "Cléa", "Maëlle", "Anne-Sophie", "Marie-Lou", "Élise", "Capucine", "Gaëlle",
)  # fmt: skip
BOYS = (
    "Gabriel", "Léo", "Raphaël", "Arthur", "Louis", "Jules", "Adam", "Maël", "Lucas",
    "Hugo", "Noah", "Liam", "Gabin", "Sacha", "Paul", "Nathan", "Aaron", "Mohamed",
    "Ethan", "Tom", "Éliott", "Noé", "Timéo", "Théo", "Clément", "Baptiste", "Jean-Noël",
    "Jean-Baptiste", "Loïc", "Anaël", "Yanis", "Ibrahima", "Mathéo", "Côme", "Ewen",
    "Kélian", "Enzo", "Évan", "Zinédine", "Joachim",
)  # fmt: skip
WOMEN = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Céline", "Sandrine",
    "Aurélie", "Émilie", "Stéphanie", "Valérie", "Hélène", "Sophie", "Élodie", "Laëtitia",
    "Mélanie", "Virginie", "Géraldine", "Anne-Laure", "Marie-Hélène", "Fatima", "Khadija",
    "Bérénice", "Audrey", "Caroline", "Delphine", "Agnès", "Mégane", "Soizic", "Maryvonne",
)  # fmt: skip
MEN = (
    "Jean", "Philippe", "Nicolas", "Stéphane", "Christophe", "Sébastien", "Frédéric",
    "Laurent", "Olivier", "Jérôme", "Cédric", "Julien", "Grégory", "Thierry", "Jean-Noël",
    "Jean-François", "Pierre-Yves", "François", "Hervé", "Rémi", "Aurélien", "Mickaël",
    "Karim", "Mamadou", "Youssef", "Benoît", "Gaël", "Yannick", "Anthony", "Éric",
)  # fmt: skip
STREETS = (
    "rue de la Paix", "rue Victor Hugo", "chemin des Écoliers", "avenue du Général de Gaulle",
    "impasse des Lilas", "route de la Gare", "place de l'Église", "allée des Tilleuls",
    "rue Jean Jaurès", "rue du Moulin", "chemin de la Côte", "rue des Écoles",
    "boulevard de l'Europe", "rue Pasteur", "rue du 8 Mai 1945", "montée des Châtaigniers",
)  # fmt: skip
COMMUNES = {
    "074": (("Annecy", "74000"), ("Thônes", "74230"), ("Cluses", "74300"),
            ("Sallanches", "74700"), ("Évian-les-Bains", "74500"),
            ("La Roche-sur-Foron", "74800")),
    "054": (("Nancy", "54000"), ("Lunéville", "54300"), ("Pont-à-Mousson", "54700"),
            ("Toul", "54200")),
    "055": (("Verdun", "55100"), ("Bar-le-Duc", "55000"), ("Commercy", "55200")),
    "057": (("Metz", "57000"), ("Thionville", "57100"), ("Forbach", "57600"),
            ("Sarreguemines", "57200")),
    "088": (("Épinal", "88000"), ("Saint-Dié-des-Vosges", "88100"), ("Gérardmer", "88400")),
    "008": (("Charleville-Mézières", "08000"), ("Sedan", "08200"), ("Rethel", "08300")),
    "010": (("Troyes", "10000"), ("Romilly-sur-Seine", "10100"), ("Bar-sur-Aube", "10200")),
    "051": (("Reims", "51100"), ("Châlons-en-Champagne", "51000"), ("Épernay", "51200")),
    "052": (("Chaumont", "52000"), ("Saint-Dizier", "52100"), ("Langres", "52200")),
}  # fmt: skip
ACADEMIES = {"074": "grenoble", "008": "reims", "010": "reims", "051": "reims", "052": "reims"}
ACADEMIES.update({"054": "nancy-metz", "055": "nancy-metz", "057": "nancy-metz"})
ACADEMIES["088"] = "nancy-metz"
EMAIL_DOMAINS = ("example.org", "example.net", "example.com")
PCS = ("Cadres", "Employés", "Ouvriers", "Professions intermédiaires", "Artisans", "Retraités")


@dataclass(frozen=True)
class Layout:
    """How a school's files are written: which ONDE layout, and the habits of the file."""

    pupils: Literal["be1d", "ine"] = "be1d"
    parents: Literal["be1d", "be1d25", "2021", "2022"] = "be1d"
    quoting: Literal["nonempty", "none"] = "nonempty"
    newline: str = "\r\n"
    final_newline: bool = True
    encoding: str = ENCODING
    iso_dates: bool = False  # 2006-08-17 rather than 17/08/2006
    sex_h: bool = False  # H/F rather than M/F
    pupil_row_semicolon: bool = True  # every pupils row ends with an extra ";"
    short_parent_rows: bool = False  # a parents row stops after its last child
    parent_class_labels: Literal["same", "level"] = "same"  # "level": "CLASSE  CE2"
    download_names: bool = False  # CSVExtraction.csv, CSVExtraction(1).csv
    organisations: bool = True
    two_class_teacher: bool = False  # a teacher of two classes, two "Classe" columns


LAYOUTS: dict[str, Layout] = {
    "classic": Layout(),
    "be1d": Layout(
        parents="be1d25",
        quoting="none",
        newline="\n",
        final_newline=False,
        iso_dates=True,
        sex_h=True,
        short_parent_rows=True,
        organisations=False,
    ),
    "ine": Layout(pupils="ine", encoding="cp1252", two_class_teacher=True),
    "2021": Layout(
        pupils="ine",
        parents="2021",
        encoding="utf-8-sig",
        parent_class_labels="level",
        download_names=True,
        two_class_teacher=True,
        final_newline=False,
    ),
    "2022": Layout(
        pupils="ine",
        parents="2022",
        quoting="none",
        newline="\n",
        parent_class_labels="level",
        download_names=True,
        two_class_teacher=True,
    ),
}
CLASSIC = LAYOUTS["classic"]


@functools.lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """Lowercase ASCII letters and digits only (the parser's matching key)."""
    text = text.lower().replace("œ", "oe").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum())


def uai_for(department: str, number: int) -> str:
    """A valid UAI: department (3 digits) + number (4 digits) + check letter."""
    digits = f"{department}{number:04d}"
    if len(digits) != 7 or not digits.isdigit():
        raise ValueError(f"cannot make a UAI from department {department!r} and {number}")
    return digits + uai_check_letter(digits)


def _distinct(names: Sequence[str]) -> list[str]:
    """Class names made distinct: "CP" twice -> "CP A", "CP B" (never a name already used)."""
    result = list(names)
    for name in dict.fromkeys(names):
        indices = [i for i, n in enumerate(result) if n == name]
        if len(indices) < 2:
            continue
        base = name[:-2] if name.endswith(" A") else name
        letters = (f"{base} {c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        for i in indices:
            result[i] = ""
        for i in indices:
            candidate = next(letters)
            while candidate in result:
                candidate = next(letters)
            result[i] = candidate
    return result


# ---------------------------------------------------------------------------------------
# The school, as the generator knows it (the truth the tests compare the parser with)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    line: str
    postal_code: str
    city: str


@dataclass
class GenPupil:
    last_name: str
    usage_name: str
    first_name: str
    sex: str
    birth_date: date
    level: str
    class_name: str
    family: int
    addresses: list[Address] = field(default_factory=list)
    ine: str = ""  # every pupil has one; only the layouts with INE write it


@dataclass
class GenParent:
    civility: str
    last_name: str
    usage_name: str
    first_name: str
    email: str
    address: Address
    phones: tuple[str, str, str]
    family: int
    children: list[GenPupil] = field(default_factory=list)


@dataclass
class GenTeacher:
    civility: str
    last_name: str
    usage_name: str
    first_name: str
    email: str
    director: bool
    class_name: str
    more_classes: tuple[str, ...] = ()  # a teacher of several classes: one row, more columns

    @property
    def classes(self) -> tuple[str, ...]:
        return (self.class_name, *self.more_classes) if self.class_name else self.more_classes


@dataclass
class School:
    uai: str
    classes: list[tuple[str, tuple[str, ...]]]  # (name, levels)
    pupils: list[GenPupil]
    parents: list[GenParent]
    teachers: list[GenTeacher]
    organisations: list[tuple[str, Address, str, str]]
    # family ids of the special cases, for the tests
    twins: list[int] = field(default_factory=list)
    homonyms: list[tuple[int, int]] = field(default_factory=list)
    four_children: list[int] = field(default_factory=list)
    separated: list[int] = field(default_factory=list)
    class_ids: dict[str, str] = field(default_factory=dict)  # ONDE's "Identifiant classe"


class _Rng(random.Random):
    """``choice`` and ``randrange(n)`` from a single ``random()`` call: this code is hot."""

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def below(self, n: int) -> int:
        return int(self.random() * n)


class _Builder:
    def __init__(self, uai: str, classes: int, pupils_per_class: int, seed: int) -> None:
        if not 1 <= classes <= 60 or pupils_per_class < 0:  # 1 to 60 classes: DESIGN §3
            raise ValueError("classes must be within 1-60 and pupils_per_class >= 0")
        self.rng = _Rng(f"onde:{uai}:{seed}")
        self.uai = uai
        department = uai[:3]
        self.communes = COMMUNES.get(department, (("Ville-Exemple", f"{department[1:]}000"),))
        self.home = self.rng.pick(self.communes)
        self.academy = ACADEMIES.get(department, "exemple")
        self.pupils: list[GenPupil] = []
        self.parents: list[GenParent] = []
        self.taken: set[tuple[str, str, str]] = set()  # (class, first, name) folded
        self.identities: set[tuple[str, str, date]] = set()
        self.parent_keys: set[tuple[str, str, str]] = set()
        self.families = 0
        self.emails = 0
        self.teachers: list[GenTeacher] = []
        self.classes = self._plan_classes(classes)
        self.free = [pupils_per_class] * classes

    # -- classes and teachers -------------------------------------------------------------

    def _plan_classes(self, count: int) -> list[tuple[str, tuple[str, ...]]]:
        rng = self.rng
        plans: list[tuple[str, tuple[str, ...]]] = []
        used_teacher_names: set[str] = set()
        for i in range(count):
            level_index = i * len(LEVELS) // count
            level = LEVELS[level_index]
            civility = rng.pick(("MME", "MME", "M."))
            first = rng.pick(WOMEN if civility == "MME" else MEN)
            last = rng.pick(LAST_NAMES)
            while fold(last) in used_teacher_names:
                last = rng.pick(LAST_NAMES)
            used_teacher_names.add(fold(last))
            style = i % 4
            if style == 1 and level_index + 1 < len(LEVELS):
                levels: tuple[str, ...] = (level, LEVELS[level_index + 1])
                name = "-".join(levels)
            elif style == 2:
                levels, name = (level,), f"{level} A"
            elif style == 3:
                levels = (level,)
                name = f"{level} {'Mme' if civility == 'MME' else 'M.'} {last}"
            else:
                levels, name = (level,), level
            plans.append((name, levels))
            self.teachers.append(
                GenTeacher(
                    civility=civility,
                    last_name=last.upper(),
                    usage_name="",
                    first_name=first,
                    email=self._email(first, last, f"ac-{self.academy}.example.org"),
                    director=False,
                    class_name=name,
                )
            )
        names = _distinct([name for name, _ in plans])
        for teacher, name in zip(self.teachers, names, strict=True):
            teacher.class_name = name
        self.teachers[self.rng.randrange(count)].director = True
        if count >= 3:  # a teacher without class (part-time, covering the director's day off)
            first = rng.pick(WOMEN)
            birth_name = rng.pick([n for n in LAST_NAMES if fold(n) not in used_teacher_names])
            married = rng.pick([n for n in LAST_NAMES if fold(n) not in used_teacher_names])
            self.teachers.append(
                GenTeacher(
                    civility="MME",
                    last_name=birth_name.upper(),
                    usage_name=married.upper(),
                    first_name=first,
                    email=self._email(first, married, f"ac-{self.academy}.example.org"),
                    director=False,
                    class_name="",
                )
            )
        return [(name, levels) for name, (_, levels) in zip(names, plans, strict=True)]

    # -- helpers --------------------------------------------------------------------------

    def _email(self, first: str, last: str, domain: str | None = None) -> str:
        self.emails += 1
        domain = domain or self.rng.pick(EMAIL_DOMAINS)
        # A family's address is its own: two schools' namesakes never share one (the
        # platform takes the same names and email in two schools for one person).
        suffix = "" if domain.startswith("ac-") else f"{self.emails}.{self.uai[:7]}"
        return f"{fold(first)}.{fold(last)}{suffix}@{domain}"

    def _address(self) -> Address:
        rng = self.rng
        city, postal_code = self.home if rng.random() < 0.8 else rng.pick(self.communes)
        return Address(f"{1 + rng.below(119)} {rng.pick(STREETS)}", postal_code, city)

    def _phones(self) -> tuple[str, str, str]:
        rng = self.rng

        def number(prefix: str) -> str:
            n = rng.getrandbits(27) % 100_000_000
            pairs = (n // 1_000_000, n // 10_000 % 100, n // 100 % 100, n % 100)
            return "{} {:02d} {:02d} {:02d} {:02d}".format(prefix, *pairs)

        home = number("04") if rng.random() < 0.3 else ""
        work = number("03") if rng.random() < 0.2 else ""
        return home, work, number(rng.pick(("06", "07")))

    def _free_classes(self, count: int) -> list[int]:
        """Up to ``count`` distinct classes with room, randomly."""
        open_ = [i for i, free in enumerate(self.free) if free > 0]
        return self.rng.sample(open_, min(count, len(open_)))

    def _birth(self, level: str, offset: int = 0) -> date:
        """A birth date for a pupil of ``level``, ``offset`` years late (-1) or early (+1)."""
        year = BIRTH_YEARS[level] + offset
        return date(year, 1, 1) + timedelta(days=self.rng.below(365))

    def _keys(
        self, class_name: str, first: str, last: str, usage: str
    ) -> set[tuple[str, str, str]]:
        return {(fold(class_name), fold(first), fold(name)) for name in (last, usage) if name}

    def _pupil(
        self,
        family: int,
        class_index: int,
        last: str,
        siblings: Sequence[GenPupil],
        *,
        first: str | None = None,
        sex: str | None = None,
        birth: date | None = None,
        usage: str = "",
    ) -> GenPupil | None:
        """A pupil in a class, with a first name no one in that class shares with him."""
        rng = self.rng
        class_name, levels = self.classes[class_index]
        level = levels[0] if birth is not None else rng.pick(levels)
        names_taken = {fold(s.first_name) for s in siblings}
        for attempt in range(40):
            pupil_sex = sex or rng.pick("MF")
            pupil_first = first if first is not None and attempt == 0 else None
            if pupil_first is None:
                pupil_first = rng.pick(BOYS if pupil_sex == "M" else GIRLS)
            # Siblings who are not twins are born at least ten months apart: when the level
            # leaves no room, one of them is a year late or early.
            offset = rng.pick((-1, 1)) if attempt >= 20 else 0
            pupil_birth = birth or self._birth(level, offset)
            spaced = birth is not None or all(
                abs((pupil_birth - s.birth_date).days) >= 300 for s in siblings
            )
            keys = self._keys(class_name, pupil_first, last, usage)
            identity = (fold(last), fold(pupil_first), pupil_birth)
            if (
                spaced
                and fold(pupil_first) not in names_taken
                and not keys & self.taken
                and identity not in self.identities
            ):
                break
            if first is not None:
                return None  # the name was imposed (homonym): it does not fit here
        else:
            return None
        self.taken |= keys
        self.identities.add(identity)
        self.free[class_index] -= 1
        pupil = GenPupil(
            last_name=last.upper(),
            usage_name=usage.upper(),
            first_name=pupil_first,
            sex=pupil_sex,
            birth_date=pupil_birth,
            level=level,
            class_name=class_name,
            family=family,
        )
        self.pupils.append(pupil)
        return pupil

    def _parent(
        self, family: int, civility: str, last: str, usage: str, address: Address, email: bool
    ) -> GenParent:
        rng = self.rng
        first = rng.pick(WOMEN if civility == "MME" else MEN)
        for _ in range(50):
            key = (fold(last), fold(usage), fold(first))
            if key not in self.parent_keys:
                break
            first = rng.pick(WOMEN if civility == "MME" else MEN)
        self.parent_keys.add((fold(last), fold(usage), fold(first)))
        parent = GenParent(
            civility=civility,
            last_name=last.upper(),
            usage_name=usage.upper(),
            first_name=first,
            email=self._email(first, usage or last) if email else "",
            address=address,
            phones=self._phones(),
            family=family,
        )
        self.parents.append(parent)
        return parent

    # -- families -------------------------------------------------------------------------

    def family(  # noqa: C901 - one branch a kind of family ONDE exports
        self,
        size: int,
        *,
        kind: str | None = None,
        twins: bool = False,
        name: str | None = None,
        first: str | None = None,
        sex: str | None = None,
        classes: Sequence[int] | None = None,
        emails: bool | None = None,
    ) -> list[GenPupil]:
        """One family: its children placed in classes with room, and its parents' rows."""
        rng = self.rng
        self.families += 1
        family = self.families
        last = name or rng.pick(LAST_NAMES)
        mother_name = rng.pick(LAST_NAMES)
        while fold(mother_name) == fold(last):
            mother_name = rng.pick(LAST_NAMES)
        kind = kind or rng.choices(("couple", "separated", "single"), (70, 20, 10))[0]
        usage = f"{last}-{mother_name}" if kind == "couple" and rng.random() < 0.08 else ""

        placed = list(classes) if classes is not None else self._free_classes(size)
        children: list[GenPupil] = []
        if twins:
            target = placed[0] if placed else None
            if target is not None and self.free[target] >= 2:
                level = self.classes[target][1][0]
                birth = self._birth(level)
                for sex in rng.sample("MF", 2) if rng.random() < 0.5 else ("F", "F"):
                    child = self._pupil(family, target, last, children, sex=sex, birth=birth)
                    if child is not None:
                        children.append(child)
        else:
            while len(placed) < size:  # fewer classes than children: share one
                more = self._free_classes(1)
                if not more:
                    break
                placed.append(more[0])
            for class_index in placed[:size]:
                if self.free[class_index] <= 0:
                    continue
                child = self._pupil(
                    family, class_index, last, children, first=first, sex=sex, usage=usage
                )
                if child is not None:
                    children.append(child)
        if not children:
            return []

        def with_email() -> bool:
            return emails if emails is not None else rng.random() < 0.88

        home = self._address()
        parents: list[GenParent] = []
        if kind == "couple":
            parents.append(self._parent(family, "M.", last, "", home, with_email()))
            married = last if rng.random() < 0.6 else ""
            parents.append(self._parent(family, "MME", mother_name, married, home, with_email()))
        elif kind == "separated":
            parents.append(self._parent(family, "M.", last, "", home, with_email()))
            other = self._address()
            while other == home:
                other = self._address()
            parents.append(self._parent(family, "MME", mother_name, "", other, with_email()))
        else:
            civility = rng.pick(("MME", "MME", "M."))
            parent_name = last if civility == "M." else mother_name
            parents.append(self._parent(family, civility, parent_name, "", home, with_email()))
        children.sort(key=lambda c: (c.birth_date, c.first_name))
        for parent in parents:
            parent.children = list(children)
        for child in children:
            child.addresses = list(dict.fromkeys(p.address for p in parents))
        return children

    def build(self) -> School:
        rng = self.rng
        school = School(self.uai, self.classes, self.pupils, self.parents, self.teachers, [])

        def family_of(children: list[GenPupil]) -> int | None:
            return children[0].family if children else None

        # The cases every school has, when it is big enough.
        if sum(self.free) >= 4:
            four = family_of(self.family(4, kind="couple", emails=True))
            if four is not None and len(self.pupils) == 4:
                school.four_children.append(four)
        twins = family_of(self.family(2, twins=True, kind="couple"))
        if twins is not None and len([p for p in self.pupils if p.family == twins]) == 2:
            school.twins.append(twins)
        separated = family_of(self.family(2, kind="separated"))
        if separated is not None:
            school.separated.append(separated)
        self.family(1, kind="single", emails=False)
        open_classes = self._free_classes(2)
        if len(open_classes) == 2:
            first_child = self.family(1, classes=open_classes[:1])
            if first_child:
                pupil = first_child[0]
                second = self.family(
                    1,
                    name=pupil.last_name.title(),
                    first=pupil.first_name,
                    sex=pupil.sex,
                    classes=open_classes[1:],
                )
                if second and fold(second[0].first_name) == fold(pupil.first_name):
                    school.homonyms.append((pupil.family, second[0].family))
        # Everyone else.
        failures = 0
        while sum(self.free) > 0 and failures < 50:  # 50 misses: no name fits any more
            if rng.random() < 0.03:
                placed = self.family(2, twins=True)
            else:
                # Brothers and sisters at the same primary school: most families have one
                # child there (older ones are at collège), which gives the 1.6 parents per
                # pupil of an académie's figures (320,000 parents for 200,000 pupils).
                placed = self.family(rng.choices((1, 2, 3, 4), (90, 8, 1.5, 0.5))[0])
            failures = 0 if placed else failures + 1

        city, postal_code = self.home
        of = "d'" if fold(city)[:1] in "aeiouy" else "de "
        school.organisations = [
            (f"Mairie {of}{city}", Address("1 place de la Mairie", postal_code, city),
             "04 50 00 00 00", "mairie@example.org"),
            (f"Accueil périscolaire {of}{city}", Address("2 rue des Écoles", postal_code, city),
             "04 50 00 00 01", "periscolaire@example.org"),
            ("Association des parents d'élèves", Address("2 rue des Écoles", postal_code, city),
             "", "ape@example.org"),
        ]  # fmt: skip
        return school


def _identify(school: School, two_class_teacher: bool) -> School:
    """INEs and class ids, drawn from the UAI alone (the school's random draws, and so the
    classic layout's files, stay as they were); a teacher of two classes when asked."""

    def number(*parts: object) -> int:
        digest = hashlib.sha256(":".join(map(str, (school.uai, *parts))).encode()).digest()
        return int.from_bytes(digest[:8], "big")

    taken: set[str] = set()
    for index, pupil in enumerate(school.pupils):
        attempt = 0
        while not pupil.ine or pupil.ine in taken:
            n = number("ine", index, attempt)
            pupil.ine = f"{n % 10**10:010d}{UAI_LETTERS[n % 23]}"
            attempt += 1
        taken.add(pupil.ine)
    for index, (name, _) in enumerate(school.classes):
        school.class_ids[name] = str(10000 + number("class", index) % 80000 + index)
    part_time = [t for t in school.teachers if not t.class_name]
    if two_class_teacher and part_time and len(school.classes) >= 2:
        part_time[0].class_name = school.classes[0][0]
        part_time[0].more_classes = (school.classes[-1][0],)
    return school


def build_school(
    uai: str,
    *,
    classes: int = 6,
    pupils_per_class: int = 25,
    seed: int = 0,
    layout: Layout = CLASSIC,
) -> School:
    """The school ``generate_school`` writes, as data (what the parser should find)."""
    school = _Builder(uai, classes, pupils_per_class, seed).build()
    return _identify(school, layout.two_class_teacher)


def next_year(school: School, *, year: int = 2026) -> School:
    """The same school the next September, as its export then reads (la rentrée): the
    pupils of the last level it teaches gone to collège, with the parents all of whose
    children left; every other pupil a level up, in the class of that level, every class
    renamed for the year (``CE1 A 2026``); as many new CP pupils as left, each with a
    parent; the teachers in their renamed classes. ``school`` is left as it was."""
    rng = _Rng(f"onde:{school.uai}:september:{year}")
    renamed = {name: f"{name} {year}" for name, _ in school.classes}
    home: dict[str, list[str]] = {}  # the classes of each level, in turn
    for name, levels in school.classes:
        for level in levels:
            home.setdefault(level, []).append(renamed[name])
    turns = {level: itertools.cycle(names) for level, names in home.items()}
    last = max(home, key=LEVELS.index)
    moved: dict[int, GenPupil] = {}  # id() of last year's pupil -> this year's
    for pupil in school.pupils:
        up = LEVELS[LEVELS.index(pupil.level) + 1] if pupil.level != last else None
        if up is not None and up in home:
            moved[id(pupil)] = replace(pupil, level=up, class_name=next(turns[up]))
    left = len(school.pupils) - len(moved)
    parents = []
    for parent in school.parents:
        children = [moved[id(c)] for c in parent.children if id(c) in moved]
        if children:
            parents.append(replace(parent, children=children))
    pupils = list(moved.values())
    first_class = home[min(home, key=LEVELS.index)][0]
    # Names no one else of the school has: a newcomer is never taken for someone else.
    taken = {(fold(p.first_name), fold(p.last_name)) for p in [*school.pupils, *school.parents]}
    family = max((p.family for p in school.pupils), default=0)
    for n in range(left):
        family += 1
        newcomer, parent = _newcomer(rng, school.uai, n, family, first_class, taken)
        pupils.append(newcomer)
        parents.append(parent)
    teachers = [
        replace(
            t,
            class_name=renamed.get(t.class_name, ""),
            more_classes=tuple(renamed[c] for c in t.more_classes),
        )
        for t in school.teachers
    ]
    return replace(
        school,
        classes=[(renamed[name], levels) for name, levels in school.classes],
        pupils=pupils,
        parents=parents,
        teachers=teachers,
        class_ids={renamed[n]: f"{i}{year}" for n, i in school.class_ids.items()},
    )


def a_night_of_changes(school: School, *, night: int = 1) -> School:
    """The same school a night later, as an ordinary night changes it: a new pupil with his
    mother in the first class; the last pupil gone, with the parents all of whose children
    are gone; the first parent with an email on a new address. ``school`` is left as it
    was."""
    rng = _Rng(f"onde:{school.uai}:night:{night}")
    gone = school.pupils[-1]
    pupils = school.pupils[:-1]
    parents = []
    for parent in school.parents:
        children = [c for c in parent.children if c is not gone]
        if children:
            parents.append(replace(parent, children=children))
    moved = next((i for i, p in enumerate(parents) if p.email), None)
    if moved is not None:
        parents[moved] = replace(parents[moved], email=f"n{night}." + parents[moved].email)
    taken = {(fold(p.first_name), fold(p.last_name)) for p in [*school.pupils, *school.parents]}
    family = max((p.family for p in school.pupils), default=0) + 1
    newcomer, mother = _newcomer(rng, school.uai, 1000 + night, family, school.classes[0][0], taken)
    return replace(school, pupils=[*pupils, newcomer], parents=[*parents, mother])


def _newcomer(
    rng: _Rng, uai: str, n: int, family: int, class_name: str, taken: set[tuple[str, str]]
) -> tuple[GenPupil, GenParent]:
    """A new CP pupil and his mother, of names ``taken`` has not (then taken)."""
    while True:
        sex = rng.pick("MF")
        first, mother = rng.pick(MEN if sex == "M" else WOMEN), rng.pick(WOMEN)
        last = rng.pick(LAST_NAMES).upper()
        keys = {(fold(first), fold(last)), (fold(mother), fold(last))}
        if len(keys) == 2 and not keys & taken:
            taken |= keys
            break
    home = Address(f"{1 + rng.below(119)} {rng.pick(STREETS)}", "74000", "Annecy")
    digest = hashlib.sha256(f"{uai}:newcomer:{n}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    pupil = GenPupil(
        last_name=last,
        usage_name="",
        first_name=first,
        sex=sex,
        birth_date=date(BIRTH_YEARS["CP"] + 1, 1, 1) + timedelta(days=rng.below(365)),
        level="CP",
        class_name=class_name,
        family=family,
        addresses=[home],
        ine=f"{number % 10**10:010d}{UAI_LETTERS[number % 23]}",
    )
    parent = GenParent(
        civility="MME",
        last_name=last,
        usage_name="",
        first_name=mother,
        email=f"{fold(mother)}.{fold(last)}.{family}.{uai[:7]}@{rng.pick(EMAIL_DOMAINS)}",
        address=home,
        phones=("", "", "06 12 34 56 78"),
        family=family,
        children=[pupil],
    )
    return pupil, parent


# ---------------------------------------------------------------------------------------
# Writing the files
# ---------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _writer(layout: Layout) -> "functools.partial[str]":
    return functools.partial(_row, quote=layout.quoting == "nonempty")


def _row(values: Sequence[str], trailing: bool = False, *, quote: bool = True) -> str:
    """One CSV row: non-empty fields quoted (``"`` doubled) as ONDE does, or bare as its
    BE1D extraction writes them; empty ones bare."""
    if quote:
        line = ";".join(_quoted(v) if v else "" for v in values)
    else:
        line = ";".join(_quoted(v) if ";" in v or '"' in v else v for v in values)
    return line + ";" if trailing else line


def _date(value: date, iso: bool = False) -> str:
    if iso:
        return value.isoformat()
    return f"{value.day:02d}/{value.month:02d}/{value.year}"


def _pupil_rows(school: School, layout: Layout, rng: _Rng) -> list[str]:
    row = _writer(layout)
    ine = layout.pupils == "ine"
    rows = [row(PUPILS_INE_HEADER if ine else PUPILS_HEADER)]
    for p in sorted(school.pupils, key=lambda p: (fold(p.last_name), fold(p.first_name))):
        first, second = (p.addresses + [Address("", "", "")] * 2)[:2]
        sex = "H" if layout.sex_h and p.sex == "M" else p.sex
        identity = [
            p.last_name,
            p.usage_name,
            p.first_name,
            _date(p.birth_date, layout.iso_dates),
            sex,
        ]
        if ine:
            identity.append(p.ine)
        addresses = [
            first.line, first.postal_code, first.city, "FRANCE" if first.line else "",
            second.line, second.postal_code, second.city, "FRANCE" if second.line else "",
        ]  # fmt: skip
        placement = [CYCLES[p.level], p.level, p.class_name]
        if ine:
            placement.append(school.class_ids[p.class_name])
        # Drawn in this order whatever the layout: the classic files stay as they were.
        consents = [
            rng.pick(("Oui", "Non")),
            rng.pick(("Oui", "Non")),
            rng.pick(("Oui", "Oui", "Non")),
        ]
        decision = [""]
        dispositifs = [""] if ine else []
        rows.append(
            row(
                [*identity, *addresses, *placement, *consents, *decision, *dispositifs],
                trailing=layout.pupil_row_semicolon,
            )
        )
    return rows


def _class_label(pupil: GenPupil, layout: Layout) -> str:
    """The child's class as the parents file writes it: the pupils file's name, or (in some
    académies' exports) "CLASSE", two spaces and the pupil's level."""
    if layout.parent_class_labels == "level":
        return f"CLASSE  {pupil.level}"
    return pupil.class_name


def _parent_rows(school: School, layout: Layout) -> list[str]:
    row = _writer(layout)
    header = {
        "be1d": PARENTS_HEADER,
        "be1d25": PARENTS_BE1D_HEADER,
        "2021": PARENTS_2021_HEADER,
        "2022": PARENTS_2022_HEADER,
    }[layout.parents]
    rows = [row(header)]
    for parent in sorted(
        school.parents, key=lambda p: (fold(p.usage_name or p.last_name), fold(p.first_name))
    ):
        home, work, mobile = parent.phones
        identity = [
            parent.civility, parent.usage_name, parent.last_name, parent.first_name,
            parent.address.line, parent.address.postal_code, parent.address.city, "FRANCE",
            parent.email, home, work,
        ]  # fmt: skip
        if layout.parents in ("2021", "2022"):
            pcs = PCS[len(parent.first_name) % len(PCS)]
            for child in parent.children:
                born = _date(child.birth_date, layout.iso_dates)
                label = _class_label(child, layout)
                if layout.parents == "2021":
                    names = [child.usage_name, child.last_name, child.first_name, born, label]
                else:
                    names = [label, child.last_name, child.first_name, born]
                rows.append(row([*identity, mobile, pcs, "Oui", *names]))
            continue
        if layout.parents == "be1d25":
            identity.append("")  # Numéro de poste
        identity.append(mobile)
        for start in range(0, len(parent.children), 3):
            cells = list(identity)
            for child in parent.children[start : start + 3]:
                cells += [
                    child.usage_name,
                    child.last_name,
                    child.first_name,
                    _class_label(child, layout),
                ]
            if not layout.short_parent_rows:
                cells += [""] * (len(header) - len(cells))
            rows.append(row(cells))
    if layout.organisations:
        rows.append(row(ORGANISATIONS_HEADER))
        for title, address, phone, email in school.organisations:
            rows.append(row((title, address.line, address.postal_code, address.city, phone, email)))
    return rows


def _teacher_rows(school: School, layout: Layout) -> list[str]:
    row = _writer(layout)
    columns = max((len(t.classes) for t in school.teachers), default=1) or 1
    rows = [row(TEACHERS_HEADER + ("Classe",) * (columns - 1))]
    for t in sorted(school.teachers, key=lambda t: (fold(t.last_name), fold(t.first_name))):
        classes = list(t.classes) + [""] * (columns - len(t.classes))
        rows.append(
            row(
                (
                    t.civility, t.usage_name, t.last_name, t.first_name, "", "", "", "",
                    t.email, "", "", "Oui" if t.director else "Non", *classes,
                )
            )
        )  # fmt: skip
    return rows


def file_names(layout: Layout) -> dict[str, str]:
    """Kind -> name of the file, as ONDE (or a browser downloading from it) names them."""
    if layout.download_names:
        return {
            "pupils": "CSVExtraction.csv",
            "parents": "CSVExtraction(1).csv",
            "teachers": "Enseignants.csv",
        }
    return {"pupils": PUPILS_FILE, "parents": PARENTS_FILE, "teachers": TEACHERS_FILE}


def render_school(school: School, layout: Layout = CLASSIC) -> dict[str, bytes]:
    """The three files of a school, as bytes, written in ``layout``."""
    rng = _Rng(f"onde-render:{school.uai}")

    def encode(lines: list[str]) -> bytes:
        end = layout.newline if layout.final_newline else ""
        return (layout.newline.join(lines) + end).encode(layout.encoding)

    names = file_names(layout)
    return {
        names["pupils"]: encode(_pupil_rows(school, layout, rng)),
        names["parents"]: encode(_parent_rows(school, layout)),
        names["teachers"]: encode(_teacher_rows(school, layout)),
    }


def generate_school(
    uai: str,
    *,
    classes: int = 6,
    pupils_per_class: int = 25,
    seed: int = 0,
    layout: Layout = CLASSIC,
) -> dict[str, bytes]:
    """File name -> bytes of one school's drop, written in ``layout``."""
    school = build_school(
        uai, classes=classes, pupils_per_class=pupils_per_class, seed=seed, layout=layout
    )
    return render_school(school, layout)


def write_school(root: Path, school: School, layout: Layout = CLASSIC) -> Path:
    """Write ``school``'s three files in ``root/<uai>/`` (over last night's); the folder."""
    folder = root / school.uai
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in render_school(school, layout).items():
        (folder / name).write_bytes(content)
    return folder


def write_drop(
    root: Path,
    uai: str,
    *,
    classes: int = 6,
    pupils_per_class: int = 25,
    seed: int = 0,
    layout: Layout = CLASSIC,
) -> Path:
    """Write ``root/<uai>/`` with the three files; return the folder."""
    school = build_school(
        uai, classes=classes, pupils_per_class=pupils_per_class, seed=seed, layout=layout
    )
    return write_school(root, school, layout)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.onde_generator", description="Write synthetic ONDE drops."
    )
    parser.add_argument("--out", type=Path, required=True, help="feed directory to write into")
    parser.add_argument("--schools", type=int, default=1)
    parser.add_argument("--first-uai-number", type=int, default=1, help="4-digit school number")
    parser.add_argument("--department", default="074", help="3 digits, e.g. 074")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--pupils-per-class", type=int, default=25)
    parser.add_argument(
        "--layout", choices=sorted(LAYOUTS), default="classic", help="ONDE layout to write"
    )
    args = parser.parse_args(argv)
    if not (len(args.department) == 3 and args.department.isdigit()):
        parser.error("--department must be 3 digits, e.g. 074")
    last = args.first_uai_number + args.schools - 1
    if args.schools < 1 or args.first_uai_number < 0 or last > 9999:
        parser.error("school numbers must stay within 0000-9999")
    started = time.perf_counter()
    for number in range(args.first_uai_number, last + 1):
        write_drop(
            args.out,
            uai_for(args.department, number),
            classes=args.classes,
            pupils_per_class=args.pupils_per_class,
            seed=args.seed,
            layout=LAYOUTS[args.layout],
        )
    elapsed = time.perf_counter() - started
    print(
        f"{args.schools} school(s) written to {args.out} "
        f"({uai_for(args.department, args.first_uai_number)} … "
        f"{uai_for(args.department, last)}) in {elapsed:.1f} s",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
