"""Every SQL statement of account_manager."""

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from services.account_manager.domain import login_with_rank
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
                " login, email, birth_date, activation_code, activation_expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
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
            )
            if inserted:
                return login
