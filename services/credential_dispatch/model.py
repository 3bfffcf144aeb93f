"""credential_dispatch's vocabulary, and the rows its store hands to the domain and back.

Each Literal holds exactly the values the schema allows (the CHECK constraints under
``migrations/``; a test parses them and compares). A value read from the database outside
its Literal is refused by ``one_of`` where the store builds the row: a schema ahead of this
code stops the row there, instead of flowing on as a bare string.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypeVar, get_args
from uuid import UUID

from shared.contracts.common import Reason
from shared.contracts.orders import Provisioning

# deliveries.kind: what one email sends.
DeliveryKind = Literal["first_access", "invoice", "credit_note", "sheet", "print", "year_turned"]
# dispatches.purpose: the reason to send, which picks the outcome event.
DispatchPurpose = Literal["first_access", "invoice", "credit_note", "request", "notice"]
# audit.purpose: a hand-out of credentials, by the system or on request, or a resend.
AuditPurpose = Literal["first_access", "request", "resend"]
# deliveries.status: pending until sent, or failed for good.
DeliveryStatus = Literal["pending", "sent", "failed"]
# dispatches.channel and audit.channel (no CHECK): the commands' and events' channel. The
# contracts spell it inline, with no name to import; a test holds the three equal.
Channel = Literal["email", "print"]

DELIVERY_KINDS: Final[tuple[DeliveryKind, ...]] = get_args(DeliveryKind)
DISPATCH_PURPOSES: Final[tuple[DispatchPurpose, ...]] = get_args(DispatchPurpose)
AUDIT_PURPOSES: Final[tuple[AuditPurpose, ...]] = get_args(AuditPurpose)
DELIVERY_STATUSES: Final[tuple[DeliveryStatus, ...]] = get_args(DeliveryStatus)
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
PROVISIONINGS: Final[tuple[Provisioning, ...]] = get_args(Provisioning)

_Word = TypeVar("_Word", bound=str)


class UnknownValue(ValueError):
    """A stored value this code has no word for."""


def one_of(vocabulary: tuple[_Word, ...], value: object, *, what: str) -> _Word:
    """``value`` as the vocabulary's own word (so typed), or ``UnknownValue`` naming it."""
    for word in vocabulary:
        if value == word:
            return word
    raise UnknownValue(f"{what} {value!r} is none of {', '.join(vocabulary)}")


@dataclass(frozen=True)
class YearTurnedNotice:
    """What the administrator's notice of a new school year says (``dispatches.notice``)."""

    school_name: str = ""
    classes: tuple[str, ...] = ()
    without_teacher: tuple[str, ...] = ()  # the classes still waiting for their teachers
    closed_by_hand: bool = False  # a manual school's year, closed by its administrator


@dataclass(frozen=True)
class Dispatch:
    dispatch_id: UUID
    purpose: DispatchPurpose
    school_id: UUID
    request_id: str | None
    channel: Channel
    correlationid: str
    causationid: str | None
    requested_by: UUID | None = None
    layout: str | None = None
    selection: list[UUID] | None = None
    document_id: UUID | None = None
    notice: YearTurnedNotice | None = None  # what a notice says (its mail is made from it)


@dataclass(frozen=True)
class Delivery:
    delivery_id: UUID
    dispatch_id: UUID
    kind: DeliveryKind
    account_id: UUID | None
    invoice_number: str | None
    recipient: str | None
    attempts: int
    status: DeliveryStatus = "pending"
    last_error: str | None = None


def new_delivery(
    kind: DeliveryKind,
    *,
    recipient: str | None,
    account_id: UUID | None = None,
    invoice_number: str | None = None,
) -> Delivery:
    """A delivery to make; one with no address is failed from the start, with the reason.
    Its dispatch is the one it is added with (``ports.DispatchStore.add_dispatch``)."""
    return Delivery(
        delivery_id=uuid.uuid4(),
        dispatch_id=uuid.uuid4(),
        kind=kind,
        account_id=account_id,
        invoice_number=invoice_number,
        recipient=recipient,
        attempts=0,
        status="pending" if recipient else "failed",
        last_error=None if recipient else "no email address",
    )


@dataclass(frozen=True)
class DispatchOutcome:
    dispatch: Dispatch
    delivered: list[tuple[UUID | None, str]]
    undeliverable: list[tuple[UUID | None, str]]
    invoice_number: str | None


@dataclass(frozen=True)
class Requester:
    account_id: UUID
    school_id: UUID  # his home school
    profile: str
    email: str | None
    class_ids: frozenset[UUID]
    attached_to: frozenset[UUID] = frozenset()  # the schools he is in besides his home

    @property
    def schools(self) -> frozenset[UUID]:
        """Every school he is in, whichever he acts for."""
        return self.attached_to | {self.school_id}


@dataclass(frozen=True)
class Selected:
    account_id: UUID
    school_id: UUID  # its home school
    profile: str
    class_ids: frozenset[UUID]
    attached_to: frozenset[UUID] = frozenset()  # the schools it is in besides its home

    @property
    def schools(self) -> frozenset[UUID]:
        """Every school whose administrator may hand out its sheet."""
        return self.attached_to | {self.school_id}


@dataclass(frozen=True)
class Printed:
    document_id: UUID
    school_id: UUID
    requested_by: UUID | None
    layout: str | None
    selection: list[UUID] | None


@dataclass(frozen=True)
class SheetRow:
    """An account with what its connection sheet and first-access mail need."""

    account_id: UUID
    profile: str
    first_name: str
    last_name: str
    login: str
    activation_code: str | None
    activation_expires_at: datetime | None
    activated_at: datetime | None
    school_name: str
    provisioning: Provisioning | None  # the school's; None: not known yet
    classes: tuple[str, ...]  # the class names account_manager sent with the account
    class_names: tuple[str, ...]  # the classes it is attached to now, by name
    children_names: tuple[str, ...]  # a parent's children, "first last"


@dataclass(frozen=True)
class Audited:
    """A hand-out of credentials as the audit keeps it (never a code)."""

    school_id: UUID
    purpose: AuditPurpose
    request_id: str | None
    requested_by: UUID | None  # None: the system sent it (an administrator's first access)
    requester_profile: str | None
    accounts: list[UUID]
    channel: Channel | None
    layout: str | None
    document_id: UUID | None = None
    refused: list[Reason] | None = None
    dispatch_id: UUID | None = None
