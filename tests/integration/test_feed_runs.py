"""directory_sync's feed runs against real RabbitMQ and Postgres: first syncs of ONDE drops,
unchanged exports, exact changes, rejected files, dry runs, safety hold and approval, the
nightly run done once by two replicas, and refused requests."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aio_pika.abc import AbstractChannel

from services.directory_sync.bootstrap import build
from services.directory_sync.feed_folder import read_folder
from services.directory_sync.onde import Export, read_drop
from services.directory_sync.settings import DirectorySyncSettings
from shared import topics
from shared.worker import Worker
from tests.conftest import Stack
from tests.support import onde_exports
from tests.support.broker import EventSpy
from tests.support.feed import PUPILS_FILE, Clock, Drop, Feed, Kid, small_school
from tests.support.orders import uai
from tools.onde_generator import generate_school, write_drop
from tools.waits import eventually

CHUNK = 100


def feed_settings(stack: Stack, feed_dir: Path, **overrides: Any) -> DirectorySyncSettings:
    values: dict[str, Any] = {
        "feed_dir": feed_dir,
        "nightly_enabled": False,
        "chunk_size": CHUNK,
        "run_poll_seconds": 0.5,
        "db_pool_min": 1,
        "db_pool_max": 4,
    }
    return stack.settings(DirectorySyncSettings, **{**values, **overrides})


@pytest.fixture
async def feed(stack: Stack, channel: AbstractChannel, tmp_path: Path) -> AsyncIterator[Feed]:
    worker = build(feed_settings(stack, tmp_path))
    await worker.start()
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        yield Feed(channel, stack.exchange, spy, tmp_path)
    finally:
        await worker.stop()


def counts(
    created: int = 0,
    updated: int = 0,
    moved: int = 0,
    left: int = 0,
    unchanged: int = 0,
    expected: int = 0,
) -> dict[str, int]:
    """A report's counts; ``expected`` of the ``left`` leave as the year's turnover wants."""
    return {
        "created": created,
        "updated": updated,
        "moved": moved,
        "left": left,
        "unchanged": unchanged,
        "expected_leavers": expected,
        "unexpected_leavers": left - expected,
    }


async def chunks_of(feed: Feed, report: dict[str, Any]) -> list[dict[str, Any]]:
    async def complete() -> list[dict[str, Any]] | None:
        found = feed.synced(report["run_id"])
        return found if found and len(found) == found[0]["chunks"] else None

    return await eventually(complete, what=f"chunks of run {report['run_id']}")


def people(chunks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [person for chunk in chunks for person in chunk[kind]]


def feed_ids(chunks: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(p["profile"], p["first_name"]): p["feed_id"] for p in people(chunks, "created")}


def export_of(folder: Path) -> Export:
    drop = read_folder(folder, max_file_bytes=1 << 24)
    assert drop is not None
    return read_drop(drop)


# ---------------------------------------------------------------------------------------
# First syncs, unchanged exports
# ---------------------------------------------------------------------------------------


async def test_onde_drops_in_latin1_and_utf8_are_applied_then_found_unchanged(feed: Feed) -> None:
    latin, utf8 = uai("074", 1), uai("054", 2)
    write_drop(feed.feed_dir, latin, classes=4, pupils_per_class=20)
    folder = feed.feed_dir / utf8
    folder.mkdir()
    for name, content in generate_school(utf8, classes=3, pupils_per_class=20, seed=1).items():
        (folder / name).write_bytes(content.decode("iso-8859-1").encode("utf-8"))
    expected = {u: export_of(feed.feed_dir / u) for u in (latin, utf8)}
    orders = {
        latin: (await feed.open_school(latin, "Grenoble"))["order_id"],
        utf8: (await feed.open_school(utf8, "Nancy-Metz"))["order_id"],
    }

    first_chunks: dict[str, list[dict[str, Any]]] = {}
    for school, order_id in orders.items():
        export = expected[school]
        persons = len(export.pupils) + len(export.parents) + len(export.teachers)
        report = await feed.reported(order_id)
        assert report["status"] == "applied" and report["uai"] == school
        assert report["counts"] == counts(created=persons) and report["errors"] == []
        assert report["request_id"] is None and not report["dry_run"]
        chunks = await chunks_of(feed, report)
        assert [c["chunk"] for c in chunks] == list(range(-(-persons // CHUNK)))
        classes = [c._asdict() for c in export.classes]
        assert all(c["classes"] == classes and c["uai"] == school for c in chunks)
        created = people(chunks, "created")
        assert len({p["feed_id"] for p in created}) == persons
        pupils = sorted(p["first_name"] for p in created if p["profile"] == "student")
        assert pupils == sorted(p.first_name for p in export.pupils)  # accents kept
        assert any(not p.isascii() for p in pupils)
        first_chunks[school] = chunks

    # The same bytes again: reported unchanged, and nothing for account_manager.
    for school in (latin, utf8):
        request_id = await feed.request(school)
        report = await feed.reported(request_id)
        persons = len(people(first_chunks[school], "created"))
        assert report["status"] == "unchanged" and report["request_id"] == request_id
        assert report["counts"] == counts(unchanged=persons)
        assert feed.all_synced(school) == first_chunks[school]


@pytest.mark.parametrize("layout", ["BE1D", "PARENTS_2021_DROP"])
async def test_a_real_export_is_applied_then_unchanged_not_held(feed: Feed, layout: str) -> None:
    """Exports written as ONDE writes them (rows that stop after their last child, no final
    line break, downloads named CSVExtraction(n).csv): applied at once; the same files
    again, under the names of the next night's download, unchanged."""
    school = uai("074", 7) if layout == "BE1D" else uai("051", 8)
    folder = feed.feed_dir / school
    folder.mkdir()
    files: dict[str, bytes] = getattr(onde_exports, layout)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    export = export_of(folder)
    persons = len(export.pupils) + len(export.parents) + len(export.teachers)
    order_id = (await feed.open_school(school))["order_id"]

    report = await feed.reported(order_id)
    assert (report["status"], report["errors"]) == ("applied", [])
    assert report["counts"] == counts(created=persons)
    created = people(await chunks_of(feed, report), "created")
    pupils = [p for p in created if p["profile"] == "student"]
    unclassed = {p.first_name for p in export.pupils if p.class_name is None}
    assert [p["classes"] for p in pupils if p["first_name"] in unclassed] == [[]] * len(unclassed)
    assert sorted(p["ine"] or "" for p in pupils) == sorted(p.ine or "" for p in export.pupils)

    for number, (name, content) in enumerate(sorted(files.items()), start=5):
        (folder / name).unlink()
        (folder / f"CSVExtraction({number}).csv").write_bytes(content)
    request_id = await feed.request(school)
    again = await feed.reported(request_id)
    assert again["status"] == "unchanged" and again["counts"] == counts(unchanged=persons)


# ---------------------------------------------------------------------------------------
# Changes, rejected files, dry runs
# ---------------------------------------------------------------------------------------


async def test_exact_changes_then_a_rejected_file_and_a_dry_run_leave_the_snapshot(
    feed: Feed,
) -> None:
    school = uai("074", 10)
    drop = small_school(12)  # 12 pupils, 12 parents, 2 teachers
    drop.write(feed.feed_dir, school)
    first = await feed.reported((await feed.open_school(school))["order_id"])
    assert first["counts"] == counts(created=26)
    first_chunks = await chunks_of(feed, first)
    ids = feed_ids(first_chunks)
    assert {c["version"] for c in first_chunks} == {1}  # runs are numbered per school

    # Pupil 0 moves, pupil 1 and his parent leave, a pupil arrives, parent 2 changes email.
    kids = list(drop.kids)
    kids[0] = kids[0].moved("CE1")
    newcomer = Kid("Nouveau", "ARRIVANT", "15/06/2018", "CP")
    adults = list(drop.adults)
    adults[0] = replace(adults[0], children=(kids[0],))
    adults[2] = replace(adults[2], email="new@example.org")
    changed = Drop([k for k in kids if k != kids[1]] + [newcomer], adults[:1] + adults[2:])
    changed.staff = drop.staff
    changed.write(feed.feed_dir, school)
    report = await feed.reported(await feed.request(school))
    assert report["status"] == "applied"
    assert report["counts"] == counts(created=1, updated=1, moved=1, left=2, unchanged=22)
    chunks = await chunks_of(feed, report)
    assert {c["version"] for c in chunks} == {2}
    assert [p["first_name"] for p in people(chunks, "created")] == ["Nouveau"]
    [moved] = people(chunks, "moved")
    assert moved["feed_id"] == ids[("student", kids[0].first)] and moved["classes"] == ["CE1"]
    [updated] = people(chunks, "updated")
    assert updated["feed_id"] == ids[("relative", adults[2].first)]
    assert updated["email"] == "new@example.org"
    assert updated["children"] == [ids[("student", kids[2].first)]]
    assert sorted(people(chunks, "left")) == sorted(
        [ids[("student", kids[1].first)], ids[("relative", drop.adults[1].first)]]
    )

    # A mandatory column missing: rejected, with where; nothing applied.
    changed.write(feed.feed_dir, school, without_column="Classe")
    rejected = await feed.reported(await feed.request(school))
    assert rejected["status"] == "rejected" and rejected["counts"] == counts()
    [error] = rejected["errors"]
    assert error["file"] == PUPILS_FILE and error["line"] == 1 and "Classe" in error["message"]
    assert feed.synced(rejected["run_id"]) == []

    # Another pupil moves: a dry run reports it only...
    again = Drop(list(changed.kids), list(changed.adults), list(changed.staff))
    again.kids[1] = again.kids[1].moved("CE1")  # pupil 2, whose parent names him in CE1 too
    again.adults[1] = replace(again.adults[1], children=(again.kids[1],))
    again.write(feed.feed_dir, school)
    dry = await feed.reported(await feed.request(school, dry_run=True))
    assert dry["status"] == "dry_run" and dry["dry_run"]
    assert dry["counts"] == counts(moved=1, unchanged=24)
    assert feed.synced(dry["run_id"]) == []
    # ...and a real run then finds the same change against the snapshot of the applied run.
    applied = await feed.reported(await feed.request(school))
    assert applied["status"] == "applied" and applied["counts"] == dry["counts"]
    last = await chunks_of(feed, applied)
    [moved] = people(last, "moved")
    assert moved["feed_id"] == ids[("student", again.kids[1].first)]
    assert {c["version"] for c in last} == {3}  # the rejected run and the dry run made none


# ---------------------------------------------------------------------------------------
# Safety hold and approval
# ---------------------------------------------------------------------------------------


async def test_a_run_losing_half_the_school_is_held_until_approved(feed: Feed) -> None:
    school = uai("051", 20)
    drop = small_school(12)
    drop.write(feed.feed_dir, school)
    first = await feed.reported((await feed.open_school(school, "Reims"))["order_id"])
    ids = feed_ids(await chunks_of(feed, first))

    half = Drop(drop.kids[:6], drop.adults[:6], drop.staff)
    half.write(feed.feed_dir, school)
    request_id = await feed.request(school)
    report = await feed.reported(request_id)
    assert report["status"] == "held" and report["counts"] == counts(left=12, unchanged=14)
    held = await feed.answer(request_id, topics.DIRECTORY_SYNC_HELD)
    assert held["run_id"] == report["run_id"] and held["counts"] == report["counts"]
    assert any("12 of the 26" in reason for reason in held["reasons"])
    assert feed.synced(report["run_id"]) == []

    unknown = await feed.answer(
        await feed.approve(school, str(uuid.uuid4())), topics.COMMAND_REJECTED
    )
    assert unknown["reasons"][0]["field"] == "run_id"

    approval = await feed.approve(school, report["run_id"])
    applied = await feed.reported(approval)
    assert applied["status"] == "applied" and applied["run_id"] == report["run_id"]
    assert applied["counts"] == report["counts"] and applied["request_id"] == approval
    assert (applied["trigger"], applied["approved_by"]) == ("approval", "Opérateur Dupont")
    assert report["trigger"] == "request" and report["approved_by"] is None
    chunks = await chunks_of(feed, applied)
    gone = {ids[("student", k.first)] for k in drop.kids[6:]}
    gone |= {ids[("relative", a.first)] for a in drop.adults[6:]}
    assert set(people(chunks, "left")) == gone and not people(chunks, "created")
    assert {c["version"] for c in chunks} == {2}  # the version it was held with

    again = await feed.answer(await feed.approve(school, report["run_id"]), topics.COMMAND_REJECTED)
    assert "not held" in again["reasons"][0]["message"]

    # Held, then overtaken by an applied run: its approval no longer applies.
    Drop(drop.kids[:2], drop.adults[:2], drop.staff).write(feed.feed_dir, school)
    stale = await feed.reported(await feed.request(school))
    assert stale["status"] == "held"
    Drop(drop.kids[:7], drop.adults[:6], drop.staff).write(feed.feed_dir, school)
    overtaking = await feed.reported(await feed.request(school))
    assert overtaking["status"] == "applied" and overtaking["counts"]["created"] == 1
    assert {c["version"] for c in await chunks_of(feed, overtaking)} == {3}
    refused = await feed.answer(
        await feed.approve(school, stale["run_id"]), topics.COMMAND_REJECTED
    )
    assert "another run was applied" in refused["reasons"][0]["message"]
    assert feed.synced(stale["run_id"]) == []


async def test_an_approved_run_undone_then_its_drop_not_applied_again(feed: Feed) -> None:
    """The held run approved, then undone: the school's previous snapshot applied again as a
    run of its own; the undone drop is then unchanged (not applied again) until a new drop
    comes; a run that is not the school's last applied one is not undone."""
    school = uai("051", 21)
    drop = small_school(12)
    drop.write(feed.feed_dir, school)
    first = await feed.reported((await feed.open_school(school, "Reims"))["order_id"])
    ids = feed_ids(await chunks_of(feed, first))
    Drop(drop.kids[:6], drop.adults[:6], drop.staff).write(feed.feed_dir, school)
    held = await feed.reported(await feed.request(school))
    applied = await feed.reported(await feed.approve(school, held["run_id"]))
    assert applied["status"] == "applied"

    refused = await feed.answer(await feed.revert(school, first["run_id"]), topics.COMMAND_REJECTED)
    assert "only the school's last applied run" in refused["reasons"][0]["message"]
    undo = await feed.revert(school, held["run_id"])
    undone = await feed.reported(undo)
    assert (undone["trigger"], undone["status"], undone["request_id"]) == (
        "revert",
        "applied",
        undo,
    )
    assert undone["run_id"] != held["run_id"]
    assert undone["counts"]["created"] == applied["counts"]["left"] == 12
    chunks = await chunks_of(feed, undone)
    back = {p["feed_id"] for p in people(chunks, "created")}
    assert back == {ids[("student", k.first)] for k in drop.kids[6:]} | {
        ids[("relative", a.first)] for a in drop.adults[6:]
    }
    assert {c["version"] for c in chunks} == {3}  # first 1, approved 2, undone 3

    unchanged = await feed.reported(await feed.request(school))
    assert unchanged["status"] == "unchanged"  # the drop that was undone, not again
    twice = await feed.answer(await feed.revert(school, held["run_id"]), topics.COMMAND_REJECTED)
    assert "only the school's last applied run" in twice["reasons"][0]["message"]
    not_applied = await feed.answer(
        await feed.revert(school, unchanged["run_id"]), topics.COMMAND_REJECTED
    )
    assert "was not applied (unchanged)" in not_applied["reasons"][0]["message"]


# ---------------------------------------------------------------------------------------
# Requests refused
# ---------------------------------------------------------------------------------------


async def test_a_request_for_an_unknown_or_invalid_uai_is_rejected(feed: Feed) -> None:
    unknown = await feed.answer(await feed.request(uai("074", 99)), topics.COMMAND_REJECTED)
    assert [r["field"] for r in unknown["reasons"]] == ["uai"]
    (feed.feed_dir.parent / "outside").mkdir(exist_ok=True)
    hostile = await feed.answer(await feed.request("../outside"), topics.COMMAND_REJECTED)
    assert [r["field"] for r in hostile["reasons"]] == ["uai"]
    assert feed.spy.of_type(topics.DIRECTORY_SYNC_REPORTED) == []


# ---------------------------------------------------------------------------------------
# The night
# ---------------------------------------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")


async def test_two_replicas_run_each_academie_s_night_once(
    stack: Stack, channel: AbstractChannel, tmp_path: Path
) -> None:
    clock = Clock(datetime(2026, 1, 14, 15, 0, tzinfo=PARIS).astimezone(UTC))
    settings = feed_settings(stack, tmp_path, nightly_enabled=True, nightly_poll_seconds=0.1)
    replicas: list[Worker] = [build(settings, clock=clock.replica()) for _ in range(2)]
    await asyncio.gather(*(r.start() for r in replicas))
    admin = await stack.admin()
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        feed = Feed(channel, stack.exchange, spy, tmp_path)
        schools = {
            uai("054", 31): "Nancy-Metz",
            uai("051", 32): "Reims",
            uai("074", 33): "Grenoble",
            uai("074", 34): "Grenoble",  # no drop tonight
        }
        for school, academie in schools.items():
            await feed.open_school(school, academie)

        async def registered() -> bool:
            count = await admin.fetchval("SELECT count(*) FROM directory_sync.feed_registrations")
            return bool(count == len(schools))

        await eventually(registered, what="schools registered")
        for school in list(schools)[:3]:
            small_school(4).write(tmp_path, school)

        clock.now = datetime(2026, 1, 15, 2, 0, 30, tzinfo=PARIS).astimezone(UTC)
        reports = await spy.wait_for(topics.DIRECTORY_SYNC_REPORTED, count=len(schools))
        looked = list(clock.looks)

        async def both_looked_again() -> bool:
            return all(now >= then + 3 for now, then in zip(clock.looks, looked, strict=True))

        await eventually(both_looked_again, what="both replicas checked the night again")
        await eventually(lambda: _all_published(admin), what="outbox published")
        reports = spy.of_type(topics.DIRECTORY_SYNC_REPORTED)
        assert sorted(r["data"]["uai"] for r in reports) == sorted(schools)
        status = {r["data"]["uai"]: r["data"]["status"] for r in reports}
        assert status == {
            **dict.fromkeys(list(schools)[:3], "applied"),
            uai("074", 34): "no_drop",
        }
        nights = await admin.fetch("SELECT academie, night FROM directory_sync.nightly_runs")
        assert sorted(r["academie"] for r in nights) == ["Grenoble", "Nancy-Metz", "Reims"]
        assert {r["night"].isoformat() for r in nights} == {"2026-01-15"}
        assert len(spy.of_type(topics.DIRECTORY_SYNCED)) == 3
    finally:
        await admin.close()
        await asyncio.gather(*(r.stop() for r in replicas))


async def _all_published(admin: Any) -> bool:
    waiting = await admin.fetchval(
        "SELECT count(*) FROM directory_sync.outbox WHERE published_at IS NULL"
    )
    queued = await admin.fetchval(
        "SELECT count(*) FROM directory_sync.sync_runs WHERE state = 'queued'"
    )
    return bool(waiting == 0 and queued == 0)
