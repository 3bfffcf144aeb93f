"""account_manager's handlers through its routing table and the consume wrapper, on the
in-memory store: every message it takes (the commands, school.initialised,
account.activated, the feed's directory.synced), on its success and refusal paths, no
Postgres. A refusal is one command.rejected with reasons field by field, and nothing
else changes."""

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.account_manager.domain import NewAccount
from services.account_manager.ports import AccountView
from services.account_manager.purge import purge_aged, purge_leavers
from shared import topics
from shared.contracts.directory import FeedClass
from shared.envelope import Envelope
from shared.errors import TransientError
from tests.fakes.account_manager import NOW, AccountManager, FakeFeedStore
from tests.support.commands import school_initialised
from tests.support.feed_events import FedSchool, chunk, moved, parent, pupil, teacher
from tests.support.orders import uai

PUPIL = {
    "profile": "student",
    "first_name": "Zoé",
    "last_name": "Lefèvre",
    "birth_date": "2018-03-14",
}
CLASSES = [FeedClass(name="CP", level="CP"), FeedClass(name="CM1", level="CM1")]
BORN = date(2019, 3, 14)


@dataclass
class School:
    school_id: UUID
    uai: str
    admin: UUID
    class_ids: list[UUID]

    @property
    def fed(self) -> FedSchool:
        return FedSchool(self.school_id, self.uai, str(self.admin))


@pytest.fixture
def worker() -> AccountManager:
    return AccountManager()


async def open_school(
    worker: AccountManager, *, provisioning: str = "manual", classes: int = 3, number: int = 1
) -> School:
    data = school_initialised(
        str(uuid.uuid4()),
        department="074",
        number=number,
        provisioning=provisioning,
        classes=classes,
        name="École élémentaire Jules-Ferry",
        academie="Grenoble",
    )
    out = await worker.send(topics.SCHOOL_INITIALISED, data)
    [admin] = one(out, topics.ACCOUNTS_CREATED).accounts
    made = [e.data for e in out if e.type == topics.CLASSES_CREATED]
    class_ids = [c.class_id for c in made[0].classes] if made else []
    return School(UUID(data["school_id"]), data["uai"], admin.account_id, class_ids)


def one(events: list[Envelope[Any]], topic: str) -> Any:
    [found] = [e.data for e in events if e.type == topic]
    return found


def reasons(events: list[Envelope[Any]]) -> dict[str, str]:
    [rejected] = events
    assert rejected.type == topics.COMMAND_REJECTED, rejected
    return {r.field: r.message for r in rejected.data.reasons}


async def ask(
    worker: AccountManager, topic: str, requested_by: UUID | str, **data: Any
) -> list[Envelope[Any]]:
    """A command with a request id of its own; the events answering it, all carrying it."""
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    out = await worker.send(topic, {"request_id": request_id, "requested_by": requested_by, **data})
    assert out and all(e.correlationid == request_id for e in out)
    return out


async def create(
    worker: AccountManager, school: School, requested_by: UUID, *accounts: dict[str, Any]
) -> list[Envelope[Any]]:
    return await ask(
        worker,
        topics.ACCOUNTS_CREATE_REQUESTED,
        requested_by,
        school_id=school.school_id,
        accounts=list(accounts),
    )


async def add_teacher(
    worker: AccountManager, school: School, first: str, last: str, *class_ids: UUID
) -> UUID:
    wanted = {"profile": "teacher", "first_name": first, "last_name": last}
    out = await create(worker, school, school.admin, {**wanted, "class_ids": list(class_ids)})
    account_id: UUID = one(out, topics.ACCOUNTS_CREATED).accounts[0].account_id
    return account_id


def tables(store: FakeFeedStore) -> dict[str, Any]:
    """Every table but the inbox and the outbox, as they are now."""
    return {k: copy.deepcopy(v) for k, v in vars(store).items() if k not in ("inbox", "emitted")}


# school.initialised -----------------------------------------------------------------------


async def test_a_manual_school_opens_with_its_administrator_and_its_classes(
    worker: AccountManager,
):
    school = await open_school(worker, classes=3)
    assert worker.store.topics() == [topics.CLASSES_CREATED, topics.ACCOUNTS_CREATED]
    created = worker.data_of(topics.ACCOUNTS_CREATED)[0]
    assert (created.uai, created.provisioning) == (school.uai, "manual")
    [admin] = created.accounts
    assert (admin.profile, admin.login) == ("administrator", "claire.martin")
    assert len(admin.activation_code) == 8
    assert admin.activation_expires_at == NOW + timedelta(days=90)
    names = [c.name for c in worker.data_of(topics.CLASSES_CREATED)[0].classes]
    assert names == ["Classe 1", "Classe 2", "Classe 3"]
    assert worker.store.schools[school.school_id].provisioning == "manual"
    assert worker.store.accounts[admin.account_id].activation_code == admin.activation_code
    assert worker.ranks.last_ranks == {"claire.martin": 1}  # reserved apart, as in bootstrap


async def test_an_automatic_school_opens_without_classes_and_once(worker: AccountManager):
    school = await open_school(worker, provisioning="automatic")
    assert worker.store.topics() == [topics.ACCOUNTS_CREATED]
    assert school.class_ids == [] and worker.store.classes == {}
    data = school_initialised(
        str(school.school_id),
        department="074",
        number=1,
        provisioning="automatic",
        classes=0,
        name="École",
        academie=None,
    )
    assert await worker.send(topics.SCHOOL_INITIALISED, data) == []  # known already
    assert len(worker.store.accounts) == 1


async def test_a_second_school_s_administrator_of_the_same_name_takes_the_next_login(
    worker: AccountManager,
):
    await open_school(worker, number=1)
    await open_school(worker, number=2)
    logins = [a.login for c in worker.data_of(topics.ACCOUNTS_CREATED) for a in c.accounts]
    assert logins == ["claire.martin", "claire.martin2"]


async def test_an_administrator_without_a_login_is_dead_lettered_and_opens_nothing(
    worker: AccountManager,
):
    data = school_initialised(
        str(uuid.uuid4()),
        department="074",
        number=1,
        provisioning="manual",
        classes=2,
        name="École",
        academie=None,
    )
    data["administrator"]["first_name"] = "李"
    outcome = await worker.take(topics.SCHOOL_INITIALISED, data)
    assert outcome.kind == "dead" and "administrator's login" in str(outcome.reason)
    assert (worker.store.schools, worker.store.classes, worker.store.emitted) == ({}, {}, [])


# accounts.create.requested ----------------------------------------------------------------


async def test_the_administrator_creates_a_teacher_attached_to_a_class(worker: AccountManager):
    school = await open_school(worker)
    out = await create(
        worker,
        school,
        school.admin,
        {
            "profile": "teacher",
            "first_name": "Marie",
            "last_name": "Curie",
            "email": "marie.curie@example.org",
            "class_ids": [school.class_ids[0]],
        },
    )
    [marie] = one(out, topics.ACCOUNTS_CREATED).accounts
    assert (marie.login, marie.classes) == ("marie.curie", ["Classe 1"])
    assert worker.store.teaching == {(school.class_ids[0], marie.account_id): False}
    assert worker.store.accounts[marie.account_id].first_folded == "marie"


async def test_a_teacher_creates_pupils_and_their_parent(worker: AccountManager):
    school = await open_school(worker)
    marie = await add_teacher(worker, school, "Marie", "Curie", school.class_ids[0])
    first = await create(worker, school, marie, {**PUPIL, "class_ids": [school.class_ids[0]]})
    zoe = one(first, topics.ACCOUNTS_CREATED).accounts[0].account_id
    leo = {**PUPIL, "ref": "leo", "first_name": "Léo", "birth_date": "2016-05-02"}
    out = await create(
        worker,
        school,
        marie,
        {**leo, "class_ids": [school.class_ids[0]]},
        {
            "profile": "relative",
            "first_name": "Jean-Noël",
            "last_name": "N'Diaye",
            "children": ["leo", str(zoe)],
        },
    )
    leo_made, father = one(out, topics.ACCOUNTS_CREATED).accounts
    assert (leo_made.login, father.login) == ("leo.lefevre", "jeannoel.ndiaye")
    assert sorted(father.children) == sorted([leo_made.account_id, zoe])
    assert father.classes == ["Classe 1"]  # his children's
    store = worker.store
    assert {c for p, c in store.parent_children if p == father.account_id} == {
        leo_made.account_id,
        zoe,
    }
    assert (father.account_id, school.class_ids[0]) in store.account_classes


async def test_namesakes_of_a_request_take_ranks_pupils_first(worker: AccountManager):
    school = await open_school(worker)
    c1, c2, _ = school.class_ids
    twin = {**PUPIL, "first_name": "Léo", "different_person": True}
    out = await create(
        worker,
        school,
        school.admin,
        {"profile": "relative", "first_name": "Léo", "last_name": "Lefèvre", "children": ["a"]},
        {**twin, "ref": "a", "class_ids": [c1]},
        {**twin, "ref": "b", "class_ids": [c2]},
    )
    father, a, b = one(out, topics.ACCOUNTS_CREATED).accounts
    assert [a.login, b.login, father.login] == ["leo.lefevre", "leo.lefevre2", "leo.lefevre3"]
    assert father.class_ids == [c1] and father.children == [a.account_id]


async def test_a_teacher_is_refused_outside_his_classes_and_nothing_is_created(
    worker: AccountManager,
):
    school = await open_school(worker)
    marie = await add_teacher(worker, school, "Marie", "Curie", school.class_ids[0])
    before = tables(worker.store)
    out = await create(
        worker,
        school,
        marie,
        {**PUPIL, "class_ids": [school.class_ids[1]]},
        {"profile": "teacher", "first_name": "Paul", "last_name": "Valéry"},
    )
    assert reasons(out) == {
        "accounts.0.class_ids.0": "Classe 2 is not one of your classes",
        "accounts.1.profile": "a teacher creates pupils and parents; ask the administrator",
    }
    assert tables(worker.store) == before


async def test_a_requester_of_another_school_or_unknown_is_refused(worker: AccountManager):
    school = await open_school(worker, number=1)
    other = await open_school(worker, number=2)
    assert reasons(await create(worker, school, other.admin, PUPIL)) == {
        "requested_by": "this account belongs to another school"
    }
    assert reasons(await create(worker, school, uuid.uuid4(), PUPIL)) == {
        "requested_by": "unknown account"
    }


async def test_bad_accounts_are_refused_field_by_field(worker: AccountManager):
    school = await open_school(worker)
    before = tables(worker.store)
    out = await create(
        worker,
        school,
        school.admin,
        {"profile": "student", "first_name": "Zoé", "last_name": "Lefèvre"},
        {"profile": "relative", "first_name": "Jean", "last_name": "Dupont"},
        {"profile": "teacher", "first_name": "---", "last_name": "Dupont"},
        {**PUPIL, "first_name": "Ana", "class_ids": [str(uuid.uuid4())]},
        {"profile": "relative", "first_name": "Luc", "last_name": "Roy", "children": ["x"]},
    )
    assert set(reasons(out)) == {
        "accounts.0.birth_date",
        "accounts.1.children",
        "accounts.2.first_name",
        "accounts.3.class_ids.0",
        "accounts.4.children.0",
    }
    assert tables(worker.store) == before


async def test_a_malformed_command_is_rejected_with_its_request_id(worker: AccountManager):
    school = await open_school(worker)
    data = {"request_id": "req-bad", "requested_by": school.admin, "accounts": [{"profile": "x"}]}
    out = await worker.send(topics.ACCOUNTS_CREATE_REQUESTED, data)
    assert {"school_id", "accounts.0.profile", "accounts.0.first_name"} <= set(reasons(out))
    assert out[0].data.request_id == "req-bad" and out[0].correlationid == "req-bad"


COMMANDS = [
    topics.ACCOUNTS_CREATE_REQUESTED,
    topics.CLASS_RENAME_REQUESTED,
    topics.CLASS_TEACHERS_ASSIGN_REQUESTED,
    topics.ACTIVATION_CODE_RENEW_REQUESTED,
    topics.SCHOOL_YEAR_CLOSE_REQUESTED,
    topics.CLASS_PUPILS_PLACE_REQUESTED,
]


@pytest.mark.parametrize("topic", COMMANDS)
async def test_every_command_that_fails_its_contract_is_rejected_not_dead_lettered(
    worker: AccountManager, topic: str
):
    out = await worker.send(topic, {"request_id": "req-bad", "requested_by": "nobody"})
    assert "requested_by" in reasons(out)
    assert (out[0].data.command, out[0].data.request_id) == (topic, "req-bad")


@pytest.mark.parametrize(
    "topic", [topics.SCHOOL_INITIALISED, topics.ACCOUNT_ACTIVATED, topics.DIRECTORY_SYNCED]
)
async def test_every_event_that_fails_its_contract_is_dead_lettered(
    worker: AccountManager, topic: str
):
    outcome = await worker.take(topic, {"school_id": "not a uuid"})
    assert outcome.kind == "dead" and f"invalid {topic}" in str(outcome.reason)
    assert worker.store.inbox == {} and worker.store.emitted == []


async def test_the_same_person_twice_is_refused_unless_said_different(worker: AccountManager):
    school = await open_school(worker)
    await create(worker, school, school.admin, PUPIL)
    again = await create(worker, school, school.admin, {**PUPIL, "last_name": "LEFEVRE"})
    assert "already has an account" in reasons(again)["accounts.0"]
    twin = await create(worker, school, school.admin, {**PUPIL, "different_person": True})
    assert one(twin, topics.ACCOUNTS_CREATED).accounts[0].login == "zoe.lefevre2"
    other = await create(worker, school, school.admin, {**PUPIL, "birth_date": "2017-01-01"})
    assert one(other, topics.ACCOUNTS_CREATED).accounts[0].login == "zoe.lefevre3"


# class.rename.requested -------------------------------------------------------------------


async def test_a_teacher_renames_his_class_and_names_stay_unique(worker: AccountManager):
    school = await open_school(worker)
    c1, c2, _ = school.class_ids
    marie = await add_teacher(worker, school, "Marie", "Curie", c1)
    renamed = one(
        await ask(worker, topics.CLASS_RENAME_REQUESTED, marie, class_id=c1, name="CP  des Lutins"),
        topics.CLASS_RENAMED,
    )
    assert (renamed.class_id, renamed.name) == (c1, "CP des Lutins")
    assert worker.store.classes[c1].name == "CP des Lutins"
    before = tables(worker.store)
    not_hers = await ask(worker, topics.CLASS_RENAME_REQUESTED, marie, class_id=c2, name="CE1")
    assert reasons(not_hers) == {"requested_by": "Classe 2 is not one of your classes"}
    taken = await ask(
        worker, topics.CLASS_RENAME_REQUESTED, school.admin, class_id=c2, name="cp des lutins"
    )
    assert "already named" in reasons(taken)["name"]
    unknown = uuid.uuid4()
    missing = await ask(
        worker, topics.CLASS_RENAME_REQUESTED, school.admin, class_id=unknown, name="X"
    )
    assert reasons(missing) == {"class_id": f"unknown class {unknown}"}
    assert tables(worker.store) == before


async def test_a_deactivated_teacher_asks_for_nothing(worker: AccountManager):
    school = await open_school(worker)
    c1 = school.class_ids[0]
    marie = await add_teacher(worker, school, "Marie", "Curie", c1)
    await worker.store.deactivate_accounts([marie], worker.now)  # she left the school
    refused = await ask(worker, topics.CLASS_RENAME_REQUESTED, marie, class_id=c1, name="CP B")
    assert reasons(refused) == {"requested_by": "unknown account"}
    assert worker.store.classes[c1].name != "CP B"


# class.teachers.assign.requested ----------------------------------------------------------


async def test_the_administrator_attaches_detaches_and_sets_teachers(worker: AccountManager):
    school = await open_school(worker)
    klass = school.class_ids[0]
    marie = await add_teacher(worker, school, "Marie", "Curie", klass)
    paul = await add_teacher(worker, school, "Paul", "Valéry")

    async def assign(requested_by: UUID, **change: list[UUID]) -> list[Envelope[Any]]:
        return await ask(
            worker,
            topics.CLASS_TEACHERS_ASSIGN_REQUESTED,
            requested_by,
            class_id=klass,
            **change,
        )

    def teachers(out: list[Envelope[Any]]) -> list[UUID]:
        found: list[UUID] = one(out, topics.CLASS_TEACHERS_ASSIGNED).teachers
        return found

    assert teachers(await assign(school.admin, add=[paul])) == sorted([marie, paul], key=str)
    assert teachers(await assign(school.admin, remove=[marie])) == [paul]
    assert teachers(await assign(school.admin, set=[marie])) == [marie]
    assert set(worker.store.teaching) == {(klass, marie)}
    before = tables(worker.store)
    assert reasons(await assign(marie, add=[paul])) == {
        "requested_by": "only the school's administrator can do this"
    }
    assert "cannot teach" in reasons(await assign(school.admin, add=[school.admin]))["add.0"]
    assert set(reasons(await assign(school.admin, add=[paul], set=[paul]))) == {"(message)"}
    assert tables(worker.store) == before


# activation.code.renew.requested, account.activated ----------------------------------------


async def test_a_renewed_code_replaces_the_old_one_and_activation_spends_it(
    worker: AccountManager,
):
    school = await open_school(worker)
    c1, c2, _ = school.class_ids
    marie = await add_teacher(worker, school, "Marie", "Curie", c1)
    made = await create(worker, school, marie, {**PUPIL, "class_ids": [c1]})
    zoe = one(made, topics.ACCOUNTS_CREATED).accounts[0]
    worker.now = NOW + timedelta(days=3)
    out = await ask(
        worker, topics.ACTIVATION_CODE_RENEW_REQUESTED, marie, account_id=zoe.account_id
    )
    renewed = one(out, topics.ACTIVATION_CODE_RENEWED)
    assert renewed.activation_code != zoe.activation_code
    assert renewed.activation_expires_at == worker.now + timedelta(days=90)
    stored = worker.store.accounts[zoe.account_id]
    assert (stored.activation_code, stored.activation_expires_at) == (
        renewed.activation_code,
        renewed.activation_expires_at,
    )
    paul = await add_teacher(worker, school, "Paul", "Valéry", c2)
    not_his = await ask(
        worker, topics.ACTIVATION_CODE_RENEW_REQUESTED, paul, account_id=zoe.account_id
    )
    assert "requested_by" in reasons(not_his)

    activated = {"account_id": zoe.account_id, "activated_at": "2026-09-05T08:00:00Z"}
    assert await worker.send(topics.ACCOUNT_ACTIVATED, activated) == []
    assert stored.activation_code is None
    assert stored.activated_at is not None and stored.activated_at.day == 5
    assert (await worker.take(topics.ACCOUNT_ACTIVATED, activated)).kind == "applied"  # again
    spent = await ask(
        worker, topics.ACTIVATION_CODE_RENEW_REQUESTED, school.admin, account_id=zoe.account_id
    )
    assert "already activated" in reasons(spent)["account_id"]
    unknown = uuid.uuid4()
    missing = await ask(
        worker, topics.ACTIVATION_CODE_RENEW_REQUESTED, school.admin, account_id=unknown
    )
    assert reasons(missing) == {"account_id": f"unknown account {unknown}"}


async def test_an_activation_of_an_unknown_account_is_dead_lettered(worker: AccountManager):
    outcome = await worker.take(topics.ACCOUNT_ACTIVATED, {"account_id": str(uuid.uuid4())})
    assert outcome.kind == "dead" and "is unknown" in str(outcome.reason)
    assert worker.store.inbox == {} and worker.store.emitted == []


async def test_an_activation_without_a_date_takes_the_clock_s(worker: AccountManager):
    school = await open_school(worker)
    await worker.send(topics.ACCOUNT_ACTIVATED, {"account_id": school.admin})
    assert worker.store.accounts[school.admin].activated_at == NOW


async def test_a_command_delivered_twice_acts_once(worker: AccountManager):
    school = await open_school(worker)
    data = {
        "request_id": "r-twice",
        "requested_by": school.admin,
        "school_id": school.school_id,
        "accounts": [{"profile": "teacher", "first_name": "Marie", "last_name": "Curie"}],
    }
    first = await worker.take(topics.ACCOUNTS_CREATE_REQUESTED, data, event_id="e-twice")
    second = await worker.take(topics.ACCOUNTS_CREATE_REQUESTED, data, event_id="e-twice")
    assert (first.kind, second.kind) == ("applied", "duplicate")
    answers = [e for e in worker.store.emitted if e.correlationid == "r-twice"]
    assert [e.type for e in answers] == [topics.ACCOUNTS_CREATED]
    assert len(worker.store.accounts) == 2


# school.year.close.requested, class.pupils.place.requested -------------------------------


async def a_class_of_pupils(worker: AccountManager, school: School) -> dict[str, UUID]:
    """A teacher in Classe 1 with two pupils, one with a parent; account ids by first name."""
    curie = await add_teacher(worker, school, "Marie", "Curie", school.class_ids[0])
    out = await create(
        worker,
        school,
        curie,
        {**PUPIL, "ref": "zoe", "class_ids": [school.class_ids[0]]},
        {**PUPIL, "first_name": "Léo", "last_name": "Roy", "class_ids": [school.class_ids[0]]},
        {"profile": "relative", "first_name": "Anne", "last_name": "Lefèvre", "children": ["zoe"]},
    )
    ids = {a.first_name: a.account_id for a in one(out, topics.ACCOUNTS_CREATED).accounts}
    return {"Marie": curie, **ids}


async def test_the_administrator_closes_the_year_and_a_teacher_places_her_pupils(
    worker: AccountManager,
):
    school = await open_school(worker, classes=2)
    people = await a_class_of_pupils(worker, school)
    out = await ask(
        worker, topics.SCHOOL_YEAR_CLOSE_REQUESTED, school.admin, school_id=school.school_id
    )
    assert [e.type for e in out] == [
        topics.CLASSES_ARCHIVED,
        topics.CLASS_TEACHERS_ASSIGNED,
        topics.CLASSES_CREATED,
        topics.SCHOOL_YEAR_TURNED,
    ]
    archived = one(out, topics.CLASSES_ARCHIVED)
    assert sorted(c.class_id for c in archived.classes) == sorted(school.class_ids)
    detached = one(out, topics.CLASS_TEACHERS_ASSIGNED)
    assert (detached.class_id, detached.teachers) == (school.class_ids[0], [])
    year = one(out, topics.SCHOOL_YEAR_TURNED)
    new = {c.name: c.class_id for c in year.classes}
    assert sorted(new) == ["Classe 1", "Classe 2"] and year.classes_without_teacher == year.classes
    store = worker.store
    assert store.schools[school.school_id].year_closed_at == NOW
    assert set(store.archived_teaching) == {(school.class_ids[0], people["Marie"])}
    assert store.teaching == {}

    await ask(
        worker,
        topics.CLASS_TEACHERS_ASSIGN_REQUESTED,
        school.admin,
        class_id=new["Classe 2"],
        add=[people["Marie"]],
    )
    placed = await ask(
        worker,
        topics.CLASS_PUPILS_PLACE_REQUESTED,
        people["Marie"],
        class_id=new["Classe 2"],
        pupils=[people["Zoé"]],
    )
    updated = one(placed, topics.ACCOUNTS_UPDATED)
    by_name = {a.first_name: a for a in updated.accounts}
    assert sorted(by_name) == ["Anne", "Zoé"]  # her mother follows her
    assert by_name["Zoé"].classes == by_name["Anne"].classes == ["Classe 2"]
    assert updated.request_id == placed[0].correlationid
    assert {(people["Zoé"], new["Classe 2"]), (people["Anne"], new["Classe 2"])} <= (
        store.account_classes
    )


async def test_placing_pupils_is_refused_field_by_field(worker: AccountManager):
    school = await open_school(worker, classes=2)
    people = await a_class_of_pupils(worker, school)
    out = await ask(
        worker, topics.SCHOOL_YEAR_CLOSE_REQUESTED, school.admin, school_id=school.school_id
    )
    new = {c.name: c.class_id for c in one(out, topics.SCHOOL_YEAR_TURNED).classes}
    await ask(
        worker,
        topics.CLASS_TEACHERS_ASSIGN_REQUESTED,
        school.admin,
        class_id=new["Classe 2"],
        add=[people["Marie"]],
    )
    await ask(
        worker,
        topics.CLASS_PUPILS_PLACE_REQUESTED,
        school.admin,
        class_id=new["Classe 1"],
        pupils=[people["Léo"]],
    )
    before = tables(worker.store)

    async def place(requested_by: UUID, class_id: UUID, pupil: UUID) -> dict[str, str]:
        return reasons(
            await ask(
                worker,
                topics.CLASS_PUPILS_PLACE_REQUESTED,
                requested_by,
                class_id=class_id,
                pupils=[pupil],
            )
        )

    marie, leo = people["Marie"], people["Léo"]
    assert await place(marie, new["Classe 1"], leo) == {
        "requested_by": "Classe 1 is not one of your classes"
    }
    assert await place(marie, new["Classe 2"], leo) == {
        "pupils.0": "this pupil is already in another class"
    }
    assert await place(school.admin, new["Classe 1"], leo) == {
        "pupils.0": "this pupil is already in Classe 1"
    }
    anne = people["Anne"]
    assert await place(marie, new["Classe 2"], anne) == {"pupils.0": f"{anne} is not a pupil"}
    old = school.class_ids[0]
    assert await place(school.admin, old, people["Zoé"]) == {"class_id": f"unknown class {old}"}
    assert tables(worker.store) == before


async def test_closing_the_year_is_refused_to_a_teacher_a_fed_school_and_twice(
    worker: AccountManager,
):
    school = await open_school(worker, classes=2)
    people = await a_class_of_pupils(worker, school)
    other = await open_school(worker, number=2)
    fed = await open_school(worker, provisioning="automatic", number=3)
    before = tables(worker.store)

    async def close(requested_by: UUID, school_id: UUID, **more: Any) -> list[Envelope[Any]]:
        return await ask(
            worker, topics.SCHOOL_YEAR_CLOSE_REQUESTED, requested_by, school_id=school_id, **more
        )

    assert reasons(await close(people["Marie"], school.school_id)) == {
        "requested_by": "only the school's administrator can do this"
    }
    assert reasons(await close(other.admin, school.school_id)) == {
        "requested_by": "this account belongs to another school"
    }
    unknown = uuid.uuid4()
    assert reasons(await close(school.admin, unknown)) == {"school_id": f"unknown school {unknown}"}
    assert "come from ONDE" in reasons(await close(fed.admin, fed.school_id))["school_id"]
    assert tables(worker.store) == before

    turned = await close(school.admin, school.school_id, classes=4)
    assert len(one(turned, topics.SCHOOL_YEAR_TURNED).classes) == 4
    worker.now = NOW + timedelta(days=59)
    assert reasons(await close(school.admin, school.school_id)) == {
        "school_id": "the school year was already closed on 01/09/2026"
    }
    worker.now = NOW + timedelta(days=61)
    again = await close(school.admin, school.school_id)
    assert len(one(again, topics.SCHOOL_YEAR_TURNED).classes) == 4  # as many as it closed


# directory.synced -------------------------------------------------------------------------


def by_name(data: Any) -> dict[str, Any]:
    return {f"{a.first_name} {a.last_name}": a for a in data.accounts}


async def test_a_first_import_out_of_order_then_moves_leavers_and_a_return(
    worker: AccountManager,
):
    school = (await open_school(worker, provisioning="automatic")).fed
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    leo = pupil("Léo", "Lefèvre", date(2016, 5, 2), "CM1")
    tom = pupil("Tom", "Martin", date(2019, 1, 9), "CP")
    jean = pupil("Jean", "Dupont", date(2016, 7, 1), "CM1")
    jean_too = pupil("Jean", "Dupont", date(2019, 2, 2), "CP")
    anne = parent("Anne", "Lefèvre", zoe, leo, email="anne@example.org")
    marc = parent("Marc", "Martin", tom)
    curie = teacher("Marie", "Curie", "CP")
    run = uuid.uuid4()

    first = await worker.send_chunk(chunk(school, run, 1, 2, CLASSES, created=[anne, marc, curie]))
    levels = {c.name: c.level for c in one(first, topics.CLASSES_CREATED).classes}
    assert levels == {"CP": "CP", "CM1": "CM1"}
    early = by_name(one(first, topics.ACCOUNTS_CREATED))
    assert early["Anne Lefèvre"].children == [] and early["Marie Curie"].classes == ["CP"]
    second = await worker.send_chunk(
        chunk(school, run, 0, 2, CLASSES, created=[zoe, leo, tom, jean, jean_too])
    )
    assert topics.CLASSES_CREATED not in [e.type for e in second]
    kids = one(second, topics.ACCOUNTS_CREATED).accounts
    assert sorted(a.login for a in kids) == [
        "jean.dupont",
        "jean.dupont2",
        "leo.lefevre",
        "tom.martin",
        "zoe.lefevre",
    ]
    ids = {f"{a.first_name} {a.birth_date}": a.account_id for a in kids}
    parents = by_name(one(second, topics.ACCOUNTS_UPDATED))
    assert set(parents) == {"Anne Lefèvre", "Marc Martin"}
    assert sorted(parents["Anne Lefèvre"].classes) == ["CM1", "CP"]
    assert sorted(parents["Anne Lefèvre"].children) == sorted(
        [ids["Zoé 2019-03-14"], ids["Léo 2016-05-02"]]
    )
    assert len(worker.store.parent_children) == 3

    tom_id = ids["Tom 2019-01-09"]
    await worker.send(topics.ACCOUNT_ACTIVATED, {"account_id": tom_id})
    changes = await worker.send_chunk(
        chunk(
            school,
            uuid.uuid4(),
            0,
            1,
            CLASSES,
            moved=[moved(zoe, "CM1")],
            updated=[anne.model_copy(update={"email": "anne.lefevre@example.org"})],
            left=[tom.feed_id, jean_too.feed_id],
        )
    )
    updated = by_name(one(changes, topics.ACCOUNTS_UPDATED))
    assert set(updated) == {"Zoé Lefèvre", "Anne Lefèvre", "Marc Martin"}
    assert updated["Zoé Lefèvre"].classes == updated["Anne Lefèvre"].classes == ["CM1"]
    assert updated["Anne Lefèvre"].email == "anne.lefevre@example.org"
    assert (updated["Marc Martin"].classes, updated["Marc Martin"].children) == ([], [])
    [gone] = one(changes, topics.ACCOUNTS_DEACTIVATED).accounts
    [deleted] = one(changes, topics.ACCOUNTS_DELETED).accounts
    assert (gone.account_id, deleted.account_id) == (tom_id, ids["Jean 2019-02-02"])
    store = worker.store
    assert store.accounts[tom_id].deactivated_at == NOW
    assert store.accounts[tom_id].activation_code is None
    assert deleted.account_id not in store.accounts
    assert store.deleted_feed_logins == {
        (school.school_id, jean_too.feed_id): ("jean.dupont2", NOW)
    }

    tom_again = pupil("Tom", "Martin", date(2019, 1, 9), "CM1")
    back = await worker.send_chunk(
        chunk(
            school,
            uuid.uuid4(),
            0,
            1,
            CLASSES,
            created=[tom_again],
            updated=[parent("Marc", "Martin", tom_again, feed_id=marc.feed_id)],
        )
    )
    returned = one(back, topics.ACCOUNTS_UPDATED)
    assert returned.restored == [tom_id]
    restored = by_name(returned)
    assert (restored["Tom Martin"].account_id, restored["Tom Martin"].login) == (
        tom_id,
        "tom.martin",
    )
    assert restored["Marc Martin"].classes == ["CM1"]
    assert restored["Marc Martin"].children == [tom_id]
    assert topics.ACCOUNTS_CREATED not in [e.type for e in back]
    assert store.accounts[tom_id].deactivated_at is None
    assert store.accounts[tom_id].feed_id == tom_again.feed_id


async def test_the_same_chunk_delivered_twice_is_applied_once(worker: AccountManager):
    school = (await open_school(worker, provisioning="automatic")).fed
    data = chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[pupil("Zoé", "Roy", BORN, "CP")])
    first = await worker.take_chunk(data, event_id="e-1")
    before = tables(worker.store)
    again = await worker.take_chunk(data, event_id="e-1")
    assert (first.kind, again.kind) == ("applied", "duplicate")
    assert tables(worker.store) == before
    assert worker.store.topics().count(topics.ACCOUNTS_CREATED) == 2  # the admin's, Zoé's


async def test_runs_of_a_school_apply_in_order_and_an_older_one_is_dead_lettered(
    worker: AccountManager,
):
    school = (await open_school(worker, provisioning="automatic")).fed
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    later = chunk(school, uuid.uuid4(), 0, 1, CLASSES, version=2, moved=[moved(zoe, "CM1")])
    before = tables(worker.store)
    waiting = await worker.take_chunk(later)
    assert waiting.kind == "retry" and "waits for run 1" in str(waiting.reason)
    assert tables(worker.store) == before
    first = chunk(school, uuid.uuid4(), 0, 1, CLASSES, version=1, created=[zoe])
    await worker.send_chunk(first)
    done = await worker.send_chunk(later)
    assert by_name(one(done, topics.ACCOUNTS_UPDATED))["Zoé Lefèvre"].classes == ["CM1"]
    stale = await worker.take_chunk(first)  # again, under another event id
    assert stale.kind == "dead" and "older than its run 2" in str(stale.reason)
    assert worker.store.feed_runs[school.school_id].version == 2


async def test_a_chunk_for_a_school_not_known_yet_is_retried_one_for_a_manual_school_dead(
    worker: AccountManager,
):
    unknown = FedSchool(uuid.uuid4(), uai("074", 9), "")
    early = await worker.take_chunk(chunk(unknown, uuid.uuid4(), 0, 1, CLASSES))
    assert early.kind == "retry" and "not known yet" in str(early.reason)
    manual = (await open_school(worker)).fed
    refused = await worker.take_chunk(chunk(manual, uuid.uuid4(), 0, 1, CLASSES))
    assert refused.kind == "dead" and "manual school" in str(refused.reason)


async def test_an_account_made_by_hand_is_taken_over_by_the_feed(worker: AccountManager):
    school = await open_school(worker, provisioning="automatic")
    by_hand = await add_teacher(worker, school, "Marie", "Curie")
    curie = teacher("Marie", "Curie", "CP", email="marie.curie@example.org")
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    out = await worker.send_chunk(
        chunk(school.fed, uuid.uuid4(), 0, 1, CLASSES, created=[curie, zoe])
    )
    assert [a.first_name for a in one(out, topics.ACCOUNTS_CREATED).accounts] == ["Zoé"]
    [marie] = one(out, topics.ACCOUNTS_UPDATED).accounts
    assert (marie.account_id, marie.login, marie.classes) == (by_hand, "marie.curie", ["CP"])
    assert worker.store.accounts[by_hand].feed_id == curie.feed_id
    assert worker.store.accounts[by_hand].email == "marie.curie@example.org"


async def test_a_parent_given_other_children_is_relinked(worker: AccountManager):
    school = (await open_school(worker, provisioning="automatic")).fed
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    leo = pupil("Léo", "Lefèvre", date(2016, 5, 2), "CM1")
    marc = parent("Marc", "Lefèvre", leo)
    made = await worker.send_chunk(
        chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[zoe, leo, marc])
    )
    ids = {a.first_name: a.account_id for a in one(made, topics.ACCOUNTS_CREATED).accounts}
    assert one(made, topics.ACCOUNTS_CREATED).accounts[2].classes == ["CM1"]
    relinked = await worker.send_chunk(
        chunk(
            school,
            uuid.uuid4(),
            0,
            1,
            CLASSES,
            updated=[parent("Marc", "Lefèvre", zoe, feed_id=marc.feed_id)],
        )
    )
    [published] = one(relinked, topics.ACCOUNTS_UPDATED).accounts
    assert (published.children, published.classes) == ([ids["Zoé"]], ["CP"])
    store = worker.store
    assert {c for p, c in store.parent_children if p == ids["Marc"]} == {ids["Zoé"]}
    assert {link[1:] for link in store.feed_links} == {(marc.feed_id, zoe.feed_id)}


async def test_a_class_the_export_drops_is_archived_and_comes_back_with_its_teacher(
    worker: AccountManager,
):
    school = (await open_school(worker, provisioning="automatic")).fed
    lou = pupil("Lou", "Roux", date(2018, 6, 1), "CM1")
    curie = teacher("Marie", "Curie", "CM1")
    first = await worker.send_chunk(
        chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[lou, curie], version=1)
    )
    cm1 = next(c.class_id for c in one(first, topics.CLASSES_CREATED).classes if c.name == "CM1")
    curie_id = by_name(one(first, topics.ACCOUNTS_CREATED))["Marie Curie"].account_id
    september = [FeedClass(name="CP", level="CP"), FeedClass(name="CM2", level="CM2")]
    turned = await worker.send_chunk(
        chunk(
            school,
            uuid.uuid4(),
            0,
            1,
            september,
            moved=[moved(lou, "CM2"), moved(curie, "CP")],
            version=2,
            turnover=True,
        )
    )
    assert [(c.class_id, c.name) for c in one(turned, topics.CLASSES_ARCHIVED).classes] == [
        (cm1, "CM1")
    ]
    detached = one(turned, topics.CLASS_TEACHERS_ASSIGNED)
    assert (detached.class_id, detached.teachers) == (cm1, [])
    year = one(turned, topics.SCHOOL_YEAR_TURNED)
    assert [c.name for c in year.classes] == ["CM2", "CP"]
    assert [c.name for c in year.classes_without_teacher] == ["CM2"]
    assert worker.store.classes[cm1].archived_at == NOW

    back = await worker.send_chunk(
        chunk(school, uuid.uuid4(), 0, 1, [*september, CLASSES[1]], version=3)
    )
    assert [(c.class_id, c.name) for c in one(back, topics.CLASSES_CREATED).classes] == [
        (cm1, "CM1")
    ]
    reattached = one(back, topics.CLASS_TEACHERS_ASSIGNED)
    assert (reattached.class_id, reattached.teachers) == (cm1, [curie_id])
    assert topics.SCHOOL_YEAR_TURNED not in [e.type for e in back]
    assert worker.store.classes[cm1].archived_at is None


async def test_a_deleted_leaver_brought_back_gets_his_login_again(worker: AccountManager):
    school = (await open_school(worker, provisioning="automatic")).fed
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    await worker.send_chunk(chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[zoe]))
    await worker.send_chunk(chunk(school, uuid.uuid4(), 0, 1, CLASSES, left=[zoe.feed_id]))
    namesake = pupil("Zoé", "Lefèvre", date(2018, 1, 1), "CP")
    await worker.send_chunk(chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[namesake]))
    undone = await worker.send_chunk(chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[zoe]))
    logins = [a.login for c in worker.data_of(topics.ACCOUNTS_CREATED) for a in c.accounts]
    assert logins == ["claire.martin", "zoe.lefevre", "zoe.lefevre2", "zoe.lefevre"]
    assert one(undone, topics.ACCOUNTS_CREATED).accounts[0].classes == ["CP"]
    assert worker.store.deleted_feed_logins == {}


def connection_lost_once() -> FakeFeedStore:
    """A store whose database goes away once, as a chunk's events are read to be published."""
    lost = [TransientError("connection lost")]

    class LostOnce(FakeFeedStore):
        async def account_views(
            self,
            account_ids: list[UUID],
            inserted: Mapping[UUID, tuple[NewAccount, str]] | None = None,
        ) -> dict[UUID, AccountView]:
            if lost:
                raise lost.pop()
            return await super().account_views(account_ids, inserted)

    return LostOnce()


async def test_a_failed_chunk_leaves_nothing_behind_but_its_login_ranks() -> None:
    worker = AccountManager(connection_lost_once())
    school = (await open_school(worker, provisioning="automatic")).fed
    before = tables(worker.store)
    data = chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[pupil("Zoé", "Roy", BORN, "CP")])
    failed = await worker.take_chunk(data, event_id="e-1")
    assert (failed.kind, failed.reason) == ("retry", "TransientError: connection lost")
    assert tables(worker.store) == before
    assert worker.store.inbox == {"evt-1": topics.SCHOOL_INITIALISED}
    # Ranks are reserved apart from the chunk's transaction: its rank stays taken.
    assert worker.ranks.last_ranks["zoe.roy"] == 1
    assert (await worker.take_chunk(data, event_id="e-1")).kind == "applied"
    [zoe] = worker.data_of(topics.ACCOUNTS_CREATED)[1].accounts
    assert zoe.login == "zoe.roy2"


# The purge (not a message: a loop over the store) ----------------------------------------


async def test_the_purge_removes_leavers_and_classes_past_their_grace_period(
    worker: AccountManager,
):
    school = (await open_school(worker, provisioning="automatic")).fed
    lou = pupil("Lou", "Roux", date(2018, 6, 1), "CM1")
    made = await worker.send_chunk(
        chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[lou], version=1)
    )
    lou_id = one(made, topics.ACCOUNTS_CREATED).accounts[0].account_id
    await worker.send(topics.ACCOUNT_ACTIVATED, {"account_id": lou_id})
    only_cp = [CLASSES[0]]
    await worker.send_chunk(
        chunk(school, uuid.uuid4(), 0, 1, only_cp, left=[lou.feed_id], version=2)
    )
    store = worker.store
    assert await purge_aged(store, NOW - timedelta(days=1)) == []
    assert await purge_aged(store, NOW) == [school.school_id]
    assert len(store.classes) == 1  # CM1, archived, gone
    assert await purge_leavers(store, school.school_id, NOW, 10) == 1
    [gone] = store.emitted[-1].data.accounts
    assert (store.emitted[-1].type, gone.account_id) == (topics.ACCOUNTS_DELETED, lou_id)
    assert lou_id not in store.accounts
    assert await purge_leavers(store, school.school_id, NOW, 10) == 0


# An account in two schools (docs/one-person-across-schools.md §2) ----------------------------


async def test_an_account_attached_to_a_school_is_that_school_s_for_its_commands(
    worker: AccountManager,
):
    a = await open_school(worker)
    b = await open_school(worker, classes=2, number=2)
    c = await open_school(worker, classes=1, number=3)
    marie = await add_teacher(worker, a, "Marie", "Curie", a.class_ids[0])
    made = await create(worker, a, marie, {**PUPIL, "class_ids": [a.class_ids[0]]})
    zoe = one(made, topics.ACCOUNTS_CREATED).accounts[0]
    paul = await add_teacher(worker, b, "Paul", "Valéry", b.class_ids[0])

    async def renew(requested_by: UUID) -> list[Envelope[Any]]:
        return await ask(
            worker, topics.ACTIVATION_CODE_RENEW_REQUESTED, requested_by, account_id=zoe.account_id
        )

    async def place(requested_by: UUID, class_id: UUID) -> list[Envelope[Any]]:
        return await ask(
            worker,
            topics.CLASS_PUPILS_PLACE_REQUESTED,
            requested_by,
            class_id=class_id,
            pupils=[zoe.account_id],
        )

    # Not B's yet: refused.
    assert "requested_by" in reasons(await renew(b.admin))
    assert "pupils.0" in reasons(await place(paul, b.class_ids[0]))
    # Attached to B, as the feed attaches a pupil found by his INE.
    worker.store.account_schools[zoe.account_id, b.school_id] = (None, 0)
    renewed = one(await renew(b.admin), topics.ACTIVATION_CODE_RENEWED)
    stored = worker.store.accounts[zoe.account_id]
    assert stored.activation_code == renewed.activation_code != zoe.activation_code
    assert "requested_by" in reasons(await renew(c.admin))  # a school she is not in
    # A teacher of B places her in his class; her class in A stays.
    placed = one(await place(paul, b.class_ids[0]), topics.ACCOUNTS_UPDATED)
    assert sorted(placed.accounts[0].classes) == ["Classe 1", "Classe 1"]
    assert {a.class_ids[0], b.class_ids[0]} == worker.store._live_classes(zoe.account_id)
    # In a class of B now: not in a second one of B; her B teacher may renew her code.
    assert reasons(await place(b.admin, b.class_ids[1])) == {
        "pupils.0": "this pupil is already in another class"
    }
    assert one(await renew(paul), topics.ACTIVATION_CODE_RENEWED).account_id == zoe.account_id
