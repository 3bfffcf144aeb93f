"""Step 1: the purchase order and what follows it (order_intake's events)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from shared import topics
from shared.contracts.common import (
    Address,
    Email,
    Model,
    Money,
    Name,
    Person,
    Reason,
    Siret,
    Text,
    Uai,
)
from shared.envelope import Contract

Provisioning = Literal["automatic", "manual"]


class School(Model):
    uai: Uai
    name: Text
    address: Address


class Billing(Model):
    name: Text
    email: Email
    address: Address
    siret: Siret | None = None
    order_reference: Annotated[str, Field(max_length=100)] | None = None
    # The public buyer's service to invoice, as Chorus Pro names it ("code service"):
    # optional, minor addition.
    service_code: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class OrderLine(Model):
    sku: Annotated[str, Field(min_length=1, max_length=60)]
    label: Text
    quantity: Annotated[int, Field(ge=1, le=100_000)]
    unit_price: Money
    vat_rate: Annotated[Decimal, Field(ge=0, le=1, max_digits=5, decimal_places=4)]


class OrderReceived(Contract):
    topic = topics.ORDER_RECEIVED

    order_id: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9._/-]+$")]
    ordered_at: datetime
    school: School
    administrator: Person
    billing: Billing
    classes: Annotated[int, Field(ge=1, le=60)]
    provisioning: Provisioning | None = None
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=100)]


class OrderRejected(Contract):
    topic = topics.ORDER_REJECTED

    order_id: str | None
    reasons: list[Reason]


class Administrator(Model):
    first_name: Name
    last_name: Name
    email: Email


class SchoolInitialised(Contract):
    topic = topics.SCHOOL_INITIALISED

    school_id: UUID
    order_id: str
    uai: Uai
    name: str
    academie: str | None
    department: str
    provisioning: Provisioning
    classes: int
    administrator: Administrator


class Party(Model):
    name: str
    address: Address
    email: Email | None = None
    siret: str | None = None
    vat_number: str | None = None


class InvoiceLine(Model):
    sku: str
    label: str
    quantity: int
    unit_price: Decimal
    vat_rate: Decimal
    total_excl_tax: Decimal


class VatBreakdown(Model):
    rate: Decimal
    base: Decimal
    amount: Decimal


class InvoiceIssued(Contract):
    topic = topics.INVOICE_ISSUED

    invoice_number: str
    order_id: str
    order_reference: str | None
    school_id: UUID
    school_name: str
    uai: str
    issued_at: datetime
    due_on: date
    service_code: str | None = None  # the buyer's service (Chorus Pro), when the order gave one
    seller: Party
    billing: Party
    lines: list[InvoiceLine]
    vat: list[VatBreakdown]
    total_excl_tax: Decimal
    total_vat: Decimal
    total_incl_tax: Decimal
    currency: Literal["EUR"] = "EUR"

    @property
    def document_number(self) -> str:
        return self.invoice_number


class OrderCancelled(Contract):
    """The order system cancels an order: its invoice is cancelled by a credit note. The
    school's space stays open (closing one is not a billing matter)."""

    topic = topics.ORDER_CANCELLED

    order_id: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9._/-]+$")]
    reason: Text
    cancelled_at: datetime


class CreditNoteIssued(Contract):
    """A credit note cancelling the whole of ``invoice_number``: the same lines, VAT and
    totals, as positive amounts (what a credit note's type says)."""

    topic = topics.CREDIT_NOTE_ISSUED

    credit_note_number: str
    invoice_number: str  # the invoice it cancels
    invoice_issued_at: datetime
    order_id: str
    order_reference: str | None
    school_id: UUID
    school_name: str
    uai: str
    issued_at: datetime
    reason: str
    service_code: str | None = None
    seller: Party
    billing: Party
    lines: list[InvoiceLine]
    vat: list[VatBreakdown]
    total_excl_tax: Decimal
    total_vat: Decimal
    total_incl_tax: Decimal
    currency: Literal["EUR"] = "EUR"

    @property
    def document_number(self) -> str:
        """Its number, filed beside the invoices' (``InvoiceIssued.document_number``)."""
        return self.credit_note_number


class CreditNoteDelivered(Contract):
    """The credit note's PDF was handed to the billing address's mail server (or could
    not be)."""

    topic = topics.CREDIT_NOTE_DELIVERED

    credit_note_number: str
    order_id: str
    school_id: UUID
    to: str
    delivered: bool
    reason: str | None = None


class InvoiceDelivered(Contract):
    """The invoice PDF was handed to the billing address's mail server (or could not be)."""

    topic = topics.INVOICE_DELIVERED

    invoice_number: str
    order_id: str
    school_id: UUID
    to: str
    delivered: bool
    reason: str | None = None


__all__ = [
    "Administrator",
    "Billing",
    "CreditNoteDelivered",
    "CreditNoteIssued",
    "InvoiceDelivered",
    "InvoiceIssued",
    "InvoiceLine",
    "OrderCancelled",
    "OrderLine",
    "OrderReceived",
    "OrderRejected",
    "Party",
    "Provisioning",
    "School",
    "SchoolInitialised",
    "VatBreakdown",
]
