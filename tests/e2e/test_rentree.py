"""La rentrée end to end, through the four worker processes: a Haute-Savoie school followed
from its June export to the next September's. A September export cut short is held; the
whole one is applied without an operator, reported as the turnover, keeps every continuing
pupil's account, archives last year's classes, detaches their teachers and tells the
administrator which classes still wait for theirs."""

import json
import uuid
from typing import Any

from aio_pika.abc import AbstractChannel

from shared import topics
from tests.e2e.conftest import SCHOOL_NOT_KNOWN_YET, Pipeline, every_account
from tests.support import rentree
from tests.support.broker import EventSpy, publish_raw
from tests.support.onectl import Cli
from tests.support.orders import cloudevent, order_data, uai
from tools.waits import eventually

NUMBER = 4400
ACTIVATED = ("Louis", "FAMILLE-CM2-0")
ADMIN_EMAIL = "direction.lac@example.org"


async def request_run(pipeline: Pipeline, channel: AbstractChannel, school_uai: str) -> str:
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    data = {"request_id": request_id, "requested_by": "ops", "uai": school_uai}
    event = cloudevent(
        data,
        event_id=request_id,
        event_type=topics.DIRECTORY_SYNC_REQUESTED,
        correlationid=request_id,
    )
    await publish_raw(
        channel,
        pipeline.stack.exchange,
        topics.DIRECTORY_SYNC_REQUESTED,
        json.dumps(event).encode(),
    )
    return request_id


async def report_of(spy: EventSpy, correlationid: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        reports = [
            e["data"]
            for e in spy.of_type(topics.DIRECTORY_SYNC_REPORTED)
            if e["correlationid"] == correlationid
        ]
        return reports[0] if reports else None

    report: dict[str, Any] = await eventually(found, timeout=60, what="the run's report")
    return report


async def accounts_now(pipeline: Pipeline, school_id: str) -> dict[tuple[str, str], Any]:
    """account_manager's accounts of the school, by names: id, login, live classes (a
    teacher's, those he teaches)."""
    conn = await pipeline.stack.admin()
    try:
        rows = await conn.fetch(
            "SELECT a.account_id, a.first_name, a.last_name, a.login, a.profile,"
            " a.deactivated_at IS NOT NULL AS deactivated,"
            " array(SELECT c.name FROM ("
            "        SELECT class_id FROM account_manager.account_classes"
            "        WHERE account_id = a.account_id"
            "        UNION SELECT class_id FROM account_manager.class_teachers"
            "        WHERE account_id = a.account_id) p"
            "       JOIN account_manager.classes c USING (class_id)"
            "       WHERE c.archived_at IS NULL ORDER BY c.name) AS classes"
            " FROM account_manager.accounts a WHERE a.school_id = $1::uuid",
            school_id,
        )
    finally:
        await conn.close()
    return {(r["first_name"], r["last_name"]): dict(r) for r in rows}


async def activate(pipeline: Pipeline, channel: AbstractChannel, account_id: Any) -> None:
    event = cloudevent(
        {"account_id": str(account_id)},
        event_id=f"activated-{account_id}",
        event_type=topics.ACCOUNT_ACTIVATED,
        correlationid="ent",
    )
    await publish_raw(
        channel, pipeline.stack.exchange, topics.ACCOUNT_ACTIVATED, json.dumps(event).encode()
    )

    await eventually(lambda: _activated(pipeline, account_id), timeout=30, what="activation")


async def _activated(pipeline: Pipeline, account_id: Any) -> bool:
    conn = await pipeline.stack.admin()
    try:
        return bool(
            await conn.fetchval(
                "SELECT activated_at IS NOT NULL FROM account_manager.accounts"
                " WHERE account_id = $1",
                account_id,
            )
        )
    finally:
        await conn.close()


async def test_a_school_over_two_school_years(pipeline: Pipeline, channel: AbstractChannel):
    school_uai = uai("074", NUMBER)
    rentree.june().write(pipeline.feed_dir, school_uai)
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)
    order = cloudevent(
        order_data("BC-RENTREE", number=NUMBER, admin_email=ADMIN_EMAIL), event_id="o-rentree"
    )
    await publish_raw(
        channel, pipeline.stack.exchange, "order.received", json.dumps(order).encode()
    )
    [first] = await spy.wait_for(topics.DIRECTORY_SYNC_REPORTED, timeout=90)
    assert first["data"]["status"] == "applied" and not first["data"]["turnover"], first
    school_id = first["data"]["school_id"]
    await every_account(spy, rentree.june().persons)
    await eventually(pipeline.quiescent, timeout=60, what="the June run settled")
    in_june = await accounts_now(pipeline, school_id)
    # One CM2 pupil activated his account: at la rentrée he is deactivated, not deleted.
    await activate(pipeline, channel, in_june[ACTIVATED]["account_id"])

    # September, first night: the export cut short to half its pupils. Held.
    rentree.september(keep_share=0.5).write(pipeline.feed_dir, school_uai)
    held = await report_of(spy, await request_run(pipeline, channel, school_uai))
    assert held["status"] == "held", held
    assert held["counts"]["unexpected_leavers"] > 0
    assert await accounts_now(pipeline, school_id) == in_june

    # The next night, the whole September export: applied, no operator.
    for old in (pipeline.feed_dir / school_uai).iterdir():
        old.unlink()
    rentree.september().write(pipeline.feed_dir, school_uai)
    report = await report_of(spy, await request_run(pipeline, channel, school_uai))
    assert report["status"] == "applied" and report["turnover"], report
    cm2 = rentree.PER_LEVEL
    assert report["counts"]["created"] == 2 * (cm2 + 1)  # new CP and the CE2 newcomer, parents
    assert report["counts"]["left"] == report["counts"]["expected_leavers"] == 2 * cm2
    assert report["counts"]["unexpected_leavers"] == 0

    [turned] = await spy.wait_for(topics.SCHOOL_YEAR_TURNED, timeout=60)
    await eventually(pipeline.quiescent, timeout=60, what="the September run settled")
    in_september = await accounts_now(pipeline, school_id)

    # Continuing pupils keep their accounts and logins, in their new class.
    for pupil in rentree.june_pupils():
        key = (pupil.first, pupil.last)
        before = in_june[key]
        if pupil.level == "CM2":  # gone to collège: deactivated if activated, else deleted
            if key == ACTIVATED:
                assert in_september[key]["deactivated"]
            else:
                assert key not in in_september
            # His parent, who has an email, is kept (deactivated) for another school of
            # the platform to take back with a younger child (issue 22).
            assert in_september[(f"Parent{pupil.first}", pupil.last)]["deactivated"]
            continue
        after = in_september[key]
        assert (after["account_id"], after["login"]) == (before["account_id"], before["login"])
        level = pupil.level if key == rentree.REPEATER else _next(pupil.level)
        assert after["classes"] == [rentree.SEPTEMBER_CLASSES[level]], key
        parent = in_september[(f"Parent{pupil.first}", pupil.last)]
        assert parent["account_id"] == in_june[(f"Parent{pupil.first}", pupil.last)]["account_id"]
    assert in_september[rentree.NEWCOMER]["classes"] == [rentree.SEPTEMBER_CLASSES["CE2"]]

    # Last year's classes archived, their teachers detached.
    archived = [c for e in spy.of_type(topics.CLASSES_ARCHIVED) for c in e["data"]["classes"]]
    assert sorted(c["name"] for c in archived) == sorted(rentree.JUNE_CLASSES.values())
    detached = {
        e["data"]["class_id"]
        for e in spy.of_type(topics.CLASS_TEACHERS_ASSIGNED)
        if e["data"]["teachers"] == []
    }
    assert detached == {c["class_id"] for c in archived}
    untaught = sorted(set(rentree.SEPTEMBER_CLASSES.values()) - set(rentree.TAUGHT_IN_SEPTEMBER))
    assert sorted(c["name"] for c in turned["data"]["classes_without_teacher"]) == untaught

    # credential_dispatch no longer prints or scopes last year's classes.
    conn = await pipeline.stack.admin()
    try:
        names = await conn.fetch(
            "SELECT name FROM credential_dispatch.classes WHERE school_id = $1::uuid", school_id
        )
    finally:
        await conn.close()
    assert sorted(r["name"] for r in names) == sorted(rentree.SEPTEMBER_CLASSES.values())

    # The administrator's one mail: the new year, and the classes without a teacher.
    async def notice() -> Any:
        found = [m for m in pipeline.sink.received if "Nouvelle année" in str(m["Subject"])]
        return found or None

    [mail] = await eventually(notice, timeout=60, what="the administrator's notice")
    assert mail["To"] == ADMIN_EMAIL
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "rattacher les enseignants à leurs classes" in text
    for name in untaught:
        assert f"- {name}" in text and f"<li>{name}</li>" in html
    for name in rentree.TAUGHT_IN_SEPTEMBER:
        assert f"- {name}" not in text
    assert not list(mail.iter_attachments())

    # The operator undoes the September run: the school is as it was in June, account by
    # account (the deleted recreated under their logins, the deactivated restored).
    cli = Cli(pipeline.stack)
    undo = ("sync", "revert", school_uai, report["run_id"], "--by", "Opérateur Dupont")
    reverted = await cli.json(*undo, "--yes", "--wait", "--timeout", "60")
    answer = reverted["answer"]["data"]
    assert (answer["trigger"], answer["status"]) == ("revert", "applied")
    assert answer["counts"]["created"] == report["counts"]["left"]
    assert answer["counts"]["left"] == report["counts"]["created"]
    await eventually(pipeline.quiescent, timeout=60, what="the revert settled")
    in_june_again = await accounts_now(pipeline, school_id)
    assert set(in_june_again) == set(in_june)
    for key, before in in_june.items():
        after = in_june_again[key]
        assert (after["login"], after["classes"], after["deactivated"]) == (
            before["login"],
            before["classes"],
            False,
        ), key
        # Never activated, gone to collège: deleted, then recreated (their parents were
        # kept, deactivated, and are restored).
        deleted = key[1].startswith("FAMILLE-CM2") and key != ACTIVATED
        deleted = deleted and not key[0].startswith("Parent")
        assert (after["account_id"] == before["account_id"]) != deleted, key
    [back] = [
        e
        for e in spy.of_type(topics.CLASSES_CREATED)
        if e["correlationid"] == reverted["request_id"]
    ]
    june_ids = {
        c["class_id"] for e in spy.of_type(topics.CLASSES_CREATED)[:1] for c in e["data"]["classes"]
    }
    assert {c["class_id"] for c in back["data"]["classes"]} == june_ids  # the same classes
    # A second undo of the same run is refused: the revert is the school's last run now.
    again = await cli.json(*undo, "--yes", code=2)
    assert "only the school's last applied run can be undone" in again["error"]
    assert pipeline.troubles(besides=(SCHOOL_NOT_KNOWN_YET,)) == []


def _next(level: str) -> str:
    return rentree.LEVELS[rentree.LEVELS.index(level) + 1]
