"""credential_dispatch's handlers: they record what to send; the delivery loop sends it."""

import uuid
from typing import Any

from services.credential_dispatch.domain import outcome_event
from services.credential_dispatch.store import (
    Dispatch,
    DispatchStore,
    complete_if_done,
    new_delivery,
)
from shared import topics
from shared.contracts.accounts import AccountsCreated
from shared.contracts.commands import AccountActivated, ActivationCodeRenewed
from shared.contracts.orders import InvoiceIssued
from shared.envelope import Envelope
from shared.logs import get_logger
from shared.messaging.consumer import Route

log = get_logger(__name__)


async def handle_accounts_created(
    event: Envelope[AccountsCreated], *, store: DispatchStore
) -> None:
    created = event.data
    if created.school_name:
        await store.upsert_school(
            created.school_id,
            uai=created.uai,
            name=created.school_name,
            provisioning=created.provisioning,
        )
    await store.upsert_accounts(created.school_id, created.accounts)
    for admin in (a for a in created.accounts if a.profile == "administrator"):
        # The school's administrator gets his first access by himself (guide, step 1).
        delivery = new_delivery("first_access", recipient=admin.email, account_id=admin.account_id)
        await _open_dispatch(event, "first_access", created.school_id, [delivery], store=store)


async def handle_invoice_issued(event: Envelope[InvoiceIssued], *, store: DispatchStore) -> None:
    invoice = event.data
    await store.add_invoice(invoice)
    delivery = new_delivery(
        "invoice", recipient=invoice.billing.email, invoice_number=invoice.invoice_number
    )
    await _open_dispatch(event, "invoice", invoice.school_id, [delivery], store=store)


async def _open_dispatch(
    event: Envelope[Any],
    purpose: str,
    school_id: uuid.UUID,
    deliveries: list[Any],
    *,
    store: DispatchStore,
) -> None:
    dispatch = Dispatch(
        dispatch_id=uuid.uuid4(),
        purpose=purpose,
        school_id=school_id,
        request_id=None,
        channel="email",
        correlationid=event.correlationid,
        causationid=event.id,
    )
    await store.add_dispatch(dispatch, deliveries)
    # Nothing to send (no address at all): the outcome is known now.
    outcome = await complete_if_done(store.conn, dispatch.dispatch_id)
    if outcome is not None:
        await store.emit(outcome_event(outcome))
    log.info("dispatch_opened", purpose=purpose, deliveries=len(deliveries))


async def handle_code_renewed(
    event: Envelope[ActivationCodeRenewed], *, store: DispatchStore
) -> None:
    await store.renew_code(event.data)


async def handle_account_activated(
    event: Envelope[AccountActivated], *, store: DispatchStore
) -> None:
    await store.mark_activated(event.data.account_id, event.data.activated_at or event.time)


def routes() -> dict[str, Route[DispatchStore]]:
    return {
        topics.ACCOUNTS_CREATED: Route(AccountsCreated, handle_accounts_created),
        topics.INVOICE_ISSUED: Route(InvoiceIssued, handle_invoice_issued),
        topics.ACTIVATION_CODE_RENEWED: Route(ActivationCodeRenewed, handle_code_renewed),
        topics.ACCOUNT_ACTIVATED: Route(AccountActivated, handle_account_activated),
    }
