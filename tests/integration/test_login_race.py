"""Logins stay unique across the platform when several account_manager replicas create
accounts at once: 2,000 "Jean Dupont" give 2,000 distinct logins, with no error, no retry
and no lost command."""

import asyncio

import pytest

from services.account_manager.bootstrap import build
from services.account_manager.settings import AccountManagerSettings
from shared import topics
from tests.support.broker import EventSpy, drain_queue
from tests.support.commands import open_school
from tools.waits import eventually

COMMANDS, PER_COMMAND = 200, 10


@pytest.mark.parametrize("replicas", [2, 4])
async def test_replicas_creating_homonyms_give_distinct_logins(stack, channel, replicas):
    workers = [
        build(stack.settings(AccountManagerSettings, db_pool_max=8)) for _ in range(replicas)
    ]
    await asyncio.gather(*(w.start() for w in workers))
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        school = await open_school(channel, stack.exchange, spy)
        dupont = {
            "profile": "teacher",
            "first_name": "Jean",
            "last_name": "Dupont",
            "different_person": True,
        }
        requests = await asyncio.gather(
            *(
                school.send(
                    topics.ACCOUNTS_CREATE_REQUESTED,
                    {
                        "requested_by": school.admin_id,
                        "school_id": school.school_id,
                        "accounts": [dupont] * PER_COMMAND,
                    },
                )
                for _ in range(COMMANDS)
            )
        )

        async def all_answered() -> bool:
            answered = {
                e["correlationid"]
                for e in spy.events
                if e["type"] in (topics.ACCOUNTS_CREATED, topics.COMMAND_REJECTED)
            }
            return set(requests) <= answered

        await eventually(all_answered, timeout=120, interval=0.2, what="every command answered")
        created = [
            e for e in spy.of_type(topics.ACCOUNTS_CREATED) if e["correlationid"] in set(requests)
        ]
        assert len(created) == COMMANDS
        logins = [a["login"] for e in created for a in e["data"]["accounts"]]
        assert len(logins) == len(set(logins)) == COMMANDS * PER_COMMAND
        expected = {"jean.dupont"} | {
            f"jean.dupont{n}" for n in range(2, COMMANDS * PER_COMMAND + 1)
        }
        assert set(logins) == expected
        assert spy.of_type(topics.COMMAND_REJECTED) == []
        # Every replica took part, and none needed a retry.
        assert all(w._consumer.counts["applied"] > 0 for w in workers)
        assert sum(w._consumer.counts["retry"] for w in workers) == 0
        assert await drain_queue(channel, stack.names.dead_letter_queue) == []
    finally:
        await asyncio.gather(*(w.stop() for w in workers))
