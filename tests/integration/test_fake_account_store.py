"""account_manager's in-memory stores (tests/fakes/account_manager.py) against its Postgres
stores: the same script of calls gives the same results, every method of
``ports.FeedStore`` (and so of ``AccountStore``) called at least once, and what the tables'
keys refuse, both refuse. What the unit tier proves on the fakes then holds on Postgres.

Results the SQL returns in no particular order (no ORDER BY) are sorted before they are
compared; those it sorts are compared as they come.
"""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, cast
from uuid import UUID

import asyncpg

from services.account_manager.domain import SOURCE, fold_name_part
from services.account_manager.feed_store import PostgresFeedStore
from services.account_manager.ports import (
    AccountStore,
    FeedStore,
    NewAccount,
    PersonUpdate,
    ReserveRanks,
)
from services.account_manager.store import reserve_login_ranks
from shared.contracts.accounts import ClassesCreated
from shared.envelope import new_event
from shared.store import EventStore
from shared.worker import Worker
from tests.fakes.account_manager import FakeFeedStore, FakeRankReserver
from tests.fakes.events import unit_of_work
from tests.support.orders import uai

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
ZOE_BORN, LOU_BORN, TOM_BORN = date(2018, 3, 14), date(2019, 6, 1), date(2019, 1, 9)


def uid(n: int) -> UUID:
    return UUID(int=n)


MANUAL, FED, NOWHERE, OTHER = uid(1), uid(2), uid(3), uid(4)
# The manual school's classes, then the fed school's.
C1, C2, C3, C4 = uid(11), uid(12), uid(13), uid(14)
CP, CM1, CE1_BY_HAND, CE1_FEED, CE2, CP_AGAIN = uid(21), uid(22), uid(23), uid(24), uid(25), uid(26)
# The manual school's accounts, then the fed school's.
ADMIN, TEACHER, ZOE, PARENT, SQUATTER, JEAN, JEAN_TOO = (uid(100 + n) for n in range(7))
TAKEN, FREE, PAUL, PAUL_TOO = (uid(110 + n) for n in range(4))
LOU, TOM, MUM, CURIE, BY_HAND, NEWBIE = (uid(200 + n) for n in range(6))
# Feed ids.
F_LOU, F_TOM, F_MUM, F_CURIE, F_GHOST, F_NEW, F_NEWBIE = (uid(1000 + n) for n in range(7))


def account(
    account_id: UUID,
    school_id: UUID,
    profile: str,
    first: str,
    last: str,
    *,
    born: date | None = None,
    feed_id: UUID | None = None,
) -> NewAccount:
    return NewAccount(
        account_id=account_id,
        school_id=school_id,
        profile=profile,
        first_name=first,
        last_name=last,
        email=f"{fold_name_part(first)}@example.org",
        birth_date=born,
        activation_code=f"code{account_id.int:04d}",
        activation_expires_at=T0 + timedelta(days=90),
        first_folded=fold_name_part(first),
        last_folded=fold_name_part(last),
        feed_id=feed_id,
    )


Attempt = Callable[[Callable[[], Awaitable[object]]], Awaitable[str | None]]


class Backend(NamedTuple):
    store: FeedStore
    reserve: ReserveRanks  # login ranks reserved apart, as bootstrap wires it
    attempt: Attempt  # runs a call that may be refused; the error's name, or None


# The script ------------------------------------------------------------------------------


async def schools_and_logins(store: AccountStore, reserve: ReserveRanks) -> list[Any]:
    seen: list[Any] = []
    seen.append(
        await store.add_school(MANUAL, uai=uai("074", 1), name="Lac", provisioning="manual")
    )
    seen.append(
        await store.add_school(MANUAL, uai=uai("074", 1), name="Lac", provisioning="manual")
    )
    await store.add_school(FED, uai=uai("074", 2), name="Prés", provisioning="automatic")
    seen += [await store.school(MANUAL), await store.school(NOWHERE)]
    admin = account(ADMIN, MANUAL, "administrator", "Claire", "Martin")
    seen.append(await store.add_account(admin, login_base="claire.martin"))
    squatter = account(SQUATTER, MANUAL, "teacher", "Jean", "Dupont2")
    seen.append(await store.add_accounts_as([squatter], ["jean.dupont2"]))
    # Two Jean Dupont: ranks 1 and 2, but jean.dupont2 is taken, so the second takes rank 3.
    jeans = [
        account(JEAN, MANUAL, "student", "Jean", "Dupont", born=ZOE_BORN),
        account(JEAN_TOO, MANUAL, "student", "Jean", "Dupont", born=TOM_BORN),
    ]
    seen.append(await store.add_accounts(jeans, ["jean.dupont", "jean.dupont"]))
    again = [
        account(TAKEN, MANUAL, "personnel", "Jean", "Dupont"),
        account(FREE, MANUAL, "personnel", "Libre", "Login"),
    ]
    seen.append(await store.add_accounts_as(again, ["jean.dupont", "free.login"]))
    seen.append(await store.add_accounts_as([], []))
    others = [
        account(TEACHER, MANUAL, "teacher", "Marie", "Curie"),
        account(ZOE, MANUAL, "student", "Zoé", "Lefèvre", born=ZOE_BORN),
        account(PARENT, MANUAL, "relative", "Anne", "Lefèvre"),
    ]
    seen.append(await store.add_accounts(others, ["marie.curie", "zoe.lefevre", "anne.lefevre"]))
    pauls = [
        account(PAUL, MANUAL, "teacher", "Paul", "Valéry"),
        account(PAUL_TOO, MANUAL, "teacher", "Paul", "Valery"),
    ]
    seen.append(await store.add_accounts(pauls, ["paul.valery", "paul.valery"], reserve))
    seen.append(await store.add_accounts([], []))
    return seen


async def classes_and_commands(store: FeedStore) -> list[Any]:
    seen: list[Any] = []
    await store.add_classes(MANUAL, [(C1, "Classe 1"), (C2, "Classe 2"), (C3, "Classe 3")])
    seen += [await store.school_classes(MANUAL), await store.school_classes(NOWHERE)]
    seen += [await store.class_row(C1), await store.class_row(NOWHERE)]
    await store.set_class_teachers(C1, [TEACHER])
    await store.set_class_teachers(C2, [TEACHER, PAUL])
    await store.set_class_teachers(C2, [PAUL])
    seen += [await store.class_teachers(c) for c in (C1, C2, C3)]
    seen += [await store.requester(a) for a in (TEACHER, ADMIN, NOWHERE)]
    await store.link_class_pairs([(ZOE, C1), (JEAN, C2)])
    await store.link_class_pairs([])
    await store.link_children_pairs([(PARENT, ZOE), (PARENT, JEAN)])
    await store.link_children_pairs([])
    await store.link_to_class([PARENT], C1)
    await store.link_to_class([PARENT, ZOE], C1)  # there already: nothing changes
    seen.append(await store.account_rows([TEACHER, ZOE, PARENT, NOWHERE]))
    seen.append(await store.account_rows([ZOE, ZOE], lock=True))
    seen += [await store.classes_of([ZOE, PARENT, NOWHERE]), await store.classes_of([])]
    keys = [
        ("student", "zoe", "lefevre", ZOE_BORN),
        ("student", "jean", "dupont", LOU_BORN),  # another birth date: another pupil
        ("student", "jean", "dupont", None),  # a pupil without one matches no one
        ("teacher", "marie", "curie", None),
        ("relative", "anne", "lefevre", date(1990, 1, 1)),  # a parent's date is not looked at
    ]
    await store.lock_people(MANUAL, sorted(keys, key=str))
    seen += [await store.existing_people(MANUAL, keys), await store.existing_people(FED, keys)]
    seen.append(sorted(await store.class_names(MANUAL, except_class=C1)))
    await store.rename_class(C2, "CE1 des Lutins")
    await store.rename_class(NOWHERE, "Rien")
    seen.append(await store.class_row(C2))
    await store.renew_code(ZOE, "renewed1", T0 + timedelta(days=10))
    seen.append(await store.account_views([ZOE]))
    seen.append(await store.activate(ZOE, T0 + timedelta(days=1)))
    seen.append(await store.activate(ZOE, T0 + timedelta(days=2)))
    seen.append(await store.activate(NOWHERE, T0))
    seen += [await store.account_rows([ZOE]), await store.account_views([ZOE])]
    seen += [await store.parents_of([ZOE, JEAN]), await store.parents_of([TEACHER])]
    return seen


async def the_year(store: FeedStore) -> list[Any]:
    seen: list[Any] = [await store.year_classes(MANUAL), await store.year_classes(NOWHERE)]
    seen += [await store.year_closed_at(MANUAL), await store.year_closed_at(NOWHERE)]
    await store.mark_year_closed(MANUAL, T0 + timedelta(days=3))
    await store.mark_year_closed(NOWHERE, T0)
    seen.append(await store.year_closed_at(MANUAL))
    archived, detached = await store.archive_classes([C2, C1, NOWHERE], T0 + timedelta(days=3))
    seen.append((sorted(archived, key=lambda a: a.class_id), detached))
    seen.append(await store.archive_classes([C1], T0 + timedelta(days=4)))  # archived already
    seen += [await store.school_classes(MANUAL), await store.class_row(C1)]
    seen += [await store.requester(TEACHER), await store.account_rows([ZOE, PARENT])]
    seen.append(await store.account_views([ZOE, PARENT, TEACHER, NOWHERE]))
    await store.add_classes(MANUAL, [(C4, "Classe 1")])  # an archived class's name is free
    seen.append(await store.year_classes(MANUAL))
    seen.append(await store.classes_of([ZOE]))  # archived classes too
    return seen


async def feed_classes(store: FeedStore) -> list[Any]:
    seen: list[Any] = []
    await store.lock_school_feed(FED)
    seen += [await store.lock_fed_school(FED), await store.lock_fed_school(NOWHERE)]
    seen += [await store.run_progress(FED), await store.has_feed_classes(FED)]
    seen += [await store.count_chunk(FED, 1, 2), await store.count_chunk(FED, 1, 2)]
    seen += [await store.count_chunk(FED, 2, 1), await store.run_progress(FED)]
    await store.add_classes(FED, [(CE1_BY_HAND, "CE1")])  # made by hand: the feed takes it over
    classes = [
        (CP, "CP", "CP"),
        (CM1, "CM1", "CM1"),
        (CE1_FEED, "CE1", "CE1"),
        (CP_AGAIN, "CP", None),  # a name twice: the first is made
    ]
    levels = {"CP": "CP", "CM1": "CM1", "CE1": "CE1"}
    seen.append(await store.upsert_feed_classes(FED, classes, levels))
    seen.append(await store.upsert_feed_classes(FED, [(CE2, "CE2", None)], {"CE2": "CE2"}))
    seen.append(await store.upsert_feed_classes(FED, [], {}))
    seen.append(await store.upsert_feed_classes(FED, [], {"CP": "CP-CE1", "Nope": "X"}))
    seen += [await store.feed_classes(FED), await store.has_feed_classes(FED)]
    seen.append(await store.year_classes(FED))
    return seen


async def feed_people(store: FeedStore) -> list[Any]:
    fed = [
        account(LOU, FED, "student", "Lou", "Roux", born=LOU_BORN, feed_id=F_LOU),
        account(TOM, FED, "student", "Tom", "Roux", born=TOM_BORN, feed_id=F_TOM),
        account(MUM, FED, "relative", "Anne", "Roux", feed_id=F_MUM),
        account(CURIE, FED, "teacher", "Marie", "Curie", feed_id=F_CURIE),
        account(BY_HAND, FED, "teacher", "Paul", "Durand"),
    ]
    bases = ["lou.roux", "tom.roux", "anne.roux", "marie.curie", "paul.durand"]
    seen: list[Any] = [await store.add_accounts(fed, bases)]
    seen.append(await store.mapped_accounts(FED, [F_TOM, F_LOU, F_MUM, F_CURIE, F_NEW]))
    seen.append(await store.replace_account_classes({LOU: [CP], TOM: [CP]}, fresh=[LOU, TOM]))
    seen.append(await store.replace_account_classes({LOU: [CM1], TOM: [CP]}))
    seen.append(await store.replace_account_classes({LOU: {CM1}}))
    seen.append(await store.replace_feed_teaching({CURIE: [CP]}, fresh=[CURIE]))
    await store.set_class_teachers(CM1, [CURIE])  # by hand
    seen.append(await store.replace_feed_teaching({CURIE: [CM1]}))  # by hand, it stays so
    seen += [await store.class_teachers(CP), await store.class_teachers(CM1)]
    seen.append(await store.replace_feed_teaching({CURIE: []}))
    seen.append(await store.class_teachers(CM1))
    await store.replace_feed_links(FED, {F_MUM: [F_LOU, F_TOM, F_GHOST]}, fresh=[F_MUM])
    seen.append(await store.feed_links_of(FED, [F_MUM, F_NEW]))
    seen.append(await store.resolve_feed_links(FED, [F_LOU]))
    seen.append(await store.resolve_feed_links(FED, [F_MUM]))
    seen.append(await store.resolve_feed_links(FED, [F_MUM]))
    await store.replace_feed_links(FED, {F_MUM: [F_LOU]})
    seen.append(await store.feed_links_of(FED, [F_MUM]))
    seen.append(await store.drop_stale_children(FED, [MUM]))
    seen.append(await store.drop_stale_children(FED, [MUM, BY_HAND]))
    seen.append(await store.parents_of([LOU, TOM]))
    await store.link_class_pairs([(MUM, CE1_BY_HAND)])
    active, links, attended = await store.family_classes([MUM, BY_HAND, NOWHERE], [LOU])
    seen.append((active, sorted(links), {c: sorted(ids) for c, ids in attended.items()}))
    seen.append(await store.family_classes([], []))
    return seen


async def feed_identities(store: FeedStore) -> list[Any]:
    updates = [
        PersonUpdate(LOU, "Lou", "Roux", "lou.roux@example.org", LOU_BORN, "lou", "roux"),
        PersonUpdate(TOM, "Tom", "Roux", "tom@example.org", TOM_BORN, "tom", "roux"),  # as is
        PersonUpdate(NOWHERE, "X", "Y", None, None, "x", "y"),
    ]
    seen: list[Any] = [await store.update_people(updates)]
    keys = [
        ("teacher", "paul", "durand", None),  # by hand: a candidate
        ("relative", "anne", "roux", None),  # fed and active: not one
        ("student", "tom", "roux", None),  # a pupil without a date matches no one
        ("student", "tom", "roux", TOM_BORN),
    ]
    seen.append(sorted(await store.match_candidates(FED, keys), key=lambda c: c.account_id))
    await store.deactivate_accounts([TOM], T0 + timedelta(days=4))
    seen.append(sorted(await store.match_candidates(FED, keys), key=lambda c: c.account_id))
    seen.append(await store.update_people([updates[1]]))  # a leaver back, his data unchanged
    await store.remap_feed_ids(FED, {F_NEW: BY_HAND, F_GHOST: NOWHERE})
    seen.append(await store.mapped_accounts(FED, [F_NEW, F_GHOST]))
    newbie = account(NEWBIE, FED, "student", "Léa", "Roux", born=LOU_BORN, feed_id=F_NEWBIE)
    seen.append(await store.add_accounts_as([newbie], ["lea.roux"]))
    await store.link_class_pairs([(NEWBIE, CP)])
    await store.link_children_pairs([(MUM, NEWBIE)])
    inserted = {NEWBIE: (newbie, "lea.roux")}
    seen.append(await store.account_views([LOU, MUM, CURIE, NEWBIE], inserted=inserted))
    return seen


async def leavers_and_purge(store: FeedStore) -> list[Any]:
    seen: list[Any] = []
    at = T0 + timedelta(days=5)
    await store.set_class_teachers(CP, [CURIE, BY_HAND])
    await store.replace_feed_teaching({CURIE: [CP]})  # by hand, it stays so
    seen.append(await store.archive_classes([CP], at))
    await store.deactivate_accounts([BY_HAND], at)
    seen.append(await store.unarchive_classes([CP, CM1]))  # back without the leaver
    seen.append(await store.unarchive_classes([CP]))
    seen += [await store.class_teachers(CP), await store.feed_classes(FED)]
    await store.remember_logins([TOM, ADMIN, NOWHERE], T0 + timedelta(days=6))
    await store.delete_accounts([TOM])
    seen.append(await store.take_deleted_logins(FED, [F_TOM, F_LOU]))
    seen.append(await store.take_deleted_logins(FED, [F_TOM]))
    await store.remember_logins([LOU], T0 + timedelta(days=6))
    seen.append(await store.forget_deleted_logins(T0 + timedelta(days=5)))
    seen.append(await store.forget_deleted_logins(T0 + timedelta(days=6)))
    await store.deactivate_accounts([LOU], T0 + timedelta(days=7))
    seen += [await store.account_rows([LOU, BY_HAND]), await store.account_views([MUM])]
    seen += [await store.parents_of([LOU], active=True), await store.parents_of([LOU])]
    await store.deactivate_accounts([MUM], T0 + timedelta(days=7))
    seen += [await store.parents_of([LOU], active=True), await store.family_classes([MUM])]
    await store.forget_feed_links(FED, [F_MUM])
    seen.append(await store.feed_links_of(FED, [F_MUM]))
    seen.append(await store.schools_with_expired(T0 + timedelta(days=6)))
    seen.append(await store.claim_expired(FED, T0 + timedelta(days=7), 2))
    seen.append(await store.claim_expired(FED, T0 + timedelta(days=7), 10))
    seen.append(await store.delete_archived_classes(T0 + timedelta(days=3)))
    seen.append(await store.delete_archived_classes(T0 + timedelta(days=3)))
    seen += [await store.school_classes(MANUAL), await store.classes_of([ZOE, PARENT])]
    await store.delete_accounts([LOU, BY_HAND, NOWHERE])
    seen += [await store.parents_of([LOU]), await store.claim_expired(FED, T0, 10)]
    seen.append(await store.mapped_accounts(FED, [F_LOU, F_MUM, F_NEW]))
    return seen


KID, GONE, PA = uid(300), uid(301), uid(302)
F_KID, F_GONE, F_KID_B, F_GONE_B, F_PA, F_PA_B = (uid(1100 + n) for n in range(6))
ADA_BY_HAND = uid(303)
C_OTHER = uid(27)


async def across_schools(store: FeedStore) -> list[Any]:
    """One person in two schools: by INE or names, attached, re-homed, detached."""
    await store.add_school(OTHER, uai=uai("074", 4), name="Bois", provisioning="automatic")
    await store.add_classes(OTHER, [(C_OTHER, "CP")])
    kid = replace(account(KID, FED, "student", "Kim", "Roux", feed_id=F_KID), ine="INE1")
    gone = replace(account(GONE, FED, "student", "Ali", "Roux", feed_id=F_GONE), ine="INE2")
    mum = account(PA, OTHER, "relative", "Ada", "Roux", feed_id=F_PA)
    seen: list[Any] = [await store.add_accounts_as([kid, gone, mum], ["k.r", "a.r", "m.r"])]
    await store.deactivate_accounts([GONE], T0 + timedelta(days=8))
    seen.append(await store.ine_candidates(OTHER, ["INE1", "INE2", "INE9"]))
    seen.append(await store.ine_candidates(FED, ["INE1"]))  # his home's: none
    await store.attach_accounts(OTHER, {F_KID_B: KID})
    seen.append(await store.ine_candidates(OTHER, ["INE1"]))  # attached there: none
    await store.rehome_accounts(OTHER, {F_GONE_B: GONE})
    seen.append(await store.mapped_accounts(OTHER, [F_KID_B, F_GONE_B, F_KID]))
    seen.append(await store.mapped_accounts(FED, [F_KID, F_GONE]))
    update = PersonUpdate(KID, "Kim", "Roux", None, None, "kim", "roux")
    seen.append(await store.update_people([update]))  # the email: shown; no INE: kept
    seen.append(await store.update_people([replace(update, ine="INE3")]))  # written, not shown
    seen.append(await store.ine_candidates(NOWHERE, ["INE1", "INE3"]))
    await store.link_class_pairs([(KID, CM1), (KID, C_OTHER)])
    seen.append(await store.account_rows([KID, GONE]))  # his schools, his classes' schools
    seen.append(await store.replace_account_classes({KID: [C_OTHER]}, school_id=OTHER))
    seen.append(await store.replace_account_classes({KID: []}, school_id=OTHER))
    seen.append(await store.classes_of([KID]))
    await store.replace_feed_links(OTHER, {F_PA: [F_KID_B]}, fresh=[F_PA])
    seen.append(await store.resolve_feed_links(OTHER, [F_KID_B]))
    seen.append(await store.drop_stale_children(OTHER, [PA]))
    # A parent by his names: in other schools only, made by the feed or by hand.
    by_hand = account(ADA_BY_HAND, MANUAL, "relative", "Ada", "Roux")
    await store.add_accounts_as([by_hand], ["a.r2"])
    await store.lock_identities(["ine:INE1", "parent:ada\x1froux\x1fada@example.org"], T0)
    await store.lock_identities(["ine:INE1", "ine:INE1"], T0 + timedelta(days=2))
    seen.append(await store.forget_identity_claims(T0 + timedelta(days=1)))  # the parent's
    ada = ("ada", "roux", "ada@example.org")
    seen.append(await store.parent_candidates(FED, [ada, ("zed", "roux", None)], T0))
    seen.append(await store.parent_candidates(OTHER, [ada], T0))  # his home's: by hand only
    seen.append(await store.parent_candidates(FED, [("ada", "roux", None)], T0))  # names only
    seen.append(await store.parent_candidates(FED, [ada], T0 + timedelta(days=400)))  # none
    await store.attach_accounts(FED, {F_PA_B: PA})
    seen.append(await store.parent_candidates(FED, [ada], T0))  # attached: by hand
    # His link given by OTHER stays when FED's export gives him none.
    await store.replace_feed_links(FED, {F_PA_B: []})
    seen.append(await store.drop_stale_children(FED, [PA]))
    seen.append(await store.family_classes([PA]))
    await store.link_class_pairs([(KID, C_OTHER)])
    await store.detach_accounts(OTHER, [KID])  # attached there: the row and C_OTHER go
    seen += [await store.mapped_accounts(OTHER, [F_KID_B]), await store.classes_of([KID])]
    await store.attach_accounts(OTHER, {F_KID_B: KID})
    await store.link_class_pairs([(KID, C_OTHER)])
    await store.detach_accounts(FED, [KID, NOWHERE])  # his home: he moves to OTHER
    seen += [await store.mapped_accounts(OTHER, [F_KID_B]), await store.classes_of([KID])]
    # A leaver taken back who never activated: active again with no code, then given one.
    back = PersonUpdate(GONE, "Ali", "Roux", None, None, "ali", "roux")
    seen.append(await store.update_people([back]))
    codes = {GONE: "NEWCODE1", KID: "NEWCODE2", NOWHERE: "NEWCODE3"}
    seen.append(await store.give_codes(codes, T0 + timedelta(days=9)))
    seen.append(await store.account_views([KID, GONE]))
    # A run's findings, summed over its chunks; a duplicate since deleted is not reported.
    run, other_run = UUID(int=901), UUID(int=902)
    await store.record_run_findings(OTHER, run, [KID], {})
    await store.record_run_findings(OTHER, run, [GONE, KID], {PA: ADA_BY_HAND, NOWHERE: PA})
    await store.record_run_findings(FED, other_run, [], {KID: PA})
    seen += [await store.run_findings(OTHER, run), await store.run_findings(FED, other_run)]
    seen.append(await store.run_findings(FED, run))  # another school's run: nothing
    seen.append(await store.run_findings(OTHER, UUID(int=903)))
    return seen


async def inbox_and_outbox(store: EventStore) -> list[Any]:
    events = [
        new_event(
            ClassesCreated(school_id=MANUAL, classes=[]),
            source=SOURCE,
            correlationid="c",
            event_id=f"e-{n}",
        )
        for n in range(3)
    ]
    seen: list[Any] = [await store.claim("m-1", "x"), await store.claim("m-1", "x")]
    await store.emit(events[0])
    await store.emit_all(events[1:])
    await store.emit_all([])
    seen.append([event.id for event in store.emitted])
    return seen


async def account_script(backend: Backend) -> list[Any]:
    """Every method of ``ports.FeedStore``, and what each returns."""
    store = backend.store
    return [
        *await schools_and_logins(store, backend.reserve),
        *await classes_and_commands(store),
        *await the_year(store),
        *await feed_classes(store),
        *await feed_people(store),
        *await feed_identities(store),
        *await leavers_and_purge(store),
        *await across_schools(store),
        *await inbox_and_outbox(store),
    ]


# What the keys refuse -----------------------------------------------------------------------


async def refusals(backend: Backend) -> list[str | None]:
    """What the tables' keys (and references) refuse: the error's name, or None."""
    store, attempt = backend.store, backend.attempt
    await store.add_school(MANUAL, uai=uai("074", 1), name="Lac", provisioning="manual")
    await store.add_classes(MANUAL, [(C1, "Classe 1"), (C2, "Classe 2")])
    zoe = account(ZOE, MANUAL, "student", "Zoé", "Lefèvre", born=ZOE_BORN, feed_id=F_LOU)
    lou = account(LOU, MANUAL, "student", "Lou", "Roux", born=LOU_BORN, feed_id=F_TOM)
    await store.add_accounts_as([zoe, lou], ["zoe.lefevre", "lou.roux"])
    newcomer = account(NEWBIE, MANUAL, "student", "Léa", "Roux", born=LOU_BORN)
    elsewhere = account(NEWBIE, NOWHERE, "student", "Léa", "Roux")
    wizard = account(NEWBIE, MANUAL, "wizard", "Léa", "Roux")
    same_feed = account(NEWBIE, MANUAL, "student", "Léa", "Roux", feed_id=F_LOU)
    return [
        await attempt(
            lambda: store.add_school(OTHER, uai=uai("074", 1), name="B", provisioning="x")
        ),
        await attempt(
            lambda: store.add_school(MANUAL, uai=uai("074", 9), name="B", provisioning="x")
        ),
        await attempt(lambda: store.add_classes(MANUAL, [(C1, "Classe 9")])),
        await attempt(lambda: store.add_classes(MANUAL, [(C3, "Classe 1")])),
        await attempt(lambda: store.add_classes(MANUAL, [(C3, "Classe 3"), (C4, "Classe 3")])),
        await attempt(lambda: store.add_classes(NOWHERE, [(C3, "Classe 3")])),
        await attempt(lambda: store.rename_class(C2, "Classe 1")),
        await attempt(lambda: store.add_accounts_as([zoe], ["another.login"])),
        await attempt(lambda: store.add_accounts_as([same_feed], ["lea.roux"])),
        await attempt(lambda: store.add_accounts_as([elsewhere], ["lea.roux"])),
        await attempt(lambda: store.add_accounts_as([wizard], ["lea.roux"])),
        await attempt(lambda: store.add_accounts_as([newcomer], ["zoe.lefevre"])),  # skipped
        await attempt(lambda: store.remap_feed_ids(MANUAL, {F_LOU: LOU})),
        await attempt(lambda: store.link_class_pairs([(ZOE, NOWHERE)])),
        await attempt(lambda: store.link_children_pairs([(ZOE, NOWHERE)])),
        await attempt(lambda: store.set_class_teachers(C1, [NOWHERE])),
        await attempt(lambda: store.count_chunk(NOWHERE, 1, 1)),
        await attempt(lambda: store.upsert_feed_classes(MANUAL, [(C2, "Classe 7", None)], {})),
        await attempt(lambda: store.archive_classes([C1], T0)),
        await attempt(lambda: store.add_classes(MANUAL, [(C3, "Classe 1")])),  # free again
        await attempt(lambda: store.unarchive_classes([C1])),  # its name taken meanwhile
    ]


REFUSED = [
    "UniqueViolationError",  # a UAI another school has
    None,  # a known school id: answered False
    "UniqueViolationError",  # a class id taken
    "UniqueViolationError",  # a live class's name
    "UniqueViolationError",  # a name twice in one call
    "ForeignKeyViolationError",  # an unknown school
    "UniqueViolationError",  # renamed as a live class is named
    "UniqueViolationError",  # an account id taken
    "UniqueViolationError",  # a feed id of the school taken
    "ForeignKeyViolationError",  # an account of an unknown school
    "CheckViolationError",  # no such profile
    None,  # a login taken: not inserted, not refused
    "UniqueViolationError",  # a feed id of the school taken, by remapping
    "ForeignKeyViolationError",  # a pupil in an unknown class
    "ForeignKeyViolationError",  # an unknown child
    "ForeignKeyViolationError",  # an unknown teacher
    "ForeignKeyViolationError",  # a run of an unknown school
    "UniqueViolationError",  # a class id taken, through the feed
    None,  # archived
    None,  # its name free again
    "UniqueViolationError",  # back under a name a live class took meanwhile
]


# Running a script on each ---------------------------------------------------------------


def refused_as(run: Callable[[Callable[[], Awaitable[object]]], Awaitable[None]]) -> Attempt:
    async def attempt(act: Callable[[], Awaitable[object]]) -> str | None:
        try:
            await run(act)
        except asyncpg.PostgresError as exc:
            return type(exc).__name__
        return None

    return attempt


def on_fake(store: FakeFeedStore) -> Backend:
    async def undone_if_refused(act: Callable[[], Awaitable[object]]) -> None:
        async with unit_of_work(store)():
            await act()

    return Backend(store, FakeRankReserver(), refused_as(undone_if_refused))


async def on_postgres(worker: Worker, script: Callable[[Backend], Awaitable[Any]]) -> Any:
    assert worker.context is not None
    async with worker.context.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()

        async def in_savepoint(act: Callable[[], Awaitable[object]]) -> None:
            async with conn.transaction():  # a savepoint: a refusal undoes that call only
                await act()

        try:
            reserve = functools.partial(reserve_login_ranks, conn)
            return await script(Backend(PostgresFeedStore(conn), reserve, refused_as(in_savepoint)))
        finally:
            await transaction.rollback()  # each script starts from empty tables


class Recording:
    """A store that notes the name of each method called on it."""

    def __init__(self, store: FakeFeedStore) -> None:
        self._store = store
        self.called: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if callable(found):
            self.called.add(name)
        return found


def protocol_methods() -> set[str]:
    return {
        name
        for protocol in (EventStore, AccountStore, FeedStore)
        for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    }


async def test_the_fake_account_stores_answer_as_postgres_does(account_manager: Worker) -> None:
    store = FakeFeedStore()
    recording = Recording(store)
    fake = await account_script(on_fake(store)._replace(store=cast(FeedStore, recording)))
    assert recording.called >= protocol_methods()
    postgres = await on_postgres(account_manager, account_script)
    assert len(fake) == len(postgres)
    for n, (mine, theirs) in enumerate(zip(fake, postgres, strict=True)):
        assert mine == theirs, f"result {n} differs"
    assert fake[-1] == ["e-0", "e-1", "e-2"]  # the script reached its end on both


async def test_the_fake_account_stores_refuse_what_postgres_refuses(
    account_manager: Worker,
) -> None:
    fake = await refusals(on_fake(FakeFeedStore()))
    assert fake == await on_postgres(account_manager, refusals)
    assert fake == REFUSED
