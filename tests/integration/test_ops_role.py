"""The role one_ops against real Postgres: the four workers provisioned and migrated, an
operator's login (a member of one_ops) reads every worker's ``_ops`` views, is refused every
worker's own table, and onectl's status, trace, audit and feed reports work through it."""

import re
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import pytest

from onectl import db as onectl_db
from onectl.config import OnectlSettings
from shared import db, topics
from tests.conftest import Stack
from tests.support.onectl import Cli
from tests.support.operators import operator_login
from tools.workers import ROOT

MIGRATIONS = {worker: ROOT / "services" / worker / "migrations" for worker in topics.WORKERS}
UAI = "0741234P"
ORDER = "BC-OPS-1"
NIGHT = date(2025, 9, 1)
# What no operators' view may show: codes, personal data onectl does not print, bodies.
NEVER_SHOWN = {
    "activation_code",
    "body",
    "payload",
    "document",
    "content",
    "persons",
    "previous_persons",
    "held_changes",
    "first_name",
    "last_name",
    "login",
    "email",
    "birth_date",
    "notice",
}


async def migrate_all(stack: Stack) -> None:
    """Each worker provisioned (as its start does with an admin URL), then migrated as its
    own role."""
    for worker in topics.WORKERS:
        target = db.Database(url=stack.database_url, role=f"one_{worker}", schema=worker)
        await db.provision(stack.services.admin_url, target)
        pool = await db.create_pool(target, min_size=1, max_size=1, service=worker)
        try:
            await db.migrate(pool, worker, db.BACKBONE_MIGRATIONS, MIGRATIONS[worker])
        finally:
            await pool.close()


@pytest.fixture
async def operator(stack: Stack) -> AsyncIterator[str]:
    await migrate_all(stack)
    async with operator_login(stack) as url:
        yield url


async def fetch(stack: Stack, query: str, *args: Any) -> list[asyncpg.Record]:
    admin = await stack.admin()
    try:
        return await admin.fetch(query, *args)
    finally:
        await admin.close()


def views_in_migrations() -> set[str]:
    return {
        name
        for folder in MIGRATIONS.values()
        for f in folder.glob("*.sql")
        for name in re.findall(r"^CREATE VIEW ([a-z_.0-9]+)", f.read_text(), re.M)
    }


async def ops_views(stack: Stack) -> set[str]:
    rows = await fetch(
        stack,
        "SELECT table_schema || '.' || table_name AS view FROM information_schema.views"
        " WHERE table_schema = ANY($1::text[])",
        [db.ops_schema(w) for w in topics.WORKERS],
    )
    return {r["view"] for r in rows}


async def test_provisioning_makes_one_ops_a_reader_of_the_ops_schemas_only(stack, operator):
    [ops] = await fetch(
        stack,
        "SELECT rolcanlogin, rolsuper, has_database_privilege(rolname, current_database(),"
        " 'CONNECT') AS connects FROM pg_roles WHERE rolname = $1",
        db.OPS_ROLE,
    )
    assert (ops["rolcanlogin"], ops["rolsuper"], ops["connects"]) == (False, False, True)
    for worker in topics.WORKERS:
        [schemas] = await fetch(
            stack,
            "SELECT has_schema_privilege($1, $2, 'USAGE') AS own,"
            " has_schema_privilege($1, $3, 'USAGE') AS views,"
            " (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $3) AS owner",
            db.OPS_ROLE,
            worker,
            db.ops_schema(worker),
        )
        assert (schemas["own"], schemas["views"]) == (False, True), worker
        assert schemas["owner"] == f"one_{worker}", worker


async def test_an_operator_reads_every_view_and_no_workers_table(stack, operator):
    views = await ops_views(stack)
    assert views == views_in_migrations()
    for worker in topics.WORKERS:  # what onectl trace reads, at the least
        assert {f"{worker}_ops.outbox_v1", f"{worker}_ops.inbox_v1"} <= views, worker
    tables = await fetch(
        stack,
        "SELECT schemaname || '.' || tablename AS name FROM pg_tables"
        " WHERE schemaname = ANY($1::text[])",
        list(topics.WORKERS),
    )
    assert "account_manager.accounts" in {t["name"] for t in tables}
    conn = await asyncpg.connect(operator)
    try:
        for view in sorted(views):
            assert await conn.fetch(f"SELECT * FROM {view} LIMIT 1") == [], view
        for table in tables:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT 1 FROM {table['name']} LIMIT 1")
        # Read-only: a simple view could be written through, were it granted.
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO account_manager_ops.schools_v1 (school_id, uai, name,"
                " provisioning) VALUES ($1, '0749999Z', 'x', 'manual')",
                uuid.uuid4(),
            )
    finally:
        await conn.close()


async def test_a_view_a_later_migration_adds_is_granted_at_the_next_start(
    stack, operator, tmp_path
):
    later = tmp_path / "9999_later.sql"
    later.write_text("CREATE VIEW order_intake_ops.later_v1 AS SELECT 1 AS one;")
    target = db.Database(url=stack.database_url, role="one_order_intake", schema="order_intake")
    pool = await db.create_pool(target, min_size=1, max_size=1, service="order_intake")
    try:
        folders = (db.BACKBONE_MIGRATIONS, MIGRATIONS[topics.ORDER_INTAKE], tmp_path)
        assert await db.migrate(pool, "order_intake", *folders) == ["9999_later.sql"]
    finally:
        await pool.close()
    conn = await asyncpg.connect(operator)
    try:
        assert await conn.fetchval("SELECT one FROM order_intake_ops.later_v1") == 1
    finally:
        await conn.close()


async def test_a_worker_reads_no_other_workers_views(stack, operator):
    conn = await asyncpg.connect(stack.database_url, user=f"one_{topics.ORDER_INTAKE}")
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM account_manager_ops.accounts_v1")
    finally:
        await conn.close()


async def test_no_view_shows_a_code_a_body_or_a_name(stack, operator):
    columns = await fetch(
        stack,
        "SELECT table_schema || '.' || table_name AS view, column_name FROM"
        " information_schema.columns WHERE table_schema = ANY($1::text[])",
        [db.ops_schema(w) for w in topics.WORKERS],
    )
    assert {c["view"] for c in columns} == await ops_views(stack)
    shown = [(c["view"], c["column_name"]) for c in columns]
    assert [(v, c) for v, c in shown if c in NEVER_SHOWN] == []


# --- onectl as the operator ---------------------------------------------------------------


async def seed_a_school(stack: Stack) -> dict[str, Any]:
    """One school through its three steps, half-way, written straight into the workers'
    own tables (as the superuser)."""
    ids = {k: uuid.uuid4() for k in ("school", "class", "admin", "teacher", "pupil", "left")}
    ids.update(run=uuid.uuid4(), first_access=uuid.uuid4(), invoice=uuid.uuid4())
    ids.update(request=uuid.uuid4())
    admin = await stack.admin()
    try:
        for statement, *args in seed_statements(ids):
            await admin.execute(statement, *args)
    finally:
        await admin.close()
    return ids


def seed_statements(ids: dict[str, Any]) -> list[tuple[Any, ...]]:
    school = ids["school"]
    run_correlation = f"nightly:{NIGHT.isoformat()}:Grenoble"
    return [
        (
            "INSERT INTO order_intake.schools (school_id, uai, name, department, academie,"
            " provisioning, order_id) VALUES ($1, $2, 'École des Aravis', '074', 'Grenoble',"
            " 'automatic', $3)",
            school,
            UAI,
            ORDER,
        ),
        (
            "INSERT INTO order_intake.orders (order_id, fingerprint, school_id, payload,"
            " correlationid) VALUES ($1, 'f', $2, '{\"secret\": 1}', $1)",
            ORDER,
            school,
        ),
        (
            "INSERT INTO order_intake.invoices (invoice_number, year, seq, order_id,"
            " school_id, issued_at, total_excl_tax, total_vat, total_incl_tax, document)"
            " VALUES ('ONE-2025-000001', 2025, 1, $1, $2, now(), 10, 2, 12, '{}')",
            ORDER,
            school,
        ),
        (
            "INSERT INTO order_intake.inbox (message_id, topic) VALUES ('m-order', $1)",
            topics.ORDER_RECEIVED,
        ),
        (
            "INSERT INTO order_intake.outbox (message_id, topic, correlationid, causationid,"
            " body) VALUES ('m-init', $1, $2, 'm-order', 'a body')",
            topics.SCHOOL_INITIALISED,
            ORDER,
        ),
        (
            "INSERT INTO account_manager.inbox (message_id, topic) VALUES ('m-init', $1)",
            topics.SCHOOL_INITIALISED,
        ),
        (
            "INSERT INTO account_manager.schools (school_id, uai, name, provisioning)"
            " VALUES ($1, $2, 'École des Aravis', 'automatic')",
            school,
            UAI,
        ),
        (
            "INSERT INTO account_manager.classes (class_id, school_id, name) VALUES ($1, $2, 'CP')",
            ids["class"],
            school,
        ),
        *(
            (
                "INSERT INTO account_manager.accounts (account_id, school_id, profile,"
                " first_name, last_name, login, activation_code, activated_at, deactivated_at)"
                " VALUES ($1, $2, $3, 'A', 'B', $4, 'CODE-1234', $5, $6)",
                ids[key],
                school,
                profile,
                f"login.{key}",
                activated,
                deactivated,
            )
            for key, profile, activated, deactivated in [
                ("admin", "administrator", None, None),
                ("teacher", "teacher", NIGHT, None),
                ("pupil", "student", None, None),
                ("left", "student", NIGHT, NIGHT),
            ]
        ),
        (
            "INSERT INTO account_manager.class_teachers (class_id, account_id) VALUES ($1, $2)",
            ids["class"],
            ids["teacher"],
        ),
        (
            "INSERT INTO directory_sync.feed_registrations (school_id, uai, name, academie,"
            " order_id) VALUES ($1, $2, 'École des Aravis', 'Grenoble', $3)",
            school,
            UAI,
            ORDER,
        ),
        (
            "INSERT INTO directory_sync.sync_runs (run_id, school_id, uai, trigger,"
            " correlationid, state, status, counts, finished_at)"
            " VALUES ($1, $2, $3, 'nightly', $4, 'done', 'applied', '{\"created\": 3}', now())",
            ids["run"],
            school,
            UAI,
            run_correlation,
        ),
        (
            "INSERT INTO directory_sync.feed_snapshots (school_id, version, digest, run_id,"
            " persons, classes, persons_count) VALUES ($1, 1, 'd', $2, '[]', '[]', 0)",
            school,
            ids["run"],
        ),
        *(
            (
                "INSERT INTO credential_dispatch.dispatches (dispatch_id, purpose, school_id,"
                " channel, correlationid) VALUES ($1, $2, $3, 'email', $4)",
                ids[purpose],
                purpose,
                school,
                ORDER,
            )
            for purpose in ("first_access", "invoice", "request")
        ),
        *(
            (
                "INSERT INTO credential_dispatch.deliveries (delivery_id, dispatch_id, kind,"
                " status) VALUES ($1, $2, $3, $4)",
                uuid.uuid4(),
                ids[kind],
                kind,
                status,
            )
            for kind, status in (("first_access", "sent"), ("invoice", "pending"))
        ),
        (
            "INSERT INTO credential_dispatch.audit (audit_id, school_id, purpose, accounts,"
            " channel, completed_at, delivered) VALUES ($1, $2, 'first_access', $3, 'email',"
            ' now(), \'[{"to": "direction@example.org"}]\')',
            uuid.uuid4(),
            school,
            [ids["admin"]],
        ),
    ]


def item(status: dict[str, Any], step: str, key: str) -> dict[str, Any]:
    [found] = [
        i for s in status["steps"] if s["key"] == step for i in s["items"] if i["key"] == key
    ]
    return found


async def test_onectl_status_as_an_operator(stack, operator):
    ids = await seed_a_school(stack)
    cli = Cli(stack)
    cli.env["ONE_OPS_DATABASE_URL"] = operator
    # Nobody answers there: the status can only come through the operator's login.
    cli.env["ONE_DATABASE_ADMIN_URL"] = "postgresql://postgres@127.0.0.1:1/postgres"
    status = await cli.json("status", UAI)
    assert status["school"] == {
        "school_id": str(ids["school"]),
        "uai": UAI,
        "name": "École des Aravis",
        "provisioning": "automatic",
        "order_id": ORDER,
    }
    assert item(status, "opening", "order_received")["orders"] == [ORDER]
    assert item(status, "opening", "space_initialised")["done"]
    assert item(status, "opening", "administrator_access_sent")["count"] == 1
    invoice = item(status, "opening", "invoice_sent")
    assert (invoice["count"], invoice["pending"]) == (0, 1)
    assert invoice["invoices"] == ["ONE-2025-000001"]
    assert item(status, "accounts", "directory_synced")["last_run"]["run_id"] == str(ids["run"])
    assert item(status, "accounts", "classes_created")["count"] == 1
    created = item(status, "accounts", "accounts_created")
    assert created["per_profile"] == {"administrator": 1, "student": 1, "teacher": 1}
    assert (created["count"], created["deactivated"]) == (2, 1)
    attached = item(status, "accounts", "teachers_attached")
    assert (attached["done"], attached["count"], attached["total"]) == (True, 1, 1)
    assert item(status, "credentials", "sheets_dispatched")["requests"] == 1
    activated = item(status, "credentials", "accounts_activated")
    assert (activated["count"], activated["total"]) == (1, 3)
    assert not status["ready"]
    assert (await cli.json("status", ORDER))["school"]["uai"] == UAI


async def test_trace_audit_and_feed_reports_as_an_operator(stack, operator):
    ids = await seed_a_school(stack)
    settings = OnectlSettings(
        database_url=stack.database_url, database_admin_url=None, ops_database_url=operator
    )
    async with onectl_db.reader(settings) as reader:
        assert await reader.conn.fetchval("SELECT current_user") != "postgres"
        timeline = await onectl_db.trace(reader, ORDER)
        audit = await onectl_db.audit(reader, UAI)
        runs = await onectl_db.sync_runs(reader, UAI, 10)
        night = await onectl_db.night_runs(reader, "Grenoble", NIGHT)
        academie = await onectl_db.academie_named(reader, "grenoble")
        last = await onectl_db.last_applied_run(reader, UAI)
    assert [(e["action"], e["worker"], e["message_id"]) for e in timeline] == [
        ("received", topics.ORDER_INTAKE, "m-order"),
        ("published", topics.ORDER_INTAKE, "m-init"),
        ("received", topics.ACCOUNT_MANAGER, "m-init"),
    ]
    [entry] = audit["entries"]
    assert entry["delivered"] == [{"to": "direction@example.org"}]
    assert entry["accounts"] == [ids["admin"]]
    assert [r["run_id"] for r in runs] == [ids["run"]] == [r["run_id"] for r in night]
    assert runs[0]["counts"] == {"created": 3}
    assert (academie, last) == ("Grenoble", ids["run"])
