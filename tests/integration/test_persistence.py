"""Each worker owns its schema, migrated once even by replicas starting together, and its
role cannot reach the others'."""

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from shared import db, topics
from shared.contracts.directory import DirectorySyncReported, SyncCounts
from shared.envelope import new_event
from shared.store import TransactionStore
from tests.conftest import Stack
from tools.workers import ROOT

MIGRATIONS = {worker: ROOT / "services" / worker / "migrations" for worker in topics.WORKERS}
ORDER_MIGRATIONS = MIGRATIONS[topics.ORDER_INTAKE]
A_TABLE = {
    topics.ORDER_INTAKE: "orders",
    topics.ACCOUNT_MANAGER: "accounts",
    topics.DIRECTORY_SYNC: "feed_registrations",
    topics.CREDENTIAL_DISPATCH: "deliveries",
}


def database(stack: Stack, worker: str) -> db.Database:
    return db.Database(url=stack.database_url, role=f"one_{worker}", schema=worker)


async def migrate_as_replicas(stack: Stack, worker: str, replicas: int) -> list[list[str]]:
    target = database(stack, worker)

    async def one_replica() -> list[str]:
        await db.provision(stack.services.admin_url, target)
        pool = await db.create_pool(target, min_size=1, max_size=1, service=worker)
        try:
            return await db.migrate(pool, worker, db.BACKBONE_MIGRATIONS, MIGRATIONS[worker])
        finally:
            await pool.close()

    return await asyncio.gather(*(one_replica() for _ in range(replicas)))


async def test_replicas_starting_together_migrate_once(stack):
    results = await migrate_as_replicas(stack, topics.ORDER_INTAKE, replicas=4)
    applied = [r for r in results if r]
    assert len(applied) == 1
    assert applied[0] == sorted(
        p.name for p in [*db.BACKBONE_MIGRATIONS.glob("*.sql"), *ORDER_MIGRATIONS.glob("*.sql")]
    )
    admin = await stack.admin()
    try:
        rows = await admin.fetchval("SELECT count(*) FROM order_intake.schema_migrations")
        assert rows == len(applied[0])
    finally:
        await admin.close()


async def test_provision_leaves_public_no_right_on_the_database(stack):
    """As deploy/postgres/init.sql: PUBLIC may neither connect nor make temporary tables;
    the worker's own role connects."""
    target = database(stack, topics.ORDER_INTAKE)
    await db.provision(stack.services.admin_url, target)
    admin = await stack.admin()
    try:
        acl = await admin.fetchval(
            "SELECT datacl::text FROM pg_database WHERE datname = current_database()"
        )
        grants = acl.strip("{}").split(",")
        assert not [g for g in grants if g.startswith("=")], grants  # "=Tc/..." is PUBLIC's
        assert any(g.startswith("one_order_intake=c") for g in grants), grants
        stranger = f"stranger_{uuid.uuid4().hex[:8]}"
        await admin.execute(f"CREATE ROLE {stranger} LOGIN")
        try:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await asyncpg.connect(stack.database_url, user=stranger)
        finally:
            await admin.execute(f"DROP ROLE {stranger}")
    finally:
        await admin.close()


@pytest.mark.parametrize("worker", topics.WORKERS)
async def test_role_cannot_touch_another_workers_schema(stack, worker):
    for each in topics.WORKERS:
        await migrate_as_replicas(stack, each, replicas=1)
    own = database(stack, worker)
    conn = await asyncpg.connect(stack.database_url, user=own.role)
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {worker}.inbox") == 0
        for other in (w for w in topics.WORKERS if w != worker):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {other}.{A_TABLE[other]}")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(f"DELETE FROM {other}.outbox")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(f"CREATE TABLE {other}.intruder (id int)")
    finally:
        await conn.close()


def test_every_worker_has_migrations():
    for worker, folder in MIGRATIONS.items():
        assert list(Path(folder).glob("*.sql")), worker


async def test_feed_ids_move_onto_the_accounts_of_a_database_fed_before(stack, tmp_path):
    """0005 carries each mapping of the former ``feed_accounts`` table onto its account."""
    worker = topics.ACCOUNT_MANAGER
    before = tmp_path / "before"
    before.mkdir()
    for file in sorted(MIGRATIONS[worker].glob("*.sql")):
        if file.name < "0005":
            (before / file.name).write_text(file.read_text())
    target = database(stack, worker)
    await db.provision(stack.services.admin_url, target)
    pool = await db.create_pool(target, min_size=1, max_size=1, service=worker)
    school, fed, by_hand, feed_id = (uuid.uuid4() for _ in range(4))
    try:
        await db.migrate(pool, worker, db.BACKBONE_MIGRATIONS, before)
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO schools (school_id, uai, name, provisioning)"
                " VALUES ($1, '0741234P', 'École', 'automatic')",
                school,
            )
            for account, login in ((fed, "lou.roux"), (by_hand, "ana.roux")):
                await conn.execute(
                    "INSERT INTO accounts (account_id, school_id, profile, first_name,"
                    " last_name, login) VALUES ($1, $2, 'student', 'Lou', 'Roux', $3)",
                    account,
                    school,
                    login,
                )
            await conn.execute(
                "INSERT INTO feed_accounts (school_id, feed_id, account_id) VALUES ($1, $2, $3)",
                school,
                feed_id,
                fed,
            )
        assert "0005_feed_id_on_accounts.sql" in await db.migrate(pool, worker, MIGRATIONS[worker])
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT account_id, feed_id FROM accounts")
            assert {r["account_id"]: r["feed_id"] for r in rows} == {fed: feed_id, by_hand: None}
            assert await conn.fetchval("SELECT to_regclass('feed_accounts')") is None
    finally:
        await pool.close()


async def test_events_emitted_together_land_in_the_outbox_in_their_order(stack):
    """``emit_all`` writes several events in one statement: each row is the event's own
    (id, topic, correlation, causation, body), in the order given, as ``emit`` writes one."""
    target = database(stack, topics.DIRECTORY_SYNC)
    await db.provision(stack.services.admin_url, target)
    pool = await db.create_pool(target, min_size=1, max_size=1, service="test")
    try:
        await db.migrate(
            pool, topics.DIRECTORY_SYNC, db.BACKBONE_MIGRATIONS, MIGRATIONS[topics.DIRECTORY_SYNC]
        )
        events = [
            new_event(
                DirectorySyncReported(
                    uai="0740001Z",
                    school_id=uuid.uuid4(),
                    run_id=uuid.uuid4(),
                    status="applied",
                    counts=SyncCounts(created=n),
                ),
                source="urn:one:tests",
                correlationid=f"c{n}",
                causationid=None if n % 2 else f"cause{n}",
            )
            for n in (3, 1, 2)
        ]
        async with pool.acquire() as conn, conn.transaction():
            store = TransactionStore(conn)
            await store.emit_all(events)
            await store.emit_all([])
            rows = await conn.fetch(
                "SELECT message_id, topic, correlationid, causationid, body FROM outbox"
                " ORDER BY seq"
            )
        assert store.emitted == events
        assert [tuple(r.values()) for r in rows] == [
            (e.id, e.type, e.correlationid, e.causationid, e.to_json()) for e in events
        ]
    finally:
        await pool.close()
