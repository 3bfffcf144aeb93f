"""One person across schools (docs/one-person-across-schools.md, §6) in credential_dispatch,
against real RabbitMQ, Postgres and Chromium: a parent with a child in each of two schools,
attached to the second by accounts.attached, is printed by each school's administrator; each
sheet names that school's child only, and both carry his one login and code."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from services.account_manager.bootstrap import build as build_accounts
from services.account_manager.settings import AccountManagerSettings
from services.credential_dispatch.bootstrap import build as build_dispatch
from services.credential_dispatch.settings import CredentialDispatchSettings
from shared import topics
from shared.contracts.accounts import Account
from shared.contracts.directory import AccountsAttached
from tests.conftest import Stack
from tests.support.broker import EventSpy, publish_event
from tests.support.commands import School, open_school
from tests.support.pdf import pdf_text, stored_document
from tools import smtp_sink
from tools.ports import free_port
from tools.waits import eventually


@dataclass
class Family:
    maternelle: School
    elementaire: School
    parent: dict[str, Any]  # his accounts.created entry, in the maternelle
    child_there: dict[str, Any]
    child_here: dict[str, Any]  # the élémentaire's pupil
    sink: smtp_sink.FileSink


async def create(school: School, *persons: dict[str, Any]) -> list[dict[str, Any]]:
    """The accounts.created entries of ``persons``, made by the school's administrator."""
    event = await school.create(school.admin_id, *persons)
    assert event["type"] == topics.ACCOUNTS_CREATED, event
    accounts: list[dict[str, Any]] = event["data"]["accounts"]
    return accounts


@pytest.fixture
async def family(stack: Stack, channel: AbstractChannel, tmp_path) -> AsyncIterator[Family]:
    port = free_port()
    controller, sink = smtp_sink.start(tmp_path, port=port)
    accounts = build_accounts(stack.settings(AccountManagerSettings))
    dispatch = build_dispatch(stack.settings(CredentialDispatchSettings, smtp_port=port))
    await asyncio.gather(accounts.start(), dispatch.start())
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        maternelle = await open_school(channel, stack.exchange, spy, number=1)
        elementaire = await open_school(channel, stack.exchange, spy, number=2)
        child_there, parent = await create(
            maternelle,
            {
                "ref": "a",
                "profile": "student",
                "first_name": "Zoé",
                "last_name": "Lefèvre",
                "birth_date": "2021-03-14",
                "class_ids": [maternelle.class_ids[0]],
            },
            {
                "profile": "relative",
                "first_name": "Jean",
                "last_name": "Lefèvre",
                "email": "jean.lefevre@example.org",
                "children": ["a"],
            },
        )
        [child_here] = await create(
            elementaire,
            {
                "profile": "student",
                "first_name": "Hugo",
                "last_name": "Lefèvre",
                "birth_date": "2018-05-02",
                "class_ids": [elementaire.class_ids[0]],
            },
        )
        # The parent found again in the élémentaire (§1), as account_manager will tell it.
        in_elementaire = Account.model_validate(
            {
                **parent,
                "children": [child_here["account_id"]],
                "class_ids": [elementaire.class_ids[0]],
            }
        )
        attached = AccountsAttached(school_id=elementaire.school_id, accounts=[in_elementaire])
        await publish_event(channel, stack.exchange, attached, correlationid="feed-run")
        await eventually(
            lambda: attached_to(stack, parent["account_id"]), what="the parent attached"
        )
        yield Family(maternelle, elementaire, parent, child_there, child_here, sink)
    finally:
        await asyncio.gather(accounts.stop(), dispatch.stop())
        controller.stop()


async def attached_to(stack: Stack, account_id: str) -> bool | None:
    admin = await stack.admin()
    try:
        found = await admin.fetchval(
            "SELECT count(*) FROM credential_dispatch.account_schools WHERE account_id = $1",
            uuid.UUID(account_id),
        )
    finally:
        await admin.close()
    return found == 1 or None


async def dispatched(school: School, **request: Any) -> dict[str, Any]:
    """credentials.dispatched for the administrator's request."""
    request_id = await school.send(
        topics.CREDENTIALS_DISPATCH_REQUESTED,
        {"requested_by": school.admin_id, "school_id": school.school_id, **request},
    )
    event = await school.outcome_of(
        request_id, (topics.CREDENTIALS_DISPATCHED, topics.COMMAND_REJECTED), timeout=60
    )
    assert event["type"] == topics.CREDENTIALS_DISPATCHED, event
    return event


async def printed_parents(stack: Stack, school: School) -> str:
    """The text of the detailed sheets of the school's parents, as its administrator
    prints them (the document as stored: both administrators share one address)."""
    event = await dispatched(
        school, channel="print", layout="detailed", filter={"profiles": ["relative"]}
    )
    pdf = await stored_document(stack, event["data"]["document_id"])
    return "\n".join(pdf_text(pdf))


async def test_each_school_s_sheet_of_a_parent_names_its_own_child(
    family: Family, stack: Stack
) -> None:
    there = await printed_parents(stack, family.maternelle)
    here = await printed_parents(stack, family.elementaire)
    login, code = family.parent["login"], family.parent["activation_code"]
    assert "Zoé" in there and "Hugo" not in there
    assert "Hugo" in here and "Zoé" not in here
    # One account: the same login and code on either school's sheet.
    for sheet in (there, here):
        assert login in sheet and code in sheet


async def test_a_parent_s_sheet_mailed_by_a_school_names_its_own_child(family: Family) -> None:
    parent = family.parent
    event = await dispatched(
        family.elementaire, channel="email", account_ids=[parent["account_id"]]
    )
    assert event["data"]["delivered"] == [
        {"account_id": parent["account_id"], "to": "jean.lefevre@example.org"}
    ]
    [mail] = [m for m in family.sink.received if str(m["To"]) == "jean.lefevre@example.org"]
    [part] = list(mail.iter_attachments())
    sheet = "\n".join(pdf_text(part.get_content()))
    assert "Hugo" in sheet and "Zoé" not in sheet
    assert parent["login"] in sheet and parent["activation_code"] in sheet
