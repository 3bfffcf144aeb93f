"""credential_dispatch's copy of accounts follows the feed's events: a moved pupil (and his
parent's classes), a deactivated leaver (no sheet handed out, no request from him), his
restoration, and removal."""

import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

from services.credential_dispatch.bootstrap import build as build_dispatch
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.credential_dispatch.store import PostgresDispatchStore
from shared.contracts.accounts import (
    Account,
    AccountsCreated,
    ClassesCreated,
    ClassInfo,
    CreatedAccount,
)
from shared.contracts.directory import AccountsDeactivated, AccountsDeleted, AccountsUpdated
from tests.conftest import Stack
from tests.support.broker import publish_event
from tools.waits import eventually

SCHOOL = uuid.uuid4()
CP, CE1 = uuid.uuid4(), uuid.uuid4()


def created(account_id: uuid.UUID, profile: str, first: str, **extra) -> CreatedAccount:
    return CreatedAccount(
        account_id=account_id,
        profile=profile,
        first_name=first,
        last_name="Lefèvre",
        login=f"{first.lower()}.lefevre",
        activation_code="abcd3456",
        activation_expires_at=datetime.now(UTC) + timedelta(days=30),
        **extra,
    )


async def test_the_copy_follows_moves_leavers_and_returns(stack: Stack, channel):
    dispatch = build_dispatch(stack.settings(CredentialDispatchSettings, smtp_port=9))
    await dispatch.start()
    admin = await stack.admin()
    pupil, parent = uuid.uuid4(), uuid.uuid4()

    async def send(data) -> None:
        await publish_event(channel, stack.exchange, data, correlationid="feed-run")

    async def row(account_id: uuid.UUID):
        return await admin.fetchrow(
            "SELECT a.classes, a.deactivated_at, array(SELECT class_id FROM"
            " credential_dispatch.account_classes c WHERE c.account_id = a.account_id) AS ids"
            " FROM credential_dispatch.accounts a WHERE a.account_id = $1",
            account_id,
        )

    try:
        await send(
            ClassesCreated(
                school_id=SCHOOL,
                classes=[ClassInfo(class_id=CP, name="CP"), ClassInfo(class_id=CE1, name="CE1")],
            )
        )
        await send(
            AccountsCreated(
                school_id=SCHOOL,
                school_name="École Jules Ferry",
                accounts=[
                    created(pupil, "student", "Zoé", classes=["CP"], class_ids=[CP]),
                    created(
                        parent, "relative", "Jean", classes=["CP"], class_ids=[CP], children=[pupil]
                    ),
                ],
            )
        )
        await eventually(lambda: row(parent), what="the copy of the accounts")

        # Zoé moves to CE1: her parent's classes follow.
        moved = [
            Account(
                account_id=pupil,
                profile="student",
                first_name="Zoé",
                last_name="Lefèvre",
                login="zoe.lefevre",
                classes=["CE1"],
                class_ids=[CE1],
            ),
            Account(
                account_id=parent,
                profile="relative",
                first_name="Jean",
                last_name="Lefèvre",
                login="jean.lefevre",
                email="jean@example.org",
                classes=["CE1"],
                class_ids=[CE1],
                children=[pupil],
            ),
        ]
        await send(AccountsUpdated(school_id=SCHOOL, accounts=moved))

        async def in_ce1():
            found = await row(parent)
            return found if found and list(found["ids"]) == [CE1] else None

        assert (await eventually(in_ce1, what="the move"))["classes"] == ["CE1"]
        assert list((await row(pupil))["ids"]) == [CE1]

        await send(AccountsDeactivated(school_id=SCHOOL, accounts=[moved[0]]))

        async def deactivated():
            found = await row(pupil)
            return found if found and found["deactivated_at"] is not None else None

        await eventually(deactivated, what="the deactivation")
        assert dispatch.context is not None
        async with dispatch.context.pool.acquire() as conn:
            store = PostgresDispatchStore(conn)
            assert await store.requester(pupil) is None  # asks for nothing
            chosen = await store.select(SCHOOL, None, None, [], False)
            assert [s.account_id for s in chosen] == [parent]  # handed out to nobody

        await send(AccountsUpdated(school_id=SCHOOL, accounts=[moved[0]], restored=[pupil]))

        async def restored():
            found = await row(pupil)
            return found if found and found["deactivated_at"] is None else None

        await eventually(restored, what="the restoration")
        async with dispatch.context.pool.acquire() as conn:
            chosen = await PostgresDispatchStore(conn).select(SCHOOL, None, None, [], False)
            assert {s.account_id for s in chosen} == {pupil, parent}

        await send(AccountsDeleted(school_id=SCHOOL, accounts=moved))

        async def gone():
            return ((await row(pupil)) is None and (await row(parent)) is None) or None

        await eventually(gone, what="the removal")
        links = await admin.fetchval(
            "SELECT count(*) FROM credential_dispatch.parent_children WHERE child_id = $1", pupil
        )
        assert links == 0
    finally:
        await dispatch.stop()
        await admin.close()


async def test_the_copy_holds_each_account_as_its_event_gave_it(stack: Stack):
    """upsert_accounts and update_accounts: the names, the classes in their order (names
    that need quoting in an array), the children, the codes; an account given twice in one
    message (the last one wins, its classes joined). What any other way of writing these
    rows must keep (bench/feed.py, docs/performance.md)."""
    dispatch = build_dispatch(stack.settings(CredentialDispatchSettings, smtp_port=9))
    await dispatch.start()  # its schema
    await dispatch.stop()
    conn = await asyncpg.connect(
        stack.database_url.replace("postgresql://", "postgresql://postgres@"),
        server_settings={"search_path": "credential_dispatch"},
    )
    a, b, k1, k2 = (uuid.uuid4() for _ in range(4))
    c1, c2, c3 = (uuid.uuid4() for _ in range(3))
    odd = ['CE1 "les grands"', "CP, B", "{CM2}", "Moyenne section\\2", "Élèves d'Émile"]
    first = created(a, "relative", "Anne", classes=odd[:3], class_ids=[c1, c2], children=[k2, k1])
    again = created(
        a, "relative", "Annie", classes=odd[2:], class_ids=[c3], children=[k1], email="a@x.fr"
    )
    other = created(b, "student", "Bob", birth_date=date(2018, 3, 14))

    async def rows() -> dict[uuid.UUID, tuple]:
        found = await conn.fetch(
            "SELECT account_id, school_id, profile, first_name, last_name, login, email,"
            " birth_date, classes, children, activation_code FROM accounts"
        )
        return {r["account_id"]: tuple(r) for r in found}

    def expected(account: Account, code: str | None) -> tuple:
        return (
            account.account_id,
            SCHOOL,
            account.profile,
            account.first_name,
            account.last_name,
            account.login,
            account.email,
            account.birth_date,
            account.classes,
            account.children,
            code,
        )

    try:
        async with conn.transaction():
            store = PostgresDispatchStore(conn)
            await store.upsert_accounts(SCHOOL, [first, other, again])
            await store.link_accounts([first, other, again])
        assert await rows() == {a: expected(again, "abcd3456"), b: expected(other, "abcd3456")}
        links = await conn.fetch("SELECT account_id, class_id FROM account_classes")
        assert {tuple(r) for r in links} == {(a, c1), (a, c2), (a, c3)}  # as row by row
        family = await conn.fetch("SELECT parent_id, child_id FROM parent_children")
        assert {tuple(r) for r in family} == {(a, k1), (a, k2)}

        moved = Account(**{**first.model_dump(), "classes": odd[3:], "class_ids": [c3]})
        async with conn.transaction():
            await PostgresDispatchStore(conn).update_accounts(SCHOOL, [moved])
        assert (await rows())[a] == expected(moved, "abcd3456")  # the code stays
        links = await conn.fetch("SELECT account_id, class_id FROM account_classes")
        assert {tuple(r) for r in links} == {(a, c3)}
        family = await conn.fetch("SELECT parent_id, child_id FROM parent_children")
        assert {tuple(r) for r in family} == {(a, k1), (a, k2)}
    finally:
        await conn.close()


async def test_the_copy_keeps_its_planner_statistics(stack: Stack, channel):
    """credential_dispatch analyses its copy once a burst of accounts.created has grown it
    (this machine's Postgres runs without autovacuum: only the worker can have analysed
    it); planned on an empty table, a lookup by id scanned the whole copy."""
    dispatch = build_dispatch(
        stack.settings(
            CredentialDispatchSettings,
            smtp_port=9,
            statistics_interval_seconds=0.2,
            statistics_min_changes=100,
            statistics_share=0.5,
        )
    )
    await dispatch.start()
    admin = await stack.admin()
    school = uuid.uuid4()
    pupils = [created(uuid.uuid4(), "student", f"Zoé{n}") for n in range(300)]

    async def analysed() -> float | None:
        row = await admin.fetchrow(
            "SELECT c.reltuples FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid"
            " WHERE t.schemaname = 'credential_dispatch' AND t.relname = 'accounts'"
            " AND t.last_analyze IS NOT NULL"
        )
        return None if row is None or row["reltuples"] < len(pupils) else row["reltuples"]

    try:
        await publish_event(
            channel,
            stack.exchange,
            AccountsCreated(school_id=school, accounts=pupils),
            correlationid="feed-run",
        )
        assert await eventually(analysed, timeout=20, what="the copy analysed") >= len(pupils)
    finally:
        await admin.close()
        await dispatch.stop()
