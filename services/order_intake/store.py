"""Every SQL statement of order_intake: ``ports.OrderStore`` in Postgres."""

import json
from datetime import datetime
from uuid import UUID

from services.order_intake.domain import SchoolRow
from shared.contracts.common import Reason
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.store import TransactionStore


class PostgresOrderStore(TransactionStore):
    """``ports.OrderStore`` in Postgres."""

    async def order_fingerprint(self, order_id: str) -> str | None:
        found = await self.conn.fetchval(
            "SELECT fingerprint FROM orders WHERE order_id = $1", order_id
        )
        return str(found) if found is not None else None

    async def school_by_uai(self, uai: str) -> SchoolRow | None:
        row = await self.conn.fetchrow(
            "SELECT school_id, uai, name, provisioning FROM schools WHERE uai = $1", uai
        )
        return SchoolRow(**row) if row else None

    async def add_school(
        self, school: SchoolRow, *, department: str, academie: str | None, order_id: str
    ) -> None:
        await self.conn.execute(
            "INSERT INTO schools (school_id, uai, name, department, academie, provisioning,"
            " order_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            school.school_id,
            school.uai,
            school.name,
            department,
            academie,
            school.provisioning,
            order_id,
        )

    async def add_order(
        self, order_id: str, *, fingerprint: str, school_id: UUID, payload: str, correlationid: str
    ) -> None:
        await self.conn.execute(
            "INSERT INTO orders (order_id, fingerprint, school_id, payload, correlationid)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)",
            order_id,
            fingerprint,
            school_id,
            payload,
            correlationid,
        )

    async def next_invoice_seq(self, year: int) -> int:
        return await self._next_seq("invoice_counters", year)

    async def _next_seq(self, counters: str, year: int) -> int:
        """The next number of ``year`` in ``counters`` (a table of this module's own); the
        counter row stays locked until commit, which is what keeps the sequence free of
        gaps and duplicates across replicas."""
        return int(
            await self.conn.fetchval(
                f"INSERT INTO {counters} (year, last_seq) VALUES ($1, 1)"
                f" ON CONFLICT (year) DO UPDATE SET last_seq = {counters}.last_seq + 1"
                " RETURNING last_seq",
                year,
            )
        )

    async def add_invoice(self, invoice: InvoiceIssued, *, year: int, seq: int) -> None:
        await self.conn.execute(
            "INSERT INTO invoices (invoice_number, year, seq, order_id, school_id, issued_at,"
            " total_excl_tax, total_vat, total_incl_tax, document)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
            invoice.invoice_number,
            year,
            seq,
            invoice.order_id,
            invoice.school_id,
            invoice.issued_at,
            invoice.total_excl_tax,
            invoice.total_vat,
            invoice.total_incl_tax,
            invoice.model_dump_json(),
        )

    async def invoice_of_order(self, order_id: str) -> InvoiceIssued | None:
        """The order's invoice, as it was issued; the order is locked until commit (two
        cancellations of it never both pass)."""
        document = await self.conn.fetchval(
            "SELECT i.document FROM orders o JOIN invoices i USING (order_id)"
            " WHERE o.order_id = $1 FOR UPDATE OF o",
            order_id,
        )
        return None if document is None else InvoiceIssued.model_validate_json(document)

    async def credit_note_of_order(self, order_id: str) -> str | None:
        number: str | None = await self.conn.fetchval(
            "SELECT credit_note_number FROM credit_notes WHERE order_id = $1", order_id
        )
        return number

    async def next_credit_note_seq(self, year: int) -> int:
        return await self._next_seq("credit_note_counters", year)

    async def add_credit_note(
        self, note: CreditNoteIssued, *, year: int, seq: int, cancelled_at: datetime
    ) -> None:
        await self.conn.execute(
            "INSERT INTO credit_notes (credit_note_number, year, seq, invoice_number,"
            " order_id, school_id, reason, cancelled_at, issued_at, total_excl_tax,"
            " total_vat, total_incl_tax, document)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)",
            note.credit_note_number,
            year,
            seq,
            note.invoice_number,
            note.order_id,
            note.school_id,
            note.reason,
            cancelled_at,
            note.issued_at,
            note.total_excl_tax,
            note.total_vat,
            note.total_incl_tax,
            note.model_dump_json(),
        )

    async def add_rejection(
        self, order_id: str | None, event_id: str, reasons: list[Reason]
    ) -> None:
        await self.conn.execute(
            "INSERT INTO rejections (order_id, event_id, reasons) VALUES ($1, $2, $3::jsonb)",
            order_id,
            event_id,
            json.dumps([r.model_dump() for r in reasons]),
        )
