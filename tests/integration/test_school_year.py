"""A manual school's year against real RabbitMQ and Postgres: the administrator closes it
(classes archived, teachers detached, new empty classes; pupils and parents keep their
accounts without a class), then teachers place their pupils; every refusal changes
nothing and answers with reasons."""

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aio_pika.abc import AbstractChannel

from shared import topics
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy
from tests.support.commands import School, open_school
from tests.support.feed_events import open_automatic_school

CLOSED = (topics.SCHOOL_YEAR_TURNED, topics.COMMAND_REJECTED)
PLACED = (topics.ACCOUNTS_UPDATED, topics.COMMAND_REJECTED)


@pytest.fixture
async def school(account_manager: Worker, stack: Stack, channel: AbstractChannel) -> School:
    spy = EventSpy()
    await spy.start(channel, stack.exchange)
    return await open_school(channel, stack.exchange, spy, classes=2)


def reasons(event: dict[str, Any]) -> dict[str, str]:
    assert event["type"] == topics.COMMAND_REJECTED, event
    return {r["field"]: r["message"] for r in event["data"]["reasons"]}


async def close_year(school: School, requested_by: str, **more: Any) -> dict[str, Any]:
    request = await school.send(
        topics.SCHOOL_YEAR_CLOSE_REQUESTED,
        {"requested_by": requested_by, "school_id": school.school_id, **more},
    )
    return await school.outcome_of(request, CLOSED)


async def place(school: School, requested_by: str, class_id: str, *pupils: str) -> dict[str, Any]:
    request = await school.send(
        topics.CLASS_PUPILS_PLACE_REQUESTED,
        {"requested_by": requested_by, "class_id": class_id, "pupils": list(pupils)},
    )
    return await school.outcome_of(request, PLACED)


async def state(stack: Stack, school_id: str) -> dict[str, Any]:
    """Each account's live classes and each class's teachers, by name."""
    conn = await stack.admin()
    try:
        await conn.execute("SET search_path TO account_manager")
        accounts = await conn.fetch(
            "SELECT a.first_name, a.login,"
            " array(SELECT c.name FROM account_classes ac JOIN classes c USING (class_id)"
            "       WHERE ac.account_id = a.account_id AND c.archived_at IS NULL ORDER BY 1)"
            "  AS classes"
            " FROM accounts a WHERE a.school_id = $1::uuid",
            school_id,
        )
        classes = await conn.fetch(
            "SELECT c.name, c.archived_at IS NOT NULL AS archived,"
            " array(SELECT a.first_name FROM class_teachers t JOIN accounts a USING (account_id)"
            "       WHERE t.class_id = c.class_id ORDER BY 1) AS teachers"
            " FROM classes c WHERE c.school_id = $1::uuid",
            school_id,
        )
    finally:
        await conn.close()
    return {
        "accounts": {r["first_name"]: (r["login"], list(r["classes"])) for r in accounts},
        "classes": sorted((r["name"], r["archived"], list(r["teachers"])) for r in classes),
    }


async def a_class_of_pupils(school: School) -> dict[str, str]:
    """A teacher in Classe 1 with two pupils, one with a parent; account ids by first name."""
    curie = await school.teacher("Marie", "Curie", school.class_ids[0])
    made = await school.create(
        curie,
        {
            "ref": "zoe",
            "profile": "student",
            "first_name": "Zoé",
            "last_name": "Lefèvre",
            "birth_date": "2018-03-14",
            "class_ids": [school.class_ids[0]],
        },
        {
            "profile": "student",
            "first_name": "Léo",
            "last_name": "Roy",
            "birth_date": "2018-05-02",
            "class_ids": [school.class_ids[0]],
        },
        {
            "profile": "relative",
            "first_name": "Anne",
            "last_name": "Lefèvre",
            "children": ["zoe"],
        },
    )
    ids = {a["first_name"]: a["account_id"] for a in made["data"]["accounts"]}
    return {"Marie": curie, **ids}


async def test_the_administrator_closes_the_year_and_teachers_place_their_pupils(
    school: School, stack: Stack
):
    people = await a_class_of_pupils(school)
    june = await state(stack, school.school_id)

    turned = await close_year(school, school.admin_id)
    assert turned["type"] == topics.SCHOOL_YEAR_TURNED
    year = turned["data"]
    assert year["request_id"] == school.sent[-1]
    new_classes = {c["name"]: c["class_id"] for c in year["classes"]}
    assert sorted(new_classes) == ["Classe 1", "Classe 2"]  # as many as the year closed
    assert set(new_classes.values()).isdisjoint(school.class_ids)
    assert year["classes_without_teacher"] == year["classes"]
    [archived] = school.spy.of_type(topics.CLASSES_ARCHIVED, school_id=school.school_id)
    assert sorted(c["class_id"] for c in archived["data"]["classes"]) == sorted(school.class_ids)
    [detached] = [
        e["data"]
        for e in school.spy.of_type(topics.CLASS_TEACHERS_ASSIGNED, teachers=[])
        if e["correlationid"] == year["request_id"]
    ]
    assert detached["class_id"] == school.class_ids[0]  # the one class that had a teacher

    closed = await state(stack, school.school_id)
    # Everyone keeps his account and login; nobody has a class any more.
    assert {k: login for k, (login, _) in closed["accounts"].items()} == {
        k: login for k, (login, _) in june["accounts"].items()
    }
    assert all(classes == [] for _, classes in closed["accounts"].values())
    assert closed["classes"] == [
        ("Classe 1", False, []),
        ("Classe 1", True, []),
        ("Classe 2", False, []),
        ("Classe 2", True, []),
    ]

    # The administrator attaches Marie to the new Classe 2; she places Zoé (her mother
    # follows), not a pupil already placed, not into a class that is not hers.
    assigned = await school.send(
        topics.CLASS_TEACHERS_ASSIGN_REQUESTED,
        {
            "requested_by": school.admin_id,
            "class_id": new_classes["Classe 2"],
            "add": [people["Marie"]],
        },
    )
    assert (await school.outcome(assigned))["type"] == topics.CLASS_TEACHERS_ASSIGNED
    placed = await place(school, people["Marie"], new_classes["Classe 2"], people["Zoé"])
    assert placed["type"] == topics.ACCOUNTS_UPDATED
    assert placed["data"]["request_id"] == school.sent[-1]
    by_name = {a["first_name"]: a for a in placed["data"]["accounts"]}
    assert sorted(by_name) == ["Anne", "Zoé"]
    assert by_name["Zoé"]["classes"] == by_name["Anne"]["classes"] == ["Classe 2"]
    assert by_name["Zoé"]["account_id"] == people["Zoé"]

    again = await place(school, people["Marie"], new_classes["Classe 2"], people["Zoé"])
    assert reasons(again) == {"pupils.0": "this pupil is already in Classe 2"}
    elsewhere = await place(school, people["Marie"], new_classes["Classe 1"], people["Léo"])
    assert reasons(elsewhere) == {"requested_by": "Classe 1 is not one of your classes"}
    not_a_pupil = await place(school, people["Marie"], new_classes["Classe 2"], people["Anne"])
    assert reasons(not_a_pupil) == {"pupils.0": f"{people['Anne']} is not a pupil"}
    old_class = await place(school, school.admin_id, school.class_ids[0], people["Léo"])
    assert reasons(old_class) == {"class_id": f"unknown class {school.class_ids[0]}"}
    # The administrator may place into any class.
    by_admin = await place(school, school.admin_id, new_classes["Classe 1"], people["Léo"])
    assert by_admin["type"] == topics.ACCOUNTS_UPDATED

    after = await state(stack, school.school_id)
    assert after["accounts"]["Zoé"][1] == after["accounts"]["Anne"][1] == ["Classe 2"]
    assert after["accounts"]["Léo"][1] == ["Classe 1"]
    assert after["accounts"]["Marie"][1] == []  # a teacher teaches; he is not placed


async def test_closing_the_year_is_refused_to_a_teacher_to_a_fed_school_and_twice(
    school: School, stack: Stack, channel: AbstractChannel
):
    people = await a_class_of_pupils(school)
    before = await state(stack, school.school_id)
    by_teacher = await close_year(school, people["Marie"])
    assert reasons(by_teacher) == {"requested_by": "only the school's administrator can do this"}
    other = await open_school(channel, stack.exchange, school.spy, number=2)
    by_other_admin = await close_year(school, other.admin_id)
    assert reasons(by_other_admin) == {"requested_by": "this account belongs to another school"}
    unknown = str(uuid.uuid4())
    request = await school.send(
        topics.SCHOOL_YEAR_CLOSE_REQUESTED, {"requested_by": school.admin_id, "school_id": unknown}
    )
    assert reasons(await school.outcome_of(request, CLOSED)) == {
        "school_id": f"unknown school {unknown}"
    }
    assert await state(stack, school.school_id) == before

    assert (await close_year(school, school.admin_id, classes=4))["type"] == (
        topics.SCHOOL_YEAR_TURNED
    )
    closed = await state(stack, school.school_id)
    assert [c for c in closed["classes"] if not c[1]] == [
        (f"Classe {n}", False, []) for n in range(1, 5)
    ]
    today = datetime.now(ZoneInfo("Europe/Paris")).strftime("%d/%m/%Y")
    twice = await close_year(school, school.admin_id)
    assert reasons(twice) == {"school_id": f"the school year was already closed on {today}"}
    assert await state(stack, school.school_id) == closed

    fed = await open_automatic_school(channel, stack.exchange, school.spy)
    fed_admin = await _admin_of(stack, fed.school_id)
    request = await school.send(
        topics.SCHOOL_YEAR_CLOSE_REQUESTED,
        {"requested_by": fed_admin, "school_id": str(fed.school_id)},
    )
    assert reasons(await school.outcome_of(request, CLOSED)) == {
        "school_id": "this school's classes come from ONDE: its year turns over with its"
        " September export"
    }


async def _admin_of(stack: Stack, school_id: uuid.UUID) -> str:
    conn = await stack.admin()
    try:
        found = await conn.fetchval(
            "SELECT account_id FROM account_manager.accounts"
            " WHERE school_id = $1 AND profile = 'administrator'",
            school_id,
        )
    finally:
        await conn.close()
    return str(found)
