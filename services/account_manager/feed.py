"""directory.synced: one chunk of the nightly ONDE feed of an automatic school, applied.

A chunk is applied whole in one transaction, under a lock on its school (so chunks of one
school never interleave, whichever replica holds them), in a fixed handful of set-based
statements. created, updated and moved persons are all given in full and are handled
alike: the person ends as the feed says, whether or not an earlier chunk already made his
account. Chunks may come in any order: a parent-child link waits in ``feed_links`` until
both sides have an account.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from services.account_manager import commands, domain, feed_rules
from services.account_manager.ports import (
    AccountView,
    FeedStore,
    MappedAccount,
    NewAccount,
    PersonUpdate,
    ReserveRanks,
    SchoolInfo,
)
from shared.contracts.accounts import (
    Account,
    ArchivedClass,
    ClassesArchived,
    ClassesCreated,
    ClassInfo,
    CreatedAccount,
    SchoolYearTurned,
)
from shared.contracts.commands import ClassTeachersAssigned
from shared.contracts.directory import (
    AccountsDeactivated,
    AccountsDeleted,
    AccountsUpdated,
    DirectorySynced,
    FeedPerson,
)
from shared.envelope import Contract, Envelope, follow
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class AccountLifetimes:
    activation_ttl: timedelta
    grace: timedelta  # how long a deactivated leaver is kept (and can be restored)


@dataclass
class Applied:
    """What a chunk did, for its events."""

    classes: list[ClassInfo] = field(default_factory=list)
    archived: list[ArchivedClass] = field(default_factory=list)
    detached: list[UUID] = field(default_factory=list)  # archived classes that lost teachers
    # Classes back from the archive with the teachers they had, and those teachers.
    reattached: dict[UUID, list[UUID]] = field(default_factory=dict)
    year_turned: bool = False  # the chunk completed its school's turnover run
    created: list[UUID] = field(default_factory=list)
    # The rows just inserted for ``created``, with their logins: published as they are,
    # not read back.
    new_rows: dict[UUID, tuple[NewAccount, str]] = field(default_factory=dict)
    changed: set[UUID] = field(default_factory=set)
    restored: set[UUID] = field(default_factory=set)
    movers: list[UUID] = field(default_factory=list)  # accounts there before, moved class
    # Feed ids found to be existing accounts (a leaver back, an account made by hand).
    matched: set[UUID] = field(default_factory=set)
    deactivated: list[AccountView] = field(default_factory=list)
    deleted: list[AccountView] = field(default_factory=list)
    skipped: list[UUID] = field(default_factory=list)  # feed ids with no possible login


async def handle_directory_synced(
    event: Envelope[DirectorySynced],
    *,
    store: FeedStore,
    lifetimes: AccountLifetimes,
    now: datetime,
    reserve_ranks: ReserveRanks | None = None,
) -> None:
    chunk = event.data
    school = await _fed_school(chunk, store=store)
    applied = Applied()
    if chunk.version is not None:
        whole = await _take_turn(chunk, chunk.version, store=store)
        applied.year_turned = chunk.turnover and whole
    people = {p.feed_id: p for p in [*chunk.created, *chunk.updated, *chunk.moved]}
    left = [f for f in dict.fromkeys(chunk.left) if f not in people]
    classes = await _apply_classes(chunk, people.values(), store=store, now=now)
    applied.classes, applied.archived, applied.detached = (
        classes.created,
        classes.archived,
        classes.detached,
    )
    applied.reattached = classes.reattached
    class_ids = classes.class_ids
    known = {m.feed_id: m for m in await store.mapped_accounts(chunk.school_id, [*people, *left])}
    leavers = [known[f] for f in left if f in known]
    parents = await _apply_leavers(chunk.school_id, leavers, applied, store=store, now=now)
    accounts = await _identify(
        chunk.school_id,
        people,
        known,
        applied,
        store=store,
        lifetimes=lifetimes,
        now=now,
        reserve_ranks=reserve_ranks,
    )
    parents |= await _place(chunk.school_id, people, accounts, class_ids, applied, store=store)
    gone = {v.account_id for v in [*applied.deactivated, *applied.deleted]}
    applied.changed |= await _derive_parent_classes(
        parents - gone, applied.movers, set(applied.created), store=store
    )
    applied.changed -= gone
    await _publish(event, school, applied, store=store)
    log.info(
        "feed_chunk_applied",
        school_id=str(chunk.school_id),
        run_id=str(chunk.run_id),
        chunk=f"{chunk.chunk + 1}/{chunk.chunks}",
        classes_created=len(applied.classes),
        created=len(applied.created),
        updated=len(applied.changed - set(applied.created)),
        restored=len(applied.restored),
        deactivated=len(applied.deactivated),
        deleted=len(applied.deleted),
        skipped=[str(f) for f in applied.skipped],
    )


async def _fed_school(chunk: DirectorySynced, *, store: FeedStore) -> SchoolInfo:
    school = await store.lock_fed_school(chunk.school_id)
    if school is None:
        # school.initialised and the first feed race through different queues: the school
        # will be here on a retry.
        raise TransientError(f"school {chunk.school_id} is not known yet")
    if school.provisioning != "automatic":
        raise PermanentError(f"school {chunk.school_id} is a manual school: it has no feed")
    if school.uai != chunk.uai:
        log.warning("feed_uai_differs", school_id=str(chunk.school_id), uai=chunk.uai)
    return school


async def _take_turn(chunk: DirectorySynced, version: int, *, store: FeedStore) -> bool:
    """Runs of a school are applied in order (``feed_rules.chunk_turn``): a chunk whose
    turn has not come is retried later, one of a run older than the school's is refused;
    else it is counted as applied (in the transaction that applies it). Whether its run is
    then applied whole."""
    school = chunk.school_id
    progress = await store.run_progress(school)
    # Asked once in a school's life: its first numbered chunk.
    fed = progress is None and version > 1 and await store.has_feed_classes(school)
    turn = feed_rules.chunk_turn(progress, version, fed_unnumbered=fed)
    if turn == "stale":
        assert progress is not None
        raise PermanentError(
            f"run {version} of school {school} is older than its run {progress.version},"
            " already applied: applying it would undo that run's changes"
        )
    if turn == "wait":
        if progress is None:
            waited = "none of its runs is applied yet"
        elif version == progress.version + 1:
            waited = (
                f"{progress.applied} of the {progress.chunks} chunks of its run"
                f" {progress.version} are applied"
            )
        else:
            waited = f"its last run applied is {progress.version}"
        raise TransientError(
            f"run {version} of school {school} waits for run {version - 1}: {waited}"
        )
    return await store.count_chunk(school, version, chunk.chunks)


# Classes -----------------------------------------------------------------------------


class ClassChanges(NamedTuple):
    created: list[ClassInfo]  # new, or back from the archive
    class_ids: dict[str, UUID]  # the class of each feed name
    archived: list[ArchivedClass]
    detached: list[UUID]  # archived classes that had teachers
    reattached: dict[UUID, list[UUID]]  # classes back with teachers: their teachers


async def _apply_classes(
    chunk: DirectorySynced, people: Iterable[FeedPerson], *, store: FeedStore, now: datetime
) -> ClassChanges:
    """Every class of the export exists (a name a person gives but the list lacks too),
    at the level the export gives; a class the export no longer names is archived (a run
    of a numbered run: every chunk carries the export's every class), one it names again
    comes back. Most nights nothing changes: the classes are read, not written."""
    levels = {c.name: c.level for c in chunk.classes}
    named = dict.fromkeys(
        [*levels, *(n for p in people if p.profile != "relative" for n in p.classes)]
    )
    known = await store.feed_classes(chunk.school_id)
    back = [row for name, row in known.items() if name in named and row.archived]
    gone = [
        row.class_id
        for name, row in known.items()
        if chunk.version is not None and name not in named and not row.archived
    ]
    missing = [(uuid.uuid4(), name, levels.get(name)) for name in named if name not in known]
    relevelled = {
        name: level
        for name, level in levels.items()
        if name not in known or known[name].level != level
    }
    class_ids = {name: row.class_id for name, row in known.items()}
    infos: list[ClassInfo] = []
    reattached: dict[UUID, list[UUID]] = {}
    if back:
        teachers = await store.unarchive_classes([row.class_id for row in back])
        reattached = {c: t for c, t in teachers.items() if t}
        infos += [ClassInfo(class_id=r.class_id, name=r.name, level=r.level) for r in back]
    if missing or relevelled:
        created, mapped = await store.upsert_feed_classes(chunk.school_id, missing, relevelled)
        infos += [ClassInfo(class_id=c.class_id, name=c.name, level=c.level) for c in created]
        class_ids |= mapped
    archived, detached = await store.archive_classes(gone, now) if gone else ([], [])
    return ClassChanges(infos, class_ids, archived, detached, reattached)


# Leavers -----------------------------------------------------------------------------


async def _apply_leavers(
    school_id: UUID,
    leavers: list[MappedAccount],
    applied: Applied,
    *,
    store: FeedStore,
    now: datetime,
) -> set[UUID]:
    """Delete the never-activated, deactivate the others; the parents of those leaving
    (their children and classes change)."""
    fates = {
        m.account_id: feed_rules.leaver_fate(
            activated=m.activated, deactivated=m.deactivated_at is not None
        )
        for m in leavers
    }
    going = [a for a, fate in fates.items() if fate != "already_gone"]
    if not going:
        return set()
    views = await store.account_views(going)  # as they were, before they go
    parents = await store.parents_of(going)
    to_delete = [a for a in going if fates[a] == "delete"]
    to_deactivate = [a for a in going if fates[a] == "deactivate"]
    await store.forget_feed_links(school_id, [m.feed_id for m in leavers])
    await store.remember_logins(to_delete, now)
    await store.delete_accounts(to_delete)
    await store.deactivate_accounts(to_deactivate, now)
    applied.deleted = [views[a] for a in to_delete]
    applied.deactivated = [views[a] for a in to_deactivate]
    applied.changed |= parents  # their children list changes
    return parents


# Who is who --------------------------------------------------------------------------


async def _identify(
    school_id: UUID,
    people: dict[UUID, FeedPerson],
    known: dict[UUID, MappedAccount],
    applied: Applied,
    *,
    store: FeedStore,
    lifetimes: AccountLifetimes,
    now: datetime,
    reserve_ranks: ReserveRanks | None,
) -> dict[UUID, UUID]:
    """feed id -> account id of every person of the chunk: the account his feed id is,
    an account he is found to be (a leaver back under a new feed id, an account made by
    hand), or a new one; existing ones are brought up to date (and reactivated)."""
    accounts = {f: known[f].account_id for f in people if f in known}
    applied.restored |= {known[f].account_id for f in accounts if known[f].deactivated_at}
    newcomers = [(f, _key(p)) for f, p in people.items() if f not in known]
    created: dict[UUID, UUID] = {}
    if newcomers:
        keys = sorted({key for _, key in newcomers}, key=str)
        candidates = {c.account_id: c for c in await store.match_candidates(school_id, keys)}
        found = feed_rules.choose_matches(
            newcomers, candidates.values(), now=now, grace=lifetimes.grace
        )
        applied.restored |= {a for a in found.values() if candidates[a].deactivated_at}
        fresh = [people[f] for f, _ in newcomers if f not in found]
        created = await _create(
            school_id,
            fresh,
            applied,
            store=store,
            lifetimes=lifetimes,
            now=now,
            reserve_ranks=reserve_ranks,
        )
        if found:
            await store.remap_feed_ids(school_id, found)
        accounts |= found
        applied.matched |= set(found)
    existing = [_update(account_id, people[f]) for f, account_id in accounts.items()]
    if existing:
        applied.changed |= await store.update_people(existing)
    return accounts | created


def _key(person: FeedPerson) -> feed_rules.MatchKey:
    return feed_rules.match_key(
        person.profile, person.first_name, person.last_name, person.birth_date
    )


def _update(account_id: UUID, person: FeedPerson) -> PersonUpdate:
    return PersonUpdate(
        account_id=account_id,
        first_name=person.first_name,
        last_name=person.last_name,
        email=person.email,
        birth_date=person.birth_date,
        first_folded=domain.fold_name_part(person.first_name),
        last_folded=domain.fold_name_part(person.last_name),
    )


async def _create(
    school_id: UUID,
    fresh: list[FeedPerson],
    applied: Applied,
    *,
    store: FeedStore,
    lifetimes: AccountLifetimes,
    now: datetime,
    reserve_ranks: ReserveRanks | None,
) -> dict[UUID, UUID]:
    """New accounts, logins and codes for ``fresh``; feed id -> account id."""
    expires = domain.activation_expiry(now, lifetimes.activation_ttl)
    made: dict[UUID, NewAccount] = {}
    bases: list[str] = []
    codes = domain.new_activation_codes(len(fresh))
    for person, code in zip(fresh, codes, strict=True):
        try:
            base = domain.login_base(person.first_name, person.last_name)
        except ValueError:  # directory_sync reports such a name; the others go on
            applied.skipped.append(person.feed_id)
            continue
        bases.append(base)
        made[person.feed_id] = NewAccount(
            account_id=uuid.uuid4(),
            school_id=school_id,
            profile=person.profile,
            first_name=person.first_name,
            last_name=person.last_name,
            email=person.email,
            birth_date=person.birth_date,
            activation_code=code,
            activation_expires_at=expires,
            first_folded=domain.fold_name_part(person.first_name),
            last_folded=domain.fold_name_part(person.last_name),
            feed_id=person.feed_id,
        )
    if made:
        # One an undone run brings back is recreated under the login he had.
        again = await store.take_deleted_logins(school_id, list(made))
        logins = await store.add_accounts_as([made[f] for f in again], list(again.values()))
        rest = [
            (a, b) for a, b in zip(made.values(), bases, strict=True) if a.account_id not in logins
        ]
        logins |= await store.add_accounts(
            [a for a, _ in rest], [b for _, b in rest], reserve_ranks
        )
        applied.created.extend(a.account_id for a in made.values())
        applied.new_rows |= {a.account_id: (a, logins[a.account_id]) for a in made.values()}
    return {feed_id: account.account_id for feed_id, account in made.items()}


# Classes and families ------------------------------------------------------------------


async def _place(
    school_id: UUID,
    people: dict[UUID, FeedPerson],
    accounts: dict[UUID, UUID],
    class_ids: dict[str, UUID],
    applied: Applied,
    *,
    store: FeedStore,
) -> set[UUID]:
    """Pupils in their class, feed teachers in the class the file names, parents linked
    to their children; the parents whose classes may have changed. ``class_ids``: the
    class of each feed name."""
    placed = {f: p for f, p in people.items() if f in accounts}

    def of_profile(profile: str) -> dict[UUID, set[UUID]]:
        return {
            accounts[f]: {class_ids[n] for n in p.classes if n in class_ids}
            for f, p in placed.items()
            if p.profile == profile
        }

    pupils, teachers = of_profile("student"), of_profile("teacher")
    relatives = {f: p.children for f, p in placed.items() if p.profile == "relative"}
    fresh = set(applied.created)
    moved = await store.replace_account_classes(pupils, fresh) if pupils else set()
    if teachers:
        applied.changed |= await store.replace_feed_teaching(teachers, fresh)
    dropped: set[UUID] = set()
    relinked: set[UUID] = set()
    if relatives:
        new_parents = {f for f in relatives if accounts[f] in fresh}
        known = [f for f in relatives if f not in new_parents]
        stored = await store.feed_links_of(school_id, known) if known else {}
        changed = feed_rules.relinked(relatives, stored, new_parents)
        if changed:
            await store.replace_feed_links(school_id, changed, new_parents)
        relinked = set(changed)
        known_parents = [accounts[f] for f in changed if f not in new_parents]
        if known_parents:
            dropped = await store.drop_stale_children(school_id, known_parents)
    # A link waiting in feed_links becomes a parent-child link when its second side gets
    # an account (created, or found to be one) or when a parent's links are written again;
    # an account restored may have lost his.
    touched = [
        f
        for f in placed
        if accounts[f] in fresh
        or f in applied.matched
        or f in relinked
        or accounts[f] in applied.restored
    ]
    gained = await store.resolve_feed_links(school_id, touched) if touched else set()
    applied.changed |= moved | dropped | gained
    # The parents of pupils that moved follow them (``_derive_parent_classes``); a pupil
    # created here has no parent but those just linked to him (``gained``).
    applied.movers = sorted(moved - fresh)
    # A parent's classes follow his children: they change when his links do, when a
    # child moves, and when he comes back (a leaver loses his classes).
    relinked_or_back = {
        accounts[f] for f in relatives if f in relinked or accounts[f] in applied.restored
    }
    return relinked_or_back | dropped | gained


async def _derive_parent_classes(
    parents: set[UUID], movers: list[UUID], fresh: set[UUID], *, store: FeedStore
) -> set[UUID]:
    """A parent is attached to his children's classes: those of ``parents`` and the parents
    of ``movers`` (pupils whose class changed); the parents whose classes changed."""
    if not (parents or movers):
        return set()
    active, links, child_classes = await store.family_classes(sorted(parents), movers)
    desired = feed_rules.parent_classes(links, child_classes, active)
    return await store.replace_account_classes(desired, fresh) if desired else set()


# Events ------------------------------------------------------------------------------


async def _publish(
    event: Envelope[DirectorySynced], school: SchoolInfo, applied: Applied, *, store: FeedStore
) -> None:
    school_id = school.school_id
    created = set(applied.created)
    updated = sorted(applied.changed - created)
    views = await store.account_views([*applied.created, *updated], inserted=applied.new_rows)
    out: list[Contract] = []
    if applied.classes:
        out.append(ClassesCreated(school_id=school_id, classes=applied.classes))
    if applied.archived:
        out.append(ClassesArchived(school_id=school_id, classes=applied.archived))
    out += [
        ClassTeachersAssigned(class_id=class_id, school_id=school_id, teachers=[])
        for class_id in applied.detached
    ]
    out += [
        ClassTeachersAssigned(class_id=class_id, school_id=school_id, teachers=teachers)
        for class_id, teachers in applied.reattached.items()
    ]
    if applied.created:
        made = [_created(views[a]) for a in applied.created]
        out.append(commands.accounts_created(school, made))
    if updated:
        out.append(
            AccountsUpdated(
                school_id=school_id,
                accounts=[published_account(views[a]) for a in updated if a in views],
                restored=sorted(applied.restored),
            )
        )
    if applied.deactivated:
        out.append(
            AccountsDeactivated(
                school_id=school_id, accounts=[published_account(v) for v in applied.deactivated]
            )
        )
    if applied.deleted:
        out.append(
            AccountsDeleted(
                school_id=school_id, accounts=[published_account(v) for v in applied.deleted]
            )
        )
    if applied.year_turned:
        classes, untaught = await store.year_classes(school_id)
        out.append(
            SchoolYearTurned(school_id=school_id, classes=classes, classes_without_teacher=untaught)
        )
    await store.emit_all([follow(event, data, source=domain.SOURCE) for data in out])


def _fields(view: AccountView) -> dict[str, Any]:
    return {
        "account_id": view.account_id,
        "profile": view.profile,
        "first_name": view.first_name,
        "last_name": view.last_name,
        "login": view.login,
        "email": view.email,
        "birth_date": view.birth_date,
        "classes": view.class_names,
        "class_ids": view.class_ids,
        "children": view.children,
    }


def published_account(view: AccountView) -> Account:
    return Account(**_fields(view))


def _created(view: AccountView) -> CreatedAccount:
    return CreatedAccount(
        **_fields(view),
        activation_code=view.activation_code,
        activation_expires_at=view.activation_expires_at,
    )
