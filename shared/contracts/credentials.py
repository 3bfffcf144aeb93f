"""Step 3: credentials handed out (credential_dispatch's events)."""

from typing import Literal
from uuid import UUID

from shared import topics
from shared.contracts.common import Model
from shared.envelope import Contract


class Delivered(Model):
    account_id: UUID
    to: str


class Undeliverable(Model):
    account_id: UUID
    reason: str


class CredentialsDispatched(Contract):
    topic = topics.CREDENTIALS_DISPATCHED

    school_id: UUID
    request_id: str | None
    channel: Literal["email", "print"]
    delivered: list[Delivered]
    undeliverable: list[Undeliverable]
    # For print: the stored document, to fetch again by its id.
    document_id: UUID | None = None
