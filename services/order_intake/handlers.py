"""order_intake's handlers: one async function per message type, and the routing table."""

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.order_intake import domain
from services.order_intake.ports import OrderStore, SchoolRow
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.contracts.common import Address, Reason
from shared.contracts.orders import (
    Administrator,
    InvoiceIssued,
    OrderCancelled,
    OrderReceived,
    OrderRejected,
    Party,
    Provisioning,
    SchoolInitialised,
)
from shared.envelope import Envelope, RawEnvelope, follow
from shared.logs import get_logger
from shared.messaging.consumer import Route
from shared.runtime import Clock, utc_now

log = get_logger(__name__)
SOURCE = topics.source_of(topics.ORDER_INTAKE)


async def handle_order_received(
    event: Envelope[OrderReceived],
    *,
    store: OrderStore,
    settings: OrderIntakeSettings,
    now: datetime,
) -> None:
    order = event.data
    fingerprint = domain.order_fingerprint(order)
    known = await store.order_fingerprint(order.order_id)
    if known == fingerprint:
        log.info("order_already_applied", order_id=order.order_id)
        return
    if known is not None:
        conflict = Reason(
            field="order_id",
            message=(
                f"order {order.order_id} was already received with other content; "
                "send a new order id for a new order"
            ),
        )
        await _reject(event, order.order_id, [conflict], store=store)
        return

    policy = domain.FeedCoverage(settings.feed_academies)
    provisioning = domain.decide_provisioning(order, policy)
    if isinstance(provisioning, list):
        await _reject(event, order.order_id, provisioning, store=store)
        return

    school, opened = await _school_for(order, provisioning, policy, store=store)
    await store.add_order(
        order.order_id,
        fingerprint=fingerprint,
        school_id=school.school_id,
        payload=order.model_dump_json(),
        correlationid=event.correlationid,
    )
    invoice = await _issue_invoice(order, school, settings=settings, now=now, store=store)
    if opened:
        await store.emit(follow(event, _school_initialised(order, school, policy), source=SOURCE))
    await store.emit(follow(event, invoice, source=SOURCE))
    log.info(
        "order_accepted",
        order_id=order.order_id,
        school_id=str(school.school_id),
        invoice_number=invoice.invoice_number,
        new_school=opened,
    )


async def reject_invalid_order(
    event: RawEnvelope, reasons: list[Reason], *, store: OrderStore
) -> None:
    order_id = event.data.get("order_id")
    await _reject(event, order_id if isinstance(order_id, str) else None, reasons, store=store)


async def _reject(
    event: Envelope[Any], order_id: str | None, reasons: list[Reason], *, store: OrderStore
) -> None:
    await store.add_rejection(order_id, event.id, reasons)
    await store.emit(
        follow(event, OrderRejected(order_id=order_id, reasons=reasons), source=SOURCE)
    )
    log.info("order_rejected", order_id=order_id, reasons=[r.field for r in reasons])


async def _school_for(
    order: OrderReceived,
    provisioning: Provisioning,
    policy: domain.FeedCoverage,
    *,
    store: OrderStore,
) -> tuple[SchoolRow, bool]:
    """The school of this order, and whether this order opens it.

    A UAI already known is a renewal: it is invoiced, its space is not opened again.
    """
    known = await store.school_by_uai(order.school.uai)
    if known is not None:
        return known, False
    department = domain.department_of(order.school.uai)
    school = SchoolRow(
        school_id=uuid.uuid4(),
        uai=order.school.uai,
        name=order.school.name,
        provisioning=provisioning,
    )
    await store.add_school(
        school,
        department=department,
        academie=policy.academie_of(department),
        order_id=order.order_id,
    )
    return school, True


async def _issue_invoice(
    order: OrderReceived,
    school: SchoolRow,
    *,
    settings: OrderIntakeSettings,
    now: datetime,
    store: OrderStore,
) -> InvoiceIssued:
    local = now.astimezone(ZoneInfo(settings.invoice_timezone))
    seq = await store.next_invoice_seq(local.year)
    totals = domain.compute_totals(order.lines)
    seller = settings.seller
    invoice = InvoiceIssued(
        invoice_number=domain.invoice_number(local.year, seq),
        order_id=order.order_id,
        order_reference=order.billing.order_reference,
        service_code=order.billing.service_code,
        school_id=school.school_id,
        school_name=school.name,
        uai=school.uai,
        issued_at=now,
        due_on=local.date() + timedelta(days=settings.payment_days),
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
    await store.add_invoice(invoice, year=local.year, seq=seq)
    return invoice


async def handle_order_cancelled(
    event: Envelope[OrderCancelled],
    *,
    store: OrderStore,
    settings: OrderIntakeSettings,
    now: datetime,
) -> None:
    """A credit note for the whole invoice of the order, once: a second cancellation of
    the same order is acknowledged without effect, one of an unknown order refused."""
    cancel = event.data
    invoice = await store.invoice_of_order(cancel.order_id)
    if invoice is None:
        unknown = Reason(field="order_id", message=f"order {cancel.order_id} is not known here")
        await _reject(event, cancel.order_id, [unknown], store=store)
        return
    if (already := await store.credit_note_of_order(cancel.order_id)) is not None:
        log.info("cancellation_already_applied", order_id=cancel.order_id, credit_note=already)
        return
    year = now.astimezone(ZoneInfo(settings.invoice_timezone)).year
    seq = await store.next_credit_note_seq(year)
    note = domain.credit_note(invoice, domain.credit_note_number(year, seq), cancel, now)
    await store.add_credit_note(note, year=year, seq=seq, cancelled_at=cancel.cancelled_at)
    await store.emit(follow(event, note, source=SOURCE))
    log.info(
        "order_cancelled",
        order_id=cancel.order_id,
        invoice_number=invoice.invoice_number,
        credit_note=note.credit_note_number,
    )


def _school_initialised(
    order: OrderReceived, school: SchoolRow, policy: domain.FeedCoverage
) -> SchoolInitialised:
    department = domain.department_of(school.uai)
    return SchoolInitialised(
        school_id=school.school_id,
        order_id=order.order_id,
        uai=school.uai,
        name=school.name,
        academie=policy.academie_of(department),
        department=department,
        provisioning=school.provisioning,
        classes=order.classes,
        administrator=Administrator(**order.administrator.model_dump()),
    )


def routes(settings: OrderIntakeSettings, clock: Clock = utc_now) -> dict[str, Route[OrderStore]]:
    async def on_order(event: Envelope[OrderReceived], *, store: OrderStore) -> None:
        await handle_order_received(event, store=store, settings=settings, now=clock())

    async def on_cancel(event: Envelope[OrderCancelled], *, store: OrderStore) -> None:
        await handle_order_cancelled(event, store=store, settings=settings, now=clock())

    return {
        topics.ORDER_RECEIVED: Route(OrderReceived, on_order, on_invalid=reject_invalid_order),
        topics.ORDER_CANCELLED: Route(OrderCancelled, on_cancel, on_invalid=reject_invalid_order),
    }
