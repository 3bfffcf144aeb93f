"""Chaos on the feed's nights: automatic schools' first import, then a night with changes
run by the nightly scheduler, through two replicas of directory_sync and of account_manager
while replicas of both are SIGKILLed at random and Postgres restarts once.

At the end every person has exactly one account (the second night's arrivals included, its
departures deactivated, its new emails stored), every run is done and reported once, none
is left claimed by a killed replica.

``ONE_CHAOS_FEED_SCHOOLS`` sets the size (30 by default; 200 for ``make test-chaos``).
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import pytest

from shared import topics
from tests.chaos import harness
from tests.chaos.conftest import FEED_SCHOOLS, Chaos, running, seeded
from tests.conftest import Stack
from tests.support.feed import school_initialised
from tests.support.orders import cloudevent
from tools import onde_generator
from tools.onde_generator import fold
from tools.waits import eventually

WORKERS = (topics.DIRECTORY_SYNC, topics.ACCOUNT_MANAGER)
PLAN = harness.Plan(FEED_SCHOOLS, kills_per_worker=3, gap=(0.5, 2.5), outage_seconds=3.0)
# Schools of ~90 persons: the night's departures stay under the safety hold's share.
SHAPE = {"classes": 3, "pupils_per_class": 12}
LEASE_SECONDS = 5.0
# Past the lease: the other replica's next look (0.5 s), running the school, and the retry
# delay of a run that failed while Postgres restarted (1 s, then 2 s).
TAKEOVER_MARGIN = 10.0
ZONE = "Europe/Paris"
pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(900 + 6 * FEED_SCHOOLS)]


@pytest.fixture
async def feed_chaos(stack: Stack, tmp_path: Path) -> AsyncIterator[Chaos]:
    async with running(
        stack,
        tmp_path,
        PLAN,
        workers=WORKERS,
        run_lease_seconds=LEASE_SECONDS,
        run_retry_base_seconds=1.0,
        run_poll_seconds=0.5,
        nightly_enabled=False,  # the first night is the schools' first import
        timezone=ZONE,
    ) as started:
        yield started


def people(school: onde_generator.School) -> Counter[tuple[str, str, str]]:
    """Each person of a drop as account_manager should hold him: names and email."""
    found: Counter[tuple[str, str, str]] = Counter()
    for pupil in school.pupils:
        found[(fold(pupil.first_name), fold(pupil.usage_name or pupil.last_name), "")] += 1
    for adult in [*school.parents, *school.teachers]:
        last = adult.usage_name or adult.last_name
        found[(fold(adult.first_name), fold(last), (adult.email or "").lower())] += 1
    return found


async def test_a_night_of_the_feed_under_faults_applies_everything_once(
    feed_chaos: Chaos,
) -> None:
    chaos, swarm, stack = feed_chaos, feed_chaos.swarm, feed_chaos.stack
    rng = seeded(f"feed night chaos: {FEED_SCHOOLS} schools, {PLAN.replicas} replicas")
    uais = [onde_generator.uai_for("074", n) for n in range(1, FEED_SCHOOLS + 1)]
    june = {u: onde_generator.build_school(u, seed=i, **SHAPE) for i, u in enumerate(uais)}
    for school in june.values():
        onde_generator.write_school(chaos.feed_dir, school)
    postgres_night = rng.choice((1, 2))
    outages: dict[str, float] = {}

    async def restart_postgres(_: str) -> None:
        swarm.note("postgres", "restart", f"night {postgres_night}")
        outages[f"postgres night {postgres_night}"] = await harness.restart_postgres(
            PLAN.outage_seconds, stack.services.admin_url
        )
        swarm.note("postgres", "back")

    async def faults(night: int) -> None:
        services = ("postgres",) if night == postgres_night else ()
        faults = harness.shuffled_faults(WORKERS, PLAN.kills_per_worker, rng, services)
        await harness.inject_faults(
            swarm, faults, gap=PLAN.gap, rng=rng, other_fault=restart_postgres
        )
        swarm.note("faults", f"night {night} done")

    # ---- night 1: every school's first import ------------------------------------------
    publisher = harness.Publisher(chaos.amqp_urls, stack.exchange)
    await publisher.open()

    async def open_schools() -> None:
        for n, uai in enumerate(uais, start=1):
            data = school_initialised(uai, "GRENOBLE")
            event = cloudevent(
                data,
                event_id=f"feed-school-{n}",
                event_type=topics.SCHOOL_INITIALISED,
                correlationid=data["order_id"],
            )
            await publisher.publish(
                topics.SCHOOL_INITIALISED, json.dumps(event).encode(), event["id"]
            )
            await asyncio.sleep(10.0 / FEED_SCHOOLS)  # the orders of a morning, compressed

    began = time.monotonic()
    try:
        await asyncio.gather(open_schools(), faults(1))
    finally:
        await publisher.close()
    await settled(chaos, june, runs=1, what="night 1: every first import applied")
    night_one = time.monotonic() - began

    # ---- night 2: the nightly scheduler runs every school, with changes ------------------
    september = {u: onde_generator.a_night_of_changes(school) for u, school in june.items()}
    for school in september.values():
        onde_generator.write_school(chaos.feed_dir, school)
    due = (datetime.now(ZoneInfo(ZONE)) - timedelta(minutes=1)).strftime("%H:%M")
    for replica in swarm.of(topics.DIRECTORY_SYNC):
        replica.process.env.update(
            ONE_NIGHTLY_ENABLED="true", ONE_NIGHTLY_AT=due, ONE_NIGHTLY_POLL_SECONDS="1"
        )
    began = time.monotonic()
    await asyncio.gather(*(restart(swarm, r) for r in swarm.of(topics.DIRECTORY_SYNC)))
    await faults(2)
    await settled(chaos, september, runs=2, what="night 2: every nightly run applied")
    night_two = time.monotonic() - began

    # ---- what must hold ------------------------------------------------------------------
    conn = await stack.admin()
    try:
        runs = await conn.fetch(
            "SELECT uai, trigger, state, status, attempts, lease_until,"
            " extract(epoch FROM finished_at) AS finished FROM directory_sync.sync_runs"
        )
        nights = await conn.fetchval("SELECT count(*) FROM directory_sync.nightly_runs")
        changed_emails = await conn.fetchval(
            "SELECT count(*) FROM account_manager.accounts WHERE email LIKE 'n1.%'"
        )
    finally:
        await conn.close()
    per_school = Counter((r["uai"], r["trigger"]) for r in runs)
    assert set(per_school.values()) == {1}, per_school.most_common(5)
    assert Counter(r["trigger"] for r in runs) == {
        "first_sync": FEED_SCHOOLS,
        "nightly": FEED_SCHOOLS,
    }
    assert {(r["state"], r["status"]) for r in runs} == {("done", "applied")}
    assert all(r["lease_until"] is None for r in runs)  # none left claimed
    assert nights == 1  # the night started once, whatever the replicas
    assert changed_emails == sum(
        1 for s in september.values() if any(p.email.startswith("n1.") for p in s.parents)
    )

    reports = await reported(chaos)
    assert Counter(reports.values()) == {1: 2 * FEED_SCHOOLS}, "a run reported twice or never"

    depths = await harness.queue_depths(
        chaos.amqp_url, [stack.names.work_queue(w) for w in WORKERS]
    )
    retried = Counter(r["attempts"] for r in runs)
    kills = Counter(e.target.split("#")[0] for e in swarm.events if e.kind == "kill")
    late = taken_over_late(swarm, [r for r in runs if r["attempts"] > 1])
    print(
        f"feed night figures: {FEED_SCHOOLS} schools; night 1 {night_one:.0f}s, night 2 "
        f"{night_two:.0f}s; kills {dict(kills)}; outages (s) {outages}; "
        f"runs by attempts {dict(sorted(retried.items()))}; queues {depths}; "
        f"unexpected deaths {len(swarm.deaths)}"
    )
    assert all(ready == 0 for ready, _ in depths.values()), depths
    assert not swarm.deaths, swarm.deaths
    assert not late, f"runs finished long after the fault that interrupted them: {late}"


def taken_over_late(swarm: harness.Swarm, retried: list[Any]) -> list[str]:
    """Runs claimed more than once that finished later than a lease (plus the time to run
    one school) after the last fault before them: a run held by a killed replica must be
    taken over by the other one as soon as its lease ends, not when the killed one is back
    nor at the end of the night."""
    offset = time.time() - time.monotonic()  # the swarm's events are in monotonic time
    faults = [
        e.at + offset
        for e in swarm.events
        if (e.kind == "kill" and e.target.startswith(topics.DIRECTORY_SYNC))
        or (e.kind == "postgres" and e.target == "back")
    ]
    late = []
    for run in retried:
        finished = float(run["finished"])  # Postgres's extract(epoch ...) is a numeric
        before = [at for at in faults if at <= finished]
        if not before or finished - max(before) > LEASE_SECONDS + TAKEOVER_MARGIN:
            late.append(f"{run['uai']} {run['trigger']} ({run['attempts']} attempts)")
    return late


async def restart(swarm: harness.Swarm, replica: harness.Replica) -> None:
    """A deliberate restart (SIGTERM, drain, start) with the replica's new settings."""
    replica.busy = True
    try:
        swarm.note("restart", replica.label, "for the night")
        await replica.process.stop()
        await replica.process.start()
    finally:
        replica.busy = False


async def settled(
    chaos: Chaos, schools: dict[str, onde_generator.School], *, runs: int, what: str
) -> None:
    """Wait until every school's ``runs`` runs are done and its active accounts are its
    drop's persons, each once; then nothing waits in the outboxes."""
    stack = chaos.stack
    expected = {uai: people(school) for uai, school in schools.items()}
    last: dict[str, Any] = {}

    async def done() -> bool:
        conn = await stack.admin()
        try:
            pending = await conn.fetchval(
                "SELECT count(*) FROM directory_sync.sync_runs WHERE state <> 'done'"
            )
            finished = await conn.fetchval(
                "SELECT count(*) FROM directory_sync.sync_runs WHERE state = 'done'"
            )
            rows = await conn.fetch(
                "SELECT s.uai, a.first_name, a.last_name, coalesce(a.email, '') AS email,"
                " a.profile FROM account_manager.accounts a"
                " JOIN account_manager.schools s USING (school_id)"
                " WHERE a.feed_id IS NOT NULL AND a.deactivated_at IS NULL"
            )
            unpublished = 0
            for worker in WORKERS:
                unpublished += await conn.fetchval(
                    f"SELECT count(*) FROM {worker}.outbox WHERE published_at IS NULL"
                )
        finally:
            await conn.close()
        found: dict[str, Counter[tuple[str, str, str]]] = {}
        for r in rows:
            email = r["email"].lower() if r["profile"] != "student" else ""
            key = (fold(r["first_name"]), fold(r["last_name"]), email)
            found.setdefault(r["uai"], Counter())[key] += 1
        wrong = [u for u in expected if found.get(u, Counter()) != expected[u]]
        last.update(pending=pending, finished=finished, unpublished=unpublished, wrong=len(wrong))
        if wrong:
            sample = wrong[0]
            have, want = found.get(sample, Counter()), expected[sample]
            last["sample"] = {"uai": sample, "extra": have - want, "missing": want - have}
        return pending == 0 and finished == runs * len(schools) and not wrong and unpublished == 0

    try:
        await eventually(_quiet(done), timeout=600, interval=1.0, what=what)
    except AssertionError:
        print(f"{what}: not reached: {last}")
        raise


def _quiet(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """A check that answers False, not an error, while Postgres restarts."""

    async def checked() -> bool:
        try:
            return await check()
        except Exception as exc:
            print(f"progress check failed: {exc!r}")
            return False

    return checked


async def reported(chaos: Chaos) -> Counter[str]:
    """directory.sync.reported events by run, from the integration feed (an event sent
    twice by the outbox after a kill is the same event: counted once, by its id)."""
    ids_by_run: dict[str, set[str]] = {}
    connection = await aio_pika.connect(chaos.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(chaos.stack.names.upstream_queue, passive=True)
        while (message := await queue.get(fail=False, timeout=5)) is not None:
            await message.ack()
            if message.routing_key != topics.DIRECTORY_SYNC_REPORTED:
                continue
            event = json.loads(message.body)
            ids_by_run.setdefault(event["data"]["run_id"], set()).add(event["id"])
    return Counter({run: len(ids) for run, ids in ids_by_run.items()})
