"""Every SQL statement of the ONDE feed (directory.synced) and of the leavers' purge.

A chunk of about 500 persons is applied in a fixed handful of set-based statements
(arrays passed through ``unnest``), never one statement per person.
"""

from collections.abc import Collection, Mapping
from datetime import datetime
from uuid import UUID

from services.account_manager.domain import NewAccount
from services.account_manager.feed_rules import (
    Candidate,
    IneCandidate,
    MatchKey,
    ParentCandidate,
    RunProgress,
)
from services.account_manager.ports import (
    AccountView,
    FeedClassRow,
    MappedAccount,
    Pairs,
    PersonUpdate,
    PossibleDuplicate,
    RunFindings,
    SchoolInfo,
)
from services.account_manager.store import PostgresAccountStore


def _flatten(pairs: Pairs) -> tuple[list[UUID], list[UUID], list[UUID]]:
    """(owners, left column, right column) of a mapping owner -> ids, for unnest."""
    owners = list(pairs)
    left = [owner for owner, ids in pairs.items() for _ in ids]
    right = [i for ids in pairs.values() for i in ids]
    return owners, left, right


# A parent of another school with the newcomer's names (``n``), whom this school does not
# hold, active or deactivated after $5: the body of parent_candidates' two lookups.
_PARENT = (
    "a.account_id, a.first_folded, a.last_folded, a.email, a.feed_id IS NOT NULL AS fed,"
    " a.deactivated_at FROM accounts a"
    " WHERE a.last_folded = n.last AND a.first_folded = n.first AND a.profile = 'relative'"
    " AND a.school_id <> $1 AND (a.deactivated_at IS NULL OR a.deactivated_at > $5)"
    " AND NOT EXISTS (SELECT 1 FROM account_schools s"
    "  WHERE s.account_id = a.account_id AND s.school_id = $1)"
)


def _feed_lock(school_id: str) -> str:
    """The transaction lock on a school's feed, as SQL, ``school_id`` a uuid expression."""
    return f"pg_advisory_xact_lock(hashtextextended('feed:' || {school_id}::text, 0))"


class PostgresFeedStore(PostgresAccountStore):
    """``ports.FeedStore`` in Postgres."""

    async def lock_school_feed(self, school_id: UUID) -> None:
        """Chunks of one school are applied one at a time, whichever replica has them:
        matching, logins within the school and pending links then never race."""
        await self.conn.execute(f"SELECT {_feed_lock('$1::uuid')}", school_id)

    async def lock_fed_school(self, school_id: UUID) -> SchoolInfo | None:
        """The school, its feed locked (``lock_school_feed``) when it is known."""
        row = await self.conn.fetchrow(
            f"SELECT school_id, uai, name, provisioning, {_feed_lock('school_id')} AS locked"
            " FROM schools WHERE school_id = $1",
            school_id,
        )
        if row is None:
            return None
        return SchoolInfo(row["school_id"], row["uai"], row["name"], row["provisioning"])

    async def run_progress(self, school_id: UUID) -> RunProgress | None:
        row = await self.conn.fetchrow(
            "SELECT version, chunks, applied FROM feed_runs WHERE school_id = $1", school_id
        )
        return RunProgress(**row) if row else None

    async def has_feed_classes(self, school_id: UUID) -> bool:
        """Whether the feed already gave the school classes (every applied run has)."""
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM feed_classes WHERE school_id = $1)", school_id
            )
        )

    async def count_chunk(self, school_id: UUID, version: int, chunks: int) -> bool:
        """One more chunk of run ``version`` applied; its first makes it the school's run.
        Whether the run is now applied whole."""
        row = await self.conn.fetchrow(
            "INSERT INTO feed_runs (school_id, version, chunks, applied) VALUES ($1, $2, $3, 1)"
            " ON CONFLICT (school_id) DO UPDATE SET version = EXCLUDED.version,"
            " chunks = EXCLUDED.chunks, applied = CASE WHEN feed_runs.version = EXCLUDED.version"
            "  THEN feed_runs.applied + 1 ELSE 1 END"
            " RETURNING applied >= chunks AS whole",
            school_id,
            version,
            chunks,
        )
        return bool(row and row["whole"])

    # Classes ---------------------------------------------------------------------------

    async def feed_classes(self, school_id: UUID) -> dict[str, FeedClassRow]:
        """The school's feed classes by their feed name, as they are now."""
        rows = await self.conn.fetch(
            "SELECT f.feed_name, c.class_id, c.name, c.level, c.archived_at IS NOT NULL AS archived"
            " FROM feed_classes f JOIN classes c USING (class_id) WHERE f.school_id = $1",
            school_id,
        )
        return {
            r["feed_name"]: FeedClassRow(r["class_id"], r["name"], r["level"], r["archived"])
            for r in rows
        }

    async def upsert_feed_classes(
        self,
        school_id: UUID,
        classes: list[tuple[UUID, str, str | None]],
        levels: dict[str, str | None],
    ) -> tuple[list[FeedClassRow], dict[str, UUID]]:
        """Create the feed classes ``classes`` the school lacks (a same-named class of the
        school is taken over), set the levels given in ``levels``; the classes created,
        and the class each of ``classes`` now is."""
        created: list[FeedClassRow] = []
        mapped: dict[str, UUID] = {}
        if classes:
            names = [c[1] for c in classes]
            rows = await self.conn.fetch(
                "INSERT INTO classes (class_id, school_id, name, level)"
                " SELECT u.class_id, $1, u.name, u.level"
                " FROM unnest($2::uuid[], $3::text[], $4::text[]) AS u(class_id, name, level)"
                " WHERE NOT EXISTS (SELECT 1 FROM feed_classes f"
                "                   WHERE f.school_id = $1 AND f.feed_name = u.name)"
                " ON CONFLICT (school_id, name) WHERE archived_at IS NULL DO NOTHING"
                " RETURNING class_id, name, level",
                school_id,
                [c[0] for c in classes],
                names,
                [c[2] for c in classes],
            )
            created = [FeedClassRow(r["class_id"], r["name"], r["level"]) for r in rows]
            rows = await self.conn.fetch(
                "INSERT INTO feed_classes (school_id, feed_name, class_id)"
                " SELECT $1, c.name, c.class_id FROM classes c"
                " WHERE c.school_id = $1 AND c.name = ANY($2::text[]) AND c.archived_at IS NULL"
                " ON CONFLICT (school_id, feed_name) DO NOTHING RETURNING feed_name, class_id",
                school_id,
                names,
            )
            mapped = {r["feed_name"]: r["class_id"] for r in rows}
        # The classes just created have their level already.
        made = {c.name for c in created}
        levels = {name: level for name, level in levels.items() if name not in made}
        if levels:
            await self.conn.execute(
                "UPDATE classes c SET level = u.level"
                " FROM feed_classes f, unnest($2::text[], $3::text[]) AS u(name, level)"
                " WHERE f.school_id = $1 AND f.feed_name = u.name AND c.class_id = f.class_id"
                " AND c.level IS DISTINCT FROM u.level",
                school_id,
                list(levels),
                list(levels.values()),
            )
        return created, mapped

    async def unarchive_classes(self, class_ids: list[UUID]) -> dict[UUID, list[UUID]]:
        """A class whose name the export gives again comes back, as it was: with the
        teachers it had (those still active). Each class back, and its teachers."""
        rows = await self.conn.fetch(
            "UPDATE classes SET archived_at = NULL"
            " WHERE class_id = ANY($1::uuid[]) AND archived_at IS NOT NULL RETURNING class_id",
            class_ids,
        )
        back = [r["class_id"] for r in rows]
        teachers = await self.conn.fetch(
            "WITH kept AS (DELETE FROM archived_class_teachers WHERE class_id = ANY($1::uuid[])"
            "  RETURNING class_id, account_id, from_feed)"
            " INSERT INTO class_teachers (class_id, account_id, from_feed)"
            " SELECT k.class_id, k.account_id, k.from_feed FROM kept k"
            " JOIN accounts a USING (account_id) WHERE a.deactivated_at IS NULL"
            " ON CONFLICT DO NOTHING RETURNING class_id, account_id",
            back,
        )
        found: dict[UUID, list[UUID]] = {class_id: [] for class_id in back}
        for r in teachers:
            found[r["class_id"]].append(r["account_id"])
        return {c: sorted(t, key=str) for c, t in found.items()}

    async def remember_logins(self, account_ids: list[UUID], at: datetime) -> None:
        """The logins of feed accounts about to be deleted, by feed id: should an undone
        run bring one back, he is recreated under his login."""
        await self.conn.execute(
            "INSERT INTO deleted_feed_logins (school_id, feed_id, login, deleted_at)"
            " SELECT school_id, feed_id, login, $2 FROM accounts"
            " WHERE account_id = ANY($1::uuid[]) AND feed_id IS NOT NULL"
            " ON CONFLICT (school_id, feed_id) DO UPDATE SET login = EXCLUDED.login,"
            " deleted_at = EXCLUDED.deleted_at",
            account_ids,
            at,
        )

    async def take_deleted_logins(self, school_id: UUID, feed_ids: list[UUID]) -> dict[UUID, str]:
        """The logins the school's feed accounts of ``feed_ids`` had when deleted (and
        forget them: they are used now)."""
        rows = await self.conn.fetch(
            "DELETE FROM deleted_feed_logins WHERE school_id = $1 AND feed_id = ANY($2::uuid[])"
            " RETURNING feed_id, login",
            school_id,
            feed_ids,
        )
        return {r["feed_id"]: r["login"] for r in rows}

    async def forget_deleted_logins(self, cutoff: datetime) -> int:
        rows = await self.conn.fetch(
            "DELETE FROM deleted_feed_logins WHERE deleted_at <= $1 RETURNING 1", cutoff
        )
        return len(rows)

    # Who is who ------------------------------------------------------------------------

    async def mapped_accounts(self, school_id: UUID, feed_ids: list[UUID]) -> list[MappedAccount]:
        """The accounts these feed ids are, locked: an activation arriving meanwhile waits,
        so a leaver's fate is decided on his true state."""
        rows = await self.conn.fetch(
            "SELECT m.feed_id, a.account_id, a.profile, a.activated_at IS NOT NULL AS activated,"
            " a.deactivated_at, a.ine, m.home, (NOT m.home OR EXISTS (SELECT 1 FROM"
            "  account_schools s WHERE s.account_id = a.account_id)) AS held_elsewhere,"
            " a.email IS NOT NULL AS has_email"
            " FROM (SELECT feed_id, account_id, true AS home FROM accounts"
            "  WHERE school_id = $1 AND feed_id = ANY($2::uuid[])"
            "  UNION ALL SELECT feed_id, account_id, false FROM account_schools"
            "  WHERE school_id = $1 AND feed_id = ANY($2::uuid[])) m"
            " JOIN accounts a USING (account_id)"
            " ORDER BY a.account_id FOR UPDATE OF a",
            school_id,
            feed_ids,
        )
        return [MappedAccount(**r) for r in rows]

    async def match_candidates(self, school_id: UUID, keys: list[MatchKey]) -> list[Candidate]:
        """Accounts of the school with one of ``keys`` that no feed person is now: leavers
        (deactivated) and accounts made by hand (administrators aside: no feed person has
        their profile). There are few of them (``accounts_unfed``): they are read whole
        and matched here."""
        rows = await self.conn.fetch(
            "SELECT account_id, profile, first_folded, last_folded, birth_date, deactivated_at"
            " FROM accounts WHERE school_id = $1 AND profile <> 'administrator'"
            " AND (feed_id IS NULL OR deactivated_at IS NOT NULL)",
            school_id,
        )
        # A pupil is matched on his birth date too: one without a date matches no one.
        wanted = {k for k in keys if not (k[0] == "student" and k[3] is None)}
        found = (
            Candidate(
                r["account_id"],
                (
                    r["profile"],
                    r["first_folded"],
                    r["last_folded"],
                    r["birth_date"] if r["profile"] == "student" else None,
                ),
                r["deactivated_at"],
            )
            for r in rows
        )
        return [c for c in found if c.key in wanted]

    async def remap_feed_ids(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        """Accounts ``found`` (feed id -> account) take these feed ids: a restored leaver
        the one he comes back with, an account made by hand the feed's. No other account
        has them: they are the feed ids no account had (``mapped_accounts``)."""
        await self.conn.execute(
            "UPDATE accounts a SET feed_id = u.feed_id"
            " FROM unnest($2::uuid[], $3::uuid[]) AS u(feed_id, account_id)"
            " WHERE a.account_id = u.account_id AND a.school_id = $1",
            school_id,
            list(found),
            list(found.values()),
        )

    async def ine_candidates(self, school_id: UUID, ines: list[str]) -> list[IneCandidate]:
        """Pupil accounts with one of ``ines`` the school does not hold: read through the
        partial index of INEs, once per chunk and only for its unmatched newcomers."""
        rows = await self.conn.fetch(
            "SELECT a.account_id, a.ine, a.deactivated_at FROM accounts a"
            " WHERE a.ine = ANY($2::text[]) AND a.profile = 'student' AND a.school_id <> $1"
            " AND NOT EXISTS (SELECT 1 FROM account_schools s"
            "  WHERE s.account_id = a.account_id AND s.school_id = $1)"
            " ORDER BY a.account_id",
            school_id,
            ines,
        )
        return [IneCandidate(**r) for r in rows]

    async def parent_candidates(
        self, school_id: UUID, parents: list[tuple[str, str, str | None]], since: datetime
    ) -> list[ParentCandidate]:
        """Through the index of parents' names (0013), once per chunk and only for its
        unmatched newcomer parents. The email is compared here only to bound the rows
        (lower(btrim()) may differ from Python's on exotic text): feed_rules decides."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT c.* FROM unnest($2::text[], $3::text[], $4::text[])"
            "  AS n(first, last, email)"
            " CROSS JOIN LATERAL ("
            "  (SELECT " + _PARENT + " AND a.feed_id IS NOT NULL"
            "    AND lower(btrim(a.email)) = n.email ORDER BY a.account_id LIMIT 2)"
            "  UNION ALL (SELECT " + _PARENT + " ORDER BY a.account_id LIMIT 1)) c"
            " ORDER BY c.account_id",
            school_id,
            [first for first, _, _ in parents],
            [last for _, last, _ in parents],
            [email for _, _, email in parents],
            since,
        )
        return [ParentCandidate(**r) for r in rows]

    async def lock_identities(self, keys: list[str], at: datetime) -> None:
        # DISTINCT: two keys with one hash would make the upsert touch a row twice.
        await self.conn.execute(
            "INSERT INTO identity_claims (key_hash, claimed_at)"
            " SELECT DISTINCT hashtextextended(k, 0), $2::timestamptz"
            " FROM unnest($1::text[]) AS k ORDER BY 1"
            " ON CONFLICT (key_hash) DO UPDATE SET claimed_at = EXCLUDED.claimed_at",
            keys,
            at,
        )

    async def forget_identity_claims(self, cutoff: datetime) -> int:
        rows = await self.conn.fetch(
            "DELETE FROM identity_claims WHERE claimed_at <= $1 RETURNING 1", cutoff
        )
        return len(rows)

    async def record_run_findings(
        self,
        school_id: UUID,
        run_id: UUID,
        attached: Collection[UUID],
        duplicates: Mapping[UUID, UUID],
    ) -> None:
        kinds = ["attached"] * len(attached) + ["possible_duplicate"] * len(duplicates)
        others: list[UUID | None] = [None] * len(attached)
        await self.conn.execute(
            "INSERT INTO feed_run_findings (run_id, school_id, kind, account_id, other_account_id)"
            " SELECT $1, $2, u.kind, u.account_id, u.other"
            " FROM unnest($3::text[], $4::uuid[], $5::uuid[]) AS u(kind, account_id, other)"
            " ON CONFLICT DO NOTHING",
            run_id,
            school_id,
            kinds,
            [*attached, *duplicates],
            [*others, *duplicates.values()],
        )

    async def run_findings(self, school_id: UUID, run_id: UUID) -> RunFindings:
        # One statement: the attached count rides on every row, or on a lone row of NULLs.
        rows = await self.conn.fetch(
            "WITH f AS (SELECT kind, account_id FROM feed_run_findings"
            "           WHERE school_id = $1 AND run_id = $2)"
            " SELECT (SELECT count(*) FROM f WHERE kind = 'attached') AS attached,"
            "  a.account_id, a.profile, a.first_name, a.last_name"
            " FROM (SELECT 1) one"
            " LEFT JOIN (f JOIN accounts a USING (account_id)) ON f.kind = 'possible_duplicate'"
            " ORDER BY a.last_name, a.first_name, a.account_id",
            school_id,
            run_id,
        )
        duplicates = [
            PossibleDuplicate(r["account_id"], r["profile"], r["first_name"], r["last_name"])
            for r in rows
            if r["account_id"] is not None
        ]
        return RunFindings(attached=int(rows[0]["attached"]), duplicates=duplicates)

    async def attach_accounts(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        await self.conn.execute(
            "INSERT INTO account_schools (account_id, school_id, feed_id)"
            " SELECT u.account_id, $1, u.feed_id"
            " FROM unnest($2::uuid[], $3::uuid[]) AS u(feed_id, account_id)",
            school_id,
            list(found),
            list(found.values()),
        )

    async def rehome_accounts(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        """His old home's feed id goes with his old home: he left it."""
        await self.conn.execute(
            "UPDATE accounts a SET school_id = $1, feed_id = u.feed_id"
            " FROM unnest($2::uuid[], $3::uuid[]) AS u(feed_id, account_id)"
            " WHERE a.account_id = u.account_id",
            school_id,
            list(found),
            list(found.values()),
        )

    async def detach_accounts(self, school_id: UUID, account_ids: list[UUID]) -> None:
        for table in ("account_classes", "class_teachers"):
            await self.conn.execute(
                f"DELETE FROM {table} x USING classes c WHERE x.account_id = ANY($2::uuid[])"
                " AND c.class_id = x.class_id AND c.school_id = $1",
                school_id,
                account_ids,
            )
        await self.conn.execute(
            "DELETE FROM account_schools WHERE school_id = $1 AND account_id = ANY($2::uuid[])",
            school_id,
            account_ids,
        )
        # Those whose home this school was: the school they joined first is their home now.
        await self.conn.execute(
            "WITH next AS (SELECT DISTINCT ON (s.account_id) s.account_id, s.school_id"
            "  FROM account_schools s JOIN accounts a USING (account_id)"
            "  WHERE s.account_id = ANY($2::uuid[]) AND a.school_id = $1"
            "  ORDER BY s.account_id, s.attached_at, s.school_id),"
            " moved AS (DELETE FROM account_schools s USING next n"
            "  WHERE s.account_id = n.account_id AND s.school_id = n.school_id"
            "  RETURNING s.account_id, s.school_id, s.feed_id)"
            " UPDATE accounts a SET school_id = m.school_id, feed_id = m.feed_id"
            " FROM moved m WHERE a.account_id = m.account_id",
            school_id,
            account_ids,
        )

    # Creating and updating -------------------------------------------------------------

    async def give_codes(self, codes: Mapping[UUID, str], expires_at: datetime) -> set[UUID]:
        rows = await self.conn.fetch(
            "UPDATE accounts a SET activation_code = u.code, activation_expires_at = $3"
            " FROM unnest($1::uuid[], $2::text[]) AS u(account_id, code)"
            " WHERE a.account_id = u.account_id AND a.activated_at IS NULL"
            " AND a.activation_code IS NULL AND a.deactivated_at IS NULL"
            " RETURNING a.account_id",
            list(codes),
            list(codes.values()),
            expires_at,
        )
        return {r["account_id"] for r in rows}

    async def update_people(self, people: list[PersonUpdate]) -> set[UUID]:
        """Names, email and birth date as the feed gives them, and any of them that was
        deactivated is active again; the accounts that changed."""
        # An INE given for the first time is written, but is no change to publish: the
        # events do not carry it. ``o`` is the row as it was before this statement.
        rows = await self.conn.fetch(
            "UPDATE accounts a SET first_name = u.first_name, last_name = u.last_name,"
            " email = u.email, birth_date = u.birth_date, first_folded = u.first_folded,"
            " last_folded = u.last_folded, deactivated_at = NULL, ine = coalesce(u.ine, a.ine)"
            " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::date[],"
            "  $6::text[], $7::text[], $8::text[])"
            "  AS u(account_id, first_name, last_name, email, birth_date, first_folded,"
            "  last_folded, ine), accounts o"
            " WHERE a.account_id = u.account_id AND o.account_id = u.account_id"
            " AND (o.deactivated_at IS NOT NULL OR o.ine IS DISTINCT FROM coalesce(u.ine, o.ine)"
            "  OR (o.first_name, o.last_name, o.email, o.birth_date)"
            "  IS DISTINCT FROM (u.first_name, u.last_name, u.email, u.birth_date))"
            " RETURNING a.account_id, o.deactivated_at IS NOT NULL"
            "  OR (o.first_name, o.last_name, o.email, o.birth_date)"
            "  IS DISTINCT FROM (u.first_name, u.last_name, u.email, u.birth_date) AS shown",
            [p.account_id for p in people],
            [p.first_name for p in people],
            [p.last_name for p in people],
            [p.email for p in people],
            [p.birth_date for p in people],
            [p.first_folded for p in people],
            [p.last_folded for p in people],
            [p.ine for p in people],
        )
        return {r["account_id"] for r in rows if r["shown"]}

    # Classes and links of persons --------------------------------------------------------

    async def replace_account_classes(
        self, desired: Pairs, fresh: Collection[UUID] = (), school_id: UUID | None = None
    ) -> set[UUID]:
        """Each account of ``desired`` ends in exactly those classes; those that changed.
        Accounts ``fresh`` (created in this transaction, in no class yet) are only added.
        ``school_id``: only that school's classes are replaced (those of his other schools
        stay)."""
        owners, left, right = _flatten(desired)
        owners = [owner for owner in owners if owner not in fresh]
        removed = (
            await self.conn.fetch(
                "DELETE FROM account_classes a WHERE a.account_id = ANY($1::uuid[])"
                " AND (a.account_id, a.class_id) NOT IN"
                "  (SELECT * FROM unnest($2::uuid[], $3::uuid[]))"
                " AND ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM classes c"
                "  WHERE c.class_id = a.class_id AND c.school_id = $4))"
                " RETURNING a.account_id",
                owners,
                left,
                right,
                school_id,
            )
            if owners
            else []
        )
        added = await self.conn.fetch(
            "INSERT INTO account_classes (account_id, class_id)"
            " SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING"
            " RETURNING account_id",
            left,
            right,
        )
        return {r["account_id"] for r in [*removed, *added]}

    async def replace_feed_teaching(
        self, desired: Pairs, fresh: Collection[UUID] = ()
    ) -> set[UUID]:
        """Each teacher of ``desired`` teaches the classes the feed names; attachments the
        administrator made by hand stay. The teachers whose classes changed. Teachers
        ``fresh`` (created in this transaction) are only added."""
        owners, left, right = _flatten(desired)
        owners = [owner for owner in owners if owner not in fresh]
        removed = (
            []
            if not owners
            else await self.conn.fetch(
                "DELETE FROM class_teachers t WHERE t.account_id = ANY($1::uuid[]) AND t.from_feed"
                " AND (t.account_id, t.class_id) NOT IN"
                "  (SELECT * FROM unnest($2::uuid[], $3::uuid[]))"
                " RETURNING t.account_id",
                owners,
                left,
                right,
            )
        )
        added = await self.conn.fetch(
            "INSERT INTO class_teachers (account_id, class_id, from_feed)"
            " SELECT *, true FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING"
            " RETURNING account_id",
            left,
            right,
        )
        return {r["account_id"] for r in [*removed, *added]}

    async def feed_links_of(
        self, school_id: UUID, parent_feed_ids: list[UUID]
    ) -> dict[UUID, set[UUID]]:
        """Parent feed id -> his children's feed ids, as stored."""
        rows = await self.conn.fetch(
            "SELECT parent_feed_id, child_feed_id FROM feed_links"
            " WHERE school_id = $1 AND parent_feed_id = ANY($2::uuid[])",
            school_id,
            parent_feed_ids,
        )
        links: dict[UUID, set[UUID]] = {}
        for row in rows:
            links.setdefault(row["parent_feed_id"], set()).add(row["child_feed_id"])
        return links

    async def replace_feed_links(
        self, school_id: UUID, desired: Pairs, fresh: Collection[UUID] = ()
    ) -> None:
        """Parent feed id -> his children's feed ids, as this chunk gives them. Parents
        ``fresh`` (by feed id: their accounts created in this transaction) have none yet."""
        parents, left, right = _flatten(desired)
        fresh = set(fresh)  # a list would make the membership test below quadratic
        known = [parent for parent in parents if parent not in fresh]
        if known:
            await self.conn.execute(
                "DELETE FROM feed_links WHERE school_id = $1 AND parent_feed_id = ANY($2::uuid[])",
                school_id,
                known,
            )
        await self.conn.execute(
            "INSERT INTO feed_links (school_id, parent_feed_id, child_feed_id)"
            " SELECT $1, * FROM unnest($2::uuid[], $3::uuid[]) ON CONFLICT DO NOTHING",
            school_id,
            left,
            right,
        )

    async def resolve_feed_links(self, school_id: UUID, feed_ids: list[UUID]) -> set[UUID]:
        """Make the parent-child links of the feed whose both sides now have an account,
        for links touching ``feed_ids``; the parents that gained a child.

        Each side is looked up by its key, one row at a time, whatever the statistics say:
        a school new to them (every school of a first import) is estimated at one row, and
        joins planned on that scanned the school's whole mapping once per link (8 ms for
        a school of 260 persons instead of 0.4 ms). ``OFFSET 0`` keeps the outer filter
        from being pushed into the scan, where it looked each side up a second time."""
        rows = await self.conn.fetch(
            "INSERT INTO parent_children (parent_id, child_id)"
            " SELECT parent_id, child_id FROM (SELECT"
            "  coalesce((SELECT p.account_id FROM accounts p"
            "   WHERE p.school_id = $1 AND p.feed_id = l.parent_feed_id),"
            "   (SELECT s.account_id FROM account_schools s"
            "   WHERE s.school_id = $1 AND s.feed_id = l.parent_feed_id)) AS parent_id,"
            "  coalesce((SELECT c.account_id FROM accounts c"
            "   WHERE c.school_id = $1 AND c.feed_id = l.child_feed_id),"
            "   (SELECT s.account_id FROM account_schools s"
            "   WHERE s.school_id = $1 AND s.feed_id = l.child_feed_id)) AS child_id"
            "  FROM feed_links l WHERE l.school_id = $1"
            "  AND (l.child_feed_id = ANY($2::uuid[]) OR l.parent_feed_id = ANY($2::uuid[]))"
            "  OFFSET 0) k"
            " WHERE parent_id IS NOT NULL AND child_id IS NOT NULL"
            " ON CONFLICT DO NOTHING RETURNING parent_id",
            school_id,
            feed_ids,
        )
        return {r["parent_id"] for r in rows}

    async def drop_stale_children(self, school_id: UUID, parents: list[UUID]) -> set[UUID]:
        """Unlink feed parents from children the feed no longer gives them; those parents.
        A parent in several schools keeps a child any of them gives him (his children in
        his other schools stay): every school he is in is looked at, not ``school_id``'s
        only."""
        del school_id  # his schools are read from his account
        rows = await self.conn.fetch(
            "DELETE FROM parent_children pc USING accounts p"
            " WHERE pc.parent_id = ANY($1::uuid[]) AND p.account_id = pc.parent_id"
            " AND p.feed_id IS NOT NULL AND NOT EXISTS (SELECT 1"
            "  FROM (SELECT p.school_id, p.feed_id UNION ALL SELECT ps.school_id, ps.feed_id"
            "   FROM account_schools ps WHERE ps.account_id = p.account_id) m"
            "  JOIN feed_links l ON l.school_id = m.school_id AND l.parent_feed_id = m.feed_id"
            "  WHERE (EXISTS (SELECT 1 FROM accounts c WHERE c.school_id = l.school_id"
            "   AND c.feed_id = l.child_feed_id AND c.account_id = pc.child_id)"
            "   OR EXISTS (SELECT 1 FROM account_schools s WHERE s.school_id = l.school_id"
            "   AND s.feed_id = l.child_feed_id AND s.account_id = pc.child_id)))"
            " RETURNING pc.parent_id",
            parents,
        )
        return {r["parent_id"] for r in rows}

    async def family_classes(
        self, parents: list[UUID], children: Collection[UUID] = ()
    ) -> tuple[list[UUID], list[tuple[UUID, UUID]], dict[UUID, list[UUID]]]:
        """For the active ones of ``parents`` and of the parents of ``children``: them,
        their (parent, child) links, and each child's classes.

        A child's classes are looked up from his memberships, each class by its key, whatever
        the statistics say: ``classes`` grows by four rows a school and went unanalysed
        through a first import, and the join planned on its estimate (three active classes)
        walked every active class of the académie for each child (27-57 ms a chunk at 500
        schools, growing with the académie; tests/integration/test_feed_lookups.py)."""
        rows = await self.conn.fetch(
            "SELECT p.account_id AS parent_id, pc.child_id,"
            " array(SELECT c.class_id FROM account_classes c WHERE c.account_id = pc.child_id"
            "       AND (SELECT k.archived_at IS NULL FROM classes k"
            "            WHERE k.class_id = c.class_id)) AS class_ids"
            " FROM accounts p LEFT JOIN parent_children pc ON pc.parent_id = p.account_id"
            " WHERE p.account_id = ANY($1::uuid[] || ARRAY("
            "  SELECT parent_id FROM parent_children WHERE child_id = ANY($2::uuid[])))"
            " AND p.deactivated_at IS NULL",
            parents,
            list(children),
        )
        active = sorted({r["parent_id"] for r in rows})
        links = [(r["parent_id"], r["child_id"]) for r in rows if r["child_id"] is not None]
        classes = {r["child_id"]: r["class_ids"] for r in rows if r["child_id"] is not None}
        return active, links, classes

    # Leavers -----------------------------------------------------------------------------

    async def delete_accounts(self, account_ids: list[UUID]) -> None:
        """Gone for good: links and classes go with them (cascade), and their feed ids."""
        await self.conn.execute(
            "DELETE FROM accounts WHERE account_id = ANY($1::uuid[])", account_ids
        )

    async def deactivate_accounts(self, account_ids: list[UUID], at: datetime) -> None:
        """Kept for the grace period, out of every class, with no usable code. Parent-child
        links stay, so a family comes back whole if he is restored."""
        await self.conn.execute(
            "UPDATE accounts SET deactivated_at = $2, activation_code = NULL"
            " WHERE account_id = ANY($1::uuid[])",
            account_ids,
            at,
        )
        await self.conn.execute(
            "DELETE FROM account_classes WHERE account_id = ANY($1::uuid[])", account_ids
        )
        await self.conn.execute(
            "DELETE FROM class_teachers WHERE account_id = ANY($1::uuid[])", account_ids
        )

    async def forget_feed_links(self, school_id: UUID, parent_feed_ids: list[UUID]) -> None:
        await self.conn.execute(
            "DELETE FROM feed_links WHERE school_id = $1 AND parent_feed_id = ANY($2::uuid[])",
            school_id,
            parent_feed_ids,
        )

    async def schools_with_expired(self, cutoff: datetime) -> list[UUID]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT school_id FROM accounts"
            " WHERE deactivated_at IS NOT NULL AND deactivated_at <= $1 ORDER BY school_id",
            cutoff,
        )
        return [r["school_id"] for r in rows]

    async def delete_archived_classes(self, cutoff: datetime) -> int:
        """Classes archived before ``cutoff``: their grace period over, gone with their
        memberships (other workers dropped them when they were archived)."""
        rows = await self.conn.fetch(
            "DELETE FROM classes WHERE archived_at IS NOT NULL AND archived_at <= $1"
            " RETURNING class_id",
            cutoff,
        )
        return len(rows)

    async def claim_expired(self, school_id: UUID, cutoff: datetime, limit: int) -> list[UUID]:
        """Deactivated accounts of the school past their grace period, locked."""
        rows = await self.conn.fetch(
            "SELECT account_id FROM accounts WHERE school_id = $1"
            " AND deactivated_at IS NOT NULL AND deactivated_at <= $2"
            " ORDER BY account_id LIMIT $3 FOR UPDATE SKIP LOCKED",
            school_id,
            cutoff,
            limit,
        )
        return [r["account_id"] for r in rows]

    # Events ------------------------------------------------------------------------------

    async def account_views(
        self,
        account_ids: list[UUID],
        inserted: Mapping[UUID, tuple[NewAccount, str]] | None = None,
    ) -> dict[UUID, AccountView]:
        """Accounts as published: classes (taught or attended) by name, active children.
        Those ``inserted`` in this transaction (the rows and their logins) are not read
        back: only their classes and children are.

        Flat reads grouped here: an ``array_agg(... ORDER BY ...)`` per account made
        Postgres sort once per account, the costliest statement of a first import.
        """
        inserted = inserted or {}
        stored = [a for a in account_ids if a not in inserted]
        rows = [
            *(
                await self.conn.fetch(
                    "SELECT account_id, school_id, profile, first_name, last_name, login, email,"
                    " birth_date, activation_code, activation_expires_at"
                    " FROM accounts WHERE account_id = ANY($1::uuid[])",
                    stored,
                )
                if stored
                else []
            ),
            *(_as_row(*inserted[a]) for a in account_ids if a in inserted),
        ]
        # Classes (by name) and active children in one read: kind 0 a class, 1 a child.
        related = await self.conn.fetch(
            "SELECT 0 AS kind, p.account_id, c.class_id AS id, c.name FROM ("
            "  SELECT account_id, class_id FROM account_classes WHERE account_id = ANY($1::uuid[])"
            "  UNION SELECT account_id, class_id FROM class_teachers"
            "  WHERE account_id = ANY($1::uuid[])) p JOIN classes c USING (class_id)"
            " WHERE c.archived_at IS NULL"
            " UNION ALL SELECT 1, pc.parent_id, pc.child_id, NULL FROM parent_children pc"
            " JOIN accounts k ON k.account_id = pc.child_id"
            " WHERE pc.parent_id = ANY($1::uuid[]) AND k.deactivated_at IS NULL"
            " ORDER BY 1, 2, 4, 3",
            account_ids,
        )
        class_ids: dict[UUID, list[UUID]] = {}
        class_names: dict[UUID, list[str]] = {}
        children: dict[UUID, list[UUID]] = {}
        for r in related:
            if r["kind"] == 0:
                class_ids.setdefault(r["account_id"], []).append(r["id"])
                class_names.setdefault(r["account_id"], []).append(r["name"])
            else:
                children.setdefault(r["account_id"], []).append(r["id"])
        return {
            r["account_id"]: AccountView(
                **r,
                class_ids=class_ids.get(r["account_id"], []),
                class_names=class_names.get(r["account_id"], []),
                children=children.get(r["account_id"], []),
            )
            for r in rows
        }


def _as_row(account: NewAccount, login: str) -> dict[str, object]:
    """An account just inserted, as ``account_views`` reads accounts."""
    return {
        "account_id": account.account_id,
        "school_id": account.school_id,
        "profile": account.profile,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "login": login,
        "email": account.email,
        "birth_date": account.birth_date,
        "activation_code": account.activation_code,
        "activation_expires_at": account.activation_expires_at,
    }
