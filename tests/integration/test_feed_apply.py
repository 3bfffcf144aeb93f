"""account_manager applies directory.synced (the nightly ONDE feed) against real RabbitMQ
and Postgres: a first import in chunks delivered out of order, redelivery, a second run
(moves, updates, leavers), a leaver restored, the purge, and two replicas at once."""

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from services.account_manager.bootstrap import build
from services.account_manager.events import published_account
from services.account_manager.feed import AccountLifetimes, handle_directory_synced
from services.account_manager.feed_store import PostgresFeedStore
from services.account_manager.settings import AccountManagerSettings
from shared import topics
from shared.contracts.commands import AccountActivated
from shared.contracts.directory import FeedClass
from shared.envelope import Envelope, new_event
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy, drain_queue, publish_event, wait_for_queue
from tests.support.feed_events import (
    FedSchool,
    chunk,
    moved,
    open_automatic_school,
    parent,
    population,
    pupil,
    send,
    teacher,
)
from tools.waits import eventually

CLASSES = [FeedClass(name="CP", level="CP"), FeedClass(name="CM1", level="CM1")]
ACCOUNT_EVENTS = (
    topics.CLASSES_CREATED,
    topics.ACCOUNTS_CREATED,
    topics.ACCOUNTS_UPDATED,
    topics.ACCOUNTS_DEACTIVATED,
    topics.ACCOUNTS_DELETED,
)


@pytest.fixture
def worker(account_manager: Worker) -> Worker:
    return account_manager


@pytest.fixture
async def spy(stack: Stack, channel: AbstractChannel) -> EventSpy:
    watching = EventSpy()
    await watching.start(channel, stack.exchange)
    return watching


@contextlib.asynccontextmanager
async def watched_worker(
    stack: Stack, channel: AbstractChannel, **settings: Any
) -> AsyncIterator[EventSpy]:
    """An account_manager with its own ``settings``, running, and a spy on its events."""
    running = build(stack.settings(AccountManagerSettings, **settings))
    await running.start()
    try:
        watching = EventSpy()
        await watching.start(channel, stack.exchange)
        yield watching
    finally:
        await running.stop()


async def fetch(stack: Stack, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await stack.admin()
    try:
        await conn.execute("SET search_path TO account_manager")
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


LIFETIMES = AccountLifetimes(activation_ttl=timedelta(days=90), grace=timedelta(days=90))


async def apply_directly(
    worker: Worker, school: FedSchool, classes: list[FeedClass], **changes: Any
) -> list[Envelope[Any]]:
    """A one-chunk run applied by the handler in a transaction of its own, as the consumer
    runs it; the events it emitted."""
    assert worker.context is not None
    event = new_event(
        chunk(school, uuid.uuid4(), 0, 1, classes, **changes),
        source="urn:one:tests",
        correlationid="direct",
    )
    async with worker.context.pool.acquire() as conn, conn.transaction():
        store = PostgresFeedStore(conn)
        await handle_directory_synced(
            event, store=store, lifetimes=LIFETIMES, now=datetime.now(UTC)
        )
    return store.emitted


async def outcome(spy: EventSpy, cause: Envelope[Any], *types: str) -> dict[str, dict[str, Any]]:
    """The events ``cause`` led to, by type, once its last expected one is out."""

    async def out() -> dict[str, dict[str, Any]] | None:
        found = {e["type"]: e for e in spy.events if e.get("causationid") == cause.id}
        return found if set(types) <= set(found) else None

    return await eventually(out, timeout=20, what=f"{types} caused by {cause.id}")


def by_name(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{a['first_name']} {a['last_name']}": a for a in event["data"]["accounts"]}


async def activate(channel: AbstractChannel, stack: Stack, account_id: str) -> None:
    await publish_event(
        channel,
        stack.exchange,
        AccountActivated(account_id=uuid.UUID(account_id)),
        correlationid="ent",
    )

    async def done() -> bool:
        rows = await fetch(
            stack,
            "SELECT 1 FROM accounts WHERE account_id = $1 AND activated_at IS NOT NULL",
            uuid.UUID(account_id),
        )
        return bool(rows)

    await eventually(done, what=f"activation of {account_id}")


async def test_first_import_out_of_order_then_moves_leavers_and_a_return(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    school = await open_automatic_school(channel, stack.exchange, spy)
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    leo = pupil("Léo", "Lefèvre", date(2016, 5, 2), "CM1")
    tom = pupil("Tom", "Martin", date(2019, 1, 9), "CP")
    jean = pupil("Jean", "Dupont", date(2016, 7, 1), "CM1")
    jean_too = pupil("Jean", "Dupont", date(2019, 2, 2), "CP")  # a homonym: jean.dupont2
    anne = parent("Anne", "Lefèvre", zoe, leo, email="anne@example.org")
    marc = parent("Marc", "Martin", tom)
    curie = teacher("Marie", "Curie", "CP", email="marie.curie@example.org")
    durand = teacher("Paul", "Durand")  # no class in the file: left to the administrator
    run = uuid.uuid4()

    # Parents (chunk 1) are applied before their children (chunk 0).
    parents_first = await send(
        channel,
        stack.exchange,
        chunk(school, run, 1, 2, CLASSES, created=[anne, marc, curie, durand]),
    )
    first = await outcome(spy, parents_first, topics.CLASSES_CREATED, topics.ACCOUNTS_CREATED)
    assert {c["name"]: c["level"] for c in first[topics.CLASSES_CREATED]["data"]["classes"]} == {
        "CP": "CP",
        "CM1": "CM1",
    }
    early = by_name(first[topics.ACCOUNTS_CREATED])
    assert early["Anne Lefèvre"]["children"] == [] and early["Anne Lefèvre"]["classes"] == []
    assert early["Marie Curie"]["classes"] == ["CP"]
    assert early["Paul Durand"]["classes"] == []
    pupils_chunk = chunk(school, run, 0, 2, CLASSES, created=[zoe, leo, tom, jean, jean_too])
    children_last = await send(channel, stack.exchange, pupils_chunk)
    second = await outcome(spy, children_last, topics.ACCOUNTS_CREATED, topics.ACCOUNTS_UPDATED)
    assert topics.CLASSES_CREATED not in second  # the classes are there already
    kids = by_name(second[topics.ACCOUNTS_CREATED])  # one "Jean Dupont" of two here
    [jean_too_id] = [
        a["account_id"]
        for a in second[topics.ACCOUNTS_CREATED]["data"]["accounts"]
        if a["birth_date"] == "2019-02-02"
    ]
    assert kids["Zoé Lefèvre"]["classes"] == ["CP"]
    created = [
        *first[topics.ACCOUNTS_CREATED]["data"]["accounts"],
        *second[topics.ACCOUNTS_CREATED]["data"]["accounts"],
    ]
    logins = [a["login"] for a in created]
    assert len(created) == len(set(logins)) == 9
    assert {"jean.dupont", "jean.dupont2", "zoe.lefevre", "anne.lefevre"} <= set(logins)
    codes = [a["activation_code"] for a in created]
    assert len(set(codes)) == 9 and all(len(c) == 8 for c in codes)
    assert all(a["activation_expires_at"] for a in created)
    assert second[topics.ACCOUNTS_CREATED]["data"]["provisioning"] == "automatic"
    assert second[topics.ACCOUNTS_CREATED]["data"]["uai"] == school.uai
    # The parents learnt their children and their classes when the children came.
    parents = by_name(second[topics.ACCOUNTS_UPDATED])
    assert set(parents) == {"Anne Lefèvre", "Marc Martin"}
    ids = {name: a["account_id"] for name, a in [*early.items(), *kids.items()]}
    assert sorted(parents["Anne Lefèvre"]["children"]) == sorted(
        [ids["Zoé Lefèvre"], ids["Léo Lefèvre"]]
    )
    assert sorted(parents["Anne Lefèvre"]["classes"]) == ["CM1", "CP"]
    assert parents["Marc Martin"]["classes"] == ["CP"]
    assert await _school_state(stack, school) == {
        "accounts": 10,  # the administrator and 9 from the feed
        "links": 3,
        "parent classes": 3,
        "pupil classes": 5,
        "teaching": [("Marie Curie", "CP")],
    }

    # The same chunk again (same event id): nothing changes, nothing is published.
    before = await fetch(stack, "SELECT * FROM accounts ORDER BY account_id")
    published = [e for e in spy.events if e["type"] in ACCOUNT_EVENTS]
    await send(channel, stack.exchange, pupils_chunk, event_id=children_last.id)

    async def seen_twice() -> bool:
        return worker._consumer.counts["duplicate"] >= 1

    await eventually(seen_twice, what="redelivery acknowledged")
    assert await fetch(stack, "SELECT * FROM accounts ORDER BY account_id") == before
    assert [e for e in spy.events if e["type"] in ACCOUNT_EVENTS] == published

    # Second run: Zoé moves to CM1, Anne changes email, two pupils leave.
    await activate(channel, stack, ids["Tom Martin"])
    run2 = uuid.uuid4()
    changes = await send(
        channel,
        stack.exchange,
        chunk(
            school,
            run2,
            0,
            1,
            CLASSES,
            moved=[moved(zoe, "CM1")],
            updated=[anne.model_copy(update={"email": "anne.lefevre@example.org"})],
            left=[tom.feed_id, jean_too.feed_id],
        ),
    )
    result = await outcome(
        spy,
        changes,
        topics.ACCOUNTS_UPDATED,
        topics.ACCOUNTS_DEACTIVATED,
        topics.ACCOUNTS_DELETED,
    )
    updated = by_name(result[topics.ACCOUNTS_UPDATED])
    assert set(updated) == {"Zoé Lefèvre", "Anne Lefèvre", "Marc Martin"}
    assert updated["Zoé Lefèvre"]["classes"] == ["CM1"]
    assert updated["Anne Lefèvre"]["email"] == "anne.lefevre@example.org"
    assert updated["Anne Lefèvre"]["classes"] == ["CM1"]  # both her children are in CM1 now
    assert updated["Marc Martin"]["classes"] == [] and updated["Marc Martin"]["children"] == []
    assert result[topics.ACCOUNTS_UPDATED]["data"]["restored"] == []
    [gone] = result[topics.ACCOUNTS_DEACTIVATED]["data"]["accounts"]
    assert gone["account_id"] == ids["Tom Martin"]
    [deleted] = result[topics.ACCOUNTS_DELETED]["data"]["accounts"]
    assert deleted["account_id"] == jean_too_id
    [tom_row] = await fetch(
        stack,
        "SELECT deactivated_at, activation_code FROM accounts WHERE account_id = $1",
        uuid.UUID(ids["Tom Martin"]),
    )
    assert tom_row["deactivated_at"] is not None and tom_row["activation_code"] is None
    assert not await fetch(
        stack, "SELECT 1 FROM accounts WHERE account_id = $1", uuid.UUID(jean_too_id)
    )

    # Third run: Tom comes back under a new feed id: his account, restored.
    tom_again = pupil("Tom", "Martin", date(2019, 1, 9), "CM1")
    back = await send(
        channel,
        stack.exchange,
        chunk(
            school,
            uuid.uuid4(),
            0,
            1,
            CLASSES,
            created=[tom_again],
            updated=[parent("Marc", "Martin", tom_again, feed_id=marc.feed_id)],
        ),
    )
    returned = (await outcome(spy, back, topics.ACCOUNTS_UPDATED))[topics.ACCOUNTS_UPDATED]
    assert returned["data"]["restored"] == [ids["Tom Martin"]]
    restored = by_name(returned)
    assert restored["Tom Martin"]["account_id"] == ids["Tom Martin"]
    assert restored["Tom Martin"]["login"] == "tom.martin"
    assert restored["Tom Martin"]["classes"] == ["CM1"]
    assert restored["Marc Martin"]["classes"] == ["CM1"]
    assert restored["Marc Martin"]["children"] == [ids["Tom Martin"]]
    assert not any(e.get("causationid") == back.id for e in spy.of_type(topics.ACCOUNTS_CREATED))
    [row] = await fetch(stack, "SELECT deactivated_at FROM accounts WHERE login = 'tom.martin'")
    assert row["deactivated_at"] is None
    assert await drain_queue(channel, stack.names.dead_letter_queue) == []


async def test_runs_of_a_school_apply_in_order_and_an_older_one_is_refused(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """Run 2 moves Zoé to CM1 while run 1, which creates her in CP, is half applied: run
    2 waits for the rest of run 1, so Zoé ends in CM1, not back in the older run's CP. A
    chunk of run 1 that comes again after run 2 is dead-lettered with its reason."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    tom = pupil("Tom", "Martin", date(2019, 1, 9), "CP")
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    one = uuid.uuid4()
    half = await send(
        channel, stack.exchange, chunk(school, one, 0, 2, CLASSES, version=1, created=[tom])
    )
    await outcome(spy, half, topics.ACCOUNTS_CREATED)
    later = await send(
        channel,
        stack.exchange,
        chunk(school, uuid.uuid4(), 0, 1, CLASSES, version=2, moved=[moved(zoe, "CM1")]),
    )
    rest = chunk(school, one, 1, 2, CLASSES, version=1, created=[zoe])
    await send(channel, stack.exchange, rest)
    # Applied first, run 2 would have created Zoé in CM1 and run 1 put her back in CP.
    done = await outcome(spy, later, topics.ACCOUNTS_UPDATED)
    assert by_name(done[topics.ACCOUNTS_UPDATED])["Zoé Lefèvre"]["classes"] == ["CM1"]

    await send(channel, stack.exchange, rest)  # sent again, under another event id
    [dead] = await wait_for_queue(channel, stack.names.dead_letter_queue)
    reason = str(dead.headers["x-one-reason"])
    assert "run 1 of school" in reason and "older than its run 2" in reason
    rows = await fetch(
        stack,
        "SELECT c.name FROM account_classes JOIN classes c USING (class_id)"
        " JOIN accounts a USING (account_id) WHERE a.feed_id = $1",
        zoe.feed_id,
    )
    assert [r["name"] for r in rows] == ["CM1"]


async def test_a_new_school_s_second_run_waits_for_its_first(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """A new school's second run (Zoé moves) comes before its first (retried, say): it
    waits, and the first creates everyone before Zoé moves. Taken first, it would have
    made Zoé alone, and the first run, then older, would have been refused: Tom lost."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    tom = pupil("Tom", "Martin", date(2019, 1, 9), "CP")
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    later = await send(
        channel,
        stack.exchange,
        chunk(school, uuid.uuid4(), 0, 1, CLASSES, version=2, moved=[moved(zoe, "CM1")]),
    )
    first = await send(
        channel,
        stack.exchange,
        chunk(school, uuid.uuid4(), 0, 1, CLASSES, version=1, created=[tom, zoe]),
    )
    made = await outcome(spy, first, topics.ACCOUNTS_CREATED)
    assert set(by_name(made[topics.ACCOUNTS_CREATED])) == {"Tom Martin", "Zoé Lefèvre"}
    done = await outcome(spy, later, topics.ACCOUNTS_UPDATED)
    assert by_name(done[topics.ACCOUNTS_UPDATED])["Zoé Lefèvre"]["classes"] == ["CM1"]
    assert await drain_queue(channel, stack.names.dead_letter_queue) == []


async def test_a_school_fed_before_runs_were_numbered_takes_its_next_run(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """A school fed by chunks without a version (before runs were numbered) takes the
    first numbered run that comes, whatever its number, and counts from there."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    await apply_directly(worker, school, CLASSES, created=[zoe])  # no version
    assert (
        await fetch(stack, "SELECT * FROM feed_runs WHERE school_id = $1", school.school_id) == []
    )
    emitted = await apply_directly(worker, school, CLASSES, version=4, moved=[moved(zoe, "CM1")])
    [updated] = [e.data for e in emitted if e.type == topics.ACCOUNTS_UPDATED]
    assert [a.classes for a in updated.accounts] == [["CM1"]]
    [run] = await fetch(
        stack, "SELECT version, applied FROM feed_runs WHERE school_id = $1", school.school_id
    )
    assert (run["version"], run["applied"]) == (4, 1)


async def _school_state(stack: Stack, school: FedSchool) -> dict[str, Any]:
    sid = school.school_id
    [counts] = await fetch(
        stack,
        "SELECT (SELECT count(*) FROM accounts WHERE school_id = $1) AS accounts,"
        " (SELECT count(*) FROM parent_children) AS links,"
        " (SELECT count(*) FROM account_classes ac JOIN accounts a USING (account_id)"
        "  WHERE a.profile = 'relative') AS parent_classes,"
        " (SELECT count(*) FROM account_classes ac JOIN accounts a USING (account_id)"
        "  WHERE a.profile = 'student') AS pupil_classes",
        sid,
    )
    teaching = await fetch(
        stack,
        "SELECT a.first_name || ' ' || a.last_name AS who, c.name FROM class_teachers t"
        " JOIN accounts a USING (account_id) JOIN classes c USING (class_id) ORDER BY 1",
    )
    return {
        "accounts": counts["accounts"],
        "links": counts["links"],
        "parent classes": counts["parent_classes"],
        "pupil classes": counts["pupil_classes"],
        "teaching": [(r["who"], r["name"]) for r in teaching],
    }


async def test_an_activated_leaver_is_removed_after_the_grace_period(
    stack: Stack, channel: AbstractChannel
):
    async with watched_worker(
        stack, channel, deactivation_grace_days=0.0, purge_interval_seconds=0.2
    ) as spy:
        school = await open_automatic_school(channel, stack.exchange, spy)
        lou = pupil("Lou", "Roux", date(2018, 6, 1), "CP")
        first = await send(
            channel, stack.exchange, chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[lou])
        )
        made = (await outcome(spy, first, topics.ACCOUNTS_CREATED))[topics.ACCOUNTS_CREATED]
        lou_id = made["data"]["accounts"][0]["account_id"]
        await activate(channel, stack, lou_id)
        leaving = await send(
            channel, stack.exchange, chunk(school, uuid.uuid4(), 0, 1, CLASSES, left=[lou.feed_id])
        )
        await outcome(spy, leaving, topics.ACCOUNTS_DEACTIVATED)

        async def purged_once() -> list[dict[str, Any]]:
            return [
                e
                for e in spy.of_type(topics.ACCOUNTS_DELETED)
                if e["correlationid"] == f"purge:{school.school_id}"
            ]

        [purged] = await eventually(purged_once, what="the purge")
        assert [a["account_id"] for a in purged["data"]["accounts"]] == [lou_id]
        assert not await fetch(
            stack, "SELECT 1 FROM accounts WHERE account_id = $1", uuid.UUID(lou_id)
        )
        assert not await fetch(stack, "SELECT 1 FROM accounts WHERE feed_id = $1", lou.feed_id)


def cut(people: list[Any], parts: int, seed: int) -> list[list[Any]]:
    """People shuffled across ``parts`` chunks: parents and children apart, in any order."""
    shuffled = list(people)
    random.Random(seed).shuffle(shuffled)
    return [shuffled[i::parts] for i in range(parts)]


async def test_two_replicas_apply_chunks_of_one_school_at_once(
    stack: Stack, channel: AbstractChannel
):
    workers = [build(stack.settings(AccountManagerSettings, db_pool_max=8)) for _ in range(2)]
    await asyncio.gather(*(w.start() for w in workers))
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        names = ["CP A", "CP B", "CE1", "CE2", "CM1", "CM2"]
        classes = [FeedClass(name=n, level=n.split()[0]) for n in names]
        schools, chunks, people = [], [], 0
        for number in (1, 2):
            school = await open_automatic_school(channel, stack.exchange, spy, number=number)
            # No two persons of a school share a login base, so nothing but the school
            # lock keeps its chunks apart; the two schools have the same names, so their
            # logins collide across schools (jean-leo.martin, jean-leo.martin2).
            kids, adults, staff = population(
                7, pupils=300, classes=names, teachers=8, homonyms=False
            )
            parts = cut([*kids, *adults, *staff], 12, seed=1)
            run = uuid.uuid4()
            chunks += [chunk(school, run, i, 12, classes, created=p) for i, p in enumerate(parts)]
            schools.append((school, kids, adults))
            people += len(kids) + len(adults) + len(staff)
        random.Random(3).shuffle(chunks)
        started = time.perf_counter()
        sent = await asyncio.gather(*(send(channel, stack.exchange, c) for c in chunks))
        for event in sent:
            await outcome(spy, event, topics.ACCOUNTS_CREATED)
        elapsed = time.perf_counter() - started
        print(f"\n2 replicas: {people} persons in {len(chunks)} chunks, {elapsed:.2f}s end to end")

        created = [a for e in spy.of_type(topics.ACCOUNTS_CREATED) for a in e["data"]["accounts"]]
        logins = [a["login"] for a in created]
        assert len(logins) == len(set(logins)) == people + 2  # and the two administrators
        [total] = await fetch(stack, "SELECT count(*) AS n FROM accounts")
        assert total["n"] == people + 2
        expected_links = sum(len(p.children) for _, _, adults in schools for p in adults)
        [links] = await fetch(stack, "SELECT count(*) AS n FROM parent_children")
        assert links["n"] == expected_links
        # Every parent is in exactly the classes of his children.
        assert not await fetch(
            stack,
            "SELECT p.account_id FROM accounts p WHERE p.profile = 'relative'"
            " AND array(SELECT class_id FROM account_classes WHERE account_id = p.account_id"
            "  ORDER BY 1) IS DISTINCT FROM array(SELECT DISTINCT ac.class_id"
            "  FROM parent_children pc JOIN account_classes ac ON ac.account_id = pc.child_id"
            "  WHERE pc.parent_id = p.account_id ORDER BY 1)",
        )
        [placed] = await fetch(
            stack,
            "SELECT count(*) AS n FROM account_classes ac JOIN accounts a USING (account_id)"
            " WHERE a.profile = 'student'",
        )
        assert placed["n"] == sum(len(kids) for _, kids, _ in schools)
        [made] = await fetch(stack, "SELECT count(*) AS n FROM classes")
        assert made["n"] == 2 * len(names)
        assert len(spy.of_type(topics.CLASSES_CREATED)) == 2
        assert all(w._consumer.counts["applied"] > 0 for w in workers)
        assert sum(w._consumer.counts["retry"] for w in workers) == 0
        assert await drain_queue(channel, stack.names.dead_letter_queue) == []
    finally:
        await asyncio.gather(*(w.stop() for w in workers))


async def test_rate_of_a_500_person_first_import_chunk(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """Not a timed test: prints persons/s of the apply alone (handler and SQL, in one
    transaction, as the consumer runs it) for 500-person chunks of first imports."""
    assert worker.context is not None
    names = ["CP", "CE1", "CE2", "CM1", "CM2"]
    classes = [FeedClass(name=n, level=n) for n in names]
    rates = []
    for number in range(1, 4):
        school = await open_automatic_school(channel, stack.exchange, spy, number=number)
        kids, adults, staff = population(number, pupils=220, classes=names, teachers=10)
        persons = [*kids, *adults, *staff][:500]
        assert len(persons) == 500
        data = chunk(school, uuid.uuid4(), 0, 1, classes, created=persons)
        event = new_event(data, source="urn:one:tests", correlationid="bench")
        async with worker.context.pool.acquire() as conn, conn.transaction():
            started = time.perf_counter()
            await handle_directory_synced(
                event, store=PostgresFeedStore(conn), lifetimes=LIFETIMES, now=datetime.now(UTC)
            )
            elapsed = time.perf_counter() - started
        rates.append(len(persons) / elapsed)
        print(f"\n{len(persons)} persons applied in {elapsed * 1000:.0f} ms")
        [count] = await fetch(
            stack, "SELECT count(*) AS n FROM accounts WHERE school_id = $1", school.school_id
        )
        assert count["n"] == len(persons) + 1
    print(f"persons/s per chunk: {', '.join(f'{r:.0f}' for r in rates)}")


async def test_statistics_follow_a_first_import(stack: Stack, channel: AbstractChannel):
    """The worker analyses its tables once a burst has changed them (this machine's
    Postgres runs without autovacuum: only the worker can have analysed them)."""
    async with watched_worker(
        stack,
        channel,
        statistics_interval_seconds=0.2,
        statistics_min_changes=200,
        statistics_share=0.5,
    ) as spy:
        school = await open_automatic_school(channel, stack.exchange, spy)
        kids, adults, staff = population(5, pupils=200, classes=["CP", "CE1"], teachers=4)
        data = chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[*kids, *adults, *staff])
        await outcome(spy, await send(channel, stack.exchange, data), topics.ACCOUNTS_CREATED)

        burst = {"accounts", "account_classes", "parent_children"}

        async def analysed() -> list[dict[str, Any]] | None:
            # One table after another: wait for the three, not for the first.
            found = await fetch(
                stack,
                "SELECT t.relname, c.reltuples FROM pg_stat_user_tables t"
                " JOIN pg_class c ON c.oid = t.relid WHERE schemaname = 'account_manager'"
                " AND t.relname = ANY($1::text[]) AND last_analyze IS NOT NULL",
                sorted(burst),
            )
            return found if {r["relname"] for r in found} == burst else None

        found = await eventually(analysed, timeout=20, what="the import's tables analysed")
        accounts = next(r for r in found if r["relname"] == "accounts")
        assert accounts["reltuples"] >= len(kids) + len(adults) + len(staff)


async def test_feed_classes_taken_over_relevelled_added_and_left_alone(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """A class the school already has under the export's name becomes the feed's; a
    level the export changes is changed; a class new in the export is created; a night
    that changes no class creates none and leaves every class row as it was."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    [made_by_hand] = await fetch(
        stack,
        "INSERT INTO classes (class_id, school_id, name, level) VALUES ($1, $2, 'CE1', NULL)"
        " RETURNING class_id",
        uuid.uuid4(),
        school.school_id,
    )
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    leo = pupil("Léo", "Roy", date(2018, 5, 2), "CE1")

    async def classes() -> dict[str, tuple[Any, str | None, Any]]:
        rows = await fetch(
            stack,
            "SELECT class_id, name, level, xmin::text::bigint AS version FROM classes"
            " WHERE school_id = $1",
            school.school_id,
        )
        return {r["name"]: (r["class_id"], r["level"], r["version"]) for r in rows}

    first = await apply_directly(
        worker,
        school,
        [FeedClass(name="CP", level="CP"), FeedClass(name="CE1", level="CE1")],
        created=[zoe, leo],
    )
    [created] = [e.data for e in first if e.type == topics.CLASSES_CREATED]
    assert [c.name for c in created.classes] == ["CP"]  # CE1 was the school's already
    after_first = await classes()
    assert after_first["CE1"][:2] == (made_by_hand["class_id"], "CE1")
    placed = await fetch(
        stack,
        "SELECT class_id FROM account_classes JOIN accounts USING (account_id)"
        " WHERE school_id = $1 AND first_name = 'Léo'",
        school.school_id,
    )
    assert [r["class_id"] for r in placed] == [made_by_hand["class_id"]]

    tonight = [
        FeedClass(name="CP", level="CP"),
        FeedClass(name="CE1", level="CE1-CE2"),
        FeedClass(name="CM2", level="CM2"),
    ]
    second = await apply_directly(worker, school, tonight, updated=[zoe, leo])
    [created] = [e.data for e in second if e.type == topics.CLASSES_CREATED]
    assert [c.name for c in created.classes] == ["CM2"]
    after_second = await classes()
    assert after_second["CE1"][1] == "CE1-CE2" and after_second["CM2"][1] == "CM2"
    assert after_second["CP"] == after_first["CP"]  # unchanged, not rewritten

    third = await apply_directly(worker, school, tonight, updated=[zoe, leo])  # the same
    assert not [e for e in third if e.type == topics.CLASSES_CREATED]
    assert await classes() == after_second  # same rows, same versions


async def test_an_account_made_by_hand_is_taken_over_by_the_feed(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """A teacher the administrator created before the school's first feed is the feed's
    teacher of the same name: his account, now carrying his feed id, not a second one."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    [by_hand] = await fetch(
        stack,
        "INSERT INTO accounts (account_id, school_id, profile, first_name, last_name, login,"
        " first_folded, last_folded) VALUES ($1, $2, 'teacher', 'Marie', 'Curie',"
        " 'marie.curie', 'marie', 'curie') RETURNING account_id",
        uuid.uuid4(),
        school.school_id,
    )
    curie = teacher("Marie", "Curie", "CP", email="marie.curie@example.org")
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    emitted = await apply_directly(worker, school, CLASSES, created=[curie, zoe])
    [made] = [e.data for e in emitted if e.type == topics.ACCOUNTS_CREATED]
    assert [a.first_name for a in made.accounts] == ["Zoé"]
    [updated] = [e.data for e in emitted if e.type == topics.ACCOUNTS_UPDATED]
    [marie] = updated.accounts
    assert (marie.account_id, marie.login, marie.classes) == (
        by_hand["account_id"],
        "marie.curie",
        ["CP"],
    )
    rows = await fetch(
        stack,
        "SELECT account_id, feed_id FROM accounts WHERE school_id = $1 AND profile = 'teacher'",
        school.school_id,
    )
    assert rows == [{"account_id": by_hand["account_id"], "feed_id": curie.feed_id}]


async def test_created_accounts_are_published_as_a_read_of_them_gives(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """A chunk publishes the accounts it creates from the rows it inserted, without reading
    them back: what it publishes is what a read of the database gives afterwards, logins
    (homonyms numbered), codes, classes and children included."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    kids, adults, staff = population(11, pupils=40, classes=["CP", "CM1"], teachers=3)
    emitted = await apply_directly(worker, school, CLASSES, created=[*kids, *adults, *staff])
    [made] = [e.data for e in emitted if e.type == topics.ACCOUNTS_CREATED]
    assert len(made.accounts) == len(kids) + len(adults) + len(staff)
    assert any(a.login[-1].isdigit() for a in made.accounts)  # homonyms among them
    assert worker.context is not None
    async with worker.context.pool.acquire() as conn:
        views = await PostgresFeedStore(conn).account_views([a.account_id for a in made.accounts])
    for account in made.accounts:
        view = views[account.account_id]
        codes = (account.activation_code, account.activation_expires_at)
        assert codes == (view.activation_code, view.activation_expires_at)
        fields = account.model_dump(exclude={"activation_code", "activation_expires_at"})
        assert fields == published_account(view).model_dump()
    assert any(a.children for a in made.accounts) and any(a.classes for a in made.accounts)
    # Each parent is in the classes of his children (DESIGN §4).
    by_id = {a.account_id: a for a in made.accounts}
    parents = [a for a in made.accounts if a.profile == "relative"]
    assert parents and all(
        sorted(p.class_ids) == sorted({c for k in p.children for c in by_id[k].class_ids})
        for p in parents
    )


async def _family_rows(stack: Stack, parent_id: uuid.UUID) -> dict[str, list[tuple[str, str]]]:
    """A parent's stored links and classes, each row with the transaction that wrote it."""
    links = await fetch(
        stack,
        "SELECT child_id::text AS id, xmin::text AS written FROM parent_children"
        " WHERE parent_id = $1 ORDER BY 1",
        parent_id,
    )
    classes = await fetch(
        stack,
        "SELECT class_id::text AS id, xmin::text AS written FROM account_classes"
        " WHERE account_id = $1 ORDER BY 1",
        parent_id,
    )
    feed = await fetch(
        stack,
        "SELECT l.child_feed_id::text AS id, l.xmin::text AS written FROM feed_links l"
        " JOIN accounts a ON a.school_id = l.school_id AND a.feed_id = l.parent_feed_id"
        " WHERE a.account_id = $1 ORDER BY 1",
        parent_id,
    )
    return {
        kind: [(r["id"], r["written"]) for r in rows]
        for kind, rows in (("links", links), ("classes", classes), ("feed", feed))
    }


async def test_a_parent_s_new_email_leaves_his_links_alone_and_new_children_relink_him(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """Most nights a parent is in a chunk for his email, his children unchanged: his links
    and classes are not written again. When the feed gives him other children, they are."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    zoe = pupil("Zoé", "Lefèvre", date(2019, 3, 14), "CP")
    leo = pupil("Léo", "Lefèvre", date(2016, 5, 2), "CM1")
    anne = parent("Anne", "Lefèvre", zoe, leo, email="anne@example.org")
    marc = parent("Marc", "Lefèvre", leo)
    emitted = await apply_directly(worker, school, CLASSES, created=[zoe, leo, anne, marc])
    [made] = [e.data for e in emitted if e.type == topics.ACCOUNTS_CREATED]
    ids = {a.first_name: a.account_id for a in made.accounts}
    before = await _family_rows(stack, ids["Anne"])
    assert len(before["links"]) == len(before["feed"]) == len(before["classes"]) == 2

    new_email = anne.model_copy(update={"email": "anne.lefevre@example.org"})
    emitted = await apply_directly(worker, school, CLASSES, updated=[new_email])
    [updated] = [e.data for e in emitted if e.type == topics.ACCOUNTS_UPDATED]
    [published] = updated.accounts
    assert published.email == "anne.lefevre@example.org"
    assert sorted(published.children) == sorted([ids["Zoé"], ids["Léo"]])
    assert sorted(published.classes) == ["CM1", "CP"]
    assert await _family_rows(stack, ids["Anne"]) == before  # not one row written again

    # Marc is now given Zoé instead of Léo: his links and classes follow.
    emitted = await apply_directly(
        worker, school, CLASSES, updated=[parent("Marc", "Lefèvre", zoe, feed_id=marc.feed_id)]
    )
    [updated] = [e.data for e in emitted if e.type == topics.ACCOUNTS_UPDATED]
    [published] = updated.accounts
    assert (published.children, published.classes) == ([ids["Zoé"]], ["CP"])
    after = await _family_rows(stack, ids["Marc"])
    assert [child for child, _ in after["links"]] == [str(ids["Zoé"])]
    assert [child for child, _ in after["feed"]] == [str(zoe.feed_id)]


async def test_a_pupil_without_a_class_and_a_teacher_of_two_classes(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """What real exports give: a pupil the pupils file places in no class gets his account
    at school level, his parent linked to him; a teacher of two classes is attached to
    both; a pupil's INE travels without changing his account."""
    school = await open_automatic_school(channel, stack.exchange, spy)
    hugo = pupil("Hugo", "Durand", date(2019, 2, 11), "CP", ine="3333333333C")
    hugo = hugo.model_copy(update={"classes": []})
    paul = parent("Paul", "Durand", hugo)
    roux = teacher("Olivier", "Roux", "CP", "CM1")
    emitted = await apply_directly(worker, school, CLASSES, created=[hugo, paul, roux])
    [made] = [e.data for e in emitted if e.type == topics.ACCOUNTS_CREATED]
    by_name = {a.first_name: a for a in made.accounts}
    assert (by_name["Hugo"].classes, by_name["Hugo"].class_ids) == ([], [])
    assert by_name["Paul"].children == [by_name["Hugo"].account_id]
    assert by_name["Paul"].classes == []
    assert sorted(by_name["Olivier"].classes) == ["CM1", "CP"]
    rows = await fetch(
        stack,
        "SELECT c.name FROM class_teachers t JOIN classes c USING (class_id)"
        " WHERE t.account_id = $1 ORDER BY 1",
        by_name["Olivier"].account_id,
    )
    assert [r["name"] for r in rows] == ["CM1", "CP"]


async def test_a_class_the_export_drops_is_archived_comes_back_then_is_purged(
    stack: Stack, channel: AbstractChannel
):
    """Numbered runs: a class no longer named is archived (its teacher detached, out of the
    school's classes), one named again comes back as the same class; a turnover run ends
    with the year's classes and those without a teacher; an archived class goes after the
    grace period."""
    async with watched_worker(stack, channel, purge_interval_seconds=3600) as spy:
        school = await open_automatic_school(channel, stack.exchange, spy)
        lou = pupil("Lou", "Roux", date(2018, 6, 1), "CM1")
        curie = teacher("Marie", "Curie", "CM1")
        first = await send(
            channel,
            stack.exchange,
            chunk(school, uuid.uuid4(), 0, 1, CLASSES, created=[lou, curie], version=1),
        )
        created = (await outcome(spy, first, topics.CLASSES_CREATED))[topics.CLASSES_CREATED]
        cm1 = next(c["class_id"] for c in created["data"]["classes"] if c["name"] == "CM1")

        september = [FeedClass(name="CP", level="CP"), FeedClass(name="CM2", level="CM2")]
        turned = await send(
            channel,
            stack.exchange,
            chunk(
                school,
                uuid.uuid4(),
                0,
                1,
                september,
                moved=[moved(lou, "CM2"), moved(curie, "CP")],
                version=2,
                turnover=True,
            ),
        )
        out = await outcome(
            spy, turned, topics.CLASSES_ARCHIVED, topics.SCHOOL_YEAR_TURNED, topics.ACCOUNTS_UPDATED
        )
        archived = out[topics.CLASSES_ARCHIVED]["data"]["classes"]
        assert archived == [{"class_id": cm1, "name": "CM1"}]
        [detached] = [
            e["data"]
            for e in spy.of_type(topics.CLASS_TEACHERS_ASSIGNED, class_id=cm1)
            if e["causationid"] == turned.id
        ]
        assert detached["teachers"] == []
        year = out[topics.SCHOOL_YEAR_TURNED]["data"]
        assert [c["name"] for c in year["classes"]] == ["CM2", "CP"]
        assert [c["name"] for c in year["classes_without_teacher"]] == ["CM2"]
        rows = await fetch(
            stack,
            "SELECT name, archived_at IS NOT NULL AS archived FROM classes WHERE school_id = $1"
            " ORDER BY name",
            school.school_id,
        )
        assert [(r["name"], r["archived"]) for r in rows] == [
            ("CM1", True),
            ("CM2", False),
            ("CP", False),
        ]

        # The export names CM1 again (a mistake corrected the next night): the same class.
        back = await send(
            channel,
            stack.exchange,
            chunk(school, uuid.uuid4(), 0, 1, [*september, CLASSES[1]], version=3),
        )
        again = (await outcome(spy, back, topics.CLASSES_CREATED))[topics.CLASSES_CREATED]
        assert [(c["class_id"], c["name"]) for c in again["data"]["classes"]] == [(cm1, "CM1")]
        assert not [
            e for e in spy.of_type(topics.SCHOOL_YEAR_TURNED) if e["causationid"] == back.id
        ]

        gone = await send(
            channel, stack.exchange, chunk(school, uuid.uuid4(), 0, 1, september, version=4)
        )
        await outcome(spy, gone, topics.CLASSES_ARCHIVED)
    async with watched_worker(
        stack, channel, deactivation_grace_days=0.0, purge_interval_seconds=0.2
    ):

        async def purged() -> bool:
            return not await fetch(
                stack, "SELECT 1 FROM classes WHERE class_id = $1", uuid.UUID(cm1)
            )

        await eventually(purged, what="the archived class purged")
        placed = await fetch(
            stack,
            "SELECT c.name FROM account_classes JOIN classes c USING (class_id)"
            " JOIN accounts a USING (account_id) WHERE a.first_name = 'Lou' AND a.school_id = $1",
            school.school_id,
        )
        assert [r["name"] for r in placed] == ["CM2"]


async def test_a_gs_pupil_with_ine_keeps_his_account_in_cp_in_another_school(
    worker: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
):
    """Issue 22: a GS pupil with an INE leaving school A at the turnover and arriving in CP
    in school B keeps his account id, login and activation (an activated one, and one
    never activated: kept at the turnover, not deleted)."""
    a = await open_automatic_school(channel, stack.exchange, spy, number=1)
    b = await open_automatic_school(channel, stack.exchange, spy, number=2)
    gs = [FeedClass(name="GS", level="GS")]
    lou = pupil("Lou", "Roux", date(2020, 5, 4), "GS", ine="070707070AB")
    eve = pupil("Ève", "Roux", date(2020, 2, 1), "GS", ine="070707071AB")
    first = await apply_directly(worker, a, gs, created=[lou, eve], version=1)
    [made] = [e.data for e in first if e.type == topics.ACCOUNTS_CREATED]
    ids = {v.first_name: v.account_id for v in made.accounts}
    await fetch(
        stack,
        "UPDATE accounts SET activated_at = now(), activation_code = NULL WHERE account_id = $1",
        ids["Lou"],
    )
    before = {
        r["account_id"]: r
        for r in await fetch(stack, "SELECT account_id, login, activated_at FROM accounts")
    }
    june = await apply_directly(
        worker, a, gs, left=[lou.feed_id, eve.feed_id], version=2, turnover=True
    )
    assert topics.ACCOUNTS_DELETED not in [e.type for e in june]

    cp = [FeedClass(name="CP", level="CP")]
    arriving = [
        p.model_copy(update={"feed_id": uuid.uuid4(), "classes": ["CP"]}) for p in (lou, eve)
    ]
    september = await apply_directly(worker, b, cp, created=arriving, version=1)
    types = [e.type for e in september]
    assert topics.ACCOUNTS_CREATED not in types
    [attached] = [e.data for e in september if e.type == topics.ACCOUNTS_ATTACHED]
    assert attached.school_id == b.school_id
    assert sorted((v.account_id, v.login, v.classes) for v in attached.accounts) == sorted(
        (i, before[i]["login"], ["CP"]) for i in ids.values()
    )
    rows = await fetch(
        stack,
        "SELECT account_id, school_id, feed_id, login, activated_at, deactivated_at, ine"
        " FROM accounts WHERE account_id = ANY($1::uuid[])",
        list(ids.values()),
    )
    assert {r["account_id"]: r["school_id"] for r in rows} == dict.fromkeys(
        ids.values(), b.school_id
    )
    for r in rows:
        assert r["deactivated_at"] is None
        assert r["activated_at"] == before[r["account_id"]]["activated_at"]
    assert {r["feed_id"] for r in rows} == {p.feed_id for p in arriving}
    held = "SELECT * FROM account_schools WHERE account_id = ANY($1::uuid[])"
    assert await fetch(stack, held, list(ids.values())) == []
