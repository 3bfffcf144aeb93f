"""Two requests creating the same person at once: the second waits for the first to commit
(AccountStore.lock_people), so that it sees the person and refuses him; requests about
other people do not wait."""

import asyncio
import uuid

import asyncpg

from services.account_manager.store import PostgresAccountStore
from shared.worker import Worker
from tests.conftest import Stack

SCHOOL = uuid.uuid4()
ANNE = ("student", "anne", "martin", None)
BOB = ("student", "bob", "martin", None)
CLAIRE = ("teacher", "claire", "durand", None)


async def test_a_request_for_a_person_being_created_waits_for_the_first(
    stack: Stack, account_manager: Worker
) -> None:
    url = stack.database_url.replace("postgresql://", "postgresql://postgres@")
    settings = {"search_path": "account_manager"}
    first, second, third = [await asyncpg.connect(url, server_settings=settings) for _ in range(3)]
    try:
        holding = first.transaction()
        await holding.start()
        await PostgresAccountStore(first).lock_people(SCHOOL, sorted([ANNE, BOB], key=str))

        async def lock(conn: asyncpg.Connection, keys: list) -> None:
            async with conn.transaction():
                await PostgresAccountStore(conn).lock_people(SCHOOL, sorted(keys, key=str))

        # Other people: no wait.
        await asyncio.wait_for(lock(third, [CLAIRE]), timeout=5)
        # Bob among others: waits while the first request's transaction is open.
        waiting = asyncio.create_task(lock(second, [BOB, CLAIRE]))
        done, _ = await asyncio.wait([waiting], timeout=0.5)
        assert not done, "a second request for Bob went on while the first held him"
        await holding.commit()
        await asyncio.wait_for(waiting, timeout=5)  # and goes on once it committed
    finally:
        for conn in (first, second, third):
            await conn.close()
