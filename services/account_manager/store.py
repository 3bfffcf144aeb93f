"""Every SQL statement of account_manager but the feed's (feed_store.py): ``ports.AccountStore``
in Postgres and the login counters."""

from collections import Counter
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.account_manager.domain import NewAccount
from services.account_manager.feed_rules import logins_for
from services.account_manager.ports import ReserveRanks, SchoolInfo
from services.account_manager.scope import AccountRow, ClassRow, Requester
from shared.contracts.accounts import ArchivedClass, ClassInfo
from shared.db import Connection
from shared.store import TransactionStore


async def reserve_login_ranks(conn: Connection, counts: Counter[str]) -> dict[str, int]:
    """Take ``counts[base]`` ranks of each base; the last rank taken of each. The counters
    are locked in one order by everyone (sorted bases): no deadlock between replicas."""
    bases = sorted(counts)
    rows = await conn.fetch(
        "INSERT INTO login_counters (base, last_rank)"
        " SELECT base, n FROM unnest($1::text[], $2::int[]) AS u(base, n) ORDER BY base"
        " ON CONFLICT (base)"
        " DO UPDATE SET last_rank = login_counters.last_rank + EXCLUDED.last_rank"
        " RETURNING base, last_rank",
        bases,
        [counts[b] for b in bases],
    )
    return {r["base"]: r["last_rank"] for r in rows}


class RankReserver:
    """Login ranks reserved in short transactions of their own, on a pool of their own.

    Inside a handler's transaction (a feed chunk, a new school's administrator, a manual
    creation), the counter rows of common names ("lea.martin") would stay locked until it
    commits, and every other handler needing one of them would wait: chunks and schools
    would be applied one at a time. Reserved apart, they only wait
    for one statement. A chunk that fails leaves its ranks unused (a gap in the numbers,
    never a duplicate: ranks only go up, and the login is unique in the table anyway).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def __call__(self, counts: Counter[str]) -> dict[str, int]:
        async with self._pool.acquire() as conn:
            return await reserve_login_ranks(conn, counts)


class PostgresAccountStore(TransactionStore):
    """``ports.AccountStore`` in Postgres."""

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

    async def add_account(
        self, account: NewAccount, *, login_base: str, reserve: ReserveRanks | None = None
    ) -> str:
        """Insert the account under the first free login of ``login_base``; that login."""
        logins = await self.add_accounts([account], [login_base], reserve)
        return logins[account.account_id]

    async def add_accounts(
        self, accounts: list[NewAccount], bases: list[str], reserve: ReserveRanks | None = None
    ) -> dict[UUID, str]:
        """Insert ``accounts`` under the first free logins of their ``bases``; account id ->
        login. All ranks of the batch are reserved in one statement, by ``reserve`` (apart
        from this transaction) or else in it."""
        logins: dict[UUID, str] = {}
        pending = list(zip(accounts, bases, strict=True))
        take = reserve or self._reserve_ranks
        while pending:
            ranks = await take(Counter(base for _, base in pending))
            wanted = logins_for([base for _, base in pending], ranks)
            inserted = await self._insert_accounts([a for a, _ in pending], wanted)
            logins.update((a.account_id, w) for (a, _), w in zip(pending, wanted, strict=True))
            # A login of another base can look the same ("jean.dupont2" for a Jean
            # Dupont2): those few take the next ranks.
            pending = [(a, b) for a, b in pending if a.account_id not in inserted]
        return logins

    async def add_accounts_as(
        self, accounts: list[NewAccount], logins: list[str]
    ) -> dict[UUID, str]:
        """Insert ``accounts`` under these very logins, where still free; account id ->
        login of those inserted."""
        if not accounts:
            return {}
        inserted = await self._insert_accounts(accounts, logins)
        return {
            a.account_id: login
            for a, login in zip(accounts, logins, strict=True)
            if a.account_id in inserted
        }

    async def _reserve_ranks(self, counts: Counter[str]) -> dict[str, int]:
        return await reserve_login_ranks(self.conn, counts)

    async def _insert_accounts(self, accounts: list[NewAccount], logins: list[str]) -> set[UUID]:
        rows = await self.conn.fetch(
            "INSERT INTO accounts (account_id, school_id, profile, first_name, last_name, login,"
            " email, birth_date, activation_code, activation_expires_at, first_folded,"
            " last_folded, feed_id, ine)"
            " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],"
            "  $6::text[], $7::text[], $8::date[], $9::text[], $10::timestamptz[], $11::text[],"
            "  $12::text[], $13::uuid[], $14::text[])"
            " ON CONFLICT (login) DO NOTHING RETURNING account_id",
            [a.account_id for a in accounts],
            [a.school_id for a in accounts],
            [a.profile for a in accounts],
            [a.first_name for a in accounts],
            [a.last_name for a in accounts],
            logins,
            [a.email for a in accounts],
            [a.birth_date for a in accounts],
            [a.activation_code for a in accounts],
            [a.activation_expires_at for a in accounts],
            [a.first_folded for a in accounts],
            [a.last_folded for a in accounts],
            [a.feed_id for a in accounts],
            [a.ine for a in accounts],
        )
        return {r["account_id"] for r in rows}

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
            " WHERE a.account_id = $1 AND a.deactivated_at IS NULL GROUP BY a.account_id",
            account_id,
        )
        if row is None:
            return None
        return Requester(
            row["account_id"], row["school_id"], row["profile"], frozenset(row["class_ids"])
        )

    async def school_classes(self, school_id: UUID) -> dict[UUID, ClassRow]:
        rows = await self.conn.fetch(
            "SELECT class_id, school_id, name FROM classes"
            " WHERE school_id = $1 AND archived_at IS NULL",
            school_id,
        )
        return {r["class_id"]: ClassRow(**r) for r in rows}

    async def class_row(self, class_id: UUID) -> ClassRow | None:
        row = await self.conn.fetchrow(
            "SELECT class_id, school_id, name FROM classes"
            " WHERE class_id = $1 AND archived_at IS NULL FOR UPDATE",
            class_id,
        )
        return ClassRow(**row) if row else None

    async def account_rows(
        self, account_ids: list[UUID], *, lock: bool = False
    ) -> dict[UUID, AccountRow]:
        """The accounts with their live classes; ``lock``: locked (in one order) until the
        transaction ends."""
        rows = await self.conn.fetch(
            "SELECT a.account_id, a.school_id, a.profile, a.activated_at IS NOT NULL AS activated,"
            " a.deactivated_at IS NULL AS active,"
            " array(SELECT ARRAY[p.class_id, k.school_id] FROM ("
            "        SELECT class_id FROM account_classes c WHERE c.account_id = a.account_id"
            "        UNION SELECT class_id FROM class_teachers t"
            "        WHERE t.account_id = a.account_id) p"
            "       JOIN classes k USING (class_id) WHERE k.archived_at IS NULL) AS classes,"
            " array(SELECT s.school_id FROM account_schools s"
            "       WHERE s.account_id = a.account_id) AS attached_to"
            " FROM accounts a WHERE a.account_id = ANY($1::uuid[])"
            + (" ORDER BY a.account_id FOR UPDATE OF a" if lock else ""),
            account_ids,
        )
        return {
            r["account_id"]: AccountRow(
                r["account_id"],
                r["school_id"],
                r["profile"],
                frozenset(c for c, _ in r["classes"]),
                r["activated"],
                r["active"],
                frozenset(r["attached_to"]),
                {c: school for c, school in r["classes"]},
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
        """Transaction locks on each person about to be created (in the order given, the
        same for every request, so two requests never deadlock): a concurrent request for
        the same person waits. One statement for all of them: a round trip a person was
        a fifth of a command's statements."""
        await self.conn.execute(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))"
            " FROM unnest($1::text[]) AS k",
            [f"{school_id}:{key}" for key in keys],
        )

    async def archive_classes(
        self, class_ids: list[UUID], at: datetime
    ) -> tuple[list[ArchivedClass], list[UUID]]:
        """Archive these classes: out of scopes and prints, their teachers detached. The
        classes archived now, and those of them that lost teachers."""
        rows = await self.conn.fetch(
            "UPDATE classes SET archived_at = $2"
            " WHERE class_id = ANY($1::uuid[]) AND archived_at IS NULL RETURNING class_id, name",
            class_ids,
            at,
        )
        archived = [ArchivedClass(class_id=r["class_id"], name=r["name"]) for r in rows]
        # Kept aside, so that the class comes back with its teachers if it comes back.
        detached = await self.conn.fetch(
            "WITH gone AS (DELETE FROM class_teachers WHERE class_id = ANY($1::uuid[])"
            "  RETURNING class_id, account_id, from_feed),"
            " kept AS (INSERT INTO archived_class_teachers (class_id, account_id, from_feed)"
            "  SELECT class_id, account_id, from_feed FROM gone ON CONFLICT DO NOTHING)"
            " SELECT DISTINCT class_id FROM gone",
            [a.class_id for a in archived],
        )
        return archived, sorted(r["class_id"] for r in detached)

    async def year_classes(self, school_id: UUID) -> tuple[list[ClassInfo], list[ClassInfo]]:
        """The school's classes, and those of them without a teacher."""
        rows = await self.conn.fetch(
            "SELECT c.class_id, c.name, c.level,"
            " EXISTS (SELECT 1 FROM class_teachers t WHERE t.class_id = c.class_id) AS taught"
            " FROM classes c WHERE c.school_id = $1 AND c.archived_at IS NULL ORDER BY c.name",
            school_id,
        )
        classes = [
            ClassInfo(class_id=r["class_id"], name=r["name"], level=r["level"]) for r in rows
        ]
        untaught = [c for c, r in zip(classes, rows, strict=True) if not r["taught"]]
        return classes, untaught

    async def year_closed_at(self, school_id: UUID) -> datetime | None:
        value: datetime | None = await self.conn.fetchval(
            "SELECT year_closed_at FROM schools WHERE school_id = $1 FOR UPDATE", school_id
        )
        return value

    async def mark_year_closed(self, school_id: UUID, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE schools SET year_closed_at = $2 WHERE school_id = $1", school_id, at
        )

    async def parents_of(self, children: list[UUID], *, active: bool = False) -> set[UUID]:
        """The parents of ``children``; ``active``: those not deactivated only."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT p.parent_id FROM parent_children p"
            " JOIN accounts a ON a.account_id = p.parent_id"
            " WHERE p.child_id = ANY($1::uuid[]) AND (NOT $2 OR a.deactivated_at IS NULL)",
            children,
            active,
        )
        return {r["parent_id"] for r in rows}

    async def link_to_class(self, account_ids: list[UUID], class_id: UUID) -> None:
        await self.conn.execute(
            "INSERT INTO account_classes (account_id, class_id)"
            " SELECT unnest($1::uuid[]), $2 ON CONFLICT DO NOTHING",
            account_ids,
            class_id,
        )

    async def link_class_pairs(self, links: list[tuple[UUID, UUID]]) -> None:
        """(account, class) links, in one statement."""
        if links:
            await self.conn.execute(
                "INSERT INTO account_classes (account_id, class_id)"
                " SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
                [a for a, _ in links],
                [c for _, c in links],
            )

    async def link_children_pairs(self, links: list[tuple[UUID, UUID]]) -> None:
        """(parent, child) links, in one statement."""
        if links:
            await self.conn.execute(
                "INSERT INTO parent_children (parent_id, child_id)"
                " SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
                [p for p, _ in links],
                [c for _, c in links],
            )

    async def classes_of(self, account_ids: list[UUID]) -> dict[UUID, set[UUID]]:
        if not account_ids:
            return {}
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
            "SELECT name FROM classes"
            " WHERE school_id = $1 AND class_id <> $2 AND archived_at IS NULL",
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
