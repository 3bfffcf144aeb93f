"""directory.synced: one chunk of the nightly ONDE feed of an automatic school, applied.

A chunk is applied whole in one transaction, under a lock on its school (so chunks of one
school never interleave, whichever replica holds them), in a fixed handful of set-based
statements. created, updated and moved persons are all given in full and are handled
alike: the person ends as the feed says, whether or not an earlier chunk already made his
account. Chunks may come in any order: a parent-child link waits in ``feed_links`` until
both sides have an account.
"""

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from services.account_manager import domain, events, feed_rules
from services.account_manager.domain import NewAccount
from services.account_manager.ports import (
    AccountView,
    FeedStore,
    MappedAccount,
    PersonUpdate,
    ReserveRanks,
    SchoolInfo,
)
from shared.contracts.accounts import (
    ArchivedClass,
    ClassInfo,
)
from shared.contracts.directory import (
    DirectorySynced,
    FeedPerson,
)
from shared.envelope import Envelope, follow
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class AccountLifetimes:
    activation_ttl: timedelta
    grace: timedelta  # how long a deactivated leaver is kept (and can be restored)


@dataclass(frozen=True)
class Leavers:
    """What the chunk's leavers became: the deleted and deactivated as they were before
    they went, the detached (still held by another school) as they are now."""

    deleted: list[AccountView]
    deactivated: list[AccountView]
    parents: frozenset[UUID]  # their children (and classes) change
    detached: list[AccountView] = field(default_factory=list)

    @property
    def gone(self) -> set[UUID]:
        return {v.account_id for v in [*self.deleted, *self.deactivated]}


NO_LEAVERS = Leavers([], [], frozenset())


@dataclass(frozen=True)
class Created:
    accounts: dict[UUID, UUID]  # feed id -> the new account's id, in the chunk's order
    # The rows just inserted, with their logins: published as they are, not read back.
    rows: dict[UUID, tuple[NewAccount, str]]
    skipped: list[UUID]  # feed ids with no possible login


@dataclass(frozen=True)
class Identified:
    """Who is who: every person of the chunk and the account he is."""

    accounts: dict[UUID, UUID]  # feed id -> account id
    created: Created
    restored: frozenset[UUID]  # deactivated accounts back in the export
    matched: frozenset[UUID]  # feed ids found to be existing accounts (a leaver back…)
    changed: frozenset[UUID]  # existing accounts whose names or address changed
    # Accounts of another school found (a pupil by INE, a parent by names and email), now
    # in this one (attached, or re-homed here when their home had let them go): published
    # as accounts.attached.
    attached: frozenset[UUID] = frozenset()
    # New accounts whose names alone are those of an account of another school: new
    # account -> that account.
    duplicates: dict[UUID, UUID] = field(default_factory=dict)
    # Leavers taken back (restored here, or re-homed from another school) who had never
    # activated: deactivating voided their code, they get a new one (published as
    # activation_code.renewed). account -> code.
    new_codes: dict[UUID, str] = field(default_factory=dict)
    codes_expire: datetime | None = None

    @property
    def fresh(self) -> set[UUID]:
        return set(self.created.accounts.values())


@dataclass(frozen=True)
class Placed:
    changed: frozenset[UUID]  # accounts whose classes, teaching or children changed
    movers: list[UUID]  # pupils there before who changed class
    parents: frozenset[UUID]  # parents whose classes may have changed


async def handle_directory_synced(
    event: Envelope[DirectorySynced],
    *,
    store: FeedStore,
    lifetimes: AccountLifetimes,
    now: datetime,
    reserve_ranks: ReserveRanks | None = None,
    across_schools: bool = True,
) -> None:
    """``across_schools``: a pupil is found in other schools by his INE, and kept at the
    turnover for them, a parent by his names and email (docs/one-person-across-schools.md);
    off, each school is alone."""
    chunk = event.data
    school = await _fed_school(chunk, store=store)
    whole = False
    if chunk.version is not None:
        whole = await _take_turn(chunk, chunk.version, store=store)
    people = {p.feed_id: p for p in [*chunk.created, *chunk.updated, *chunk.moved]}
    left = [f for f in dict.fromkeys(chunk.left) if f not in people]
    classes = await _apply_classes(chunk, people.values(), store=store, now=now)
    known = {m.feed_id: m for m in await store.mapped_accounts(chunk.school_id, [*people, *left])}
    leavers = await _apply_leavers(
        chunk.school_id,
        [known[f] for f in left if f in known],
        store=store,
        now=now,
        keep_findable=across_schools and chunk.turnover,
    )
    identified = await _identify(
        chunk.school_id,
        people,
        known,
        store=store,
        lifetimes=lifetimes,
        now=now,
        reserve_ranks=reserve_ranks,
        across_schools=across_schools,
    )
    placed = await _place(chunk.school_id, people, identified, classes.class_ids, store=store)
    gone = leavers.gone
    derived = await _derive_parent_classes(
        (leavers.parents | placed.parents) - gone, placed.movers, identified.fresh, store=store
    )
    changed = (leavers.parents | identified.changed | placed.changed | derived) - gone
    if identified.attached or identified.duplicates:
        await store.record_run_findings(
            chunk.school_id, chunk.run_id, identified.attached, identified.duplicates
        )
    await _publish(event, school, classes, leavers, identified, changed, whole, store=store)
    log.info(
        "feed_chunk_applied",
        school_id=str(chunk.school_id),
        run_id=str(chunk.run_id),
        chunk=f"{chunk.chunk + 1}/{chunk.chunks}",
        classes_created=len(classes.created),
        created=len(identified.created.accounts),
        updated=len(changed - identified.fresh),
        restored=len(identified.restored),
        attached=len(identified.attached),
        detached=len(leavers.detached),
        possible_duplicates=len(identified.duplicates),
        deactivated=len(leavers.deactivated),
        deleted=len(leavers.deleted),
        skipped=[str(f) for f in identified.created.skipped],
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
    *,
    store: FeedStore,
    now: datetime,
    keep_findable: bool = False,
) -> Leavers:
    """Detach those another school still holds; delete the never-activated, deactivate
    the others (``keep_findable``, at the turnover: the pupils another school may take back
    by INE, and the parents by names and email, are deactivated even if never activated)."""
    fates = {
        m.account_id: feed_rules.leaver_fate(
            activated=m.activated,
            deactivated=m.deactivated_at is not None,
            held_elsewhere=m.held_elsewhere,
            kept=keep_findable and feed_rules.kept_at_turnover(m.profile, m.ine, m.has_email),
        )
        for m in leavers
    }
    going = [a for a, fate in fates.items() if fate != "already_gone"]
    if not going:
        return NO_LEAVERS
    by_fate = {fate: [a for a in going if fates[a] == fate] for fate in set(fates.values())}
    to_delete, to_deactivate = by_fate.get("delete", []), by_fate.get("deactivate", [])
    to_detach = by_fate.get("detach", [])
    gone = [*to_delete, *to_deactivate]
    views = await store.account_views(gone) if gone else {}  # as they were, before they go
    parents = await store.parents_of(going)
    await store.forget_feed_links(school_id, [m.feed_id for m in leavers])
    await store.remember_logins(to_delete, now)
    await store.delete_accounts(to_delete)
    await store.deactivate_accounts(to_deactivate, now)
    detached: dict[UUID, AccountView] = {}
    if to_detach:
        await store.detach_accounts(school_id, to_detach)
        detached = await store.account_views(to_detach)  # the whole account, as it is now
    return Leavers(
        deleted=[views[a] for a in to_delete],
        deactivated=[views[a] for a in to_deactivate],
        parents=frozenset(parents),
        detached=[detached[a] for a in to_detach],
    )


# Who is who --------------------------------------------------------------------------


async def _identify(
    school_id: UUID,
    people: dict[UUID, FeedPerson],
    known: dict[UUID, MappedAccount],
    *,
    store: FeedStore,
    lifetimes: AccountLifetimes,
    now: datetime,
    reserve_ranks: ReserveRanks | None,
    across_schools: bool = True,
) -> Identified:
    """The account of every person of the chunk: the account his feed id is, an account
    he is found to be (a leaver back under a new feed id, an account made by hand, a pupil
    of another school by his INE), or a new one; existing ones are brought up to date (and
    reactivated)."""
    accounts = {f: known[f].account_id for f in people if f in known}
    restored = {known[f].account_id for f in accounts if known[f].deactivated_at}
    newcomers = [(f, _key(p)) for f, p in people.items() if f not in known]
    found: dict[UUID, UUID] = {}
    across = NOBODY_ACROSS
    created = Created({}, {}, [])
    duplicates: dict[UUID, UUID] = {}
    if newcomers:
        keys = sorted({key for _, key in newcomers}, key=str)
        candidates = {c.account_id: c for c in await store.match_candidates(school_id, keys)}
        found = feed_rules.choose_matches(
            newcomers, candidates.values(), now=now, grace=lifetimes.grace
        )
        restored |= {a for a in found.values() if candidates[a].deactivated_at}
        unmatched = [people[f] for f, _ in newcomers if f not in found]
        if across_schools:
            across = await _find_across(
                school_id, unmatched, store=store, lifetimes=lifetimes, now=now
            )
        fresh = [p for p in unmatched if p.feed_id not in across.found]
        created = await _create(
            school_id, fresh, store=store, lifetimes=lifetimes, now=now, reserve_ranks=reserve_ranks
        )
        duplicates = _possible_duplicates(across.duplicates, created)
        if found:
            await store.remap_feed_ids(school_id, found)
        accounts |= found | across.found
    existing = [_update(account_id, people[f]) for f, account_id in accounts.items()]
    changed = await store.update_people(existing) if existing else set()
    taken_back = restored | set(across.found.values())
    expires = domain.activation_expiry(now, lifetimes.activation_ttl)
    codes = await _give_codes(taken_back, expires, store=store) if taken_back else {}
    return Identified(
        accounts=accounts | created.accounts,
        created=created,
        restored=frozenset(restored),
        matched=frozenset(found | across.found),
        changed=frozenset(changed),
        attached=frozenset(across.found.values()),
        duplicates=duplicates,
        new_codes=codes,
        codes_expire=expires,
    )


async def _give_codes(
    taken_back: set[UUID], expires: datetime, *, store: FeedStore
) -> dict[UUID, str]:
    """A new code for each leaver taken back who never activated his account (his code
    was voided when he left): without it no school could hand him a working sheet."""
    ordered = sorted(taken_back)
    codes = dict(zip(ordered, domain.new_activation_codes(len(ordered)), strict=True))
    given = await store.give_codes(codes, expires)
    return {a: code for a, code in codes.items() if a in given}


class Across(NamedTuple):
    found: dict[UUID, UUID]  # feed id -> the account of another school he is
    duplicates: dict[UUID, UUID]  # feed id -> an account of another school with his names


NOBODY_ACROSS = Across({}, {})


async def _find_across(
    school_id: UUID,
    unmatched: list[FeedPerson],
    *,
    store: FeedStore,
    lifetimes: AccountLifetimes,
    now: datetime,
) -> Across:
    """Newcomers the school's own matching did not place, found in another school (a
    pupil by his INE, a parent by his names and email; one statement for each, none when
    no such newcomer): attached to this school, or re-homed here when deactivated (their
    home let them go)."""
    pupils = [(p.feed_id, p.ine) for p in unmatched if p.profile == "student" and p.ine]
    parents = [_parent(p) for p in unmatched if p.profile == "relative"]
    if not (pupils or parents):
        return NOBODY_ACROSS
    # Two chunks of two schools about to create the same person: the second waits here
    # for the first to commit, then finds his account (§4).
    keys = [feed_rules.parent_key(first, last, email) for _, first, last, email in parents]
    locks = feed_rules.identity_locks((ine for _, ine in pupils), (k for k in keys if k))
    if locks:
        await store.lock_identities(locks, now)
    found: dict[UUID, UUID] = {}
    duplicates: dict[UUID, UUID] = {}
    left_home: set[UUID] = set()
    if pupils:
        ines = sorted({ine for _, ine in pupils})
        candidates = {c.account_id: c for c in await store.ine_candidates(school_id, ines)}
        found, ambiguous = feed_rules.choose_by_ine(
            pupils, candidates.values(), now=now, grace=lifetimes.grace
        )
        if ambiguous:
            log.warning("feed_ine_ambiguous", school_id=str(school_id), ines=len(ambiguous))
        left_home |= {a for a, c in candidates.items() if c.deactivated_at is not None}
    if parents:
        wanted = sorted(
            {(first, last, feed_rules.email_key(email)) for _, first, last, email in parents},
            key=str,
        )
        since = feed_rules.purge_cutoff(now, lifetimes.grace)
        relatives = {
            c.account_id: c for c in await store.parent_candidates(school_id, wanted, since)
        }
        matched, duplicates = feed_rules.choose_parents(
            parents, relatives.values(), now=now, grace=lifetimes.grace
        )
        found |= matched
        left_home |= {a for a, c in relatives.items() if c.deactivated_at is not None}
    await _join(school_id, found, left_home, store=store)
    return Across(found, duplicates)


def _parent(person: FeedPerson) -> tuple[UUID, str, str, str | None]:
    first, last = domain.fold_name_part(person.first_name), domain.fold_name_part(person.last_name)
    return person.feed_id, first, last, person.email


async def _join(
    school_id: UUID, found: dict[UUID, UUID], left_home: set[UUID], *, store: FeedStore
) -> None:
    """Accounts of other schools ``found`` (feed id -> account) join this one: attached,
    or re-homed here when ``left_home`` (deactivated: their home let them go)."""
    rehomed = {f: a for f, a in found.items() if a in left_home}
    held = {f: a for f, a in found.items() if f not in rehomed}
    if held:
        await store.attach_accounts(school_id, held)
    if rehomed:
        await store.rehome_accounts(school_id, rehomed)


def _possible_duplicates(duplicates: dict[UUID, UUID], created: Created) -> dict[UUID, UUID]:
    """A possible duplicate per new account whose names alone are those of an account of
    another school (§1): new account -> that account. Recorded for the run's report
    (feed_run_findings) and counted in ``feed_chunk_applied``, not logged one by one: a
    common name makes one in most schools of an académie."""
    return {created.accounts[f]: other for f, other in duplicates.items() if f in created.accounts}


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
        ine=person.ine if person.profile == "student" else None,
    )


async def _create(
    school_id: UUID,
    fresh: list[FeedPerson],
    *,
    store: FeedStore,
    lifetimes: AccountLifetimes,
    now: datetime,
    reserve_ranks: ReserveRanks | None,
) -> Created:
    """New accounts, logins and codes for ``fresh``."""
    expires = domain.activation_expiry(now, lifetimes.activation_ttl)
    made: dict[UUID, NewAccount] = {}
    bases: list[str] = []
    skipped: list[UUID] = []
    codes = domain.new_activation_codes(len(fresh))
    for person, code in zip(fresh, codes, strict=True):
        try:
            base = domain.login_base(person.first_name, person.last_name)
        except ValueError:  # directory_sync reports such a name; the others go on
            skipped.append(person.feed_id)
            continue
        bases.append(base)
        made[person.feed_id] = domain.new_account(
            school_id,
            person.profile,
            person.first_name,
            person.last_name,
            email=person.email,
            birth_date=person.birth_date,
            expires_at=expires,
            code=code,
            feed_id=person.feed_id,
            ine=person.ine,
        )
    if not made:
        return Created({}, {}, skipped)
    # One an undone run brings back is recreated under the login he had.
    again = await store.take_deleted_logins(school_id, list(made))
    logins = await store.add_accounts_as([made[f] for f in again], list(again.values()))
    rest = [(a, b) for a, b in zip(made.values(), bases, strict=True) if a.account_id not in logins]
    logins |= await store.add_accounts([a for a, _ in rest], [b for _, b in rest], reserve_ranks)
    return Created(
        accounts={feed_id: account.account_id for feed_id, account in made.items()},
        rows={a.account_id: (a, logins[a.account_id]) for a in made.values()},
        skipped=skipped,
    )


# Classes and families ------------------------------------------------------------------


async def _place(
    school_id: UUID,
    people: dict[UUID, FeedPerson],
    identified: Identified,
    class_ids: dict[str, UUID],
    *,
    store: FeedStore,
) -> Placed:
    """Pupils in their class, feed teachers in the class the file names, parents linked
    to their children. ``class_ids``: the class of each feed name."""
    accounts = identified.accounts
    placed = {f: p for f, p in people.items() if f in accounts}

    def of_profile(profile: str) -> dict[UUID, set[UUID]]:
        return {
            accounts[f]: {class_ids[n] for n in p.classes if n in class_ids}
            for f, p in placed.items()
            if p.profile == profile
        }

    pupils, teachers = of_profile("student"), of_profile("teacher")
    relatives = {f: p.children for f, p in placed.items() if p.profile == "relative"}
    fresh = identified.fresh
    # A pupil's classes in his other schools stay.
    moved = (
        await store.replace_account_classes(pupils, fresh, school_id=school_id) if pupils else set()
    )
    taught = await store.replace_feed_teaching(teachers, fresh) if teachers else set()
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
        or f in identified.matched
        or f in relinked
        or accounts[f] in identified.restored
    ]
    gained = await store.resolve_feed_links(school_id, touched) if touched else set()
    # A parent's classes follow his children: they change when his links do, when a
    # child moves, and when he comes back (a leaver loses his classes).
    relinked_or_back = {
        accounts[f] for f in relatives if f in relinked or accounts[f] in identified.restored
    }
    return Placed(
        changed=frozenset(taught | moved | dropped | gained),
        # The parents of pupils that moved follow them (``_derive_parent_classes``); a
        # pupil created here has no parent but those just linked to him (``gained``).
        movers=sorted(moved - fresh),
        parents=frozenset(relinked_or_back | dropped | gained),
    )


async def _derive_parent_classes(
    parents: Collection[UUID], movers: list[UUID], fresh: set[UUID], *, store: FeedStore
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
    event: Envelope[DirectorySynced],
    school: SchoolInfo,
    classes: "ClassChanges",
    leavers: Leavers,
    identified: Identified,
    changed: frozenset[UUID],
    whole: bool,
    *,
    store: FeedStore,
) -> None:
    """The chunk's events; the last chunk of a run adds the year's turning (a turnover
    run) and the run's report of what its chunks decided across schools."""
    chunk = event.data
    created = list(identified.created.accounts.values())
    attached = sorted(identified.attached)
    updated = sorted(changed - set(created) - identified.attached)
    views = await store.account_views(
        [*created, *updated, *attached], inserted=identified.created.rows
    )
    done = events.ChunkEvents(
        school=school,
        classes=classes.created,
        archived=classes.archived,
        detached=classes.detached,
        reattached=classes.reattached,
        created=created,
        updated=updated,
        restored=sorted(identified.restored),
        attached_accounts=attached,
        detached_accounts=leavers.detached,
        deactivated=leavers.deactivated,
        deleted=leavers.deleted,
        views=views,
        year=await store.year_classes(school.school_id) if chunk.turnover and whole else None,
        new_codes=identified.new_codes,
        codes_expire=identified.codes_expire,
    )
    made = events.chunk_applied(done)
    if whole:  # one outbox write for the chunk's events and the run's report
        made.append(
            events.run_applied(chunk, await store.run_findings(school.school_id, chunk.run_id))
        )
    await store.emit_all([follow(event, data, source=domain.SOURCE) for data in made])
