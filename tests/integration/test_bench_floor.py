"""bench.floor's clones are what its figures say they are: the pipeline's tables with every
index and live foreign key, then without the foreign keys, then with their primary keys
only, then bare. A clone that lost an index or a foreign key would make the floor look
cheaper than the tables it stands for."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bench import floor
from services.account_manager.bootstrap import build as build_account_manager
from services.account_manager.settings import AccountManagerSettings
from services.credential_dispatch.bootstrap import build as build_credential_dispatch
from services.credential_dispatch.settings import CredentialDispatchSettings
from shared import db
from tests.conftest import Stack
from tools.workers import ROOT


@pytest.fixture
async def migrated(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    """The stack's database with account_manager's and credential_dispatch's schemas, as
    their workers migrate them; a superuser connection to it."""
    workers = (
        build_account_manager(stack.settings(AccountManagerSettings)),
        build_credential_dispatch(stack.settings(CredentialDispatchSettings)),
    )
    for worker in workers:
        await db.provision(stack.services.admin_url, worker.database)
        pool = await db.create_pool(worker.database, min_size=1, max_size=1, service=worker.name)
        try:
            folder = ROOT / "services" / worker.name / "migrations"
            await db.migrate(pool, worker.name, db.BACKBONE_MIGRATIONS, folder)
        finally:
            await pool.close()
    conn = await stack.admin()
    yield conn
    await conn.close()


async def structure(conn: asyncpg.Connection, schema: str, table: str) -> tuple[int, int]:
    """The table's indexes and foreign keys."""
    relation = f"{schema}.{table}"
    indexes = await conn.fetchval(
        "SELECT count(*) FROM pg_index WHERE indrelid = $1::regclass", relation
    )
    keys = await conn.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'",
        relation,
    )
    return indexes, keys


async def test_the_clones_keep_what_their_variant_says(migrated: asyncpg.Connection) -> None:
    conn = migrated
    for variant in floor.VARIANTS:
        await floor.clone(conn, variant)
        for schema, table, _ in floor.SOURCES:
            indexes, keys = await structure(conn, schema, table)
            cloned = await structure(conn, floor.clone_name(schema), table)
            if variant == "as the pipeline's tables are":
                assert cloned == (indexes, keys), (schema, table)
            elif variant == "without foreign keys":
                assert cloned == (indexes, 0), (schema, table)
            elif variant == "keys only":
                primary = await conn.fetchval(
                    "SELECT count(*) FROM pg_constraint"
                    " WHERE conrelid = $1::regclass AND contype = 'p'",
                    f"{schema}.{table}",
                )
                assert cloned == (primary, 0), (schema, table)
            else:
                assert cloned == (0, 0), (schema, table)
    # The tables it measures have indexes and foreign keys to lose.
    assert await structure(conn, "account_manager", "account_classes") == (2, 2)


async def test_the_pipeline_s_clone_refuses_a_link_to_an_unknown_account(
    migrated: asyncpg.Connection,
) -> None:
    conn = migrated
    school = uuid.uuid4()
    dangling = floor.Rows(
        "account_manager",
        "account_classes",
        ["account_id", "class_id"],
        {school: [(uuid.uuid4(), uuid.uuid4())]},
    )
    await floor.clone(conn, "as the pipeline's tables are")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await floor.write(conn, [dangling], [school])
    await floor.clone(conn, "keys only")
    await floor.write(conn, [dangling], [school])
    stored = await conn.fetchval(
        f"SELECT count(*) FROM {floor.clone_name('account_manager')}.account_classes"
    )
    assert stored == 1
