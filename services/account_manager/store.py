"""Every SQL statement of account_manager."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from services.account_manager.domain import login_with_rank
from services.account_manager.scope import AccountRow, ClassRow, Requester
from shared.store import TransactionStore


@dataclass(frozen=True)
class NewAccount:
    account_id: UUID
    school_id: UUID
    profile: str
    first_name: str
    last_name: str
    email: str | None
    birth_date: date | None
    activation_code: str
    activation_expires_at: datetime
    first_folded: str = ""
    last_folded: str = ""


@dataclass(frozen=True)
class SchoolInfo:
    school_id: UUID
    uai: str
    name: str
    provisioning: str


class AccountStore(TransactionStore):
    async def add_school(self, school_id: UUID, *, uai: str, name: str, provisioning: str) -> bool:
        """False if the school was already there."""
        added = await self.conn.fetchval(
            "INSERT INTO schools (school_id, uai, name, provisioning) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (school_id) DO NOTHING RETURNING true",
            school_id,
            uai,
            name,
            provisioning,
        )
        return bool(added)

    async def add_classes(self, school_id: UUID, classes: list[tuple[UUID, str]]) -> None:
        await self.conn.executemany(
            "INSERT INTO classes (class_id, school_id, name) VALUES ($1, $2, $3)",
            [(class_id, school_id, name) for class_id, name in classes],
        )

    async def add_account(self, account: NewAccount, *, login_base: str) -> str:
        """Insert the account under the first free login of ``login_base``; that login."""
        while True:
            rank = await self.conn.fetchval(
                "INSERT INTO login_counters (base, last_rank) VALUES ($1, 1)"
                " ON CONFLICT (base) DO UPDATE SET last_rank = login_counters.last_rank + 1"
                " RETURNING last_rank",
                login_base,
            )
            login = login_with_rank(login_base, int(rank))
            # A login of another base can look the same ("jean.dupont2" for a Jean
            # Dupont2): then take the next rank.
            inserted = await self.conn.fetchval(
                "INSERT INTO accounts (account_id, school_id, profile, first_name, last_name,"
                " login, email, birth_date, activation_code, activation_expires_at,"
                " first_folded, last_folded)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                " ON CONFLICT (login) DO NOTHING RETURNING true",
                account.account_id,
                account.school_id,
                account.profile,
                account.first_name,
                account.last_name,
                login,
                account.email,
                account.birth_date,
                account.activation_code,
                account.activation_expires_at,
                account.first_folded,
                account.last_folded,
            )
            if inserted:
                return login

    # Commands --------------------------------------------------------------------------

    async def school(self, school_id: UUID) -> SchoolInfo | None:
        row = await self.conn.fetchrow(
            "SELECT school_id, uai, name, provisioning FROM schools WHERE school_id = $1",
            school_id,
        )
        return SchoolInfo(**row) if row else None

    async def requester(self, account_id: UUID) -> Requester | None:
        row = await self.conn.fetchrow(
            "SELECT a.account_id, a.school_id, a.profile,"
            " coalesce(array_agg(t.class_id) FILTER (WHERE t.class_id IS NOT NULL), '{}')"
            " AS class_ids"
            " FROM accounts a LEFT JOIN class_teachers t USING (account_id)"
            " WHERE a.account_id = $1 GROUP BY a.account_id",
            account_id,
        )
        if row is None:
            return None
        return Requester(
            row["account_id"], row["school_id"], row["profile"], frozenset(row["class_ids"])
        )

    async def school_classes(self, school_id: UUID) -> dict[UUID, ClassRow]:
        rows = await self.conn.fetch(
            "SELECT class_id, school_id, name FROM classes WHERE school_id = $1", school_id
        )
        return {r["class_id"]: ClassRow(**r) for r in rows}

    async def class_row(self, class_id: UUID) -> ClassRow | None:
        row = await self.conn.fetchrow(
            "SELECT class_id, school_id, name FROM classes WHERE class_id = $1 FOR UPDATE",
            class_id,
        )
        return ClassRow(**row) if row else None

    async def account_rows(self, account_ids: list[UUID]) -> dict[UUID, AccountRow]:
        rows = await self.conn.fetch(
            "SELECT a.account_id, a.school_id, a.profile, a.activated_at IS NOT NULL AS activated,"
            " array(SELECT class_id FROM account_classes c WHERE c.account_id = a.account_id"
            "       UNION SELECT class_id FROM class_teachers t"
            "       WHERE t.account_id = a.account_id) AS class_ids"
            " FROM accounts a WHERE a.account_id = ANY($1::uuid[])",
            account_ids,
        )
        return {
            r["account_id"]: AccountRow(
                r["account_id"],
                r["school_id"],
                r["profile"],
                frozenset(r["class_ids"]),
                r["activated"],
            )
            for r in rows
        }

    async def existing_people(
        self, school_id: UUID, keys: list[tuple[str, str, str, date | None]]
    ) -> set[tuple[str, str, str, date | None]]:
        """Which of (profile, folded first, folded last, birth date) already have an
        account in the school; the birth date counts for pupils only."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT a.profile, a.first_folded, a.last_folded,"
            " CASE WHEN a.profile = 'student' THEN a.birth_date END AS birth_date"
            " FROM accounts a JOIN unnest($2::text[], $3::text[], $4::text[], $5::date[])"
            "  AS k(profile, first_folded, last_folded, birth_date)"
            "  ON a.profile = k.profile AND a.first_folded = k.first_folded"
            "  AND a.last_folded = k.last_folded"
            "  AND (a.profile <> 'student' OR a.birth_date = k.birth_date)"
            " WHERE a.school_id = $1",
            school_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
        )
        return {(r["profile"], r["first_folded"], r["last_folded"], r["birth_date"]) for r in rows}

    async def lock_people(self, school_id: UUID, keys: list[tuple[Any, ...]]) -> None:
        """Transaction locks on each person about to be created (in a fixed order, so two
        requests never deadlock): a concurrent request for the same person waits."""
        for key in keys:
            await self.conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{school_id}:{key}"
            )

    async def link_classes(self, account_id: UUID, class_ids: list[UUID]) -> None:
        await self.conn.executemany(
            "INSERT INTO account_classes (account_id, class_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            [(account_id, c) for c in class_ids],
        )

    async def link_children(self, parent_id: UUID, child_ids: list[UUID]) -> None:
        await self.conn.executemany(
            "INSERT INTO parent_children (parent_id, child_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            [(parent_id, c) for c in child_ids],
        )

    async def classes_of(self, account_ids: list[UUID]) -> dict[UUID, set[UUID]]:
        rows = await self.conn.fetch(
            "SELECT account_id, class_id FROM account_classes WHERE account_id = ANY($1::uuid[])",
            account_ids,
        )
        found: dict[UUID, set[UUID]] = {a: set() for a in account_ids}
        for r in rows:
            found[r["account_id"]].add(r["class_id"])
        return found

    async def class_teachers(self, class_id: UUID) -> set[UUID]:
        rows = await self.conn.fetch(
            "SELECT account_id FROM class_teachers WHERE class_id = $1", class_id
        )
        return {r["account_id"] for r in rows}

    async def set_class_teachers(self, class_id: UUID, teachers: list[UUID]) -> None:
        await self.conn.execute(
            "DELETE FROM class_teachers WHERE class_id = $1 AND NOT account_id = ANY($2::uuid[])",
            class_id,
            teachers,
        )
        await self.conn.executemany(
            "INSERT INTO class_teachers (class_id, account_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            [(class_id, t) for t in teachers],
        )

    async def class_names(self, school_id: UUID, *, except_class: UUID) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT name FROM classes WHERE school_id = $1 AND class_id <> $2",
            school_id,
            except_class,
        )
        return [r["name"] for r in rows]

    async def rename_class(self, class_id: UUID, name: str) -> None:
        await self.conn.execute("UPDATE classes SET name = $2 WHERE class_id = $1", class_id, name)

    async def renew_code(self, account_id: UUID, code: str, expires_at: datetime) -> None:
        await self.conn.execute(
            "UPDATE accounts SET activation_code = $2, activation_expires_at = $3"
            " WHERE account_id = $1",
            account_id,
            code,
            expires_at,
        )

    async def activate(self, account_id: UUID, at: datetime) -> bool:
        """Spend the account's code; False when unknown or already activated."""
        done = await self.conn.fetchval(
            "UPDATE accounts SET activated_at = $2, activation_code = NULL"
            " WHERE account_id = $1 AND activated_at IS NULL RETURNING true",
            account_id,
            at,
        )
        return bool(done)
