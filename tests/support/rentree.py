"""A school followed over two school years: its June export, and the September export of
the next year (la rentrée), as ONDE gives them."""

from dataclasses import dataclass

from tests.support.feed import Adult, Drop, Kid, Staff

LEVELS = ("CP", "CE1", "CE2", "CM1", "CM2")
# Last year's classes, then this year's: every class renamed.
JUNE_CLASSES = {level: f"{level} Mme Martin" for level in LEVELS}
SEPTEMBER_CLASSES = {
    "CP": "CP Lune",
    "CE1": "CE1 Soleil",
    "CE2": "CE2 Étoile",
    "CM1": "CM1 Comète",
    "CM2": "CM2 Planète",
}
PER_LEVEL = 4
REPEATER = ("Louis", "FAMILLE-CE1-0")  # stays in CE1
NEWCOMER = ("Inès", "ARRIVÉE")  # arrives in CE2 from another school
TAUGHT_IN_SEPTEMBER = ("CP Lune", "CE1 Soleil")  # the only classes the file gives teachers


@dataclass(frozen=True)
class Pupil:
    first: str
    last: str
    born: str
    level: str  # in June


def june_pupils() -> list[Pupil]:
    names = ("Louis", "Jade", "Gabriel", "Emma")
    return [
        Pupil(names[n], f"FAMILLE-{level}-{n}", f"{n + 1:02d}/0{index + 1}/{2019 - index}", level)
        for index, level in enumerate(LEVELS)
        for n in range(PER_LEVEL)
    ]


def _parent(kid: Kid) -> Adult:
    return Adult(f"Parent{kid.first}", kid.last, f"{kid.last.lower()}@example.org", (kid,))


def _teachers(classes: dict[str, str], taught: tuple[str, ...] | None = None) -> list[Staff]:
    names = [("Marie", "CURIE"), ("Paul", "LANGEVIN"), ("Irène", "JOLIOT"), ("Jean", "PERRIN")]
    names.append(("Pierre", "AUGER"))
    return [
        Staff(
            first,
            last,
            f"{first.lower()}.{last.lower()}@example.org".replace("è", "e"),
            cls if taught is None or cls in taught else "",
            director=index == 0,
        )
        for index, ((first, last), cls) in enumerate(zip(names, classes.values(), strict=True))
    ]


def june() -> Drop:
    """The school in June: four pupils a level from CP to CM2, one parent each, a teacher
    a class."""
    kids = [Kid(p.first, p.last, p.born, JUNE_CLASSES[p.level]) for p in june_pupils()]
    return Drop(kids, [_parent(k) for k in kids], _teachers(JUNE_CLASSES))


def september(*, keep_share: float = 1.0) -> Drop:
    """The same school in September: its CM2 pupils gone to collège (with their parents),
    every other pupil a level up in a renamed class, but one repeating his CE1; four new CP
    pupils and a pupil arriving in CE2, with their parents; the teachers file names the
    classes of two teachers only. ``keep_share`` keeps that share of the pupils only (an
    export cut short)."""
    kids = []
    for pupil in june_pupils():
        if pupil.level == "CM2":
            continue
        level = LEVELS[LEVELS.index(pupil.level) + 1]
        if (pupil.first, pupil.last) == REPEATER:
            level = pupil.level
        kids.append(Kid(pupil.first, pupil.last, pupil.born, SEPTEMBER_CLASSES[level]))
    kids += [
        Kid(f"Nouveau{n}", f"PETIT-{n}", f"0{n + 1}/05/2020", SEPTEMBER_CLASSES["CP"])
        for n in range(PER_LEVEL)
    ]
    kids.append(Kid(*NEWCOMER, "12/10/2017", SEPTEMBER_CLASSES["CE2"]))
    kids = kids[: round(len(kids) * keep_share)]
    teachers = _teachers(SEPTEMBER_CLASSES, TAUGHT_IN_SEPTEMBER)
    return Drop(kids, [_parent(k) for k in kids], teachers)
