"""The events order_intake publishes, built from what its handlers decided."""

from datetime import datetime, timedelta

from services.order_intake.domain import (
    FeedCoverage,
    SchoolRow,
    compute_totals,
    department_of,
    invoice_number,
)
from services.order_intake.settings import OrderIntakeSettings
from shared.contracts.common import Address, Reason
from shared.contracts.orders import (
    Administrator,
    CreditNoteIssued,
    InvoiceIssued,
    OrderCancelled,
    OrderReceived,
    OrderRejected,
    Party,
    SchoolInitialised,
)


def school_initialised(
    order: OrderReceived, school: SchoolRow, coverage: FeedCoverage
) -> SchoolInitialised:
    department = department_of(school.uai)
    return SchoolInitialised(
        school_id=school.school_id,
        order_id=order.order_id,
        uai=school.uai,
        name=school.name,
        academie=coverage.academie_of(department),
        department=department,
        provisioning=school.provisioning,
        classes=order.classes,
        administrator=Administrator(**order.administrator.model_dump()),
    )


def invoice_issued(
    order: OrderReceived,
    school: SchoolRow,
    *,
    settings: OrderIntakeSettings,
    issued_at: datetime,
    local_day: datetime,
    seq: int,
) -> InvoiceIssued:
    """The order's invoice, number ``seq`` of ``local_day``'s year (the seller's time zone),
    due ``payment_days`` after that day."""
    totals = compute_totals(order.lines)
    seller = settings.seller
    return InvoiceIssued(
        invoice_number=invoice_number(local_day.year, seq),
        order_id=order.order_id,
        order_reference=order.billing.order_reference,
        service_code=order.billing.service_code,
        school_id=school.school_id,
        school_name=school.name,
        uai=school.uai,
        issued_at=issued_at,
        due_on=local_day.date() + timedelta(days=settings.payment_days),
        seller=Party(
            name=seller.name,
            email=seller.email,
            siret=seller.siret,
            vat_number=seller.vat_number,
            address=Address(line1=seller.line1, postal_code=seller.postal_code, city=seller.city),
        ),
        billing=Party(
            name=order.billing.name,
            email=order.billing.email,
            address=order.billing.address,
            siret=order.billing.siret,
        ),
        lines=totals.lines,
        vat=totals.vat,
        total_excl_tax=totals.total_excl_tax,
        total_vat=totals.total_vat,
        total_incl_tax=totals.total_incl_tax,
    )


def order_rejected(order_id: str | None, reasons: list[Reason]) -> OrderRejected:
    return OrderRejected(order_id=order_id, reasons=reasons)


def credit_note_issued(
    invoice: InvoiceIssued, number: str, cancel: OrderCancelled, now: datetime
) -> CreditNoteIssued:
    """The credit note cancelling the whole of ``invoice``: its parties, lines, VAT and
    totals as they were invoiced."""
    return CreditNoteIssued(
        credit_note_number=number,
        invoice_number=invoice.invoice_number,
        invoice_issued_at=invoice.issued_at,
        order_id=invoice.order_id,
        order_reference=invoice.order_reference,
        school_id=invoice.school_id,
        school_name=invoice.school_name,
        uai=invoice.uai,
        issued_at=now,
        reason=cancel.reason,
        service_code=invoice.service_code,
        seller=invoice.seller,
        billing=invoice.billing,
        lines=invoice.lines,
        vat=invoice.vat,
        total_excl_tax=invoice.total_excl_tax,
        total_vat=invoice.total_vat,
        total_incl_tax=invoice.total_incl_tax,
    )
