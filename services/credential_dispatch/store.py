"""Every SQL statement of credential_dispatch: ``ports.DispatchStore`` in Postgres, and the
delivery loop's queries."""

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from services.credential_dispatch.model import (
    CHANNELS,
    DELIVERY_KINDS,
    DISPATCH_PURPOSES,
    PROVISIONINGS,
    Audited,
    Delivery,
    Dispatch,
    DispatchOutcome,
    Printed,
    Requester,
    Selected,
    SheetRow,
    YearTurnedNotice,
    one_of,
)
from shared.contracts.accounts import Account, CreatedAccount
from shared.contracts.commands import ActivationCodeRenewed
from shared.contracts.common import Reason
from shared.contracts.orders import CreditNoteIssued, InvoiceIssued
from shared.db import Connection
from shared.envelope import Contract, Envelope
from shared.store import TransactionStore

# The accounts of school $1: those whose home it is and those attached to it, each half an
# index lookup, gathered once (an InitPlan) and then read by primary key.
SCHOOL_MEMBERS = (
    "array(SELECT account_id FROM accounts WHERE school_id = $1"
    " UNION ALL SELECT account_id FROM account_schools WHERE school_id = $1)"
)

# The schools account ``a`` is in besides its home.
ATTACHED_TO = (
    "array(SELECT m.school_id FROM account_schools m"
    " WHERE m.account_id = a.account_id) AS attached_to"
)


class Row(Protocol):
    """A fetched row: an asyncpg Record, or a mapping of its columns."""

    def __getitem__(self, column: str, /) -> Any: ...


class PostgresDispatchStore(TransactionStore):
    """``ports.DispatchStore`` in Postgres."""

    async def archive_classes(self, class_ids: list[UUID]) -> None:
        """Classes the school no longer has: out of every scope and print."""
        await self.conn.execute(
            "DELETE FROM account_classes WHERE class_id = ANY($1::uuid[])", class_ids
        )
        await self.conn.execute("DELETE FROM classes WHERE class_id = ANY($1::uuid[])", class_ids)

    async def administrators(self, school_id: UUID) -> list[tuple[UUID, str | None]]:
        rows = await self.conn.fetch(
            f"SELECT account_id, email FROM accounts WHERE account_id = ANY({SCHOOL_MEMBERS})"
            " AND profile = 'administrator' AND deactivated_at IS NULL ORDER BY account_id",
            school_id,
        )
        return [(r["account_id"], r["email"]) for r in rows]

    async def school_name(self, school_id: UUID) -> str | None:
        name: str | None = await self.conn.fetchval(
            "SELECT name FROM schools WHERE school_id = $1", school_id
        )
        return name

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
                (*_account_fields(school_id, a), a.activation_code, a.activation_expires_at)
                for a in accounts
            ],
        )
        # A known account of another home (its accounts.attached came first, or another
        # replica took it first): this school, which created it, holds it too.
        await self._attach(school_id, [a.account_id for a in accounts])

    async def attach_accounts(self, school_id: UUID, accounts: list[Account]) -> None:
        """Accounts now in this school too. Their names, login, address, classes and
        children are the account's, whichever school's event gives them; the code is never
        given here, so a known account keeps its own and a new copy has none. A deactivated
        account (no school held it any more) comes back with this school as its only one:
        the school that let it go no longer sees it."""
        rehomed = await self.conn.fetch(
            "UPDATE accounts SET school_id = $1, deactivated_at = NULL, updated_at = now()"
            " WHERE account_id = ANY($2::uuid[]) AND deactivated_at IS NOT NULL"
            " RETURNING account_id",
            school_id,
            [a.account_id for a in accounts],
        )
        await self.conn.execute(
            "DELETE FROM account_schools WHERE account_id = ANY($1::uuid[])",
            [r["account_id"] for r in rehomed],
        )
        await self.conn.executemany(
            "INSERT INTO accounts (account_id, school_id, profile, first_name, last_name, login,"
            " email, birth_date, classes, children)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (account_id) DO UPDATE SET first_name = EXCLUDED.first_name,"
            " last_name = EXCLUDED.last_name, login = EXCLUDED.login, email = EXCLUDED.email,"
            " birth_date = EXCLUDED.birth_date, classes = EXCLUDED.classes,"
            " children = EXCLUDED.children, updated_at = now()",
            [_account_fields(school_id, a) for a in accounts],
        )
        await self._attach(school_id, [a.account_id for a in accounts])

    async def _attach(self, school_id: UUID, account_ids: list[UUID]) -> None:
        """Each account in the school, unless it is its home (the first attaching kept)."""
        # Driven by the ids, each looked up by key: ``account_id = ANY($2)`` planned while
        # the copy was nearly empty stayed a scan of it comparing each row with every id,
        # 30 % of Postgres's statement time in a 200-school first import
        # (docs/performance.md).
        await self.conn.execute(
            "INSERT INTO account_schools (account_id, school_id)"
            " SELECT a.account_id, $1::uuid FROM unnest($2::uuid[]) AS u(account_id)"
            " JOIN accounts a USING (account_id)"
            " WHERE a.school_id <> $1 ON CONFLICT DO NOTHING",
            school_id,
            account_ids,
        )

    async def detach_accounts(self, school_id: UUID, account_ids: list[UUID]) -> None:
        # A class belongs to one school: its links go with the school.
        await self.conn.execute(
            "DELETE FROM account_classes ac USING classes k WHERE k.class_id = ac.class_id"
            " AND k.school_id = $1 AND ac.account_id = ANY($2::uuid[])",
            school_id,
            account_ids,
        )
        await self.conn.execute(
            "DELETE FROM account_schools WHERE school_id = $1 AND account_id = ANY($2::uuid[])",
            school_id,
            account_ids,
        )
        # Its home gone, an account moves to the school it was attached to first (which
        # holds it now, and sees it as its own); that school is no longer one of its others.
        await self.conn.execute(
            "WITH moved AS (UPDATE accounts a SET school_id = m.school_id, updated_at = now()"
            "  FROM (SELECT DISTINCT ON (account_id) account_id, school_id FROM account_schools"
            "        WHERE account_id = ANY($2::uuid[])"
            "        ORDER BY account_id, attached_at, school_id) m"
            "  WHERE a.account_id = m.account_id AND a.school_id = $1"
            "  RETURNING a.account_id, a.school_id)"
            " DELETE FROM account_schools s USING moved"
            " WHERE s.account_id = moved.account_id AND s.school_id = moved.school_id",
            school_id,
            account_ids,
        )

    async def link_accounts(self, accounts: Sequence[Account]) -> None:
        """The accounts' classes and children, one statement each whatever their number
        (a statement a link: Postgres bound and ran three a person)."""
        classes = [(a.account_id, c) for a in accounts for c in a.class_ids]
        children = [(a.account_id, c) for a in accounts for c in a.children]
        if classes:
            await self.conn.execute(
                "INSERT INTO account_classes (account_id, class_id)"
                " SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
                [a for a, _ in classes],
                [c for _, c in classes],
            )
        if children:
            await self.conn.execute(
                "INSERT INTO parent_children (parent_id, child_id)"
                " SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
                [p for p, _ in children],
                [c for _, c in children],
            )

    async def update_accounts(self, school_id: UUID, accounts: list[Account]) -> None:
        """Follow account_manager's changes: names, address, classes and children (a moved
        pupil, a parent whose child moved); the activation code stays as it was."""
        ids = [a.account_id for a in accounts]
        await self.conn.executemany(
            "UPDATE accounts SET first_name = $3, last_name = $4, email = $5, birth_date = $6,"
            " classes = $7, children = $8, login = $9, updated_at = now()"
            " WHERE account_id = $1 AND (school_id = $2 OR EXISTS (SELECT 1 FROM account_schools"
            "      s WHERE s.account_id = $1 AND s.school_id = $2))",
            [
                (
                    a.account_id,
                    school_id,
                    a.first_name,
                    a.last_name,
                    a.email,
                    a.birth_date,
                    a.classes,
                    a.children,
                    a.login,
                )
                for a in accounts
            ],
        )
        await self.conn.execute(
            "DELETE FROM account_classes WHERE account_id = ANY($1::uuid[])", ids
        )
        await self.conn.execute(
            "DELETE FROM parent_children WHERE parent_id = ANY($1::uuid[])",
            [a.account_id for a in accounts if a.profile == "relative"],
        )
        await self.link_accounts(accounts)

    async def set_deactivated(self, account_ids: list[UUID], *, deactivated: bool) -> None:
        # Deactivating voids the code, as account_manager does: one taken back never
        # activated gets a new one by activation_code.renewed, the old one is dead.
        await self.conn.execute(
            "UPDATE accounts SET deactivated_at = CASE WHEN $2 THEN now() END,"
            " activation_code = CASE WHEN $2 THEN NULL ELSE activation_code END,"
            " updated_at = now() WHERE account_id = ANY($1::uuid[])",
            account_ids,
            deactivated,
        )

    async def delete_accounts(self, account_ids: list[UUID]) -> None:
        """Forget removed accounts; a delivery still waiting for one is reported as
        undeliverable when its turn comes (its account is unknown here)."""
        await self.conn.execute(
            "DELETE FROM parent_children WHERE parent_id = ANY($1::uuid[])"
            " OR child_id = ANY($1::uuid[])",
            account_ids,
        )
        await self.conn.execute(
            "DELETE FROM account_classes WHERE account_id = ANY($1::uuid[])", account_ids
        )
        await self.conn.execute(
            "DELETE FROM accounts WHERE account_id = ANY($1::uuid[])", account_ids
        )

    async def upsert_classes(self, school_id: UUID, classes: list[tuple[UUID, str]]) -> None:
        await self.conn.executemany(
            "INSERT INTO classes (class_id, school_id, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (class_id) DO UPDATE SET name = EXCLUDED.name",
            [(class_id, school_id, name) for class_id, name in classes],
        )

    async def set_class_teachers(self, class_id: UUID, teachers: list[UUID]) -> None:
        await self.conn.execute(
            "DELETE FROM account_classes ac USING accounts a"
            " WHERE ac.class_id = $1 AND a.account_id = ac.account_id"
            " AND a.profile = 'teacher' AND NOT ac.account_id = ANY($2::uuid[])",
            class_id,
            teachers,
        )
        await self.conn.executemany(
            "INSERT INTO account_classes (account_id, class_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            [(t, class_id) for t in teachers],
        )

    async def requester(self, account_id: UUID) -> Requester | None:
        row = await self.conn.fetchrow(
            "SELECT a.account_id, a.school_id, a.profile, a.email,"
            " array(SELECT class_id FROM account_classes c"
            "       WHERE c.account_id = a.account_id) AS class_ids,"
            f" {ATTACHED_TO}"
            " FROM accounts a WHERE a.account_id = $1 AND a.deactivated_at IS NULL",
            account_id,
        )
        return None if row is None else requester_row(row)

    async def printed(self, document_id: UUID) -> Printed | None:
        """A stored document and the request that printed it."""
        row = await self.conn.fetchrow(
            "SELECT d.document_id, d.school_id, p.requested_by, p.layout, p.selection"
            " FROM documents d JOIN dispatches p ON p.dispatch_id = d.dispatch_id"
            " WHERE d.document_id = $1",
            document_id,
        )
        return printed_row(row) if row else None

    async def class_school(self, class_id: UUID) -> UUID | None:
        found = await self.conn.fetchval(
            "SELECT school_id FROM classes WHERE class_id = $1", class_id
        )
        return UUID(str(found)) if found else None

    async def select(
        self,
        school_id: UUID,
        account_ids: list[UUID] | None,
        class_id: UUID | None,
        profiles: list[str],
        not_activated: bool,
    ) -> list[Selected]:
        """The accounts a request names, or that its filter picks, with their classes and
        schools."""
        rows = await self.conn.fetch(
            "SELECT a.account_id, a.school_id, a.profile, a.last_name, a.first_name,"
            " array(SELECT class_id FROM account_classes c"
            "       WHERE c.account_id = a.account_id) AS class_ids,"
            f" {ATTACHED_TO}"
            " FROM accounts a"
            f" WHERE a.account_id = ANY(coalesce($2::uuid[], {SCHOOL_MEMBERS}))"
            " AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM account_classes c"
            "      WHERE c.account_id = a.account_id AND c.class_id = $3))"
            " AND (cardinality($4::text[]) = 0 OR a.profile = ANY($4::text[]))"
            " AND (NOT $5 OR a.activated_at IS NULL) AND a.deactivated_at IS NULL"
            " ORDER BY a.last_name, a.first_name",
            school_id,
            account_ids,
            class_id,
            profiles,
            not_activated,
        )
        return [selected_row(r) for r in rows]

    async def parents_of(self, child_ids: list[UUID]) -> dict[UUID, list[tuple[UUID, str | None]]]:
        rows = await self.conn.fetch(
            "SELECT p.child_id, a.account_id, a.email FROM parent_children p"
            " JOIN accounts a ON a.account_id = p.parent_id"
            " WHERE p.child_id = ANY($1::uuid[]) AND a.deactivated_at IS NULL"
            " ORDER BY a.last_name, a.first_name",
            child_ids,
        )
        found: dict[UUID, list[tuple[UUID, str | None]]] = {c: [] for c in child_ids}
        for r in rows:
            found[r["child_id"]].append((r["account_id"], r["email"]))
        return found

    async def emails_of(self, account_ids: list[UUID]) -> dict[UUID, str | None]:
        rows = await self.conn.fetch(
            "SELECT account_id, email FROM accounts WHERE account_id = ANY($1::uuid[])",
            account_ids,
        )
        return {r["account_id"]: r["email"] for r in rows}

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

    async def add_invoice(self, invoice: InvoiceIssued | CreditNoteIssued) -> None:
        """An invoice or a credit note, kept to be printed when its mail is sent."""
        await self.conn.execute(
            "INSERT INTO invoices (invoice_number, order_id, school_id, document)"
            " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (invoice_number) DO NOTHING",
            invoice.document_number,
            invoice.order_id,
            invoice.school_id,
            invoice.model_dump_json(),
        )

    async def add_dispatch(self, dispatch: Dispatch, deliveries: list[Delivery]) -> None:
        await self.conn.execute(
            "INSERT INTO dispatches (dispatch_id, purpose, school_id, request_id, channel,"
            " correlationid, causationid, requested_by, layout, selection, document_id, notice)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)",
            dispatch.dispatch_id,
            dispatch.purpose,
            dispatch.school_id,
            dispatch.request_id,
            dispatch.channel,
            dispatch.correlationid,
            dispatch.causationid,
            dispatch.requested_by,
            dispatch.layout,
            dispatch.selection,
            dispatch.document_id,
            None if dispatch.notice is None else json.dumps(asdict(dispatch.notice)),
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

    async def audit(self, entry: Audited) -> None:
        await self.conn.execute(
            "INSERT INTO audit (audit_id, school_id, purpose, request_id, requested_by,"
            " requester_profile, accounts, channel, layout, document_id, refused, dispatch_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12)",
            uuid.uuid4(),
            entry.school_id,
            entry.purpose,
            entry.request_id,
            entry.requested_by,
            entry.requester_profile,
            entry.accounts,
            entry.channel,
            entry.layout,
            entry.document_id,
            _reasons(entry.refused),
            entry.dispatch_id,
        )

    async def complete_if_done(self, dispatch_id: UUID) -> DispatchOutcome | None:
        # The same statements as the delivery loop's, when it settles a last delivery.
        return await complete_if_done(self.conn, dispatch_id)


# Accounts $1 as a sheet of school $2 shows them (NULL: each its home's sheet): the
# school's name, and a parent's children and classes in that school only; the login and
# code are the account's, the same on every school's sheet.
SHEET_ROWS = (
    "SELECT a.account_id, a.profile, a.first_name, a.last_name, a.login, a.activation_code,"
    " a.activation_expires_at, a.activated_at, a.classes, s.name AS school_name, s.provisioning,"
    " array(SELECT c.first_name || ' ' || c.last_name FROM parent_children p"
    "       JOIN accounts c ON c.account_id = p.child_id WHERE p.parent_id = a.account_id"
    "       AND (c.school_id = s.school_id OR EXISTS (SELECT 1 FROM account_schools m"
    "            WHERE m.account_id = c.account_id AND m.school_id = s.school_id))"
    "       ORDER BY c.last_name, c.first_name) AS children_names,"
    " array(SELECT k.name FROM account_classes ac JOIN classes k USING (class_id)"
    "       WHERE ac.account_id = a.account_id AND k.school_id = s.school_id"
    "       ORDER BY k.name) AS class_names"
    " FROM accounts a JOIN schools s ON s.school_id = coalesce($2::uuid, a.school_id)"
    " WHERE a.account_id = ANY($1::uuid[]) ORDER BY a.last_name, a.first_name"
)

OutcomeReport = Callable[[DispatchOutcome], Envelope[Contract] | None]


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
        return [delivery_row(row) for row in rows]

    async def renew_leases(self, delivery_ids: list[UUID], lease_seconds: float) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)"
                " WHERE delivery_id = ANY($1::uuid[]) AND status = 'pending'",
                delivery_ids,
                lease_seconds,
            )

    async def account_sheet(
        self, account_id: UUID, school_id: UUID | None = None
    ) -> SheetRow | None:
        """The account's sheet for ``school_id`` (None: its home school)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(SHEET_ROWS, [account_id], school_id)
        return sheet_row(rows[0]) if rows else None

    async def account_sheets(self, account_ids: list[UUID], school_id: UUID) -> list[SheetRow]:
        """The accounts' sheets for ``school_id``, the school that prints them."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(SHEET_ROWS, account_ids, school_id)
        return [sheet_row(r) for r in rows]

    async def dispatch(self, dispatch_id: UUID) -> Dispatch:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT dispatch_id, purpose, school_id, request_id, channel, correlationid,"
                " causationid, requested_by, layout, selection, document_id, notice::text"
                " FROM dispatches WHERE dispatch_id = $1",
                dispatch_id,
            )
        assert row is not None, f"dispatch {dispatch_id} of a claimed delivery is gone"
        return dispatch_row(row)

    async def stored_document(self, document_id: UUID) -> tuple[str, str, bytes] | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT filename, content_type, content FROM documents WHERE document_id = $1",
                document_id,
            )
        return (row["filename"], row["content_type"], bytes(row["content"])) if row else None

    async def store_document(
        self, dispatch: Dispatch, *, filename: str, content_type: str, content: bytes
    ) -> UUID:
        """Keep a printed document; a retried delivery finds it instead of printing again."""
        document_id = uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO documents (document_id, dispatch_id, school_id, filename,"
                " content_type, content) VALUES ($1, $2, $3, $4, $5, $6)",
                document_id,
                dispatch.dispatch_id,
                dispatch.school_id,
                filename,
                content_type,
                content,
            )
            await conn.execute(
                "UPDATE dispatches SET document_id = $2 WHERE dispatch_id = $1",
                dispatch.dispatch_id,
                document_id,
            )
        return document_id

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
            if outcome is not None and (reported := report(outcome)) is not None:
                await TransactionStore(conn).emit(reported)
            return outcome


async def _audit_outcome(conn: Connection, outcome: DispatchOutcome) -> None:
    """What the hand-out delivered, once its last delivery is done."""
    await conn.execute(
        "UPDATE audit SET completed_at = now(), document_id = COALESCE(document_id, $2),"
        " delivered = $3::jsonb, undeliverable = $4::jsonb WHERE dispatch_id = $1",
        outcome.dispatch.dispatch_id,
        outcome.dispatch.document_id,
        json.dumps([{"account_id": _text(a), "to": to} for a, to in outcome.delivered]),
        json.dumps([{"account_id": _text(a), "reason": r} for a, r in outcome.undeliverable]),
    )


# Each row the store hands on is built by one of these, where a value outside its Literal
# is refused (model.one_of) rather than carried on.


def _account_fields(school_id: UUID, account: Account) -> tuple[Any, ...]:
    """An account's columns from ``account_id`` to ``children``, in the order both upserts
    of ``accounts`` list them."""
    return (
        account.account_id,
        school_id,
        account.profile,
        account.first_name,
        account.last_name,
        account.login,
        account.email,
        account.birth_date,
        account.classes,
        account.children,
    )


def delivery_row(row: Row) -> Delivery:
    """A claimed delivery (its status is pending, or it would not have been claimed)."""
    return Delivery(
        delivery_id=row["delivery_id"],
        dispatch_id=row["dispatch_id"],
        kind=one_of(DELIVERY_KINDS, row["kind"], what="deliveries.kind"),
        account_id=row["account_id"],
        invoice_number=row["invoice_number"],
        recipient=row["recipient"],
        attempts=row["attempts"],
    )


def dispatch_row(row: Row) -> Dispatch:
    """A dispatch, its notice read from ``notice::text``."""
    return Dispatch(
        dispatch_id=row["dispatch_id"],
        purpose=one_of(DISPATCH_PURPOSES, row["purpose"], what="dispatches.purpose"),
        school_id=row["school_id"],
        request_id=row["request_id"],
        channel=one_of(CHANNELS, row["channel"], what="dispatches.channel"),
        correlationid=row["correlationid"],
        causationid=row["causationid"],
        requested_by=row["requested_by"],
        layout=row["layout"],
        selection=row["selection"],
        document_id=row["document_id"],
        notice=_notice(row["notice"]),
    )


def _notice(text: str | None) -> YearTurnedNotice | None:
    said = json.loads(text) if text else None
    if said is None:
        return None
    return YearTurnedNotice(
        school_name=str(said.get("school_name", "")),
        classes=tuple(str(c) for c in said.get("classes", [])),
        without_teacher=tuple(str(c) for c in said.get("without_teacher", [])),
        closed_by_hand=bool(said.get("closed_by_hand")),
    )


def sheet_row(row: Row) -> SheetRow:
    provisioning = row["provisioning"]
    return SheetRow(
        account_id=row["account_id"],
        profile=row["profile"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        login=row["login"],
        activation_code=row["activation_code"],
        activation_expires_at=row["activation_expires_at"],
        activated_at=row["activated_at"],
        school_name=row["school_name"],
        provisioning=None
        if provisioning is None
        else one_of(PROVISIONINGS, provisioning, what="schools.provisioning"),
        classes=tuple(row["classes"] or ()),
        class_names=tuple(row["class_names"] or ()),
        children_names=tuple(row["children_names"] or ()),
    )


def requester_row(row: Row) -> Requester:
    return Requester(
        account_id=row["account_id"],
        school_id=row["school_id"],
        profile=row["profile"],
        email=row["email"],
        class_ids=frozenset(row["class_ids"]),
        attached_to=frozenset(row["attached_to"]),
    )


def selected_row(row: Row) -> Selected:
    return Selected(
        account_id=row["account_id"],
        school_id=row["school_id"],
        profile=row["profile"],
        class_ids=frozenset(row["class_ids"]),
        attached_to=frozenset(row["attached_to"]),
    )


def printed_row(row: Row) -> Printed:
    return Printed(
        document_id=row["document_id"],
        school_id=row["school_id"],
        requested_by=row["requested_by"],
        layout=row["layout"],
        selection=row["selection"],
    )


def _reasons(refused: list[Reason] | None) -> str | None:
    return None if refused is None else json.dumps([r.model_dump() for r in refused])


def _text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


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
        " causationid, requested_by, layout, selection, document_id, notice::text",
        dispatch_id,
    )
    if row is None:
        return None
    done = await conn.fetch(
        "SELECT account_id, invoice_number, recipient, status, last_error FROM deliveries"
        " WHERE dispatch_id = $1 ORDER BY recipient",
        dispatch_id,
    )
    outcome = DispatchOutcome(
        dispatch=dispatch_row(row),
        delivered=[(d["account_id"], d["recipient"]) for d in done if d["status"] == "sent"],
        undeliverable=[
            (d["account_id"], d["last_error"] or "not delivered")
            for d in done
            if d["status"] == "failed"
        ],
        invoice_number=next((d["invoice_number"] for d in done if d["invoice_number"]), None),
    )
    await _audit_outcome(conn, outcome)
    return outcome
