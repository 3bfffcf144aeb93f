"""Every SQL statement of credential_dispatch."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.contracts.accounts import CreatedAccount
from shared.contracts.commands import ActivationCodeRenewed
from shared.contracts.orders import InvoiceIssued
from shared.db import Connection
from shared.envelope import Contract, Envelope
from shared.store import TransactionStore


@dataclass(frozen=True)
class Dispatch:
    dispatch_id: UUID
    purpose: str
    school_id: UUID
    request_id: str | None
    channel: str
    correlationid: str
    causationid: str | None


@dataclass(frozen=True)
class Delivery:
    delivery_id: UUID
    dispatch_id: UUID
    kind: str
    account_id: UUID | None
    invoice_number: str | None
    recipient: str | None
    attempts: int
    status: str = "pending"
    last_error: str | None = None


class DispatchStore(TransactionStore):
    async def upsert_school(
        self, school_id: UUID, *, uai: str | None, name: str, provisioning: str | None
    ) -> None:
        await self.conn.execute(
            "INSERT INTO schools (school_id, uai, name, provisioning) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (school_id) DO UPDATE SET uai = EXCLUDED.uai, name = EXCLUDED.name,"
            " provisioning = coalesce(EXCLUDED.provisioning, schools.provisioning)",
            school_id,
            uai,
            name,
            provisioning,
        )

    async def upsert_accounts(self, school_id: UUID, accounts: list[CreatedAccount]) -> None:
        await self.conn.executemany(
            "INSERT INTO accounts (account_id, school_id, profile, first_name, last_name, login,"
            " email, birth_date, classes, children, activation_code, activation_expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (account_id) DO UPDATE SET profile = EXCLUDED.profile,"
            " first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,"
            " login = EXCLUDED.login, email = EXCLUDED.email, birth_date = EXCLUDED.birth_date,"
            " classes = EXCLUDED.classes, children = EXCLUDED.children,"
            " activation_code = EXCLUDED.activation_code,"
            " activation_expires_at = EXCLUDED.activation_expires_at, updated_at = now()",
            [
                (
                    a.account_id,
                    school_id,
                    a.profile,
                    a.first_name,
                    a.last_name,
                    a.login,
                    a.email,
                    a.birth_date,
                    a.classes,
                    a.children,
                    a.activation_code,
                    a.activation_expires_at,
                )
                for a in accounts
            ],
        )

    async def renew_code(self, renewed: ActivationCodeRenewed) -> None:
        """The new code replaces the old one, which is never printed again."""
        await self.conn.execute(
            "UPDATE accounts SET activation_code = $2, activation_expires_at = $3,"
            " updated_at = now() WHERE account_id = $1 AND activated_at IS NULL",
            renewed.account_id,
            renewed.activation_code,
            renewed.activation_expires_at,
        )

    async def mark_activated(self, account_id: UUID, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE accounts SET activated_at = coalesce(activated_at, $2),"
            " activation_code = NULL, updated_at = now() WHERE account_id = $1",
            account_id,
            at,
        )

    async def add_invoice(self, invoice: InvoiceIssued) -> None:
        await self.conn.execute(
            "INSERT INTO invoices (invoice_number, order_id, school_id, document)"
            " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (invoice_number) DO NOTHING",
            invoice.invoice_number,
            invoice.order_id,
            invoice.school_id,
            invoice.model_dump_json(),
        )

    async def add_dispatch(self, dispatch: Dispatch, deliveries: list[Delivery]) -> None:
        await self.conn.execute(
            "INSERT INTO dispatches (dispatch_id, purpose, school_id, request_id, channel,"
            " correlationid, causationid) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            dispatch.dispatch_id,
            dispatch.purpose,
            dispatch.school_id,
            dispatch.request_id,
            dispatch.channel,
            dispatch.correlationid,
            dispatch.causationid,
        )
        await self.conn.executemany(
            "INSERT INTO deliveries (delivery_id, dispatch_id, kind, account_id, invoice_number,"
            " recipient, status, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (
                    d.delivery_id,
                    dispatch.dispatch_id,
                    d.kind,
                    d.account_id,
                    d.invoice_number,
                    d.recipient,
                    d.status,
                    d.last_error,
                )
                for d in deliveries
            ],
        )


def new_delivery(
    kind: str,
    *,
    recipient: str | None,
    account_id: UUID | None = None,
    invoice_number: str | None = None,
) -> Delivery:
    """A delivery to make; one with no address is failed from the start, with the reason."""
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


OutcomeReport = Callable[["DispatchOutcome"], Envelope[Contract]]


class DeliveryQueries:
    """The delivery loop's statements, each in its own short transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim_due(self, limit: int, lease_seconds: float) -> list[Delivery]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "UPDATE deliveries SET lease_until = now() + make_interval(secs => $2),"
                " attempts = attempts + 1"
                " WHERE delivery_id IN (SELECT delivery_id FROM deliveries"
                "  WHERE status = 'pending' AND next_attempt_at <= now()"
                "  AND (lease_until IS NULL OR lease_until < now())"
                "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " RETURNING delivery_id, dispatch_id, kind, account_id, invoice_number,"
                " recipient, attempts",
                limit,
                lease_seconds,
            )
        return [Delivery(**row) for row in rows]

    async def renew_leases(self, delivery_ids: list[UUID], lease_seconds: float) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)"
                " WHERE delivery_id = ANY($1::uuid[]) AND status = 'pending'",
                delivery_ids,
                lease_seconds,
            )

    async def account_sheet(self, account_id: UUID) -> dict[str, Any] | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT a.*, s.name AS school_name, s.provisioning FROM accounts a"
                " JOIN schools s USING (school_id) WHERE a.account_id = $1",
                account_id,
            )
        return dict(row) if row else None

    async def invoice_document(self, invoice_number: str) -> str | None:
        async with self._pool.acquire() as conn:
            found = await conn.fetchval(
                "SELECT document::text FROM invoices WHERE invoice_number = $1", invoice_number
            )
        return str(found) if found is not None else None

    async def reschedule(self, delivery_id: UUID, *, delay_seconds: float, error: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE deliveries SET lease_until = NULL, last_error = $2,"
                " next_attempt_at = now() + make_interval(secs => $3) WHERE delivery_id = $1",
                delivery_id,
                error,
                delay_seconds,
            )

    async def settle(
        self, delivery: Delivery, *, sent: bool, error: str | None, report: OutcomeReport
    ) -> DispatchOutcome | None:
        """Record a delivery's end. When it was the dispatch's last, ``report`` turns the
        outcome into an event, written to the outbox in the same transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Lock the dispatch first: of two replicas settling its last deliveries, only
            # the second sees none pending, and only it reports the outcome.
            await conn.execute(
                "SELECT 1 FROM dispatches WHERE dispatch_id = $1 FOR UPDATE", delivery.dispatch_id
            )
            await conn.execute(
                "UPDATE deliveries SET status = $2, lease_until = NULL, last_error = $3,"
                " sent_at = CASE WHEN $2 = 'sent' THEN now() END"
                " WHERE delivery_id = $1 AND status = 'pending'",
                delivery.delivery_id,
                "sent" if sent else "failed",
                error,
            )
            outcome = await complete_if_done(conn, delivery.dispatch_id)
            if outcome is not None:
                await TransactionStore(conn).emit(report(outcome))
            return outcome


async def complete_if_done(conn: Connection, dispatch_id: UUID) -> DispatchOutcome | None:
    pending = await conn.fetchval(
        "SELECT count(*) FROM deliveries WHERE dispatch_id = $1 AND status = 'pending'",
        dispatch_id,
    )
    if pending:
        return None
    row = await conn.fetchrow(
        "UPDATE dispatches SET completed_at = now()"
        " WHERE dispatch_id = $1 AND completed_at IS NULL"
        " RETURNING dispatch_id, purpose, school_id, request_id, channel, correlationid,"
        " causationid",
        dispatch_id,
    )
    if row is None:
        return None
    done = await conn.fetch(
        "SELECT account_id, invoice_number, recipient, status, last_error FROM deliveries"
        " WHERE dispatch_id = $1 ORDER BY recipient",
        dispatch_id,
    )
    return DispatchOutcome(
        dispatch=Dispatch(**row),
        delivered=[(d["account_id"], d["recipient"]) for d in done if d["status"] == "sent"],
        undeliverable=[
            (d["account_id"], d["last_error"] or "not delivered")
            for d in done
            if d["status"] == "failed"
        ],
        invoice_number=next((d["invoice_number"] for d in done if d["invoice_number"]), None),
    )
