"""directory_sync's pure decisions: how a school's export compares with its last applied
feed, whether a run is held, how its changes are cut into chunks, and when the night is.

No database, no broker, no await. ``conclude`` turns what a run found (the snapshot, the
drop's digest, the parsed export) into everything the run records and publishes.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, NamedTuple
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from pydantic import Field, TypeAdapter, ValidationError

from services.directory_sync import turnover
from services.directory_sync.onde import Drop, Export, Kind, Limits, Problem, read_drop
from shared import topics
from shared.contracts.common import Model, Uai
from shared.contracts.directory import (
    DirectorySynced,
    FeedClass,
    FeedPerson,
    FeedProfile,
    Finding,
    SerialisedChunk,
    SyncCounts,
    SyncStatus,
)
from shared.envelope import Contract
from shared.names import fold_name

SOURCE = topics.source_of(topics.DIRECTORY_SYNC)
Trigger = Literal["first_sync", "nightly", "request", "revert"]

# ---------------------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------------------


class SnapshotPerson(Model):
    """A person of the last applied feed, with the feed id he keeps from run to run."""

    feed_id: UUID
    profile: FeedProfile
    first_name: str
    last_name: str  # the family name ("Nom")
    usage_name: str | None = None  # "Nom d'usage", when the export gives one
    birth_date: date | None = None
    email: str | None = None
    classes: list[str] = Field(default_factory=list)
    children: list[UUID] = Field(default_factory=list)
    director: bool = False
    ine: str | None = None  # a pupil's national id, when the export gives it
    level: str | None = None  # a pupil's "Niveau": his moving up tells the year's turnover
    decision: str | None = None  # a pupil's "Décision de passage"

    def to_feed(self) -> FeedPerson:
        # The name a person goes by is his usage name when he has one.
        return FeedPerson(
            feed_id=self.feed_id,
            profile=self.profile,
            first_name=self.first_name,
            last_name=self.usage_name or self.last_name,
            birth_date=self.birth_date,
            email=self.email,
            classes=self.classes,
            children=self.children,
            director=self.director,
            ine=self.ine,
        )


PERSONS = TypeAdapter(list[SnapshotPerson])
CLASSES = TypeAdapter(list[FeedClass])


@dataclass(frozen=True)
class Snapshot:
    version: int  # 0: nothing applied yet
    digest: str | None
    persons: tuple[SnapshotPerson, ...] = ()
    classes: tuple[FeedClass, ...] = ()


EMPTY = Snapshot(version=0, digest=None)


@dataclass(frozen=True)
class SnapshotHead:
    """What a run looks at before reading the snapshot itself: an unchanged drop (equal
    digest) needs no more, which keeps an unchanged school's nightly run cheap."""

    version: int
    digest: str | None
    persons: int


NO_SNAPSHOT = SnapshotHead(version=0, digest=None, persons=0)


@dataclass(frozen=True)
class StoredSnapshot:
    """A snapshot as the database gives it (JSON text), parsed where the run is computed:
    text crosses to a worker process much cheaper than models."""

    version: int
    digest: str | None
    persons: str
    classes: str

    def parsed(self) -> Snapshot:
        if self.version == 0:
            return EMPTY
        return Snapshot(
            version=self.version,
            digest=self.digest,
            persons=tuple(PERSONS.validate_json(self.persons)),
            classes=tuple(CLASSES.validate_json(self.classes)),
        )


NO_STORED_SNAPSHOT = StoredSnapshot(version=0, digest=None, persons="[]", classes="[]")


_UAI = TypeAdapter(Uai)


def drop_folder(feed_dir: Path, uai: str) -> Path | None:
    """``feed_dir/<UAI>``, or None when ``uai`` is not a UAI: a name from a message never
    walks out of the feed directory (no ``/``, no ``..``)."""
    if "/" in uai or "\\" in uai or ".." in uai:
        return None
    try:
        valid = _UAI.validate_python(uai)
    except ValidationError:
        return None
    return feed_dir / valid


# ---------------------------------------------------------------------------------------
# The export's persons
# ---------------------------------------------------------------------------------------

KIND_OF: Mapping[FeedProfile, Kind] = {
    "student": "pupils",
    "teacher": "teachers",
    "relative": "parents",
}
_LABEL: Mapping[FeedProfile, str] = {"student": "pupil", "teacher": "teacher", "relative": "parent"}


class Incoming(NamedTuple):
    """A person as the export gives him, before his feed id is known."""

    profile: FeedProfile
    first_name: str
    last_name: str
    usage_name: str | None
    birth_date: date | None
    email: str | None
    classes: tuple[str, ...]
    director: bool
    line: int | None
    child_lines: tuple[int, ...] = ()  # a parent's children, by their pupils-file line
    ine: str | None = None
    level: str | None = None
    decision: str | None = None

    def is_as(self, old: SnapshotPerson, children: list[UUID]) -> bool:
        """Whether ``old`` is this person exactly (most of a nightly export): the
        snapshot's person is then kept as he is instead of being built again."""
        return (
            old.first_name == self.first_name
            and old.last_name == self.last_name
            and old.usage_name == self.usage_name
            and old.birth_date == self.birth_date
            and old.email == self.email
            and old.director == self.director
            and old.classes == list(self.classes)
            and old.children == children
            and old.ine == self.ine
            and old.level == self.level
            and old.decision == self.decision
        )

    def person(self, feed_id: UUID, children: Sequence[UUID] = ()) -> SnapshotPerson:
        return SnapshotPerson(
            feed_id=feed_id,
            profile=self.profile,
            first_name=self.first_name,
            last_name=self.last_name,
            usage_name=self.usage_name,
            birth_date=self.birth_date,
            email=self.email,
            classes=list(self.classes),
            children=list(children),
            director=self.director,
            ine=self.ine,
            level=self.level,
            decision=self.decision,
        )


def incoming(export: Export) -> list[Incoming]:
    """The export's pupils, teachers and parents, in that order."""
    people = [
        Incoming(
            "student",
            p.first_name,
            p.last_name,
            p.usage_name,
            p.birth_date,
            None,
            (p.class_name,) if p.class_name else (),
            False,
            p.line,
            (),
            p.ine,
            p.level,
            p.decision,
        )
        for p in export.pupils
    ]
    people += [
        Incoming(
            "teacher",
            t.first_name,
            t.last_name,
            t.usage_name,
            None,
            t.email,
            t.classes,
            t.director,
            t.line,
        )
        for t in export.teachers
    ]
    people += [
        Incoming(
            "relative",
            p.first_name,
            p.last_name,
            p.usage_name,
            None,
            p.email,
            (),
            False,
            p.lines[0] if p.lines else None,
            tuple(dict.fromkeys(c.pupil_line for c in p.children if c.pupil_line is not None)),
        )
        for p in export.parents
    ]
    return people


# ---------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------

_Person = Incoming | SnapshotPerson


def _keys(person: _Person) -> tuple[tuple[str, str, str, date | None], ...]:
    """The keys a person may be found under: his folded first name with his folded family
    name, and with his folded usage name when it differs (DESIGN §4)."""
    first = fold_name(person.first_name)
    last = fold_name(person.last_name)
    usage = fold_name(person.usage_name) if person.usage_name else ""
    names = (last, usage) if usage and usage != last else (last,)
    return tuple((person.profile, first, name, person.birth_date) for name in names if name)


def _likeness(old: SnapshotPerson, new: Incoming, children: Sequence[UUID]) -> tuple[int, ...]:
    """How alike two homonyms are, to pair them: email, then class, then children."""
    same_email = bool(new.email) and (new.email or "").casefold() == (old.email or "").casefold()
    return (
        int(same_email),
        int(list(new.classes) == old.classes),
        len(set(children) & set(old.children)),
    )


def _candidates(
    index: Mapping[tuple[str, str, str, date | None], list[int]],
    keys: tuple[tuple[str, str, str, date | None], ...],
) -> list[int]:
    """The snapshot's persons found under any of ``keys``, each once, in snapshot order."""
    if len(keys) == 1:  # most persons: one name, found once or not at all
        return index.get(keys[0], [])
    return sorted({j for key in keys for j in index.get(key, [])})


def _paired_by_ine(olds: Sequence[SnapshotPerson], news: Sequence[Incoming]) -> dict[int, int]:
    """new index -> old index of the persons whose INE both sides give, the same."""
    known = {old.ine: j for j, old in enumerate(olds) if old.ine}
    if not known:
        return {}
    return {i: j for i, new in enumerate(news) if new.ine and (j := known.get(new.ine)) is not None}


def _other_ine(old: SnapshotPerson, new: Incoming) -> bool:
    return bool(old.ine and new.ine and old.ine != new.ine)


@dataclass
class Matching:
    pairs: dict[int, int] = field(default_factory=dict)  # new index -> old index
    ambiguous: dict[int, int] = field(default_factory=dict)  # new index -> candidates


def match(
    olds: Sequence[SnapshotPerson],
    news: Sequence[Incoming],
    children: Callable[[Incoming], list[UUID]] = lambda _: [],
) -> Matching:
    """Pair each incoming person with at most one person of the snapshot (DESIGN §4).

    A pupil whose INE both sides give is paired by it, whatever his names (an INE is
    stable across renames and typos); two different INEs are never the same pupil. Then,
    by names: exactly one candidate on both sides is the same person; homonyms (several
    candidates, or one candidate claimed by several) are paired best first (same email,
    same class, shared children), then in file order; each is reported as ambiguous.
    """
    by_ine = _paired_by_ine(olds, news)
    taken_by_ine = set(by_ine.values())
    index: dict[tuple[str, str, str, date | None], list[int]] = {}
    for j, old in enumerate(olds):
        if j not in taken_by_ine:
            for key in _keys(old):
                index.setdefault(key, []).append(j)
    candidates = [
        [] if i in by_ine else _candidates(index, _keys(new)) for i, new in enumerate(news)
    ]
    if taken_by_ine or any(new.ine for new in news):
        candidates = [
            [j for j in found if not _other_ine(olds[j], news[i])]
            for i, found in enumerate(candidates)
        ]
    claimants: dict[int, int] = {}
    for found in candidates:
        for j in found:
            claimants[j] = claimants.get(j, 0) + 1

    result = Matching(pairs=dict(by_ine))
    contested: list[tuple[tuple[int, ...], int, int]] = []
    for i, found in enumerate(candidates):
        if len(found) == 1 and claimants[found[0]] == 1:
            result.pairs[i] = found[0]
        elif found:
            result.ambiguous[i] = max(len(found), *(claimants[j] for j in found))
            likeness = [(_likeness(olds[j], news[i], children(news[i])), i, j) for j in found]
            contested += [(tuple(-x for x in score), i, j) for score, i, j in likeness]
    taken = set(result.pairs.values())
    for _, i, j in sorted(contested):
        if i not in result.pairs and j not in taken:
            result.pairs[i] = j
            taken.add(j)
    return result


# ---------------------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    persons: tuple[SnapshotPerson, ...]  # the export with feed ids: the next snapshot
    classes: tuple[FeedClass, ...]
    created: tuple[SnapshotPerson, ...]
    updated: tuple[SnapshotPerson, ...]
    moved: tuple[SnapshotPerson, ...]
    left: tuple[SnapshotPerson, ...]
    unchanged: int
    classes_changed: bool
    warnings: tuple[Finding, ...]
    # La rentrée: most continuing pupils moved up a level; who of ``left`` was expected to.
    turnover: bool = False
    expected_leavers: frozenset[UUID] = frozenset()

    @property
    def unexpected_leavers(self) -> int:
        return len(self.left) - len(self.expected_leavers)

    @property
    def counts(self) -> SyncCounts:
        return SyncCounts(
            created=len(self.created),
            updated=len(self.updated),
            moved=len(self.moved),
            left=len(self.left),
            unchanged=self.unchanged,
            expected_leavers=len(self.expected_leavers),
            unexpected_leavers=self.unexpected_leavers,
        )

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.moved or self.left or self.classes_changed)


def _moved(old: SnapshotPerson, new: SnapshotPerson) -> bool:
    return old.classes != new.classes


def _updated(old: SnapshotPerson, new: SnapshotPerson) -> bool:
    return (
        old.first_name != new.first_name
        or old.last_name != new.last_name
        or old.usage_name != new.usage_name
        or old.email != new.email
        or sorted(old.children) != sorted(new.children)
        or old.director != new.director
        or old.birth_date != new.birth_date
        or old.ine != new.ine
    )


def _homonym_warning(new: Incoming, candidates: int, files: Mapping[Kind, str]) -> Finding:
    born = f" born {new.birth_date:%d/%m/%Y}" if new.birth_date else ""
    who = f"{new.first_name} {new.usage_name or new.last_name}"
    return Finding(
        file=files.get(KIND_OF[new.profile]),
        line=new.line,
        message=(
            f"possible duplicate: {_LABEL[new.profile]} {who}{born} has {candidates} "
            "homonyms between this export and the last applied one; paired by email, "
            "class, then order: check them"
        ),
    )


def diff(snapshot: Snapshot, export: Export, new_id: Callable[[], UUID] = uuid4) -> Diff:
    """The export compared with the last applied feed of the school. Pupils are matched
    first, so that parents' children are feed ids."""
    files = export.files
    news = incoming(export)
    olds_by_profile: dict[str, list[SnapshotPerson]] = {}
    for known in snapshot.persons:
        olds_by_profile.setdefault(known.profile, []).append(known)
    pupil_ids: dict[int, UUID] = {}  # pupils-file line -> feed id
    continuing: list[tuple[str | None, str | None]] = []  # pupils' (level before, now)
    class_levels = {c.name: c.level for c in snapshot.classes}
    persons: list[SnapshotPerson] = []
    created: list[SnapshotPerson] = []
    updated: list[SnapshotPerson] = []
    moved: list[SnapshotPerson] = []
    warnings: list[Finding] = []
    unchanged = 0
    kept: set[UUID] = set()

    def children_of(new: Incoming) -> list[UUID]:
        return [pupil_ids[line] for line in new.child_lines if line in pupil_ids]

    for profile in ("student", "teacher", "relative"):
        group = [n for n in news if n.profile == profile]
        olds = olds_by_profile.get(profile, [])
        matching = match(olds, group, children_of)
        for i, new in enumerate(group):
            j = matching.pairs.get(i)
            old = olds[j] if j is not None else None
            children = children_of(new)
            if old is not None and new.is_as(old, children):
                person = old
            else:
                person = new.person(old.feed_id if old else new_id(), children)
            if profile == "student" and new.line is not None:
                pupil_ids[new.line] = person.feed_id
            persons.append(person)
            if i in matching.ambiguous:
                warnings.append(_homonym_warning(new, matching.ambiguous[i], files))
            if old is None:
                created.append(person)
                continue
            kept.add(old.feed_id)
            if profile == "student":
                continuing.append((_level(old, class_levels), new.level))
            if person is old:  # kept as he was: neither moved nor updated
                unchanged += 1
            elif _moved(old, person):
                moved.append(person)
            elif _updated(old, person):
                updated.append(person)
            else:
                unchanged += 1
    classes = tuple(
        FeedClass(name=c.name, level=c.level, onde_id=c.onde_id) for c in export.classes
    )
    left = tuple(p for p in snapshot.persons if p.feed_id not in kept)
    year = _turnover(snapshot, continuing, left, class_levels)
    return Diff(
        persons=tuple(persons),
        classes=classes,
        created=tuple(created),
        updated=tuple(updated),
        moved=tuple(moved),
        left=left,
        unchanged=unchanged,
        classes_changed=classes != snapshot.classes,
        warnings=tuple(warnings),
        turnover=year.turnover,
        expected_leavers=year.expected,
    )


def _level(pupil: SnapshotPerson, class_levels: Mapping[str, str | None]) -> str | None:
    """A pupil's level in the last applied feed: his own, else his class's (a snapshot from
    before levels were kept)."""
    if pupil.level is not None:
        return pupil.level
    return next((class_levels.get(c) for c in pupil.classes if class_levels.get(c)), None)


def _turnover(
    snapshot: Snapshot,
    continuing: list[tuple[str | None, str | None]],
    left: Sequence[SnapshotPerson],
    class_levels: Mapping[str, str | None],
) -> turnover.Turnover:
    if not left and not continuing:
        return turnover.NO_TURNOVER
    pupils = [
        turnover.Pupil(p.feed_id, _level(p, class_levels), p.decision)
        for p in snapshot.persons
        if p.profile == "student"
    ]
    parents = [
        turnover.Parent(p.feed_id, tuple(p.children))
        for p in snapshot.persons
        if p.profile == "relative"
    ]
    return turnover.recognise(continuing, pupils, parents, (p.feed_id for p in left))


# ---------------------------------------------------------------------------------------
# Safety hold
# ---------------------------------------------------------------------------------------


def hold_reasons(diff: Diff, snapshot: Snapshot, export: Export, leave_share: float) -> list[str]:
    """Why a run must wait for an operator (DESIGN §4 "Safety hold"); empty: it need not.
    Too many leavers, a pupils file that shrank by more than the same share, a file that
    looks truncated or wrongly encoded."""
    reasons: list[str] = []
    # At the year's turnover, the pupils of the last level (and their parents) leave as
    # expected: only the others count.
    size, leaving = len(snapshot.persons), diff.unexpected_leavers
    if size and leaving / size > leave_share:
        expected = f" (besides {len(diff.expected_leavers)} expected)" if diff.turnover else ""
        reasons.append(
            f"{leaving} of the {size} persons of the last applied feed would leave{expected} "
            f"({leaving / size:.0%}, more than the {leave_share:.0%} allowed): "
            "is the export complete?"
        )
    pupils = [p for p in snapshot.persons if p.profile == "student"]
    # At the turnover, a maternelle whose GS leave for CP is smaller in September unless as
    # many PS arrive: the file is compared with the pupils expected to stay.
    going = sum(1 for p in pupils if p.feed_id in diff.expected_leavers)
    staying, after = len(pupils) - going, len(export.pupils)
    if staying and (staying - after) / staying > leave_share:
        besides = f", {going} of them leaving as expected" if going else ""
        reasons.append(
            f"the pupils file has {after} pupils where the last applied feed had "
            f"{len(pupils)}{besides} ({(after - staying) / staying:.0%}, more than the "
            f"{leave_share:.0%} allowed): is the export complete?"
        )
    for problem in export.suspicious:
        where = f"{problem.file}, line {problem.line}" if problem.line else problem.file
        reasons.append(f"{where}: {problem.message}")
    return reasons


# ---------------------------------------------------------------------------------------
# Chunks
# ---------------------------------------------------------------------------------------

_PROFILE_ORDER: Mapping[str, int] = {"student": 0, "teacher": 1, "relative": 2}
_Item = tuple[str, FeedPerson | UUID]


def _items(diff: Diff) -> list[_Item]:
    """Every change, pupils first, then teachers, then parents, then leavers (a parent's
    children are then usually known when he comes; account_manager must not rely on it)."""
    changes: list[tuple[int, int, _Item]] = []
    for rank, (kind, people) in enumerate(
        (("created", diff.created), ("moved", diff.moved), ("updated", diff.updated))
    ):
        changes += [(_PROFILE_ORDER[p.profile], rank, (kind, p.to_feed())) for p in people]
    changes.sort(key=lambda change: change[:2])
    return [item for _, _, item in changes] + [("left", p.feed_id) for p in diff.left]


def chunks(
    diff: Diff, *, run_id: UUID, school_id: UUID, uai: str, version: int, size: int
) -> list[DirectorySynced]:
    """``directory.synced`` messages of at most ``size`` persons each, numbered with the
    snapshot ``version`` the run makes; every chunk carries every class of the export. A
    change of classes alone makes one chunk."""
    items = _items(diff)
    groups = [items[start : start + size] for start in range(0, len(items), size)] or [[]]
    made: list[DirectorySynced] = []
    for number, group in enumerate(groups):
        lists: dict[str, list[FeedPerson | UUID]] = {
            "created": [],
            "updated": [],
            "moved": [],
            "left": [],
        }
        for kind, item in group:
            lists[kind].append(item)
        made.append(
            DirectorySynced.model_validate(
                {
                    "run_id": run_id,
                    "school_id": school_id,
                    "uai": uai,
                    "chunk": number,
                    "chunks": len(groups),
                    "version": version,
                    "classes": list(diff.classes),
                    "turnover": diff.turnover,
                    **lists,
                }
            )
        )
    return made


# ---------------------------------------------------------------------------------------
# A run's conclusion
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What a run records and publishes."""

    status: SyncStatus
    counts: SyncCounts
    base_version: int  # the snapshot version the run compared with
    digest: str | None = None
    errors: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()
    hold_reasons: tuple[str, ...] = ()
    # The next snapshot and the chunks that announce it (applied and held runs).
    persons: tuple[SnapshotPerson, ...] | None = None
    classes: tuple[FeedClass, ...] = ()
    chunks: tuple[DirectorySynced, ...] = ()
    # ``persons`` as JSON, when computed in a worker process (which then leaves ``persons``
    # out: the text crosses back cheaper than the models, and is what the database stores).
    persons_json: str | None = None
    # ``chunks`` as JSON, likewise: pickling the persons' models across the two processes
    # cost several times their JSON (see ``compute`` and ``revived``).
    chunks_json: tuple[str, ...] = ()
    next_snapshot_size: int = 0  # persons in the snapshot an applied run stores
    turnover: bool = False  # the school's year turned over in this run (la rentrée)

    def payloads(self) -> list[Contract]:
        """The chunks to publish: the JSON a worker process wrote, published as it is,
        else the models."""
        if self.chunks_json:
            return [SerialisedChunk(text=text) for text in self.chunks_json]
        return list(self.chunks)

    @property
    def next_persons_json(self) -> str | None:
        if self.persons_json is not None:
            return self.persons_json
        return None if self.persons is None else PERSONS.dump_json(list(self.persons)).decode()

    @property
    def replaces_snapshot(self) -> bool:
        return self.status == "applied"

    @property
    def needs_same_snapshot(self) -> bool:
        """Computed against the snapshot: void if another run applied meanwhile."""
        return self.status in ("applied", "held", "unchanged")


REPORT_FINDINGS = 200  # errors, and warnings, a report lists; a count stands for the rest


def capped(findings: tuple[Finding, ...], what: str) -> tuple[Finding, ...]:
    """The first ``REPORT_FINDINGS`` findings, and one saying how many more there were: a
    drop of a million bad rows makes a report of a few kilobytes."""
    if len(findings) <= REPORT_FINDINGS:
        return findings
    rest = len(findings) - REPORT_FINDINGS
    return (
        *findings[:REPORT_FINDINGS],
        Finding(
            message=f"{rest} more {what} not listed (a report keeps the first {REPORT_FINDINGS})"
        ),
    )


def finding(problem: Problem) -> Finding:
    return Finding(file=problem.file, line=problem.line, message=problem.message)


def no_drop(snapshot: SnapshotHead) -> RunResult:
    return RunResult(status="no_drop", counts=SyncCounts(), base_version=snapshot.version)


def invalid_uai(uai: str) -> RunResult:
    return RunResult(
        status="rejected",
        counts=SyncCounts(),
        base_version=0,
        errors=(Finding(message=f"{uai!r} is not a UAI: no drop folder read"),),
    )


def same_digest(snapshot: SnapshotHead, *, dry_run: bool) -> RunResult:
    """The drop's bytes are those of the last applied feed: nothing to parse."""
    return RunResult(
        status="dry_run" if dry_run else "unchanged",
        counts=SyncCounts(unchanged=snapshot.persons),
        base_version=snapshot.version,
        digest=snapshot.digest,
    )


def conclude(
    snapshot: Snapshot,
    export: Export,
    drop_digest: str,
    *,
    run_id: UUID,
    school_id: UUID,
    dry_run: bool,
    leave_share: float,
    chunk_size: int,
    new_id: Callable[[], UUID] = uuid4,
) -> RunResult:
    """A parsed export's run: rejected (errors: nothing applied), dry run (reported
    only), unchanged (whatever a file looks like: nothing would change), held (too many
    leavers or a suspicious file), or applied. A report keeps its first findings."""
    errors = tuple(finding(p) for p in export.errors)
    base = tuple(finding(p) for p in (*export.warnings, *export.suspicious))
    if errors:
        return RunResult(
            status="rejected",
            counts=SyncCounts(),
            base_version=snapshot.version,
            digest=drop_digest,
            errors=capped(errors, "errors"),
            warnings=capped(base, "warnings"),
        )
    changes = diff(snapshot, export, new_id)
    warnings = base + changes.warnings
    reasons = tuple(hold_reasons(changes, snapshot, export, leave_share)) if changes.changed else ()
    made = chunks(
        changes,
        run_id=run_id,
        school_id=school_id,
        uai=export.uai,
        version=snapshot.version + 1,  # the snapshot this run replaces the last with
        size=chunk_size,
    )
    status: SyncStatus
    if dry_run:
        status = "dry_run"
        warnings += tuple(Finding(message=f"would be held: {reason}") for reason in reasons)
    elif not changes.changed:
        status = "unchanged"
    elif reasons:
        status = "held"
    else:
        status = "applied"
    return RunResult(
        status=status,
        counts=changes.counts,
        base_version=snapshot.version,
        digest=drop_digest,
        warnings=capped(warnings, "warnings"),
        hold_reasons=reasons,
        persons=changes.persons,
        next_snapshot_size=len(changes.persons),
        classes=changes.classes,
        turnover=changes.turnover,
        chunks=tuple(made) if status in ("applied", "held") else (),
    )


def compute(
    stored: StoredSnapshot,
    drop: Drop,
    drop_digest: str,
    *,
    run_id: UUID,
    school_id: UUID,
    dry_run: bool,
    limits: Limits,
    leave_share: float,
    chunk_size: int,
) -> RunResult:
    """A run's CPU-bound part, from the stored snapshot and the drop's files to its
    result with the next snapshot as JSON: a function of picklable arguments, so that it
    can run in a worker process."""
    result = conclude(
        stored.parsed(),
        read_drop(drop, limits),
        drop_digest,
        run_id=run_id,
        school_id=school_id,
        dry_run=dry_run,
        leave_share=leave_share,
        chunk_size=chunk_size,
    )
    return replace(
        result,
        persons=None,
        # Stored only by an applied run, or kept by a held one.
        persons_json=result.next_persons_json if result.status in ("applied", "held") else None,
        chunks=(),
        chunks_json=tuple(chunk.model_dump_json() for chunk in result.chunks),
    )


def revived(result: RunResult) -> RunResult:
    """A result computed in a worker process, its chunks models again (a held run stores
    them; an applied run publishes their JSON as it is)."""
    if not result.chunks_json:
        return result
    chunks = tuple(DirectorySynced.model_validate_json(text) for text in result.chunks_json)
    return replace(result, chunks=chunks, chunks_json=())


# ---------------------------------------------------------------------------------------
# The night
# ---------------------------------------------------------------------------------------


_HH_MM = re.compile("([01][0-9]|2[0-3]):([0-5][0-9])")


def parse_hh_mm(text: str) -> time:
    found = _HH_MM.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    return time(int(found[1]), int(found[2]))


def last_scheduled(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """When the last nightly run was due at ``now``: the last local ``at`` passed, in UTC."""
    local = now.astimezone(zone)
    night = local.date() if local.time() >= at else local.date() - timedelta(days=1)
    return datetime.combine(night, at, tzinfo=zone).astimezone(UTC)


def night_due(now: datetime, at: time, zone: ZoneInfo, window: timedelta) -> date | None:
    """The night whose run is due at ``now``: the last local date whose ``at`` has passed,
    if it passed less than ``window`` ago (a replica that was down at that time catches
    up; one started in the afternoon does not run last night's feed)."""
    start = last_scheduled(now, at, zone)
    night = start.astimezone(zone).date()
    return night if timedelta(0) <= now.astimezone(UTC) - start < window else None
