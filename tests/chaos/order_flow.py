"""The chaos suite's stream of orders: half of them automatic schools with an ONDE drop,
three poison messages among them, published while faults fall; then what must hold. Each
scenario (test_chaos.py, test_cluster_chaos.py) chooses its faults.

At the end nothing is lost and nothing is applied twice: one school per order, invoices
numbered without gaps, every account once, every email once (a second copy only where a
fault fell between the SMTP server's acceptance of a mail and the record of it: counted and
reported), every queue empty but the dead-letter queue, which holds exactly the poison
messages injected here.
"""

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from services.credential_dispatch.settings import CredentialDispatchSettings
from shared import topics
from tests.chaos import harness
from tests.chaos.conftest import Chaos
from tests.support.orders import cloudevent, order_data, uai
from tools import onde_generator
from tools.waits import eventually

_defaults = CredentialDispatchSettings.model_fields
# What one credential_dispatch replica may have sent but not yet recorded at any moment.
IN_FLIGHT = _defaults["delivery_batch"].default * _defaults["delivery_lanes"].default
INVOICE_NUMBER = re.compile(r"^ONE-(\d{4})-(\d{6})$")


def is_automatic(i: int) -> bool:
    return i % 2 == 0


def order_event(i: int, classes: int) -> dict:
    department = "074" if is_automatic(i) else "075"
    data = order_data(
        f"BC-CHAOS-{i:04d}",
        department=department,
        number=i + 1,
        classes=classes,
        admin_email=f"admin{i}@example.org",
        billing_email=f"billing{i}@example.org",
    )
    data["school"]["address"]["postal_code"] = "74000" if is_automatic(i) else "75011"
    return cloudevent(data, event_id=f"chaos-{i}")


def poison_messages() -> list[tuple[str, str, bytes]]:
    """(message id, routing key, body): each must end in the dead-letter queue, once."""
    unknown_major = cloudevent(
        order_data("BC-POISON-MAJOR", department="075", number=9990),
        event_id="poison-major",
        major=9,
    )
    return [
        ("poison-json-order", topics.ORDER_RECEIVED, b'{"specversion": "1.0", "id": "poison-js'),
        ("poison-major", topics.ORDER_RECEIVED, json.dumps(unknown_major).encode()),
        ("poison-json-dispatch", topics.CREDENTIALS_DISPATCH_REQUESTED, b"\xff not json \x00"),
    ]


async def orders_through_faults(  # noqa: C901 - one scenario, read top to bottom
    chaos: Chaos,
    *,
    faults: list[str],
    other_fault: Callable[[str], Awaitable[None]],
    rng: random.Random,
    smtp_outage: bool,
    outages: dict[str, float],
) -> None:
    """Publish the plan's orders while ``faults`` fall one after the other: a worker's
    name SIGKILLs one of its replicas (restarted at once), any other is run by
    ``other_fault`` (which notes its outage in ``outages``); then wait until everything is
    done and check that nothing was lost or applied twice."""
    plan, swarm, stack = chaos.plan, chaos.swarm, chaos.stack
    n = plan.orders

    # The académies' drops are there before the orders (as in production).
    expected_persons: dict[str, int] = {}
    for i in range(n):
        if is_automatic(i):
            school_uai = uai("074", i + 1)
            shape = {"classes": plan.drop_classes, "pupils_per_class": plan.drop_pupils_per_class}
            school = onde_generator.build_school(school_uai, seed=i, **shape)
            onde_generator.write_drop(chaos.feed_dir, school_uai, seed=i, **shape)
            expected_persons[school_uai] = (
                len(school.pupils) + len(school.parents) + len(school.teachers)
            )
    total_persons = sum(expected_persons.values())
    poisons = poison_messages()

    publisher = harness.Publisher(chaos.amqp_urls, stack.exchange)
    await publisher.open()
    began = time.monotonic()

    async def publish_orders() -> None:
        spacing = plan.publish_seconds / n
        poison_at = {n // 4 + k * max(1, n // 4): p for k, p in enumerate(poisons)}
        for i in range(n):
            event = order_event(i, plan.drop_classes)
            await publisher.publish(topics.ORDER_RECEIVED, json.dumps(event).encode(), event["id"])
            if i in poison_at:
                message_id, topic, body = poison_at[i]
                await publisher.publish(topic, body, message_id)
                swarm.note("poison", topic, message_id)
            await asyncio.sleep(spacing)  # spacing the stream so that faults fall inside it
        swarm.note("published", f"{n} orders")

    async def smtp_down() -> None:
        await asyncio.sleep(rng.uniform(*plan.smtp_down_after))  # spacing the fault
        swarm.note("smtp_down")
        chaos.mail.down()
        await asyncio.sleep(plan.smtp_down_seconds)  # the outage lasts this long
        chaos.mail.up()
        swarm.note("smtp_up")

    async def inject_faults() -> None:
        await harness.inject_faults(swarm, faults, gap=plan.gap, rng=rng, other_fault=other_fault)
        swarm.note("faults", "done")

    try:
        outage = [smtp_down()] if smtp_outage else []
        await asyncio.gather(publish_orders(), inject_faults(), *outage)
    finally:
        await publisher.close()
    faults_done = time.monotonic()

    # ---- waiting for the pipeline to finish everything ---------------------------------
    work_queues = [
        q
        for q in chaos.queue_names()
        if q not in (stack.names.dead_letter_queue, stack.names.upstream_queue)
    ]

    async def progress() -> dict[str, int]:
        conn = await stack.admin()
        try:
            figures = {
                "schools": await conn.fetchval("SELECT count(*) FROM order_intake.schools"),
                "invoices": await conn.fetchval("SELECT count(*) FROM order_intake.invoices"),
                "sent": await conn.fetchval(
                    "SELECT count(*) FROM credential_dispatch.deliveries WHERE status = 'sent'"
                ),
                "not_sent": await conn.fetchval(
                    "SELECT count(*) FROM credential_dispatch.deliveries WHERE status <> 'sent'"
                ),
                "feed_accounts": await conn.fetchval(
                    "SELECT count(*) FROM account_manager.accounts WHERE feed_id IS NOT NULL"
                ),
                "outbox": sum(
                    [
                        await conn.fetchval(
                            f"SELECT count(*) FROM {w}.outbox WHERE published_at IS NULL"
                        )
                        for w in topics.WORKERS
                    ]
                ),
            }
        finally:
            await conn.close()
        depths = await harness.queue_depths(chaos.amqp_url, work_queues)
        figures["queued"] = sum(max(0, ready) for ready, _ in depths.values())
        figures["missing_queues"] = sum(ready < 0 for ready, _ in depths.values())
        return figures

    last: dict[str, int] = {}

    async def settled() -> bool:
        nonlocal last
        try:
            last = await progress()
        except Exception as exc:  # a check must not fail on a passing hiccup
            print(f"progress check failed: {exc!r}")
            return False
        return (
            last["schools"] == n
            and last["invoices"] == n
            and last["sent"] == 2 * n
            and last["not_sent"] == 0
            and last["feed_accounts"] == total_persons
            and last["outbox"] == 0
            and last["queued"] == 0
            and last["missing_queues"] == 0
        )

    try:
        await eventually(
            settled, timeout=plan.settle_seconds, interval=1.0, what="every order done"
        )
    except AssertionError:
        print(f"progress: {last} (expected {n} schools, {2 * n} mails, {total_persons} persons)")
        report(swarm, outages, publisher.retries)
        raise
    finished = time.monotonic()

    # ---- what must hold ------------------------------------------------------------------
    findings: list[str] = []
    conn = await stack.admin()
    try:
        schools = await conn.fetch("SELECT uai, provisioning FROM order_intake.schools")
        assert len(schools) == n
        assert Counter(r["provisioning"] for r in schools) == {
            "automatic": len(expected_persons),
            "manual": n - len(expected_persons),
        }

        invoices = await conn.fetch(
            "SELECT invoice_number, year, seq FROM order_intake.invoices ORDER BY year, seq"
        )
        parsed = [INVOICE_NUMBER.match(r["invoice_number"]) for r in invoices]
        assert all(parsed), [r["invoice_number"] for r in invoices]
        assert len({m.group(1) for m in parsed if m}) == 1  # one year
        assert [int(m.group(2)) for m in parsed if m] == list(range(1, n + 1))  # no gap, no double
        assert [r["seq"] for r in invoices] == list(range(1, n + 1))

        per_school = await conn.fetch(
            """
            SELECT s.uai,
                   count(a.account_id) FILTER (WHERE a.profile = 'administrator') AS admins,
                   count(a.account_id) FILTER (WHERE a.profile <> 'administrator') AS persons,
                   count(a.feed_id) AS fed
            FROM account_manager.schools s
            LEFT JOIN account_manager.accounts a USING (school_id)
            GROUP BY s.uai, s.school_id
            """
        )
        assert len(per_school) == n
        wrong = [
            dict(r)
            for r in per_school
            if r["admins"] != 1
            or r["persons"] != expected_persons.get(r["uai"], 0)
            or r["fed"] != expected_persons.get(r["uai"], 0)
        ]
        assert not wrong, f"schools whose accounts are not each person once: {wrong[:10]}"
        accounts = await conn.fetchval("SELECT count(*) FROM account_manager.accounts")
        assert accounts == n + total_persons
        logins = await conn.fetchval("SELECT count(DISTINCT login) FROM account_manager.accounts")
        assert logins == accounts

        deliveries = await conn.fetch(
            "SELECT kind, status, count(*) AS n, count(DISTINCT coalesce(account_id::text, "
            "invoice_number)) AS distinct_targets FROM credential_dispatch.deliveries "
            "GROUP BY kind, status"
        )
        assert {(r["kind"], r["status"]): (r["n"], r["distinct_targets"]) for r in deliveries} == {
            ("first_access", "sent"): (n, n),
            ("invoice", "sent"): (n, n),
        }
    finally:
        await conn.close()

    # Every email once; a second copy only from a fault between acceptance and record.
    sink = chaos.mail.sink
    copies: dict[str, list[float]] = {}
    for message, arrived in zip(sink.received, sink.arrivals, strict=True):
        copies.setdefault(str(message["Message-ID"]), []).append(arrived)
    assert len(copies) == 2 * n
    recipients = {str(m["To"]) for m in sink.received}
    assert recipients == {f"admin{i}@example.org" for i in range(n)} | {
        f"billing{i}@example.org" for i in range(n)
    }
    causes = [
        e
        for e in swarm.events
        if (e.kind == "kill" and e.target.startswith(topics.CREDENTIAL_DISPATCH))
        or (e.kind == "postgres" and e.target == "restart")
        or e.kind in ("smtp_down", "death")
    ]
    duplicates = {mid: times for mid, times in copies.items() if len(times) > 1}
    resent = sum(len(times) - 1 for times in duplicates.values())
    explained: Counter[str] = Counter()
    unexplained = []
    for mid, times in duplicates.items():
        cause = next((e for e in causes if times[0] - 2.0 <= e.at <= times[-1]), None)
        if cause is None:
            unexplained.append(mid)
        else:
            explained[f"{cause.kind} {cause.target}".strip()] += len(times) - 1
    dispatch_kills = sum(1 for e in causes if e.kind == "kill")
    bound = (dispatch_kills + 2) * IN_FLIGHT  # + the Postgres restart and the SMTP outage

    # Every replica consumes again by itself after the broker's and the database's restarts
    # (a robust connection may take a few seconds more to come back).
    consumers: dict[str, tuple[int, int]] = {}

    async def all_consuming() -> bool:
        nonlocal consumers
        consumers = await harness.queue_depths(
            chaos.amqp_url, [stack.names.work_queue(w) for w in topics.WORKERS]
        )
        return all(count == plan.replicas for _, count in consumers.values())

    try:
        await eventually(all_consuming, timeout=60, interval=1.0, what="every replica consuming")
    except AssertionError:
        findings.append(f"not every replica consumes its queue again: {consumers}")

    # The queues: all empty but the dead-letter queue, which holds the poisons only.
    depths = await harness.queue_depths(chaos.amqp_url, chaos.queue_names())
    dead = await harness.read_dead_letters(chaos.amqp_url, stack.names.dead_letter_queue)

    report(swarm, outages, publisher.retries)
    print(
        f"chaos figures: orders {n} ({len(expected_persons)} automatic, {total_persons} feed "
        f"persons); faults and orders over {faults_done - began:.0f}s, everything done "
        f"{finished - faults_done:.1f}s after the last of them, {finished - began:.0f}s in all"
    )
    print(
        f"chaos emails: {len(sink.received)} received, {len(copies)} distinct, "
        f"{resent} second copies (bound {bound}) by cause {dict(explained)}, "
        f"unexplained {unexplained}"
    )
    print(f"chaos queues (ready, consumers): {depths}")
    print(f"chaos dead letters: {dead}")

    for name, (ready, _) in depths.items():
        if name in (stack.names.dead_letter_queue, stack.names.upstream_queue):
            continue  # upstream: the retained integration feed, nobody consumes it here
        if ready != 0:
            findings.append(f"queue {name} holds {ready} message(s)")
    dead_ids = Counter(d["id"] for d in dead)
    if set(dead_ids) != {p[0] for p in poisons}:
        findings.append(f"dead-letter queue holds {dict(dead_ids)}, expected the poisons only")
    if unexplained:
        findings.append(f"emails sent twice with no fault to explain them: {unexplained}")
    if resent > bound:
        findings.append(f"{resent} emails sent twice, more than the {bound} in flight")
    if swarm.deaths:
        findings.append(f"{len(swarm.deaths)} worker process(es) died by themselves")
    assert not findings, "\n".join(findings)


def report(swarm: harness.Swarm, outages: dict[str, float], publish_retries: int) -> None:
    kills = Counter(e.target.split("#")[0] for e in swarm.events if e.kind == "kill")
    print(f"chaos kills per worker: {dict(kills)}; outages (s): {outages}")
    print(f"chaos publisher retries (broker away): {publish_retries}")
    print(f"chaos unexpected worker deaths restarted by the supervisor: {len(swarm.deaths)}")
    for death in swarm.deaths:
        print(f"--- death: {death}")
    print(f"chaos failed starts (retried): {len(swarm.failed_starts)}")
    for failure in swarm.failed_starts[:10]:
        print(f"--- failed start: {failure[:2000]}")
    print("chaos log lines above INFO (worker level event: count):")
    for line, count in swarm.troubles().most_common(40):
        print(f"    {count:6d}  {line}")
