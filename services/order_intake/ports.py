"""What order_intake's handlers need of a store: the Protocol they are written against.

``store.PostgresOrderStore`` is the real one (all the SQL); tests/fakes holds an in-memory
one that records state, so that the handlers run without Postgres in the unit tier.
"""

from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.order_intake.domain import SchoolRow
from shared.contracts.common import Reason
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.store import EventStore


class OrderStore(EventStore, Protocol):
    async def order_fingerprint(self, order_id: str) -> str | None: ...

    async def school_by_uai(self, uai: str) -> SchoolRow | None: ...

    async def add_school(
        self, school: SchoolRow, *, department: str, academie: str | None, order_id: str
    ) -> None: ...

    async def add_order(
        self, order_id: str, *, fingerprint: str, school_id: UUID, payload: str, correlationid: str
    ) -> None: ...

    async def next_invoice_seq(self, year: int) -> int:
        """The next invoice number of ``year``: gapless, never twice, across replicas."""
        ...

    async def add_invoice(self, invoice: InvoiceIssued, *, year: int, seq: int) -> None: ...

    async def invoice_of_order(self, order_id: str) -> InvoiceIssued | None:
        """The order's invoice as issued; the order stays locked until commit."""
        ...

    async def credit_note_of_order(self, order_id: str) -> str | None: ...

    async def next_credit_note_seq(self, year: int) -> int: ...

    async def add_credit_note(
        self, note: CreditNoteIssued, *, year: int, seq: int, cancelled_at: datetime
    ) -> None: ...

    async def add_rejection(
        self, order_id: str | None, event_id: str, reasons: list[Reason]
    ) -> None: ...
