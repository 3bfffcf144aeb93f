"""Step 2 for an automatic school, end to end through the four worker processes: an order
for a Haute-Savoie school whose ONDE drop is already there gives every pupil, parent and
teacher an account (once), and the administrator can print his classes' sheets."""

import json
import uuid

from aio_pika.abc import AbstractChannel

from tests.e2e.conftest import Pipeline, every_account
from tests.support.broker import EventSpy, publish_raw
from tests.support.orders import cloudevent, order_data, uai
from tests.support.pdf import page_count, pdf_text
from tools import onde_generator
from tools.waits import eventually

NUMBER = 4321


async def test_an_automatic_school_gets_its_accounts_from_its_drop(
    pipeline: Pipeline, channel: AbstractChannel
):
    school_uai = uai("074", NUMBER)
    school = onde_generator.build_school(school_uai, classes=3, pupils_per_class=8, seed=7)
    onde_generator.write_drop(pipeline.feed_dir, school_uai, classes=3, pupils_per_class=8, seed=7)
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    order = cloudevent(order_data("BC-FEED-1", number=NUMBER), event_id="o-feed-1")
    await publish_raw(
        channel, pipeline.stack.exchange, "order.received", json.dumps(order).encode()
    )

    [report] = await spy.wait_for("directory.sync.reported", timeout=90)
    assert report["data"]["status"] == "applied", report
    persons = len(school.pupils) + len(school.parents) + len(school.teachers)
    assert report["data"]["counts"]["created"] == persons

    accounts = await every_account(spy, persons)
    assert len({a["account_id"] for a in accounts}) == len(accounts) == persons
    assert len({a["login"] for a in accounts}) == persons
    by_profile = {p: sum(a["profile"] == p for a in accounts) for p in ("student", "relative")}
    assert by_profile == {"student": len(school.pupils), "relative": len(school.parents)}
    parents = [a for a in accounts if a["profile"] == "relative"]
    assert all(p["children"] for p in parents)  # every parent linked to his children

    # The administrator prints the sheets of one class, from credential_dispatch's copy
    # (which follows the events on its own queue: wait until it has them all).
    admin_db = await pipeline.stack.admin()
    try:

        async def copied() -> bool:
            found = await admin_db.fetchval(
                "SELECT count(*) FROM credential_dispatch.accounts WHERE profile <> 'administrator'"
            )
            return found >= persons

        await eventually(copied, timeout=60, what="credential_dispatch's copy")
    finally:
        await admin_db.close()
    [classes] = spy.of_type("classes.created")
    first_class = min(classes["data"]["classes"], key=lambda c: c["name"])
    admin = next(
        a
        for e in spy.of_type("accounts.created")
        for a in e["data"]["accounts"]
        if a["profile"] == "administrator"
    )
    request_id = f"print-{uuid.uuid4()}"
    command = cloudevent(
        {
            "request_id": request_id,
            "requested_by": admin["account_id"],
            "school_id": report["data"]["school_id"],
            "filter": {"class_id": first_class["class_id"], "profiles": ["student"]},
            "channel": "print",
            "layout": "detailed",
        },
        event_id=request_id,
        event_type="credentials.dispatch.requested",
        correlationid=request_id,
    )
    await publish_raw(
        channel,
        pipeline.stack.exchange,
        "credentials.dispatch.requested",
        json.dumps(command).encode(),
    )
    [dispatched] = await spy.wait_for("credentials.dispatched", timeout=90, request_id=request_id)
    in_class = [p for p in school.pupils if p.class_name == first_class["name"]]
    assert len(dispatched["data"]["delivered"]) == len(in_class)

    async def printed() -> bytes | None:
        for message in pipeline.sink.received:
            if "Fiches" in str(message["Subject"]):
                [part] = list(message.iter_attachments())
                return bytes(part.get_content())
        return None

    pdf = await eventually(printed, timeout=60, what="the printed sheets")
    assert page_count(pdf) == 1 + len(in_class)  # a cover, then a page per pupil
    text = "\n".join(pdf_text(pdf))
    for pupil in in_class:
        assert pupil.first_name in text


async def test_an_onde_download_of_the_2021_layout_gives_every_account_once(
    pipeline: Pipeline, channel: AbstractChannel
):
    """The drop as a director downloads it from ONDE today: CSVExtraction.csv (pupils, with
    INE), CSVExtraction(1).csv (parents, layout of 2021: a row per parent and child, classes
    written by level), a teachers file with a teacher of two classes."""
    number = 4322
    school_uai = uai("074", number)
    layout = onde_generator.LAYOUTS["2021"]
    shape = {"classes": 3, "pupils_per_class": 8, "seed": 11, "layout": layout}
    school = onde_generator.build_school(school_uai, **shape)
    folder = onde_generator.write_drop(pipeline.feed_dir, school_uai, **shape)
    assert {p.name for p in folder.iterdir()} >= {"CSVExtraction.csv", "CSVExtraction(1).csv"}
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    order = cloudevent(order_data("BC-FEED-2021", number=number), event_id="o-feed-2021")
    await publish_raw(
        channel, pipeline.stack.exchange, "order.received", json.dumps(order).encode()
    )

    [report] = await spy.wait_for("directory.sync.reported", timeout=90)
    assert report["data"]["status"] == "applied" and report["data"]["errors"] == [], report
    persons = len(school.pupils) + len(school.parents) + len(school.teachers)
    assert report["data"]["counts"]["created"] == persons

    accounts = await every_account(spy, persons)
    assert len({a["account_id"] for a in accounts}) == len(accounts) == persons
    by_profile = {p: sum(a["profile"] == p for a in accounts) for p in ("student", "relative")}
    assert by_profile == {"student": len(school.pupils), "relative": len(school.parents)}
    pupils = {a["account_id"]: a for a in accounts if a["profile"] == "student"}
    for parent in (a for a in accounts if a["profile"] == "relative"):
        # Linked to his children although the parents file names their classes otherwise.
        assert parent["children"] and set(parent["children"]) <= set(pupils)
    [two_classes] = [t for t in school.teachers if len(t.classes) == 2]
    [teacher] = [a for a in accounts if a["last_name"] == two_classes.usage_name]
    assert sorted(teacher["classes"]) == sorted(two_classes.classes)


async def test_an_import_of_twenty_schools_is_in_credential_dispatch_s_copy(
    pipeline: Pipeline, channel: AbstractChannel
):
    """What bench/feed.py times as "printable": every account of an import, with its login
    and code, in the copy credential_dispatch prints from."""
    shape = {"classes": 2, "pupils_per_class": 6}
    numbers = range(5001, 5021)
    persons = 0
    for n in numbers:
        school = onde_generator.build_school(uai("074", n), seed=n, **shape)
        onde_generator.write_drop(pipeline.feed_dir, uai("074", n), seed=n, **shape)
        persons += len(school.pupils) + len(school.parents) + len(school.teachers)
    for n in numbers:
        order = cloudevent(order_data(f"BC-TWENTY-{n}", number=n), event_id=f"o-twenty-{n}")
        await publish_raw(
            channel, pipeline.stack.exchange, "order.received", json.dumps(order).encode()
        )

    admin_db = await pipeline.stack.admin()
    query = (
        "SELECT account_id, school_id, profile, login, activation_code FROM {}.accounts"
        " WHERE profile <> 'administrator'"
    )
    try:

        async def copied() -> bool:
            found = await admin_db.fetchval(
                "SELECT count(*) FROM credential_dispatch.accounts WHERE profile <> 'administrator'"
            )
            return found >= persons

        await eventually(copied, timeout=120, interval=0.5, what="credential_dispatch's copy")
        stored = {tuple(r) for r in await admin_db.fetch(query.format("account_manager"))}
        copy = {tuple(r) for r in await admin_db.fetch(query.format("credential_dispatch"))}
    finally:
        await admin_db.close()
    assert len(stored) == persons
    assert all(code for *_, code in stored)  # every login with its activation code
    assert copy == stored
    assert len({school for _, school, *_ in stored}) == len(numbers)
