"""Activation codes never reach a log line: a whole end-to-end run through the four worker
processes (a manual school, an automatic school fed by its ONDE drop, a printed export, a
renewed code), then every code issued is looked for in every line every worker wrote."""

import json
import uuid
from typing import Any

from aio_pika.abc import AbstractChannel

from shared import topics
from tests.e2e.conftest import Pipeline
from tests.support.broker import EventSpy, publish_raw
from tests.support.commands import School
from tests.support.orders import cloudevent, order_data, uai
from tools import onde_generator
from tools.waits import eventually

AUTOMATIC = 4322  # a Haute-Savoie (074) school: its accounts come from the feed
MANUAL = 4323  # a Paris (075) school: its accounts are created by commands


async def order(channel: AbstractChannel, pipeline: Pipeline, order_id: str, **kw: Any) -> None:
    event = cloudevent(order_data(order_id, **kw), event_id=f"o-{order_id}")
    await publish_raw(
        channel, pipeline.stack.exchange, topics.ORDER_RECEIVED, json.dumps(event).encode()
    )


def codes_issued(spy: EventSpy) -> set[str]:
    codes = {
        str(account["activation_code"])
        for event in spy.of_type(topics.ACCOUNTS_CREATED)
        for account in event["data"]["accounts"]
        if account.get("activation_code")
    }
    codes |= {
        str(event["data"]["activation_code"])
        for event in spy.of_type(topics.ACTIVATION_CODE_RENEWED)
    }
    return codes


async def test_no_activation_code_appears_in_any_log_line(
    pipeline: Pipeline, channel: AbstractChannel
) -> None:
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)

    # An automatic school whose drop is there: its persons' accounts come from the feed.
    onde_generator.write_drop(
        pipeline.feed_dir, uai("074", AUTOMATIC), classes=2, pupils_per_class=4, seed=11
    )
    await order(channel, pipeline, "BC-SECRET-AUTO", number=AUTOMATIC)
    [report] = await spy.wait_for(topics.DIRECTORY_SYNC_REPORTED, timeout=90)
    assert report["data"]["status"] == "applied", report

    # A manual school: an administrator, then a teacher and pupils created by command.
    await order(channel, pipeline, "BC-SECRET-MANUAL", department="075", number=MANUAL)
    [school_event] = await spy.wait_for(
        topics.SCHOOL_INITIALISED, timeout=60, order_id="BC-SECRET-MANUAL"
    )
    school_id = school_event["data"]["school_id"]
    [created] = await spy.wait_for(topics.ACCOUNTS_CREATED, school_id=school_id, timeout=60)
    [classes] = await spy.wait_for(topics.CLASSES_CREATED, school_id=school_id, timeout=60)
    school = School(
        channel,
        pipeline.stack.exchange,
        spy,
        school_id,
        admin_id=created["data"]["accounts"][0]["account_id"],
        class_ids=[c["class_id"] for c in classes["data"]["classes"]],
    )
    made = await school.create(
        school.admin_id,
        *(
            {
                "profile": "student",
                "first_name": first,
                "last_name": "Roy",
                "birth_date": "2017-05-02",
                "class_ids": [school.class_ids[0]],
            }
            for first in ("Léo", "Zoé", "Inès")
        ),
        {
            "profile": "teacher",
            "first_name": "Marie",
            "last_name": "Curie",
            "email": "marie.curie@example.org",
            "class_ids": [school.class_ids[0]],
        },
    )
    assert made["type"] == topics.ACCOUNTS_CREATED, made
    pupil = made["data"]["accounts"][0]["account_id"]

    # credential_dispatch has its copy of the five accounts before the print is asked for.
    async def copied() -> bool:
        conn = await pipeline.stack.admin()
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM credential_dispatch.accounts WHERE school_id = $1",
                uuid.UUID(school_id),
            )
        finally:
            await conn.close()
        return bool(count >= 5)

    await eventually(copied, timeout=60, what="credential_dispatch's copy of the accounts")

    # A printed export of the class, then a renewed code for one pupil.
    printed = await school.send(
        topics.CREDENTIALS_DISPATCH_REQUESTED,
        {
            "requested_by": school.admin_id,
            "school_id": school_id,
            "channel": "print",
            "layout": "detailed",
            "filter": {"class_id": school.class_ids[0]},
        },
    )
    renewal = await school.send(
        topics.ACTIVATION_CODE_RENEW_REQUESTED,
        {"requested_by": school.admin_id, "account_id": pupil, "school_id": school_id},
    )
    renewed = await school.outcome(renewal, timeout=60)
    assert renewed["type"] == topics.ACTIVATION_CODE_RENEWED, renewed
    dispatched = await school.outcome_of(
        printed, (topics.CREDENTIALS_DISPATCHED, topics.COMMAND_REJECTED), timeout=90
    )
    assert dispatched["type"] == topics.CREDENTIALS_DISPATCHED, dispatched["data"]
    await eventually(pipeline.quiescent, timeout=60, what="pipeline idle")

    codes = codes_issued(spy)
    # The administrators, the feed's persons, the manual school's four, the renewed code.
    assert len(codes) >= 2 + 4 + 1 + report["data"]["counts"]["created"], codes
    lines = pipeline.log_lines()
    assert len(lines) > 50  # every worker talked: the search below looks at something
    # The same search finds the codes where they belong: the first-access mails.
    mails = " ".join(
        str(body.get_content())
        for message in pipeline.sink.received
        if (body := message.get_body(("plain",))) is not None
    )
    assert [code for code in codes if code in mails]
    leaked = {code: line for code in codes for line in lines if code in line}
    assert not leaked, leaked
