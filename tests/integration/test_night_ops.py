"""An académie's night as an operator sees it, with onectl as its own process against real
RabbitMQ and Postgres: the September night of Nancy-Metz (a school's turnover applied, one
held, one without a drop, one unchanged; a Reims school apart), reported school by school,
then every held run approved after one confirmation."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aio_pika.abc import AbstractChannel

from services.directory_sync.bootstrap import build
from services.directory_sync.settings import DirectorySyncSettings
from shared import topics
from shared.worker import Worker
from tests.conftest import Stack
from tests.support import rentree
from tests.support.broker import EventSpy
from tests.support.feed import Clock, Feed, small_school
from tests.support.onectl import Cli
from tests.support.orders import uai

PARIS = ZoneInfo("Europe/Paris")
NIGHT = "2026-09-03"
TURNING, CUT_SHORT, NO_DROP, SAME = (uai("054", n) for n in (41, 42, 43, 44))
ELSEWHERE = uai("051", 45)


@pytest.fixture
async def night(
    stack: Stack, channel: AbstractChannel, tmp_path: Path
) -> AsyncIterator[tuple[Feed, Clock]]:
    clock = Clock(datetime(2026, 9, 2, 15, 0, tzinfo=PARIS).astimezone(UTC))
    settings = stack.settings(
        DirectorySyncSettings,
        feed_dir=tmp_path,
        nightly_enabled=True,
        nightly_poll_seconds=0.1,
        run_poll_seconds=0.3,
        db_pool_min=1,
        db_pool_max=4,
    )
    worker: Worker = build(settings, clock=clock.replica())
    await worker.start()
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        yield Feed(channel, stack.exchange, spy, tmp_path), clock
    finally:
        await worker.stop()


async def test_a_september_night_reported_and_its_held_runs_approved(
    night: tuple[Feed, Clock], stack: Stack
) -> None:
    feed, clock = night
    for school in (TURNING, CUT_SHORT):
        rentree.june().write(feed.feed_dir, school)
    small_school(6).write(feed.feed_dir, SAME)
    small_school(6).write(feed.feed_dir, ELSEWHERE)
    for school in (TURNING, CUT_SHORT, NO_DROP, SAME):
        await feed.open_school(school, "Nancy-Metz")
    await feed.open_school(ELSEWHERE, "Reims")
    await feed.spy.wait_for(topics.DIRECTORY_SYNC_REPORTED, count=4, timeout=60)  # no drop, no run

    rentree.september().write(feed.feed_dir, TURNING)
    rentree.september(keep_share=0.5).write(feed.feed_dir, CUT_SHORT)
    clock.now = datetime(2026, 9, 3, 2, 0, 30, tzinfo=PARIS).astimezone(UTC)
    await feed.spy.wait_for(topics.DIRECTORY_SYNC_REPORTED, count=4 + 5, timeout=60)

    cli = Cli(stack)
    report = await cli.json("sync", "report", "--academie", "nancy-metz", "--night", NIGHT)
    assert report["academie"] == "Nancy-Metz" and report["night"] == NIGHT
    status = {r["uai"]: (r["status"], r["turnover"]) for r in report["runs"]}
    assert status == {
        TURNING: ("applied", True),
        CUT_SHORT: ("held", True),  # a turnover too, cut short
        NO_DROP: ("no_drop", False),
        SAME: ("unchanged", False),
    }
    assert report["runs"][0]["uai"] == CUT_SHORT  # what needs an operator comes first
    assert report["summary"] == {"held": 1, "no_drop": 1, "turnover": 1, "unchanged": 1}
    turning = next(r for r in report["runs"] if r["uai"] == TURNING)
    assert turning["counts"]["expected_leavers"] == 2 * rentree.PER_LEVEL
    code, table, _ = await cli("sync", "report", "--academie", "Nancy-Metz", "--night", NIGHT)
    assert code == 0 and "turnover" in table and "(8 expected)" in table
    assert ELSEWHERE not in table

    # Refused: no such académie, no such night, a UAI with an académie.
    missing = await cli.json("sync", "report", "--academie", "Lyon", "--night", NIGHT, code=1)
    assert missing["academies"] == ["Nancy-Metz", "Reims"]
    await cli.json("sync", "report", "--academie", "Reims", "--night", "2026-09-04", code=1)
    await cli.json("sync", "report", TURNING, "--academie", "Reims", "--night", NIGHT, code=2)

    # Approving: shown, then asked; "no" sends nothing.
    args = ("sync", "approve", "--academie", "Nancy-Metz", "--night", NIGHT, "--held")
    code, out, _ = await cli(*args, "--by", "Opérateur Dupont", answer="n\n")
    assert code == 0 and CUT_SHORT in out and "nothing approved" in out
    again = await cli.json("sync", "report", "--academie", "Nancy-Metz", "--night", NIGHT)
    assert again["summary"]["held"] == 1
    await cli.json(*args, "--by", "Opérateur Dupont", code=2)  # --json needs --yes

    code, out, err = await cli(*args, "--by", "Opérateur Dupont", "--wait", answer="y\n")
    assert code == 0, err
    assert f"approval sent for {CUT_SHORT}" in out and "applied" in out
    after = await cli.json("sync", "report", "--academie", "Nancy-Metz", "--night", NIGHT)
    held = next(r for r in after["runs"] if r["uai"] == CUT_SHORT)
    assert (held["status"], held["approved_by"]) == ("applied", "Opérateur Dupont")
    nothing = await cli.json(*args, "--by", "Opérateur Dupont", "--yes")
    assert nothing["approved"] == []
