"""The events credential_dispatch publishes: what a finished dispatch reports."""

from services.credential_dispatch.domain import SOURCE
from services.credential_dispatch.model import Dispatch, DispatchOutcome
from shared.contracts.credentials import CredentialsDispatched, Delivered, Undeliverable
from shared.contracts.orders import CreditNoteDelivered, InvoiceDelivered
from shared.envelope import Contract, Envelope, new_event


def dispatch_finished(outcome: DispatchOutcome) -> Envelope[Contract] | None:
    """The event a finished dispatch publishes: none for a notice (no credentials)."""
    dispatch = outcome.dispatch
    data: Contract
    if dispatch.purpose == "notice":
        return None
    if dispatch.purpose in ("invoice", "credit_note"):
        data = _billing_delivered(outcome)
    elif dispatch.channel == "print":
        data = _printed(outcome)
    else:
        data = _emailed(outcome)
    return new_event(
        data, source=SOURCE, correlationid=dispatch.correlationid, causationid=dispatch.causationid
    )


def _billing_delivered(outcome: DispatchOutcome) -> InvoiceDelivered | CreditNoteDelivered:
    dispatch = outcome.dispatch
    delivered = outcome.delivered[0][1] if outcome.delivered else None
    fate = {
        "order_id": dispatch.correlationid,
        "school_id": dispatch.school_id,
        "to": delivered or "",
        "delivered": delivered is not None,
        "reason": None if delivered else (outcome.undeliverable or [(None, "")])[0][1],
    }
    number = outcome.invoice_number or ""
    if dispatch.purpose == "invoice":
        return InvoiceDelivered(invoice_number=number, **fate)
    return CreditNoteDelivered(credit_note_number=number, **fate)


def _printed(outcome: DispatchOutcome) -> CredentialsDispatched:
    """One document for the requester: every account in it shares its fate."""
    dispatch: Dispatch = outcome.dispatch
    selection = dispatch.selection or []
    sent_to = outcome.delivered[0][1] if outcome.delivered else None
    why = outcome.undeliverable[0][1] if outcome.undeliverable else "not delivered"
    return CredentialsDispatched(
        school_id=dispatch.school_id,
        request_id=dispatch.request_id,
        channel="print",
        delivered=[Delivered(account_id=a, to=sent_to) for a in selection] if sent_to else [],
        undeliverable=[]
        if sent_to
        else [Undeliverable(account_id=a, reason=why) for a in selection],
        document_id=dispatch.document_id,
    )


def _emailed(outcome: DispatchOutcome) -> CredentialsDispatched:
    dispatch = outcome.dispatch
    return CredentialsDispatched(
        school_id=dispatch.school_id,
        request_id=dispatch.request_id,
        channel=dispatch.channel,
        delivered=[Delivered(account_id=a, to=to) for a, to in outcome.delivered if a],
        undeliverable=[
            Undeliverable(account_id=a, reason=why) for a, why in outcome.undeliverable if a
        ],
    )
