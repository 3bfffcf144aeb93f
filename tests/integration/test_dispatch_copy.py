"""credential_dispatch's copy of accounts follows the feed's events: a moved pupil (and his
parent's classes), a deactivated leaver (no sheet handed out, no request from him), his
restoration, and removal."""

import uuid
from datetime import UTC, datetime, timedelta

from services.credential_dispatch.bootstrap import build as build_dispatch
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.credential_dispatch.store import DispatchStore
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
            store = DispatchStore(conn)
            assert await store.requester(pupil) is None  # asks for nothing
            chosen = await store.select(SCHOOL, None, None, [], False)
            assert [s.account_id for s in chosen] == [parent]  # handed out to nobody

        await send(AccountsUpdated(school_id=SCHOOL, accounts=[moved[0]], restored=[pupil]))

        async def restored():
            found = await row(pupil)
            return found if found and found["deactivated_at"] is None else None

        await eventually(restored, what="the restoration")
        async with dispatch.context.pool.acquire() as conn:
            chosen = await DispatchStore(conn).select(SCHOOL, None, None, [], False)
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
