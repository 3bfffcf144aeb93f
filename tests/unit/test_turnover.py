"""La rentrée in directory_sync's pure decisions: the turnover run recognised, its expected
leavers counted apart and out of the safety hold, a truncated September export still held."""

from datetime import date

import pytest

from services.directory_sync import domain, turnover
from services.directory_sync.domain import conclude, diff
from services.directory_sync.onde import Pupil
from tests.unit.test_feed_diff import RUN, SCHOOL, applied, export, parent, pupil

LEVELS = ("CP", "CE1", "CE2", "CM1", "CM2")


@pytest.mark.parametrize(
    ("level", "expected"),
    [("CP", 4), ("cm2", 8), ("GS", 3), ("Grande section", 3), ("TPS", 0), ("CE1-CE2", None)],
)
def test_levels_are_ranked_youngest_first(level: str, expected: int | None) -> None:
    assert turnover.rank(level) == expected


def test_a_decision_that_sends_a_pupil_on() -> None:
    assert turnover.sends_on("Passage en 6ème")
    assert turnover.sends_on("Sortie")
    assert not turnover.sends_on("Passage dans le niveau supérieur")
    assert not turnover.sends_on("Maintien")
    assert not turnover.sends_on(None)


def year(shift: int, *, first_line: int = 2) -> list[Pupil]:
    """Four pupils a level, each level in its own class, ``shift`` levels up: a school of
    CP to CM2 in year 1 (shift 0); in September (shift 1) CP..CM1 are CE1..CM2."""
    pupils = []
    line = first_line
    for index, level in enumerate(LEVELS):
        if index + shift >= len(LEVELS):
            continue
        now = LEVELS[index + shift]
        for n in range(4):
            pupils.append(
                pupil(
                    f"{level}{n}",
                    "ÉLÈVE",
                    f"{now} classe",
                    line=line,
                    born=date(2015 + index, 1, n + 1),
                )
            )
            line += 1
    return pupils


def with_parents(pupils: list[Pupil]) -> list:
    return [
        parent(f"Parent{p.first_name}", p.last_name, p, line=100 + i) for i, p in enumerate(pupils)
    ]


def test_a_september_export_is_the_turnover_and_its_leavers_are_expected() -> None:
    june = year(0)
    snapshot = applied(export(june, with_parents(june)))
    # September: CM2 gone, every other pupil a level up (in the next level's class), four
    # new CP pupils and their parents, one pupil repeating his CE1.
    september = [p for p in year(1) if p.first_name != "CP0"]
    repeating = pupil("CP0", "ÉLÈVE", "CP classe", line=50, born=date(2015 + 0, 1, 1))
    newcomers = [
        pupil(f"Nouveau{n}", "PETIT", "CP classe", line=60 + n, born=date(2020, 2, n + 1))
        for n in range(4)
    ]
    pupils = [*september, repeating, *newcomers]
    parents = with_parents([p for p in pupils if p.last_name == "ÉLÈVE"]) + with_parents(newcomers)
    changes = diff(snapshot, export(pupils, parents))

    assert changes.turnover
    cm2 = {p.feed_id for p in snapshot.persons if p.first_name.startswith("CM2")}
    cm2_parents = {
        p.feed_id for p in snapshot.persons if p.profile == "relative" and set(p.children) <= cm2
    }
    assert changes.expected_leavers == cm2 | cm2_parents
    assert changes.counts.expected_leavers == 8 and changes.counts.unexpected_leavers == 0
    assert len(changes.left) == 8  # a fifth of the school: would be held by the 10% rule
    result = conclude(
        snapshot,
        export(pupils, parents),
        "d2",
        run_id=RUN,
        school_id=SCHOOL,
        dry_run=False,
        leave_share=0.1,
        chunk_size=500,
    )
    assert (result.status, result.turnover, result.hold_reasons) == ("applied", True, ())


def test_a_september_export_smaller_by_its_expected_leavers_is_not_held() -> None:
    """Four CM2 gone, one new CP: 17 pupils where June had 20 (15 %, more than the 10 %
    allowed) but more than the 16 expected to stay: la rentrée, not a file cut short."""
    june = year(0)
    snapshot = applied(export(june, with_parents(june)))
    newcomer = pupil("Nouveau", "PETIT", "CP classe", line=60, born=date(2020, 2, 1))
    pupils = [*year(1), newcomer]
    changes = diff(snapshot, export(pupils, with_parents(pupils)))
    assert changes.turnover and changes.counts.unexpected_leavers == 0
    assert domain.hold_reasons(changes, snapshot, export(pupils, with_parents(pupils)), 0.1) == []
    # The same export outside a turnover (nobody moved up) is held for its size.
    still = [p for p in june if not p.first_name.startswith("CM2")][:14]
    shrunk = diff(snapshot, export(still, with_parents(still)))
    reasons = domain.hold_reasons(shrunk, snapshot, export(still, with_parents(still)), 0.1)
    assert any(
        "the pupils file has 14 pupils where the last applied feed had 20 (" in r for r in reasons
    )


def test_a_truncated_september_export_is_held_all_the_same() -> None:
    june = year(0)
    snapshot = applied(export(june, with_parents(june)))
    half = year(1)[:6]  # the copy stopped after a few pupils
    result = conclude(
        snapshot,
        export(half, with_parents(half)),
        "d2",
        run_id=RUN,
        school_id=SCHOOL,
        dry_run=False,
        leave_share=0.1,
        chunk_size=500,
    )
    assert result.status == "held" and result.turnover
    assert any("would leave (besides 8 expected)" in r for r in result.hold_reasons)
    assert any(
        "the pupils file has 6 pupils where the last applied feed had 20" in r
        for r in result.hold_reasons
    )


def test_a_fifth_of_the_school_leaving_mid_year_is_held() -> None:
    june = year(0)
    snapshot = applied(export(june, with_parents(june)))
    stay = [p for p in june if not p.first_name.startswith("CM2")]  # nobody moved up
    changes = diff(snapshot, export(stay, with_parents(stay)))
    assert not changes.turnover and changes.expected_leavers == frozenset()
    assert changes.counts.unexpected_leavers == 8
    reasons = domain.hold_reasons(changes, snapshot, export(stay, with_parents(stay)), 0.1)
    assert reasons and "8 of the 40" in reasons[0]


def test_a_pupil_whose_decision_sends_him_on_leaves_as_expected() -> None:
    """In a school without CM2 (up to CM1), the pupils of its last level (CM1) are expected;
    so is a CE2 pupil whose "Décision de passage" sends him to another school."""
    june = [p for p in year(0) if not p.first_name.startswith("CM2")]
    leaving = june[8]._replace(decision="Sortie - autre école")  # CE2 0
    june[8] = leaving
    snapshot = applied(export(june, []))
    september = [
        p for p in year(1) if p.first_name not in {"CE20"} and not p.first_name.startswith("CM1")
    ]
    changes = diff(snapshot, export(september, []))
    assert changes.turnover
    gone = {p.first_name for p in changes.left if p.feed_id in changes.expected_leavers}
    assert gone == {"CM10", "CM11", "CM12", "CM13", "CE20"}


@pytest.mark.parametrize("layout", ["classic", "2021"])
def test_the_generator_s_next_september_is_a_turnover_applied_without_hold(tmp_path, layout):
    """tools.onde_generator.next_year, read as any export: the turnover, its leavers
    (the last level and their parents) expected, its newcomers created, nothing held."""
    from services.directory_sync.feed_folder import read_folder
    from services.directory_sync.onde import read_drop
    from tools import onde_generator

    shape = onde_generator.LAYOUTS[layout]
    uai = onde_generator.uai_for("074", 1)
    june = onde_generator.build_school(uai, classes=6, pupils_per_class=20, layout=shape)
    september = onde_generator.next_year(june)

    def parsed(school, name):
        folder = tmp_path / name / school.uai
        folder.mkdir(parents=True)
        for file, content in onde_generator.render_school(school, shape).items():
            (folder / file).write_bytes(content)
        drop = read_folder(folder, max_file_bytes=1 << 24)
        assert drop is not None
        return read_drop(drop)

    before = applied(parsed(june, "june"))
    after = parsed(september, "september")
    assert not after.errors
    assert not [w for w in after.warnings if "has no pupil" in w.message]  # classes all filled
    changes = diff(before, after)
    last = max({p.level for p in june.pupils}, key=onde_generator.LEVELS.index)
    gone = [p for p in june.pupils if p.level == last]
    assert changes.turnover
    assert len(changes.expected_leavers) == len(changes.left) > len(gone)  # and parents
    assert {p.first_name for p in changes.created if p.profile == "student"} <= {
        p.first_name for p in september.pupils if p.level == "CP"
    }
    assert len([p for p in changes.created if p.profile == "student"]) == len(gone)
    assert not domain.hold_reasons(changes, before, after, 0.10)
