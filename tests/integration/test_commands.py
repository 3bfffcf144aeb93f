"""account_manager's commands against real RabbitMQ and Postgres: each success path, each
refusal (nothing changes, one command.rejected with reasons), duplicates, redelivery."""

import uuid

import pytest
from aio_pika.abc import AbstractChannel

from shared import topics
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy
from tests.support.commands import OUTCOMES, School, open_school

PUPIL = {
    "profile": "student",
    "first_name": "Zoé",
    "last_name": "Lefèvre",
    "birth_date": "2018-03-14",
}


@pytest.fixture
async def school(account_manager: Worker, stack: Stack, channel: AbstractChannel) -> School:
    spy = EventSpy()
    await spy.start(channel, stack.exchange)
    return await open_school(channel, stack.exchange, spy)


def reasons(event: dict) -> dict[str, str]:
    assert event["type"] == topics.COMMAND_REJECTED, event
    return {r["field"]: r["message"] for r in event["data"]["reasons"]}


async def count_accounts(stack: Stack) -> int:
    conn = await stack.admin()
    try:
        return int(await conn.fetchval("SELECT count(*) FROM account_manager.accounts"))
    finally:
        await conn.close()


async def test_admin_creates_a_teacher_attached_to_a_class(school: School, stack: Stack):
    event = await school.create(
        school.admin_id,
        {
            "profile": "teacher",
            "first_name": "Marie",
            "last_name": "Curie",
            "email": "marie.curie@example.org",
            "class_ids": [school.class_ids[0]],
        },
    )
    assert event["type"] == topics.ACCOUNTS_CREATED
    [teacher] = event["data"]["accounts"]
    assert teacher["login"] == "marie.curie"
    assert teacher["classes"] == ["Classe 1"]
    assert len(teacher["activation_code"]) == 8
    conn = await stack.admin()
    try:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM account_manager.class_teachers WHERE account_id = $1",
                uuid.UUID(teacher["account_id"]),
            )
            == 1
        )
    finally:
        await conn.close()


async def test_teacher_creates_pupils_and_their_parents(school: School):
    teacher = await school.teacher("Marie", "Curie", school.class_ids[0])
    first = await school.create(teacher, {**PUPIL, "class_ids": [school.class_ids[0]]})
    zoe = first["data"]["accounts"][0]["account_id"]
    event = await school.create(
        teacher,
        {
            "ref": "leo",
            "profile": "student",
            "first_name": "Léo",
            "last_name": "Lefèvre",
            "birth_date": "2016-05-02",
            "class_ids": [school.class_ids[0]],
        },
        {
            "profile": "relative",
            "first_name": "Jean-Noël",
            "last_name": "N'Diaye",
            "email": "jn@example.org",
            "children": ["leo", zoe],
        },
    )
    assert event["type"] == topics.ACCOUNTS_CREATED
    leo, parent = event["data"]["accounts"]
    assert leo["login"] == "leo.lefevre" and parent["login"] == "jeannoel.ndiaye"
    assert sorted(parent["children"]) == sorted([leo["account_id"], zoe])
    assert parent["classes"] == ["Classe 1"]  # the classes of his children


async def test_a_mixed_request_is_stored_and_published_as_asked(school: School, stack: Stack):
    """A request's accounts are created together (one insert, one statement for the
    links): a parent listed before the pupils he names, namesakes, a teacher and a pupil
    already there end as they did when each account was created in turn."""
    c1, c2, c3 = school.class_ids
    first = await school.create(school.admin_id, {**PUPIL, "class_ids": [c3]})
    zoe = first["data"]["accounts"][0]["account_id"]
    twin = {**PUPIL, "first_name": "Léo", "birth_date": "2016-05-02", "different_person": True}
    event = await school.create(
        school.admin_id,
        {
            "profile": "relative",
            "first_name": "Léo",
            "last_name": "Lefèvre",
            "email": "leo.pere@example.org",
            "children": ["a", "b", zoe],
        },
        {**twin, "ref": "a", "class_ids": [c1]},
        {**twin, "ref": "b", "class_ids": [c2]},
        {
            "profile": "teacher",
            "first_name": "Marie",
            "last_name": "Curie",
            "class_ids": [c2, c1],
        },
    )
    assert event["type"] == topics.ACCOUNTS_CREATED, event
    parent, a, b, teacher = event["data"]["accounts"]
    # Pupils take the first ranks of a shared login, in the request's order; the parent
    # comes after them.
    assert [a["login"], b["login"], parent["login"]] == [
        "leo.lefevre",
        "leo.lefevre2",
        "leo.lefevre3",
    ]
    assert parent["children"] == [a["account_id"], b["account_id"], zoe]
    names = dict(zip(school.class_ids, ["Classe 1", "Classe 2", "Classe 3"], strict=True))
    assert parent["class_ids"] == sorted([c1, c2, c3])
    assert parent["classes"] == [names[c] for c in parent["class_ids"]]
    assert (a["class_ids"], b["class_ids"]) == ([c1], [c2])
    assert teacher["class_ids"] == [c2, c1] and teacher["classes"] == ["Classe 2", "Classe 1"]
    conn = await stack.admin()
    try:
        rows = await conn.fetch(
            "SELECT account_id::text, class_id::text FROM account_manager.account_classes"
            " WHERE account_id = ANY($1::uuid[])",
            [parent["account_id"], a["account_id"], b["account_id"], teacher["account_id"]],
        )
        children = await conn.fetch(
            "SELECT child_id::text FROM account_manager.parent_children WHERE parent_id = $1",
            uuid.UUID(parent["account_id"]),
        )
        taught = await conn.fetch(
            "SELECT class_id::text FROM account_manager.class_teachers WHERE account_id = $1",
            uuid.UUID(teacher["account_id"]),
        )
    finally:
        await conn.close()
    assert sorted((r["account_id"], r["class_id"]) for r in rows) == sorted(
        [(parent["account_id"], c) for c in (c1, c2, c3)]
        + [(a["account_id"], c1), (b["account_id"], c2)]
    )
    assert sorted(r["child_id"] for r in children) == sorted(parent["children"])
    assert sorted(r["class_id"] for r in taught) == sorted([c1, c2])


async def test_teacher_cannot_act_outside_his_classes(school: School, stack: Stack):
    teacher = await school.teacher("Marie", "Curie", school.class_ids[0])
    before = await count_accounts(stack)
    event = await school.create(
        teacher,
        {**PUPIL, "class_ids": [school.class_ids[1]]},
        {"profile": "teacher", "first_name": "Paul", "last_name": "Valéry"},
    )
    assert reasons(event) == {
        "accounts.0.class_ids.0": "Classe 2 is not one of your classes",
        "accounts.1.profile": "a teacher creates pupils and parents; ask the administrator",
    }
    assert await count_accounts(stack) == before


async def test_requester_of_another_school_is_refused(school: School, channel, stack):
    other = await open_school(channel, stack.exchange, school.spy, number=2)
    event = await school.create(other.admin_id, {**PUPIL})
    assert reasons(event) == {"requested_by": "this account belongs to another school"}
    event = await school.create("00000000-0000-0000-0000-000000000000", {**PUPIL})
    assert reasons(event) == {"requested_by": "unknown account"}


async def test_bad_data_is_refused_field_by_field(school: School, stack: Stack):
    before = await count_accounts(stack)
    event = await school.create(
        school.admin_id,
        {"profile": "student", "first_name": "Zoé", "last_name": "Lefèvre"},
        {"profile": "relative", "first_name": "Jean", "last_name": "Dupont"},
        {"profile": "teacher", "first_name": "---", "last_name": "Dupont"},
        {**PUPIL, "first_name": "Ana", "class_ids": ["00000000-0000-0000-0000-000000000001"]},
        {
            "profile": "relative",
            "first_name": "Luc",
            "last_name": "Roy",
            "children": ["00000000-0000-0000-0000-000000000002"],
        },
    )
    assert set(reasons(event)) == {
        "accounts.0.birth_date",
        "accounts.1.children",
        "accounts.2.first_name",
        "accounts.3.class_ids.0",
        "accounts.4.children.0",
    }
    assert await count_accounts(stack) == before


async def test_a_nul_in_a_name_is_refused_with_a_reason_and_bidi_controls_removed(
    school: School, stack: Stack
):
    """A NUL byte (which Postgres refuses) is a command.rejected with the field, not a
    dead letter; a right-to-left override, which would print the name backwards, is
    dropped from the name stored."""
    before = await count_accounts(stack)
    event = await school.create(school.admin_id, {**PUPIL, "first_name": "Zo\x00é"})
    assert "control character U+0000" in reasons(event)["accounts.0.first_name"]
    assert await count_accounts(stack) == before
    event = await school.create(
        school.admin_id, {**PUPIL, "first_name": "\u202eZoé", "class_ids": [school.class_ids[0]]}
    )
    assert event["type"] == topics.ACCOUNTS_CREATED, event
    assert event["data"]["accounts"][0]["first_name"] == "Zoé"


async def test_malformed_command_is_rejected_with_its_request_id(school: School):
    request = await school.send(
        topics.ACCOUNTS_CREATE_REQUESTED,
        {"requested_by": school.admin_id, "accounts": [{"profile": "wizard"}]},
    )
    event = await school.outcome(request)
    assert {"school_id", "accounts.0.profile", "accounts.0.first_name"} <= set(reasons(event))
    assert event["data"]["request_id"] == request


async def test_same_person_twice_is_refused_unless_said_different(school: School):
    await school.create(school.admin_id, {**PUPIL})
    event = await school.create(school.admin_id, {**PUPIL, "last_name": "LEFEVRE"})
    assert "already has an account" in reasons(event)["accounts.0"]
    event = await school.create(school.admin_id, {**PUPIL, "different_person": True})
    assert event["data"]["accounts"][0]["login"] == "zoe.lefevre2"
    # Same names, another birth date: another pupil (homonym).
    event = await school.create(school.admin_id, {**PUPIL, "birth_date": "2017-01-01"})
    assert event["data"]["accounts"][0]["login"] == "zoe.lefevre3"


async def test_rename_by_teacher_of_the_class_with_unique_names(school: School):
    teacher = await school.teacher("Marie", "Curie", school.class_ids[0])
    request = await school.send(
        topics.CLASS_RENAME_REQUESTED,
        {"requested_by": teacher, "class_id": school.class_ids[0], "name": "CP  des Lutins"},
    )
    renamed = await school.outcome(request)
    assert renamed["type"] == topics.CLASS_RENAMED and renamed["data"]["name"] == "CP des Lutins"
    request = await school.send(
        topics.CLASS_RENAME_REQUESTED,
        {"requested_by": teacher, "class_id": school.class_ids[1], "name": "CE1"},
    )
    assert reasons(await school.outcome(request)) == {
        "requested_by": "Classe 2 is not one of your classes"
    }
    request = await school.send(
        topics.CLASS_RENAME_REQUESTED,
        {"requested_by": school.admin_id, "class_id": school.class_ids[1], "name": "cp des lutins"},
    )
    assert "already named" in reasons(await school.outcome(request))["name"]


async def test_attach_detach_and_set_teachers(school: School):
    marie = await school.teacher("Marie", "Curie", school.class_ids[0])
    paul = await school.teacher("Paul", "Valéry")
    klass = school.class_ids[0]

    async def assign(requested_by: str, **change: list[str]) -> dict:
        request = await school.send(
            topics.CLASS_TEACHERS_ASSIGN_REQUESTED,
            {"requested_by": requested_by, "class_id": klass, **change},
        )
        return await school.outcome(request)

    assert sorted((await assign(school.admin_id, add=[paul]))["data"]["teachers"]) == sorted(
        [marie, paul]
    )
    assert (await assign(school.admin_id, remove=[marie]))["data"]["teachers"] == [paul]
    assert (await assign(school.admin_id, set=[marie]))["data"]["teachers"] == [marie]
    assert reasons(await assign(marie, add=[paul])) == {
        "requested_by": "only the school's administrator can do this"
    }
    assert "cannot teach" in reasons(await assign(school.admin_id, add=[school.admin_id]))["add.0"]
    assert set(reasons(await assign(school.admin_id, add=[paul], set=[paul]))) == {"(message)"}


async def test_renew_voids_the_old_code_and_activation_spends_it(school: School, stack: Stack):
    teacher = await school.teacher("Marie", "Curie", school.class_ids[0])
    created = await school.create(teacher, {**PUPIL, "class_ids": [school.class_ids[0]]})
    pupil = created["data"]["accounts"][0]
    request = await school.send(
        topics.ACTIVATION_CODE_RENEW_REQUESTED,
        {"requested_by": teacher, "account_id": pupil["account_id"]},
    )
    renewed = await school.outcome(request)
    assert renewed["type"] == topics.ACTIVATION_CODE_RENEWED
    assert renewed["data"]["activation_code"] != pupil["activation_code"]
    conn = await stack.admin()
    try:
        stored = await conn.fetchval(
            "SELECT activation_code FROM account_manager.accounts WHERE login = 'zoe.lefevre'"
        )
        assert stored == renewed["data"]["activation_code"]

        other = await school.teacher("Paul", "Valéry", school.class_ids[1])
        request = await school.send(
            topics.ACTIVATION_CODE_RENEW_REQUESTED,
            {"requested_by": other, "account_id": pupil["account_id"]},
        )
        assert "requested_by" in reasons(await school.outcome(request))

        await school.send(
            topics.ACCOUNT_ACTIVATED,
            {"account_id": pupil["account_id"]},
            request_id="ent-activation",
        )

        async def spent() -> bool:
            return await conn.fetchval(
                "SELECT activation_code IS NULL AND activated_at IS NOT NULL"
                " FROM account_manager.accounts WHERE login = 'zoe.lefevre'"
            )

        from tools.waits import eventually

        await eventually(spent, what="code spent")
        request = await school.send(
            topics.ACTIVATION_CODE_RENEW_REQUESTED,
            {"requested_by": school.admin_id, "account_id": pupil["account_id"]},
        )
        assert "already activated" in reasons(await school.outcome(request))["account_id"]
    finally:
        await conn.close()


async def test_a_command_delivered_twice_acts_once(
    school: School, stack: Stack, account_manager: Worker
):
    data = {
        "requested_by": school.admin_id,
        "school_id": school.school_id,
        "accounts": [{"profile": "teacher", "first_name": "Marie", "last_name": "Curie"}],
    }
    await school.send(
        topics.ACCOUNTS_CREATE_REQUESTED, data, request_id="r-twice", event_id="e-twice"
    )
    await school.send(
        topics.ACCOUNTS_CREATE_REQUESTED, data, request_id="r-twice", event_id="e-twice"
    )
    await school.outcome("r-twice")

    from tools.waits import eventually

    async def both_seen() -> bool:
        return account_manager._consumer.counts["duplicate"] >= 1

    await eventually(both_seen, what="duplicate acknowledged")
    answers = [
        e for e in school.spy.events if e["correlationid"] == "r-twice" and e["type"] in OUTCOMES
    ]
    assert [e["type"] for e in answers] == [topics.ACCOUNTS_CREATED]
