"""Pure decisions of credential_dispatch: who gets what, when to try again, what to report."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from services.credential_dispatch.documents import SheetAccount
from services.credential_dispatch.store import DispatchOutcome
from shared.contracts.credentials import CredentialsDispatched, Delivered, Undeliverable
from shared.contracts.orders import InvoiceDelivered
from shared.envelope import Contract, Envelope, new_event

SOURCE = "urn:one:credential_dispatch"


def retry_delay(attempts: int, *, base: float, ceiling: float) -> float:
    """Exponential backoff: base, 2·base, 4·base, … capped at ``ceiling``."""
    return float(min(base * 2 ** max(attempts - 1, 0), ceiling))


def message_id(delivery_id: UUID, domain: str = "one.onboarding") -> str:
    """The same delivery always carries the same Message-ID, so a resend is recognisable."""
    return f"<{delivery_id}@{domain}>"


def outcome_event(outcome: DispatchOutcome) -> Envelope[Contract]:
    dispatch = outcome.dispatch
    data: Contract
    if dispatch.purpose == "invoice":
        delivered = outcome.delivered[0][1] if outcome.delivered else None
        data = InvoiceDelivered(
            invoice_number=outcome.invoice_number or "",
            order_id=dispatch.correlationid,
            school_id=dispatch.school_id,
            to=delivered or "",
            delivered=delivered is not None,
            reason=None if delivered else (outcome.undeliverable or [(None, "")])[0][1],
        )
    else:
        data = CredentialsDispatched(
            school_id=dispatch.school_id,
            request_id=dispatch.request_id,
            channel=dispatch.channel,
            delivered=[Delivered(account_id=a, to=to) for a, to in outcome.delivered if a],
            undeliverable=[
                Undeliverable(account_id=a, reason=why) for a, why in outcome.undeliverable if a
            ],
        )
    return new_event(
        data, source=SOURCE, correlationid=dispatch.correlationid, causationid=dispatch.causationid
    )


def sheet_account(row: Mapping[str, Any]) -> SheetAccount:
    """A connection sheet's view of an account row; a spent code is never shown."""
    activated = row.get("activated_at") is not None
    expires: datetime | None = row.get("activation_expires_at")
    return SheetAccount(
        account_id=str(row["account_id"]),
        profile=row["profile"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        login=row["login"],
        activation_code=None if activated else row.get("activation_code"),
        activation_expires_at=None if activated else expires,
        activated=activated,
        school_name=row["school_name"],
        classes=tuple(row.get("classes") or ()),
        children=(),
    )
