"""``services.order_intake.ports.OrderStore`` in memory, and the worker's message path on it."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.order_intake.domain import SchoolRow
from services.order_intake.handlers import routes
from services.order_intake.ports import OrderStore
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.contracts.common import Reason
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.messaging.consumer import MessageProcessor, Outcome
from tests.fakes.events import InMemoryEventStore, unit_of_work
from tests.support.orders import cloudevent

NOW = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # already 2027 in Paris


@dataclass(frozen=True)
class RecordedOrder:
    fingerprint: str
    school_id: UUID
    payload: str
    correlationid: str


@dataclass
class FakeOrderStore(InMemoryEventStore):
    schools: dict[str, SchoolRow] = field(default_factory=dict)  # by UAI
    orders: dict[str, RecordedOrder] = field(default_factory=dict)
    invoices: dict[str, InvoiceIssued] = field(default_factory=dict)  # by order id
    credit_notes: dict[str, CreditNoteIssued] = field(default_factory=dict)  # by order id
    rejections: list[tuple[str | None, str, list[Reason]]] = field(default_factory=list)
    counters: dict[tuple[str, int], int] = field(default_factory=dict)  # (kind, year) -> last

    async def order_fingerprint(self, order_id: str) -> str | None:
        found = self.orders.get(order_id)
        return found.fingerprint if found else None

    async def school_by_uai(self, uai: str) -> SchoolRow | None:
        return self.schools.get(uai)

    async def add_school(
        self, school: SchoolRow, *, department: str, academie: str | None, order_id: str
    ) -> None:
        if school.uai in self.schools:
            raise ValueError(f"duplicate school {school.uai}")  # the table's unique UAI
        self.schools[school.uai] = school

    async def add_order(
        self, order_id: str, *, fingerprint: str, school_id: UUID, payload: str, correlationid: str
    ) -> None:
        if order_id in self.orders:
            raise ValueError(f"duplicate order {order_id}")
        self.orders[order_id] = RecordedOrder(fingerprint, school_id, payload, correlationid)

    async def next_invoice_seq(self, year: int) -> int:
        return self._next("invoice", year)

    async def next_credit_note_seq(self, year: int) -> int:
        return self._next("credit_note", year)

    def _next(self, kind: str, year: int) -> int:
        self.counters[kind, year] = self.counters.get((kind, year), 0) + 1
        return self.counters[kind, year]

    async def add_invoice(self, invoice: InvoiceIssued, *, year: int, seq: int) -> None:
        self.invoices[invoice.order_id] = invoice

    async def invoice_of_order(self, order_id: str) -> InvoiceIssued | None:
        return self.invoices.get(order_id) if order_id in self.orders else None

    async def credit_note_of_order(self, order_id: str) -> str | None:
        note = self.credit_notes.get(order_id)
        return note.credit_note_number if note else None

    async def add_credit_note(
        self, note: CreditNoteIssued, *, year: int, seq: int, cancelled_at: datetime
    ) -> None:
        if note.order_id in self.credit_notes:
            raise ValueError(f"duplicate credit note for {note.order_id}")
        self.credit_notes[note.order_id] = note

    async def add_rejection(
        self, order_id: str | None, event_id: str, reasons: list[Reason]
    ) -> None:
        self.rejections.append((order_id, event_id, list(reasons)))


def _satisfies(fake: FakeOrderStore) -> OrderStore:
    return fake  # mypy (make lint) checks the fake against the Protocol here


class OrderIntake:
    """The worker's message path with its clock fixed, over one fake store."""

    def __init__(self, store: FakeOrderStore | None = None) -> None:
        self.store = store or FakeOrderStore()
        self._processor = MessageProcessor(
            routes(OrderIntakeSettings(), clock=lambda: NOW), unit_of_work(self.store)
        )
        self._sent = 0

    async def take(self, data: dict[str, Any], event_type: str = topics.ORDER_RECEIVED) -> Outcome:
        self._sent += 1
        event = cloudevent(data, event_id=f"evt-{self._sent}", event_type=event_type)
        return await self._processor.process(json.dumps(event).encode())

    def data_of(self, topic: str) -> list[Any]:
        return [event.data for event in self.store.emitted if event.type == topic]
