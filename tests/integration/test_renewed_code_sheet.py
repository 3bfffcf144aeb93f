"""Renew, then print: credential_dispatch's copy follows account_manager's events, and a
sheet printed from it shows the new code only; once activated, no code at all."""

import asyncio

from services.account_manager.bootstrap import build as build_accounts
from services.account_manager.settings import AccountManagerSettings
from services.credential_dispatch import domain
from services.credential_dispatch.bootstrap import build as build_dispatch
from services.credential_dispatch.documents import Documents
from services.credential_dispatch.model import SheetRow
from services.credential_dispatch.renderer import PdfRenderer
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.credential_dispatch.store import DeliveryQueries
from shared import topics
from tests.support.broker import EventSpy
from tests.support.commands import open_school
from tests.support.pdf import pdf_text
from tools.waits import eventually


async def test_sheet_after_renewal_and_activation(stack, channel):
    accounts = build_accounts(stack.settings(AccountManagerSettings))
    dispatch = build_dispatch(stack.settings(CredentialDispatchSettings, smtp_port=9))
    await asyncio.gather(accounts.start(), dispatch.start())
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        school = await open_school(channel, stack.exchange, spy)
        created = await school.create(
            school.admin_id,
            {
                "profile": "student",
                "first_name": "Zoé",
                "last_name": "Lefèvre",
                "birth_date": "2018-03-14",
                "class_ids": [school.class_ids[0]],
            },
        )
        pupil = created["data"]["accounts"][0]
        request = await school.send(
            topics.ACTIVATION_CODE_RENEW_REQUESTED,
            {"requested_by": school.admin_id, "account_id": pupil["account_id"]},
        )
        new_code = (await school.outcome(request))["data"]["activation_code"]

        assert dispatch.context is not None
        queries = DeliveryQueries(dispatch.context.pool)

        async def copy_with(code: str | None) -> SheetRow | None:
            row = await queries.account_sheet(__import__("uuid").UUID(pupil["account_id"]))
            return row if row and row.activation_code == code else None

        row = await eventually(lambda: copy_with(new_code), what="copy renewed")
        documents = Documents("https://ent.example.org")
        async with PdfRenderer() as renderer:
            [page] = pdf_text(
                await renderer.render(documents.detailed_sheets_html([domain.sheet_account(row)]))
            )
            assert new_code in page and pupil["activation_code"] not in page

            await school.send(topics.ACCOUNT_ACTIVATED, {"account_id": pupil["account_id"]})
            row = await eventually(lambda: copy_with(None), what="copy activated")
            [page] = pdf_text(
                await renderer.render(documents.detailed_sheets_html([domain.sheet_account(row)]))
            )
            assert "Compte activé" in page and new_code not in page
    finally:
        await asyncio.gather(accounts.stop(), dispatch.stop())
