"""order_intake's handlers: one async function per message type, and the routing table."""

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.order_intake import domain, events
from services.order_intake.ports import OrderStore
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.contracts.common import Reason
from shared.contracts.orders import OrderCancelled, OrderReceived
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
    coverage = domain.FeedCoverage(settings.feed_academies)
    decision = domain.decide_order(
        order,
        fingerprint=fingerprint,
        known_fingerprint=await store.order_fingerprint(order.order_id),
        known_school=await store.school_by_uai(order.school.uai),
        coverage=coverage,
        new_school_id=uuid.uuid4(),
    )
    if isinstance(decision, domain.AlreadyApplied):
        log.info("order_already_applied", order_id=order.order_id)
    elif isinstance(decision, domain.Refused):
        await _reject(event, order.order_id, decision.reasons, store=store)
    else:
        await _accept(
            event, decision, fingerprint, coverage, store=store, settings=settings, now=now
        )


async def _accept(
    event: Envelope[OrderReceived],
    accepted: domain.Accepted,
    fingerprint: str,
    coverage: domain.FeedCoverage,
    *,
    store: OrderStore,
    settings: OrderIntakeSettings,
    now: datetime,
) -> None:
    order, school = event.data, accepted.school
    if accepted.opened:
        await store.add_school(
            school,
            department=accepted.department,
            academie=accepted.academie,
            order_id=order.order_id,
        )
    await store.add_order(
        order.order_id,
        fingerprint=fingerprint,
        school_id=school.school_id,
        payload=order.model_dump_json(),
        correlationid=event.correlationid,
    )
    local_day = now.astimezone(ZoneInfo(settings.invoice_timezone))
    seq = await store.next_invoice_seq(local_day.year)
    invoice = events.invoice_issued(
        order, school, settings=settings, issued_at=now, local_day=local_day, seq=seq
    )
    await store.add_invoice(invoice, year=local_day.year, seq=seq)
    made = [events.school_initialised(order, school, coverage)] if accepted.opened else []
    await store.emit_all([follow(event, data, source=SOURCE) for data in [*made, invoice]])
    log.info(
        "order_accepted",
        order_id=order.order_id,
        school_id=str(school.school_id),
        invoice_number=invoice.invoice_number,
        new_school=accepted.opened,
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
    await store.emit(follow(event, events.order_rejected(order_id, reasons), source=SOURCE))
    log.info("order_rejected", order_id=order_id, reasons=[r.field for r in reasons])


async def handle_order_cancelled(
    event: Envelope[OrderCancelled],
    *,
    store: OrderStore,
    settings: OrderIntakeSettings,
    now: datetime,
) -> None:
    """A credit note for the whole invoice of the order, once."""
    cancel = event.data
    invoice = await store.invoice_of_order(cancel.order_id)  # locks the order
    decision = domain.decide_cancellation(
        cancel.order_id,
        invoice=invoice,
        credit_note=await store.credit_note_of_order(cancel.order_id),
    )
    if isinstance(decision, domain.AlreadyApplied):
        log.info("cancellation_already_applied", order_id=cancel.order_id)
        return
    if isinstance(decision, domain.Refused):
        await _reject(event, cancel.order_id, decision.reasons, store=store)
        return
    year = now.astimezone(ZoneInfo(settings.invoice_timezone)).year
    seq = await store.next_credit_note_seq(year)
    number = domain.credit_note_number(year, seq)
    note = events.credit_note_issued(decision.invoice, number, cancel, now)
    await store.add_credit_note(note, year=year, seq=seq, cancelled_at=cancel.cancelled_at)
    await store.emit(follow(event, note, source=SOURCE))
    log.info(
        "order_cancelled",
        order_id=cancel.order_id,
        invoice_number=decision.invoice.invoice_number,
        credit_note=note.credit_note_number,
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
