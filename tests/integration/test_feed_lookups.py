"""account_manager's lookups across schools read a bounded number of rows, whatever the
académie holds: a newcomer parent with a common name is looked for among every namesake of
other schools, and a 2,000-school first import has thousands of them per name; a parent's
classes follow his children's, whatever the number of classes of the académie. Counted
with Postgres's own counters of the transaction (pg_stat_xact_user_tables): the rows of a
table that index and sequential scans handed over."""

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.account_manager.domain import fold_name_part
from services.account_manager.feed_store import PostgresFeedStore
from services.account_manager.ports import NewAccount
from shared.db import Connection
from shared.worker import Worker
from tests.support.orders import uai

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def parent(school_id: uuid.UUID, n: int) -> NewAccount:
    """Nathalie MARTIN number ``n``: same names, her own address, made by the feed."""
    return NewAccount(
        account_id=uuid.uuid4(),
        school_id=school_id,
        profile="relative",
        first_name="Nathalie",
        last_name="MARTIN",
        email=f"nathalie.martin{n}@example.org",
        birth_date=None,
        activation_code=f"code{n:04d}",
        activation_expires_at=T0 + timedelta(days=90),
        first_folded=fold_name_part("Nathalie"),
        last_folded=fold_name_part("MARTIN"),
        feed_id=uuid.uuid4(),
    )


async def rows_read(conn: Connection, table: str) -> int:
    row = await conn.fetchrow(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n"
        " FROM pg_stat_xact_user_tables WHERE relid = $1::regclass",
        table,
    )
    return int(row["n"]) if row else 0


@asynccontextmanager
async def two_schools(
    worker: Worker, number: int
) -> AsyncIterator[tuple[Connection, PostgresFeedStore, uuid.UUID, uuid.UUID]]:
    """A school here and one elsewhere, in a transaction rolled back at the end."""
    assert worker.context is not None
    async with worker.context.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            store = PostgresFeedStore(conn)
            here, elsewhere = uuid.uuid4(), uuid.uuid4()
            for n, school in enumerate((here, elsewhere)):
                await store.add_school(
                    school, uai=uai("074", number + n), name=f"École {n}", provisioning="automatic"
                )
            yield conn, store, here, elsewhere
        finally:
            await transaction.rollback()


async def test_a_parents_lookup_reads_a_few_rows_whatever_his_namesakes(
    account_manager: Worker,
) -> None:
    async with two_schools(account_manager, 900) as (conn, store, here, elsewhere):
        namesakes = [parent(elsewhere, n) for n in range(600)]
        await store.add_accounts_as(namesakes, [f"n.martin{n}" for n in range(600)])
        await conn.execute("ANALYZE accounts")
        lookup = functools.partial(
            store.parent_candidates,
            here,
            [("nathalie", "martin", "nathalie.martin599@example.org")],
            T0 - timedelta(days=1),
        )
        before = await rows_read(conn, "accounts")
        found = await lookup()
        read = await rows_read(conn, "accounts") - before
        # The one with her address and the first namesake: nobody else was read.
        assert {c.account_id for c in found} == {
            namesakes[599].account_id,
            min(a.account_id for a in namesakes),
        }
        assert read <= 4, f"{read} rows of accounts read for one newcomer"


async def test_a_family_s_classes_are_read_by_key_whatever_the_academie_s_classes(
    account_manager: Worker,
) -> None:
    """A parent's classes follow his children's: each child's classes are read from his
    memberships, not from every active class of the académie. ``classes`` is left without
    statistics, as a first import leaves it (four rows a school)."""
    async with two_schools(account_manager, 910) as (conn, store, here, elsewhere):
        await store.add_classes(elsewhere, [(uuid.uuid4(), f"Classe {n}") for n in range(400)])
        current, last_year = uuid.uuid4(), uuid.uuid4()
        await store.add_classes(here, [(current, "CP"), (last_year, "GS")])
        await store.archive_classes([last_year], T0)
        child = replace(parent(here, 1), profile="student", first_name="Lou")
        mother = parent(here, 2)
        await store.add_accounts_as([child, mother], ["lou.martin", "n.martin2"])
        await store.link_class_pairs([(child.account_id, current), (child.account_id, last_year)])
        await store.link_children_pairs([(mother.account_id, child.account_id)])
        before = await rows_read(conn, "classes")
        active, links, attended = await store.family_classes([mother.account_id])
        read = await rows_read(conn, "classes") - before
        assert (active, links) == ([mother.account_id], [(mother.account_id, child.account_id)])
        assert attended == {child.account_id: [current]}  # last year's class is archived
        assert read <= 4, f"{read} rows of classes read for a child in two classes"
