"""One person across schools, §4 (docs/one-person-across-schools.md): two replicas applying
the first chunks of two schools at once, each about to create the same parent (same names
and email), end with one account attached to both schools. The second waits on the
identity lock the first holds, then finds the first's account."""

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from services.account_manager.feed import AccountLifetimes, handle_directory_synced
from services.account_manager.feed_store import PostgresFeedStore
from shared import topics
from shared.contracts.directory import FeedClass, FeedPerson
from shared.envelope import Envelope, new_event
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy
from tests.support.feed_events import FedSchool, chunk, open_automatic_school, parent, pupil

LIFETIMES = AccountLifetimes(activation_ttl=timedelta(days=90), grace=timedelta(days=90))
EMAIL = "ada.roux@example.org"


@pytest.fixture
async def spy(stack: Stack, channel: AbstractChannel) -> EventSpy:
    watching = EventSpy()
    await watching.start(channel, stack.exchange)
    return watching


async def apply(
    store: PostgresFeedStore, school: FedSchool, klass: str, people: list[FeedPerson]
) -> list[Envelope[Any]]:
    """A school's first chunk, applied in the transaction the caller holds open."""
    event = new_event(
        chunk(school, uuid.uuid4(), 0, 1, [FeedClass(name=klass, level=klass)], created=people),
        source="urn:one:tests",
        correlationid="direct",
    )
    await handle_directory_synced(event, store=store, lifetimes=LIFETIMES, now=datetime.now(UTC))
    return store.emitted


async def test_two_schools_first_chunks_at_once_make_one_parent(
    account_manager: Worker, stack: Stack, channel: AbstractChannel, spy: EventSpy
) -> None:
    a = await open_automatic_school(channel, stack.exchange, spy, number=1)
    b = await open_automatic_school(channel, stack.exchange, spy, number=2)
    lou = pupil("Lou", "Roux", date(2020, 5, 4), "GS")
    zoe = pupil("Zoé", "Roux", date(2018, 2, 1), "CP")
    in_a, in_b = parent("Ada", "Roux", lou, email=EMAIL), parent("Ada", "Roux", zoe, email=EMAIL)
    assert account_manager.context is not None
    pool = account_manager.context.pool
    async with pool.acquire() as first, pool.acquire() as second:
        holding = first.transaction()
        await holding.start()
        try:
            await apply(PostgresFeedStore(first), a, "GS", [lou, in_a])

            async def apply_b() -> list[Envelope[Any]]:
                async with second.transaction():
                    return await apply(PostgresFeedStore(second), b, "CP", [zoe, in_b])

            # B's chunk, about to create Ada too, waits while A's transaction is open...
            waiting = asyncio.create_task(apply_b())
            done, _ = await asyncio.wait([waiting], timeout=0.5)
            assert not done, "B's chunk looked for Ada while A was creating her"
            await holding.commit()
        except BaseException:
            await holding.rollback()
            raise
        # ... then finds her account and attaches it.
        out = await asyncio.wait_for(waiting, timeout=10)

    conn = await stack.admin()
    try:
        await conn.execute("SET search_path TO account_manager")
        ada = await conn.fetch(
            "SELECT account_id, school_id FROM accounts WHERE profile = 'relative'"
            " AND school_id = ANY($1::uuid[])",
            [a.school_id, b.school_id],
        )
        [(ada_id, home)] = [(r["account_id"], r["school_id"]) for r in ada]
        held = await conn.fetch(
            "SELECT school_id FROM account_schools WHERE account_id = $1", ada_id
        )
        children = await conn.fetch(
            "SELECT c.first_name FROM parent_children pc JOIN accounts c"
            " ON c.account_id = pc.child_id WHERE pc.parent_id = $1 ORDER BY 1",
            ada_id,
        )
    finally:
        await conn.close()
    assert home == a.school_id
    assert [r["school_id"] for r in held] == [b.school_id]
    assert [r["first_name"] for r in children] == ["Lou", "Zoé"]
    [attached] = [e.data for e in out if e.type == topics.ACCOUNTS_ATTACHED]
    assert [v.account_id for v in attached.accounts] == [ada_id]


async def test_a_chunk_claims_more_identities_than_the_shared_lock_table_holds(
    account_manager: Worker,
) -> None:
    """A first import's chunks claim hundreds of keys each, many chunks at once: the claims
    are row locks, so they never fill the lock table advisory locks share (they would fail
    here with "out of shared memory")."""
    assert account_manager.context is not None
    async with account_manager.context.pool.acquire() as conn, conn.transaction():
        slots = await conn.fetchval(
            "SELECT current_setting('max_locks_per_transaction')::int"
            " * (current_setting('max_connections')::int"
            "    + current_setting('max_prepared_transactions')::int)"
        )
        keys = [f"ine:{n:011d}" for n in range(slots + 1_000)]
        await PostgresFeedStore(conn).lock_identities(keys, datetime.now(UTC))
        claimed = await conn.fetchval("SELECT count(*) FROM account_manager.identity_claims")
        locks = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
        )
    assert claimed >= len(keys) - 5  # a hash shared by two keys is one claim
    assert locks == 0
