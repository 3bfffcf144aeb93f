"""Emails of a dispatch request, each exactly once: through an SMTP server down then up,
and through a restart of credential_dispatch in the middle of a batch of 200."""

from collections import Counter

import pytest

from shared import topics
from tests.e2e.conftest import Pipeline
from tests.support.broker import EventSpy
from tests.support.commands import School, open_school
from tools.waits import eventually

TEACHERS = 200
pytestmark = pytest.mark.slow


async def school_with_teachers(pipeline: Pipeline, channel) -> School:
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    school = await open_school(channel, pipeline.stack.exchange, spy)
    for batch in range(TEACHERS // 20):
        event = await school.create(
            school.admin_id,
            *[
                {
                    "profile": "teacher",
                    "first_name": "Prof",
                    "last_name": f"N{batch * 20 + i}",
                    "email": f"prof{batch * 20 + i}@example.org",
                }
                for i in range(20)
            ],
        )
        assert event["type"] == topics.ACCOUNTS_CREATED, event
    await copied_teachers(pipeline, TEACHERS)
    return school


async def copied_teachers(pipeline: Pipeline, count: int) -> None:
    """credential_dispatch follows account_manager's events on its own queue: a request it
    takes before it has them all would rightly select fewer teachers."""
    admin = await pipeline.stack.admin()
    try:

        async def copied() -> bool:
            found = await admin.fetchval(
                "SELECT count(*) FROM credential_dispatch.accounts WHERE profile = 'teacher'"
            )
            return found >= count

        await eventually(copied, timeout=60, what=f"credential_dispatch's copy of {count} teachers")
    finally:
        await admin.close()


async def dispatch_to_teachers(school: School) -> str:
    return await school.send(
        topics.CREDENTIALS_DISPATCH_REQUESTED,
        {
            "requested_by": school.admin_id,
            "school_id": school.school_id,
            "channel": "email",
            "filter": {"profiles": ["teacher"]},
        },
    )


def teacher_mails(pipeline: Pipeline) -> Counter[str]:
    return Counter(
        str(m["Message-ID"]) for m in pipeline.sink.received if str(m["To"]).startswith("prof")
    )


async def test_smtp_down_then_up_delivers_each_once(pipeline: Pipeline, channel):
    school = await school_with_teachers(pipeline, channel)
    pipeline.smtp_down()
    request = await dispatch_to_teachers(school)
    dispatch = pipeline.workers[topics.CREDENTIAL_DISPATCH]
    await eventually(
        lambda: _ready(dispatch.count("delivery_retry") >= 20),
        timeout=60,
        what="deliveries failing while the SMTP server is down",
    )
    pipeline.smtp_up()
    outcome = await school.outcome_of(request, (topics.CREDENTIALS_DISPATCHED,), timeout=180)
    assert len(outcome["data"]["delivered"]) == TEACHERS
    assert outcome["data"]["undeliverable"] == []
    sent = teacher_mails(pipeline)
    assert len(sent) == TEACHERS and set(sent.values()) == {1}


async def test_restart_mid_batch_delivers_each_once(pipeline: Pipeline, channel):
    school = await school_with_teachers(pipeline, channel)
    request = await dispatch_to_teachers(school)
    await eventually(
        lambda: _ready(len(teacher_mails(pipeline)) >= 30), timeout=120, what="sending under way"
    )
    dispatch = pipeline.workers[topics.CREDENTIAL_DISPATCH]
    assert await dispatch.stop() == 0
    sent_before = len(teacher_mails(pipeline))
    assert sent_before < TEACHERS
    await dispatch.start()
    outcome = await school.outcome_of(request, (topics.CREDENTIALS_DISPATCHED,), timeout=180)
    assert outcome["data"]["undeliverable"] == []
    assert len(outcome["data"]["delivered"]) == TEACHERS
    sent = teacher_mails(pipeline)
    assert len(sent) == TEACHERS and set(sent.values()) == {1}


async def _ready(value: bool) -> bool:
    return value
