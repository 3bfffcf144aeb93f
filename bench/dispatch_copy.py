"""credential_dispatch's copy of the accounts, written as its accounts.created handler
writes it: the CPU a person it costs Postgres (the backend's own counters) and this
process, for messages shaped as a feed chunk of a school (100 pupils in 4 classes, 160
parents with one or two children each). Baseline in the same run: the backend CPU a
person of a raw COPY of the same accounts and links into bare tables.

Measures the Postgres side of one handler on its own, where bench/feed.py's whole
pipeline on two shared cores cannot tell a change of a few percent from the machine's
drift.

    python -m bench.dispatch_copy [--messages 80]
"""

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.common import ADMIN_URL, Namespace
from services.credential_dispatch.store import PostgresDispatchStore
from shared import db
from shared.contracts.accounts import CreatedAccount

MIGRATIONS = Path("services/credential_dispatch/migrations")
PUPILS, PARENTS, CLASSES = 100, 160, 4


def backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def school_accounts() -> list[CreatedAccount]:
    classes = [uuid.uuid4() for _ in range(CLASSES)]
    expires = datetime.now(UTC) + timedelta(days=30)

    def account(profile: str, i: int, children: list[uuid.UUID]) -> CreatedAccount:
        return CreatedAccount(
            account_id=uuid.uuid4(),
            profile=profile,
            first_name="Léo" if profile == "student" else "Anne",
            last_name="Martin",
            login=f"{profile}.{uuid.uuid4().hex[:12]}",
            email=None if profile == "student" else "anne.martin@example.org",
            birth_date=None,
            classes=[f"Classe {i % CLASSES}"],
            class_ids=[classes[i % CLASSES]],
            children=children,
            activation_code="abcd2345",
            activation_expires_at=expires,
        )

    pupils = [account("student", i, []) for i in range(PUPILS)]
    parents = [
        account(
            "relative",
            i,
            [pupils[i % PUPILS].account_id, pupils[(i + 1) % PUPILS].account_id][: 1 + i % 2],
        )
        for i in range(PARENTS)
    ]
    return pupils + parents


async def measure(
    conn: asyncpg.Connection,
    messages: list[list[CreatedAccount]],
    write: Callable[[list[CreatedAccount]], Awaitable[None]],
) -> tuple[float, float]:
    """Backend and own CPU µs a person of ``write`` over ``messages``, one transaction each."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    backend, own = backend_cpu_s(pid), time.process_time()
    for accounts in messages:
        async with conn.transaction():
            await write(accounts)
    persons = sum(len(m) for m in messages)
    return (
        (backend_cpu_s(pid) - backend) / persons * 1e6,
        (time.process_time() - own) / persons * 1e6,
    )


async def run(count: int) -> None:
    ns = Namespace()
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{ns.database}"')
    await admin.close()
    url = f"postgresql://postgres@127.0.0.1:5432/{ns.database}"
    try:
        conn = await asyncpg.connect(url, server_settings={"search_path": "credential_dispatch"})
        await conn.execute("CREATE SCHEMA credential_dispatch")
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=1, server_settings={"search_path": "credential_dispatch"}
        )
        assert pool is not None
        await db.migrate(pool, "credential_dispatch", db.BACKBONE_MIGRATIONS, MIGRATIONS)
        await pool.close()
        await conn.execute(
            "CREATE TABLE bare_accounts (account_id uuid, school_id uuid, profile text,"
            " first_name text, last_name text, login text, email text, activation_code text);"
            " CREATE TABLE bare_links (a uuid, b uuid)"
        )
        store = PostgresDispatchStore(conn)
        school = uuid.uuid4()

        async def handler_writes(accounts: list[CreatedAccount]) -> None:
            await store.upsert_accounts(school, accounts)
            await store.link_accounts(accounts)

        async def raw_copy(accounts: list[CreatedAccount]) -> None:
            await conn.copy_records_to_table(
                "bare_accounts",
                records=[
                    (
                        a.account_id,
                        school,
                        a.profile,
                        a.first_name,
                        a.last_name,
                        a.login,
                        a.email,
                        a.activation_code,
                    )
                    for a in accounts
                ],
            )
            await conn.copy_records_to_table(
                "bare_links",
                records=[(a.account_id, c) for a in accounts for c in [*a.class_ids, *a.children]],
            )

        rounds = {"handler": handler_writes, "raw COPY": raw_copy}
        print(
            f"\ncredential_dispatch's copy — {count} messages of {PUPILS + PARENTS} accounts,"
            f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; CPU µs a person (Postgres / this process)"
        )
        # Alternated twice, the tables growing as a night's would.
        for turn in (1, 2):
            for name, write in rounds.items():
                messages = [school_accounts() for _ in range(count)]
                backend, own = await measure(conn, messages, write)
                print(
                    f"  {name:<10} turn {turn}: Postgres {backend:6.1f}   this process {own:6.1f}"
                )
        await conn.close()
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{ns.database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=80)
    asyncio.run(run(parser.parse_args().messages))


if __name__ == "__main__":
    main()
