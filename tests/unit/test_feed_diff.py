"""directory_sync's pure feed decisions: diff against the last applied snapshot, homonyms,
safety hold, chunks, digests, the night's schedule."""

import itertools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from services.directory_sync import domain
from services.directory_sync.domain import Snapshot, conclude, diff
from services.directory_sync.feed_folder import read_folder
from services.directory_sync.onde import (
    ChildRef,
    ClassRef,
    Drop,
    Export,
    Limits,
    Parent,
    Problem,
    Pupil,
    Teacher,
    read_drop,
)
from shared.contracts.directory import DirectorySynced
from shared.envelope import new_event
from tools.onde_generator import write_drop

UAI = "0741234P"
SCHOOL = uuid.UUID(int=7)
RUN = uuid.UUID(int=8)
FILES = {"pupils": "eleves.csv", "parents": "responsables.csv", "teachers": "enseignants.csv"}


def id_maker() -> Callable[[], UUID]:
    counter = itertools.count(1000)
    return lambda: uuid.UUID(int=next(counter))


def pupil(
    first: str,
    last: str,
    cls: str = "CP",
    *,
    line: int,
    born: date = date(2019, 3, 4),
    usage=None,
    ine: str | None = None,
) -> Pupil:
    return Pupil(last, usage, first, born, None, ine, None, cls.split()[0], cls, None, None, line)


def parent(
    first: str, last: str, *children: Pupil, email: str | None = None, line: int = 2
) -> Parent:
    refs = tuple(
        ChildRef(c.last_name, c.usage_name, c.first_name, c.class_name, None, line, c.line)
        for c in children
    )
    return Parent("Mme", last, None, first, email, None, refs, (line,))


def teacher(
    first: str, last: str, cls: str | None, *, email=None, director=False, line: int = 2
) -> Teacher:
    return Teacher("M.", last, None, first, email, director, (cls,) if cls else (), line)


def export(pupils=(), parents=(), teachers=(), *, suspicious=(), errors=(), warnings=()) -> Export:
    classes = tuple(sorted({ClassRef(p.class_name, p.level, None) for p in pupils}))
    return Export(
        UAI,
        pupils=tuple(pupils),
        parents=tuple(parents),
        teachers=tuple(teachers),
        classes=classes,
        files=FILES,
        errors=tuple(errors),
        warnings=tuple(warnings),
        suspicious=tuple(suspicious),
    )


def applied(exp: Export) -> Snapshot:
    """The snapshot after ``exp`` was applied onto nothing."""
    first = diff(domain.EMPTY, exp, id_maker())
    return Snapshot(version=1, digest="d1", persons=first.persons, classes=first.classes)


def folder_drop(folder: Path) -> Drop:
    drop = read_folder(folder, max_file_bytes=Limits().max_file_bytes)
    assert drop is not None
    return drop


def by_name(persons) -> dict[str, domain.SnapshotPerson]:
    return {p.first_name: p for p in persons}


ZOE = pupil("Zoé", "LEFÈVRE", "CP", line=2)
LEO = pupil("Léo", "ROY", "CP", line=3, born=date(2019, 5, 2))
INES = pupil("Inès", "MARTIN", "CE1", line=4, born=date(2018, 1, 20))
BASE = export(
    [ZOE, LEO, INES],
    [parent("Anne", "LEFÈVRE", ZOE, email="anne@example.org"), parent("Paul", "ROY", LEO)],
    [teacher("Marie", "CURIE", "CP", email="marie@example.org", director=True)],
)


def test_a_first_export_creates_everyone_with_new_feed_ids() -> None:
    first = diff(domain.EMPTY, BASE)
    assert first.counts.model_dump() == {
        "created": 6,
        "updated": 0,
        "moved": 0,
        "left": 0,
        "unchanged": 0,
        "expected_leavers": 0,
        "unexpected_leavers": 0,
    }
    assert len({p.feed_id for p in first.persons}) == 6
    people = by_name(first.persons)
    assert people["Anne"].children == [people["Zoé"].feed_id]
    assert people["Zoé"].classes == ["CP"] and people["Zoé"].birth_date == date(2019, 3, 4)
    assert people["Marie"].director and people["Marie"].profile == "teacher"
    assert [c.name for c in first.classes] == ["CE1", "CP"]


def test_the_same_export_again_changes_nothing_and_keeps_feed_ids() -> None:
    snapshot = applied(BASE)
    again = diff(snapshot, BASE)
    assert again.counts.unchanged == 6 and not again.changed
    assert [p.feed_id for p in again.persons] == [p.feed_id for p in snapshot.persons]


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"first_name": "Zoe"},
        {"last_name": "LEFEVRE"},
        {"usage_name": "ROY"},
        {"birth_date": date(2019, 3, 5)},
        {"email": "zoe@example.org"},
        {"classes": ("CE1",)},
        {"director": True},
        {"child_lines": (9,)},
    ],
)
def test_a_snapshot_person_is_kept_only_when_the_export_gives_him_exactly(change) -> None:
    """The diff keeps the snapshot's person instead of building him again when he is the
    same: exactly when building him again would give an equal person."""
    new = domain.incoming(BASE)[0]._replace(**change)
    old = domain.incoming(BASE)[0].person(uuid.UUID(int=1))
    children = [uuid.UUID(int=2)] if new.child_lines else []
    assert new.is_as(old, children) == (new.person(old.feed_id, children) == old)
    assert new.is_as(old, children) == (change == {})


def test_moved_left_created_and_updated_are_told_apart() -> None:
    snapshot = applied(BASE)
    old = by_name(snapshot.persons)
    moved_zoe = pupil("Zoé", "LEFÈVRE", "CE1", line=2)  # changed class
    renamed_leo = pupil("Leo", "Roy", "CP", line=3, born=date(2019, 5, 2))  # accents, case
    newcomer = pupil("Nina", "SIMON", "CP", line=4)
    changed = export(
        [moved_zoe, renamed_leo, newcomer],  # Inès left
        [
            parent("Anne", "LEFÈVRE", moved_zoe, email="anne.l@example.org"),  # email changed
            parent("Paul", "ROY", renamed_leo, newcomer),  # a child more
        ],
        [teacher("Marie", "CURIE", "CP", email="marie@example.org", director=False)],
    )
    result = diff(snapshot, changed)
    assert result.counts.model_dump() == {
        "created": 1,
        "updated": 4,
        "moved": 1,
        "left": 1,
        "unchanged": 0,
        "expected_leavers": 0,
        "unexpected_leavers": 1,
    }
    assert [p.feed_id for p in result.moved] == [old["Zoé"].feed_id]
    assert {p.first_name for p in result.updated} == {"Leo", "Anne", "Paul", "Marie"}
    assert [p.feed_id for p in result.left] == [old["Inès"].feed_id]
    [nina] = result.created
    assert nina.first_name == "Nina" and nina.feed_id not in {p.feed_id for p in snapshot.persons}
    now = by_name(result.persons)
    assert now["Leo"].feed_id == old["Léo"].feed_id
    assert now["Paul"].children == [old["Léo"].feed_id, nina.feed_id]
    assert now["Anne"].email == "anne.l@example.org"


def test_a_moved_person_who_also_changed_counts_as_moved_only() -> None:
    snapshot = applied(BASE)
    exp = export(
        [pupil("ZOE", "Lefevre", "CE1", line=2), LEO, INES],
        BASE.parents,
        BASE.teachers,
    )
    result = diff(snapshot, exp)
    assert result.counts.moved == 1 and result.counts.updated == 0
    assert result.moved[0].first_name == "ZOE"


def test_a_teacher_changing_class_is_moved() -> None:
    snapshot = applied(BASE)
    exp = export(BASE.pupils, BASE.parents, [teacher("Marie", "CURIE", "CE1", director=True)])
    result = diff(snapshot, exp)
    # CE1 and an email gone: moved wins.
    assert [p.first_name for p in result.moved] == ["Marie"] and result.counts.updated == 0


def test_a_pupil_is_found_under_his_usage_name_too() -> None:
    snapshot = applied(BASE)
    old = by_name(snapshot.persons)
    zoe = pupil("Zoé", "LEFÈVRE", "CP", line=2, usage="LEFÈVRE-DURAND")
    result = diff(snapshot, export([zoe, LEO, INES], [], BASE.teachers))
    person = by_name(result.persons)["Zoé"]
    assert person.feed_id == old["Zoé"].feed_id
    assert person in result.updated and person.to_feed().last_name == "LEFÈVRE-DURAND"


def test_another_birth_date_is_another_pupil() -> None:
    snapshot = applied(export([ZOE]))
    other = pupil("Zoé", "LEFÈVRE", "CP", line=2, born=date(2019, 3, 5))
    result = diff(snapshot, export([other]))
    assert result.counts.created == 1 and result.counts.left == 1


def test_twins_are_two_persons_and_keep_their_ids() -> None:
    twins = [
        pupil("Lina", "BENALI", "CP", line=2, born=date(2019, 6, 1)),
        pupil("Adam", "BENALI", "CP", line=3, born=date(2019, 6, 1)),
    ]
    snapshot = applied(export(twins))
    again = diff(snapshot, export(list(reversed(twins))))
    assert again.counts.unchanged == 2 and not again.warnings
    assert by_name(again.persons)["Adam"].feed_id == by_name(snapshot.persons)["Adam"].feed_id


def test_homonyms_are_paired_by_email_and_reported_as_possible_duplicates() -> None:
    jeans = [
        parent("Jean", "MARTIN", email="jean.a@example.org", line=2),
        parent("Jean", "MARTIN", email="jean.b@example.org", line=3),
    ]
    snapshot = applied(export([ZOE], jeans))
    old = {p.email: p.feed_id for p in snapshot.persons if p.profile == "relative"}
    swapped = [
        parent("Jean", "MARTIN", email="jean.b@example.org", line=2),
        parent("Jean", "Martin", email="jean.a@example.org", line=3),
    ]
    result = diff(snapshot, export([ZOE], swapped))
    now = {p.email: p.feed_id for p in result.persons if p.profile == "relative"}
    assert now == old
    assert result.counts.created == 0 and result.counts.left == 0
    assert len(result.warnings) == 2
    warning = result.warnings[0]
    assert warning.file == "responsables.csv" and warning.line == 2
    assert "duplicate" in warning.message and "Jean MARTIN" in warning.message


def test_homonym_pupils_are_paired_by_class_then_order() -> None:
    pair = [
        pupil("Tom", "PETIT", "CP", line=2),
        pupil("Tom", "PETIT", "CE1", line=3),
    ]
    snapshot = applied(export(pair))
    old = {p.classes[0]: p.feed_id for p in snapshot.persons}
    result = diff(snapshot, export(list(reversed(pair))))
    assert {p.classes[0]: p.feed_id for p in result.persons} == old
    assert result.counts.unchanged == 2 and len(result.warnings) == 2
    assert result.warnings[0].file == "eleves.csv"


def test_a_parent_whose_children_change_is_updated() -> None:
    snapshot = applied(BASE)
    anne = parent("Anne", "LEFÈVRE", ZOE, INES, email="anne@example.org")
    result = diff(snapshot, export(BASE.pupils, [anne, BASE.parents[1]], BASE.teachers))
    old = by_name(snapshot.persons)
    assert [p.first_name for p in result.updated] == ["Anne"]
    assert result.updated[0].children == [old["Zoé"].feed_id, old["Inès"].feed_id]


# ---------------------------------------------------------------------------------------
# Hold, rejection, chunks
# ---------------------------------------------------------------------------------------


def many(count: int) -> list[Pupil]:
    return [pupil(f"P{n}", "NOM", "CP", line=n + 2) for n in range(count)]


def test_more_leavers_than_the_share_is_held() -> None:
    snapshot = applied(export(many(20)))
    eighteen, seventeen = export(many(18)), export(many(17))
    two_leave = diff(snapshot, eighteen)
    assert domain.hold_reasons(two_leave, snapshot, eighteen, 0.10) == []  # 10%: allowed
    three_leave = diff(snapshot, seventeen)
    leavers, shrunk = domain.hold_reasons(three_leave, snapshot, seventeen, 0.10)
    assert "3 of the 20" in leavers
    assert "has 17 pupils where the last applied feed had 20" in shrunk
    three = export(many(3))
    assert domain.hold_reasons(diff(domain.EMPTY, three), domain.EMPTY, three, 0.10) == []


def test_a_suspicious_file_is_held_unless_nothing_would_change() -> None:
    problem = Problem("eleves.csv", 12, "suspicious encoding: mojibake")

    def run(pupils: list[Pupil]) -> domain.RunResult:
        return conclude(
            applied(BASE),
            export(pupils, BASE.parents, BASE.teachers, suspicious=[problem]),
            "d2",
            run_id=RUN,
            school_id=SCHOOL,
            dry_run=False,
            leave_share=0.1,
            chunk_size=500,
        )

    result = run([*BASE.pupils, pupil("Nina", "SIMON", line=9)])
    assert result.status == "held"
    assert result.hold_reasons == ("eleves.csv, line 12: suspicious encoding: mojibake",)
    assert any(w.line == 12 and w.file == "eleves.csv" for w in result.warnings)
    # The same school as last applied: unchanged, whatever the file looks like.
    same = run(list(BASE.pupils))
    assert (same.status, same.hold_reasons, same.chunks) == ("unchanged", (), ())


def test_conclusions() -> None:
    snapshot = applied(export(many(10)))

    def run(exp: Export, dry_run: bool = False) -> domain.RunResult:
        return conclude(
            snapshot,
            exp,
            "d2",
            run_id=RUN,
            school_id=SCHOOL,
            dry_run=dry_run,
            leave_share=0.1,
            chunk_size=500,
        )

    assert run(export(many(10))).status == "unchanged"
    grown = run(export(many(11)))
    assert grown.status == "applied" and grown.counts.created == 1 and len(grown.chunks) == 1
    # The run replaces the snapshot it was compared with by the next version.
    assert [c.version for c in grown.chunks] == [snapshot.version + 1]
    held = run(export(many(5)))
    assert held.status == "held" and held.counts.left == 5 and held.chunks
    assert {c.version for c in held.chunks} == {snapshot.version + 1}
    dry = run(export(many(5)), dry_run=True)
    assert dry.status == "dry_run" and not dry.chunks
    assert any("would be held" in w.message for w in dry.warnings)
    bad = Problem("eleves.csv", 1, "mandatory column 'Classe' missing")
    rejected = run(export(many(11), errors=[bad]))
    assert rejected.status == "rejected" and rejected.persons is None and not rejected.chunks
    assert rejected.errors[0].model_dump() == {
        "file": "eleves.csv",
        "line": 1,
        "message": "mandatory column 'Classe' missing",
    }


def test_changes_are_cut_into_chunks_carrying_every_class() -> None:
    snapshot = applied(export(many(3)))
    exp = export([*many(2), pupil("Nina", "SIMON", "CE1", line=50)], [parent("Ana", "X")])
    changes = diff(snapshot, exp)  # 2 kept, 1 created pupil, 1 created parent, 1 left
    made = domain.chunks(changes, run_id=RUN, school_id=SCHOOL, uai=UAI, version=4, size=2)
    assert [(c.chunk, c.chunks, c.version) for c in made] == [(0, 2, 4), (1, 2, 4)]
    assert all(c.classes == made[0].classes for c in made)
    assert [c.name for c in made[0].classes] == ["CE1", "CP"]
    assert [p.first_name for p in made[0].created] == ["Nina", "Ana"]  # pupils first
    assert made[1].left == [changes.left[0].feed_id] and not made[1].created
    assert all(c.run_id == RUN and c.school_id == SCHOOL and c.uai == UAI for c in made)
    sizes = domain.chunks(
        diff(domain.EMPTY, export(many(1201))),
        run_id=RUN,
        school_id=SCHOOL,
        uai=UAI,
        version=1,
        size=500,
    )
    assert [len(c.created) for c in sizes] == [500, 500, 201]
    assert {c.chunks for c in sizes} == {3}


def test_the_digest_is_of_the_bytes_not_the_names() -> None:
    def digest(*files: tuple[str, bytes], refused: tuple[Problem, ...] = ()) -> str:
        return Drop(UAI, files, refused).digest()

    files = (("eleves.csv", b"a;b\r\n"), ("responsables.csv", b"c\r\n"))
    assert digest(*files) == digest(*reversed(files))
    # A download's name changes from night to night: the same bytes are the same drop.
    renamed = (("CSVExtraction(2).csv", b"a;b\r\n"), ("CSVExtraction(3).csv", b"c\r\n"))
    assert digest(*files) == digest(*renamed)
    assert digest(*files) != digest(("eleves.csv", b"a;b\r\n"))
    assert digest(*files) != digest(("eleves.csv", b"a;b\r\nc\r\n"))
    # An entry refused (a link planted in the folder) changes what the drop is.
    link = Problem("x.csv", None, "symbolic link: refused, never followed")
    assert digest(*files) != digest(*files, refused=(link,))
    head = domain.SnapshotHead(version=3, digest="abc", persons=len(applied(BASE).persons))
    same = domain.same_digest(head, dry_run=False)
    assert same.status == "unchanged" and same.counts.unchanged == 6 and same.base_version == 3


def test_a_generated_school_round_trips(tmp_path: Path) -> None:
    exp = read_drop(folder_drop(write_drop(tmp_path, UAI, classes=4, pupils_per_class=20)))
    assert exp.ok
    first = diff(domain.EMPTY, exp)
    assert first.counts.created == len(exp.pupils) + len(exp.parents) + len(exp.teachers)
    snapshot = Snapshot(version=1, digest="x", persons=first.persons, classes=first.classes)
    again = diff(snapshot, exp)
    assert not again.changed and again.counts.unchanged == len(first.persons)
    linked = [p for p in first.persons if p.profile == "relative" and p.children]
    assert linked and all(
        c in {q.feed_id for q in first.persons if q.profile == "student"}
        for p in linked
        for c in p.children
    )


# ---------------------------------------------------------------------------------------
# Guard and night
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../0741234P", "0741234P/..", "..", "0741234A", "", "07412/4P"])
def test_only_a_uai_names_a_drop_folder(bad: str) -> None:
    assert domain.drop_folder(Path("/feed"), bad) is None


def test_a_uai_names_its_folder() -> None:
    assert domain.drop_folder(Path("/feed"), "0741234p") == Path("/feed/0741234P")


PARIS = ZoneInfo("Europe/Paris")


def paris(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (paris(date(2026, 1, 10), 1, 59), None),  # yesterday's 02:00 is 23h59 old
        (paris(date(2026, 1, 10), 2, 0), date(2026, 1, 10)),
        (paris(date(2026, 1, 10), 9, 30), date(2026, 1, 10)),  # a replica catching up
        (paris(date(2026, 1, 10), 14, 1), None),  # past the 12h window
        (paris(date(2026, 3, 29), 3, 30), date(2026, 3, 29)),  # the night clocks go forward
        (paris(date(2026, 10, 25), 2, 30), date(2026, 10, 25)),  # the night they go back
    ],
)
def test_the_night_due(now: datetime, expected: date | None) -> None:
    assert domain.night_due(now, time(2, 0), PARIS, timedelta(hours=12)) == expected


def test_a_late_nightly_time_is_due_the_next_morning() -> None:
    # 23:30: at 01:00 the night of the day before is still due.
    now = paris(date(2026, 1, 11), 1, 0)
    assert domain.night_due(now, time(23, 30), PARIS, timedelta(hours=12)) == date(2026, 1, 10)


def test_hh_mm() -> None:
    assert domain.parse_hh_mm("02:00") == time(2, 0)
    with pytest.raises(ValueError, match="HH:MM"):
        domain.parse_hh_mm("25:00")


def test_a_run_computed_in_a_worker_process_comes_back_whole(tmp_path: Path):
    """What crosses the process boundary (the snapshot and the chunks as JSON text) is, once
    revived, the result computed in place: same chunks, same next snapshot."""
    import pickle

    files = folder_drop(write_drop(tmp_path, UAI, classes=2, pupils_per_class=12))
    drop = files.digest()
    run = {"run_id": RUN, "school_id": SCHOOL, "dry_run": False}
    limits = {"leave_share": 0.1, "chunk_size": 20}

    sent = domain.compute(domain.NO_STORED_SNAPSHOT, files, drop, **run, **limits, limits=Limits())
    assert sent.persons is None and not sent.chunks  # only text crosses
    crossed = domain.revived(pickle.loads(pickle.dumps(sent)))
    assert len(crossed.chunks) > 1 and crossed.chunks_json == ()

    # The same run in place, given the feed ids the worker process drew.
    drawn = iter(p.feed_id for p in domain.PERSONS.validate_json(crossed.persons_json or ""))
    here = conclude(domain.EMPTY, read_drop(files), drop, **run, **limits, new_id=drawn.__next__)
    assert [c.model_dump() for c in crossed.chunks] == [c.model_dump() for c in here.chunks]
    assert crossed.persons_json == here.next_persons_json
    assert crossed.next_snapshot_size == len(here.persons or ()) > 0

    # An applied run publishes the chunks' JSON as the worker process wrote it, unparsed:
    # the same events as the models would make.
    published = [new_event(p, source="s", correlationid="c") for p in sent.payloads()]
    assert [json.loads(e.to_json())["data"] for e in published] == [
        c.model_dump(mode="json") for c in here.chunks
    ]
    assert {(e.type, e.dataschema) for e in published} == {
        ("directory.synced", DirectorySynced.dataschema())
    }


# ---------------------------------------------------------------------------------------
# INE, reports' size
# ---------------------------------------------------------------------------------------


def test_a_pupil_is_matched_by_his_ine_first_across_renames_and_typos() -> None:
    zoe = pupil("Zoé", "LEFÈVRE", line=2, ine="1111111111A")
    snapshot = applied(export([zoe, LEO]))
    before = by_name(snapshot.persons)["Zoé"]
    # Her name corrected and her birth date fixed: by DESIGN §4 alone she would leave and
    # a stranger arrive; her INE says she is the same pupil.
    renamed = pupil("Zoey", "LEFEVRE-MARTIN", line=2, born=date(2019, 3, 5), ine="1111111111A")
    result = diff(snapshot, export([renamed, LEO]))
    assert result.counts.model_dump() == {
        "created": 0,
        "updated": 1,
        "moved": 0,
        "left": 0,
        "unchanged": 1,
        "expected_leavers": 0,
        "unexpected_leavers": 0,
    }
    [updated] = result.updated
    assert (updated.feed_id, updated.first_name, updated.ine) == (before.feed_id, "Zoey", zoe.ine)


def test_two_ines_are_two_pupils_whatever_their_names() -> None:
    snapshot = applied(export([pupil("Zoé", "MARTIN", line=2, ine="1111111111A")]))
    homonym = pupil("Zoé", "MARTIN", line=2, ine="2222222222B")  # same names, same birth
    result = diff(snapshot, export([homonym]))
    assert (len(result.created), len(result.left)) == (1, 1)
    # A pupil the last feed knew without INE (an older layout) is found by his names.
    plain = applied(export([pupil("Zoé", "MARTIN", line=2)]))
    result = diff(plain, export([homonym]))
    assert (len(result.created), len(result.left), len(result.updated)) == (0, 0, 1)
    assert result.updated[0].feed_id == plain.persons[0].feed_id


def test_a_report_keeps_its_first_findings_and_counts_the_rest() -> None:
    noisy = [Problem("eleves.csv", n, f"warning {n}") for n in range(2, 702)]
    result = conclude(
        domain.EMPTY,
        export(BASE.pupils, BASE.parents, BASE.teachers, warnings=noisy),
        "d1",
        run_id=RUN,
        school_id=SCHOOL,
        dry_run=False,
        leave_share=0.1,
        chunk_size=500,
    )
    assert len(result.warnings) == domain.REPORT_FINDINGS + 1
    assert [w.line for w in result.warnings[:3]] == [2, 3, 4]
    assert result.warnings[-1].message == (
        "500 more warnings not listed (a report keeps the first 200)"
    )
