"""Postgres: provisioning of a worker's role and schema, its pool, its migrations."""

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.logs import get_logger

log = get_logger(__name__)
# What a pool hands out, or a connection of its own: the stores accept either.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
BACKBONE_MIGRATIONS = Path(__file__).parent / "migrations"
# The group role of those who read the pipeline (onectl), and only its ``_ops`` views.
OPS_ROLE = "one_ops"


@dataclass(frozen=True)
class Database:
    """Where a worker's data lives and who it logs in as."""

    url: str  # server and database; a user in it wins over ``role``
    role: str
    schema: str
    password: str | None = None

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.lstrip("/") or "postgres"

    @property
    def user(self) -> str:
        return urlsplit(self.url).username or self.role


# Concurrent creations of the same catalog object surface as either of these.
_ALREADY_THERE = (
    asyncpg.exceptions.DuplicateDatabaseError,
    asyncpg.exceptions.DuplicateObjectError,
    asyncpg.exceptions.UniqueViolationError,
)


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def ops_schema(schema: str) -> str:
    """Where a worker's schema shows operators what they read: read-only, versioned views."""
    return f"{schema}_ops"


def quote_ident(name: str) -> str:
    """``name`` as a SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


async def provision(admin_url: str, db: Database) -> None:
    """Create the database, the worker's role and its schema when missing, and what onectl
    reads it through: the group role ``one_ops`` and the worker's ``<schema>_ops`` schema
    of read-only views (its migrations make the views).

    Safe when several replicas start together: creation races are absorbed, and the
    role/schema part runs under an advisory lock.
    """
    await _create_database(admin_url, db.name)
    conn = await asyncpg.connect(_with_database(admin_url, db.name))
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("one:provision"))
            await _create_role(conn, db.role, "LOGIN")
            if db.password:
                role = quote_ident(db.role)
                await conn.execute(f"ALTER ROLE {role} PASSWORD {_literal(db.password)}")
            await _own_schema(conn, db)
            await _ops_schema(conn, db)
    finally:
        await conn.close()


async def _create_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(*_ALREADY_THERE):  # another replica created it first
                await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await admin.close()


async def _create_role(conn: "asyncpg.Connection[Any]", name: str, options: str) -> None:
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
        return
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE ROLE {quote_ident(name)} {options}")
    except _ALREADY_THERE:
        pass  # roles are cluster-wide: a replica in another database won


async def _own_schema(conn: "asyncpg.Connection[Any]", db: Database) -> None:
    role, schema = quote_ident(db.role), quote_ident(db.schema)
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
    await conn.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
    # As deploy/postgres/init.sql: no role but the workers' connects (PUBLIC's
    # default CONNECT and TEMP would let any login role of the cluster in).
    await conn.execute(f"REVOKE ALL ON DATABASE {quote_ident(db.name)} FROM PUBLIC")
    await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    await conn.execute(f"GRANT CONNECT ON DATABASE {quote_ident(db.name)} TO {role}")


async def _ops_schema(conn: "asyncpg.Connection[Any]", db: Database) -> None:
    """``one_ops`` (no login: operators log in as themselves, members of it) may connect
    and read the ``_ops`` views, nothing else. The worker's role owns the schema, since it
    may not create one; its migrations make the views, and ``migrate`` grants them."""
    role, ops = quote_ident(db.role), quote_ident(ops_schema(db.schema))
    await _create_role(conn, OPS_ROLE, "NOLOGIN")
    await conn.execute(f"GRANT CONNECT ON DATABASE {quote_ident(db.name)} TO {OPS_ROLE}")
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ops} AUTHORIZATION {role}")


async def _ops_views(conn: Connection, schema: str, *, before: bool) -> None:
    """Before the migrations: the ``<schema>_ops`` schema they make views in, made here
    where provisioning did not (a role that may create schemas, a local superuser), or a
    clear error. After: its views granted to ``one_ops`` where that role exists (a
    database provisioned without it still migrates), at every start, so that a view a
    migration adds and a ``one_ops`` made after the views are both covered."""
    ops = ops_schema(schema)
    if before:
        if await conn.fetchval("SELECT to_regnamespace($1) IS NULL", ops):
            await _create_ops_schema(conn, ops)
        return
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", OPS_ROLE):
        await conn.execute(f"GRANT USAGE ON SCHEMA {quote_ident(ops)} TO {OPS_ROLE}")
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {quote_ident(ops)} TO {OPS_ROLE}")


async def _create_ops_schema(conn: Connection, ops: str) -> None:
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE SCHEMA {quote_ident(ops)}")
    except asyncpg.InsufficientPrivilegeError as exc:
        user = await conn.fetchval("SELECT current_user")
        raise RuntimeError(
            f"schema {ops} is missing and {user} may not create it: provision it"
            f" (ONE_DATABASE_ADMIN_URL) or, as a superuser: CREATE SCHEMA {ops}"
            f" AUTHORIZATION {quote_ident(user)}"
        ) from exc


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def create_pool(db: Database, *, min_size: int, max_size: int, service: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        db.url,
        user=db.user,
        password=db.password,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": db.schema, "application_name": service},
        reset=_no_session_state,
    )
    assert pool is not None
    return pool


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """What a connection needs before going back to the pool, beyond asyncpg's own rollback
    of an open transaction: nothing. The workers keep no session state (advisory locks are
    transaction-scoped, no cursor outlives its transaction, no LISTEN, no session SET), so
    asyncpg's default reset query (unlock all, CLOSE ALL, UNLISTEN, RESET ALL) would only
    cost a round trip on every release."""


async def migrate(pool: asyncpg.Pool, schema: str, *folders: Path) -> list[str]:
    """Apply the missing ``*.sql`` files of ``folders`` in name order, once each, then
    grant the worker's ``_ops`` views to ``one_ops`` (see ``_ops_views``).

    Replicas starting together serialise on an advisory lock; the loser finds nothing left.
    """
    files = sorted((f for folder in folders for f in folder.glob("*.sql")), key=lambda f: f.name)
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(f"one:migrate:{schema}"))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        await _ops_views(conn, schema, before=True)
        for file in files:
            if file.name in done:
                continue
            await conn.execute(file.read_text())
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", file.name)
            applied.append(file.name)
        await _ops_views(conn, schema, before=False)
    if applied:
        log.info("migrated", schema=schema, applied=applied)
    return applied
