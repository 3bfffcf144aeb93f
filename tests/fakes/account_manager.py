"""``services.account_manager.ports.AccountStore`` and ``FeedStore`` in memory, and the
worker's message path on them.

Each table is a dict or a set keyed as the table is; each method changes, returns and
refuses what its statement does (tests/integration/test_fake_account_store.py holds them
to it, call for call, against Postgres). A refusal raises asyncpg's own error, so that the
consume wrapper classifies it as it would Postgres's. Locks are no-ops: the fake takes one
message at a time.
"""

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NoReturn
from uuid import UUID

from asyncpg.exceptions import (
    CheckViolationError,
    ForeignKeyViolationError,
    UniqueViolationError,
)

from services.account_manager.domain import NewAccount
from services.account_manager.feed_rules import (
    Candidate,
    IneCandidate,
    MatchKey,
    ParentCandidate,
    RunProgress,
    email_key,
    logins_for,
)
from services.account_manager.handlers import routes
from services.account_manager.ports import (
    AccountStore,
    AccountView,
    FeedClassRow,
    FeedStore,
    MappedAccount,
    Pairs,
    PersonUpdate,
    PossibleDuplicate,
    ReserveRanks,
    RunFindings,
    SchoolInfo,
)
from services.account_manager.scope import AccountRow, ClassRow, Requester
from services.account_manager.settings import AccountManagerSettings
from shared.contracts.accounts import ArchivedClass, ClassInfo
from shared.contracts.directory import DirectorySynced
from shared.envelope import Envelope, new_event
from shared.messaging.consumer import MessageProcessor, Outcome
from tests.fakes.events import InMemoryEventStore, unit_of_work
from tests.support.orders import cloudevent

NOW = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)
PROFILES = frozenset({"administrator", "teacher", "personnel", "student", "relative"})


def _duplicate(key: str) -> NoReturn:
    raise UniqueViolationError(f"duplicate key value violates unique constraint {key!r}")


def _missing(key: str) -> NoReturn:
    raise ForeignKeyViolationError(f"insert or update violates foreign key constraint {key!r}")


def take_ranks(last_ranks: dict[str, int], counts: Counter[str]) -> dict[str, int]:
    """``counts[base]`` more ranks of each base; the last rank taken of each."""
    for base in sorted(counts):
        last_ranks[base] = last_ranks.get(base, 0) + counts[base]
    return {base: last_ranks[base] for base in counts}


@dataclass
class FakeRankReserver:
    """``store.RankReserver`` in memory: login counters kept apart from the store, as the
    real ones are taken in transactions of their own. A failed attempt leaves its ranks
    taken (a gap in the numbers), as in Postgres."""

    last_ranks: dict[str, int] = field(default_factory=dict)

    async def __call__(self, counts: Counter[str]) -> dict[str, int]:
        return take_ranks(self.last_ranks, counts)


@dataclass
class SchoolRecord:
    uai: str
    name: str
    provisioning: str
    year_closed_at: datetime | None = None


@dataclass
class ClassRecord:
    school_id: UUID
    name: str
    level: str | None = None
    archived_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.archived_at is None


@dataclass
class AccountRecord:
    school_id: UUID
    profile: str
    first_name: str
    last_name: str
    login: str
    email: str | None
    birth_date: date | None
    activation_code: str | None
    activation_expires_at: datetime | None
    first_folded: str = ""
    last_folded: str = ""
    feed_id: UUID | None = None
    activated_at: datetime | None = None
    deactivated_at: datetime | None = None
    ine: str | None = None

    @property
    def key(self) -> MatchKey:
        birth = self.birth_date if self.profile == "student" else None
        return (self.profile, self.first_folded, self.last_folded, birth)


@dataclass
class FakeAccountStore(InMemoryEventStore):
    """``ports.AccountStore`` in memory: account_manager's tables but the feed's."""

    schools: dict[UUID, SchoolRecord] = field(default_factory=dict)
    classes: dict[UUID, ClassRecord] = field(default_factory=dict)
    # (account, school) -> (feed id, attached_at): the schools an account is in besides its
    # home. attached_at is a counter: Postgres's now() is the transaction's, the same for
    # every row of one, and rows of one transaction are then ordered by school id.
    account_schools: dict[tuple[UUID, UUID], tuple[UUID | None, int]] = field(default_factory=dict)
    accounts: dict[UUID, AccountRecord] = field(default_factory=dict)
    account_classes: set[tuple[UUID, UUID]] = field(default_factory=set)  # (account, class)
    # (class, account) -> whether the feed made the attachment (else the administrator)
    teaching: dict[tuple[UUID, UUID], bool] = field(default_factory=dict)
    archived_teaching: dict[tuple[UUID, UUID], bool] = field(default_factory=dict)
    parent_children: set[tuple[UUID, UUID]] = field(default_factory=set)  # (parent, child)
    # Ranks taken in the transaction, when no reserver is given.
    login_counters: dict[str, int] = field(default_factory=dict)

    # Rows and references --------------------------------------------------------------

    def _require_school(self, school_id: UUID) -> None:
        if school_id not in self.schools:
            _missing(f"school {school_id}")

    def _require_class(self, class_id: UUID) -> None:
        if class_id not in self.classes:
            _missing(f"class {class_id}")

    def _require_account(self, account_id: UUID) -> None:
        if account_id not in self.accounts:
            _missing(f"account {account_id}")

    def _live_class_named(self, school_id: UUID, name: str) -> UUID | None:
        for class_id, klass in self.classes.items():
            if klass.school_id == school_id and klass.name == name and klass.live:
                return class_id
        return None

    def _insert_class(self, class_id: UUID, school_id: UUID, name: str, level: str | None) -> None:
        if class_id in self.classes:
            _duplicate("classes_pkey")
        if self._live_class_named(school_id, name) is not None:
            _duplicate("classes_active_name")
        self._require_school(school_id)
        self.classes[class_id] = ClassRecord(school_id, name, level)

    def _account_of_feed(self, school_id: UUID, feed_id: UUID) -> UUID | None:
        for account_id, account in self.accounts.items():
            if account.school_id == school_id and account.feed_id == feed_id:
                return account_id
        return None

    def _insert_account(self, account: NewAccount, login: str) -> None:
        if account.profile not in PROFILES:
            raise CheckViolationError(f"profile {account.profile!r}")
        if account.account_id in self.accounts:
            _duplicate("accounts_pkey")
        feed_id = account.feed_id
        if feed_id is not None and self._account_of_feed(account.school_id, feed_id):
            _duplicate("accounts_feed")
        self._require_school(account.school_id)
        self.accounts[account.account_id] = _as_record(account, login)

    def _insert_accounts(self, accounts: list[NewAccount], logins: list[str]) -> set[UUID]:
        """Those whose login is free, in order (a login taken earlier in the batch is taken)."""
        taken = {account.login for account in self.accounts.values()}
        inserted: set[UUID] = set()
        for account, login in zip(accounts, logins, strict=True):
            if login in taken:
                continue
            self._insert_account(account, login)
            taken.add(login)
            inserted.add(account.account_id)
        return inserted

    def _live_classes(self, account_id: UUID) -> set[UUID]:
        """The live classes the account attends or teaches."""
        attended = {c for a, c in self.account_classes if a == account_id}
        taught = {c for c, a in self.teaching if a == account_id}
        return {c for c in attended | taught if self.classes[c].live}

    def _link_classes(self, links: Iterable[tuple[UUID, UUID]]) -> None:
        for account_id, class_id in links:
            if (account_id, class_id) not in self.account_classes:
                self._require_account(account_id)
                self._require_class(class_id)
                self.account_classes.add((account_id, class_id))

    # Schools, classes, accounts -------------------------------------------------------

    async def add_school(self, school_id: UUID, *, uai: str, name: str, provisioning: str) -> bool:
        if school_id in self.schools:
            return False
        if any(school.uai == uai for school in self.schools.values()):
            _duplicate("schools_uai_key")
        self.schools[school_id] = SchoolRecord(uai, name, provisioning)
        return True

    async def add_classes(self, school_id: UUID, classes: list[tuple[UUID, str]]) -> None:
        for class_id, name in classes:
            self._insert_class(class_id, school_id, name, None)

    async def add_account(
        self, account: NewAccount, *, login_base: str, reserve: ReserveRanks | None = None
    ) -> str:
        logins = await self.add_accounts([account], [login_base], reserve)
        return logins[account.account_id]

    async def add_accounts(
        self, accounts: list[NewAccount], bases: list[str], reserve: ReserveRanks | None = None
    ) -> dict[UUID, str]:
        logins: dict[UUID, str] = {}
        pending = list(zip(accounts, bases, strict=True))
        take = reserve or self._reserve_ranks
        while pending:
            ranks = await take(Counter(base for _, base in pending))
            wanted = logins_for([base for _, base in pending], ranks)
            inserted = self._insert_accounts([a for a, _ in pending], wanted)
            logins.update((a.account_id, w) for (a, _), w in zip(pending, wanted, strict=True))
            pending = [(a, b) for a, b in pending if a.account_id not in inserted]
        return logins

    async def add_accounts_as(
        self, accounts: list[NewAccount], logins: list[str]
    ) -> dict[UUID, str]:
        inserted = self._insert_accounts(accounts, logins)
        return {
            a.account_id: login
            for a, login in zip(accounts, logins, strict=True)
            if a.account_id in inserted
        }

    async def _reserve_ranks(self, counts: Counter[str]) -> dict[str, int]:
        return take_ranks(self.login_counters, counts)

    async def school(self, school_id: UUID) -> SchoolInfo | None:
        school = self.schools.get(school_id)
        if school is None:
            return None
        return SchoolInfo(school_id, school.uai, school.name, school.provisioning)

    async def requester(self, account_id: UUID) -> Requester | None:
        account = self.accounts.get(account_id)
        if account is None or account.deactivated_at is not None:
            return None
        taught = frozenset(c for c, a in self.teaching if a == account_id)
        return Requester(account_id, account.school_id, account.profile, taught)

    async def school_classes(self, school_id: UUID) -> dict[UUID, ClassRow]:
        return {
            class_id: ClassRow(class_id, school_id, klass.name)
            for class_id, klass in self.classes.items()
            if klass.school_id == school_id and klass.live
        }

    async def class_row(self, class_id: UUID) -> ClassRow | None:
        klass = self.classes.get(class_id)
        if klass is None or not klass.live:
            return None
        return ClassRow(class_id, klass.school_id, klass.name)

    async def account_rows(
        self, account_ids: list[UUID], *, lock: bool = False
    ) -> dict[UUID, AccountRow]:
        rows: dict[UUID, AccountRow] = {}
        for account_id in account_ids:
            account = self.accounts.get(account_id)
            if account is not None:
                classes = self._live_classes(account_id)
                rows[account_id] = AccountRow(
                    account_id,
                    account.school_id,
                    account.profile,
                    frozenset(classes),
                    account.activated_at is not None,
                    account.deactivated_at is None,
                    frozenset(s for a, s in self.account_schools if a == account_id),
                    {c: self.classes[c].school_id for c in classes},
                )
        return rows

    async def existing_people(
        self, school_id: UUID, keys: list[tuple[str, str, str, date | None]]
    ) -> set[tuple[str, str, str, date | None]]:
        births: dict[tuple[str, str, str], set[date | None]] = {}
        for profile, first, last, birth in keys:
            births.setdefault((profile, first, last), set()).add(birth)
        found: set[tuple[str, str, str, date | None]] = set()
        for account in self.accounts.values():
            named = births.get((account.profile, account.first_folded, account.last_folded))
            if account.school_id != school_id or named is None:
                continue
            # A pupil's birth date must be equal, and NULL equals nothing.
            if account.profile != "student" or (
                account.birth_date is not None and account.birth_date in named
            ):
                found.add(account.key)
        return found

    async def lock_people(self, school_id: UUID, keys: list[tuple[Any, ...]]) -> None:
        return None

    async def archive_classes(
        self, class_ids: list[UUID], at: datetime
    ) -> tuple[list[ArchivedClass], list[UUID]]:
        wanted = set(class_ids)
        archived: list[ArchivedClass] = []
        for class_id, klass in self.classes.items():
            if class_id in wanted and klass.live:
                klass.archived_at = at
                archived.append(ArchivedClass(class_id=class_id, name=klass.name))
        now_archived = {a.class_id for a in archived}
        detached = [key for key in self.teaching if key[0] in now_archived]
        for key in detached:
            self.archived_teaching.setdefault(key, self.teaching.pop(key))
        return archived, sorted({class_id for class_id, _ in detached})

    async def year_classes(self, school_id: UUID) -> tuple[list[ClassInfo], list[ClassInfo]]:
        live = [
            ClassInfo(class_id=class_id, name=klass.name, level=klass.level)
            for class_id, klass in self.classes.items()
            if klass.school_id == school_id and klass.live
        ]
        live.sort(key=lambda info: info.name)  # codepoint order: the C collation's
        taught = {class_id for class_id, _ in self.teaching}
        return live, [info for info in live if info.class_id not in taught]

    async def year_closed_at(self, school_id: UUID) -> datetime | None:
        school = self.schools.get(school_id)
        return school.year_closed_at if school else None

    async def mark_year_closed(self, school_id: UUID, at: datetime) -> None:
        if school_id in self.schools:
            self.schools[school_id].year_closed_at = at

    async def parents_of(self, children: list[UUID], *, active: bool = False) -> set[UUID]:
        wanted = set(children)
        return {
            parent
            for parent, child in self.parent_children
            if child in wanted and not (active and self.accounts[parent].deactivated_at is not None)
        }

    async def link_to_class(self, account_ids: list[UUID], class_id: UUID) -> None:
        self._link_classes((account_id, class_id) for account_id in account_ids)

    async def link_class_pairs(self, links: list[tuple[UUID, UUID]]) -> None:
        self._link_classes(links)

    async def link_children_pairs(self, links: list[tuple[UUID, UUID]]) -> None:
        for parent, child in links:
            if (parent, child) not in self.parent_children:
                self._require_account(parent)
                self._require_account(child)
                self.parent_children.add((parent, child))

    async def classes_of(self, account_ids: list[UUID]) -> dict[UUID, set[UUID]]:
        found: dict[UUID, set[UUID]] = {account_id: set() for account_id in account_ids}
        for account_id, class_id in self.account_classes:
            if account_id in found:
                found[account_id].add(class_id)
        return found

    async def class_teachers(self, class_id: UUID) -> set[UUID]:
        return {account_id for c, account_id in self.teaching if c == class_id}

    async def set_class_teachers(self, class_id: UUID, teachers: list[UUID]) -> None:
        kept = set(teachers)
        for key in [k for k in self.teaching if k[0] == class_id and k[1] not in kept]:
            del self.teaching[key]
        for teacher in teachers:
            if (class_id, teacher) not in self.teaching:
                self._require_class(class_id)
                self._require_account(teacher)
                self.teaching[class_id, teacher] = False

    async def class_names(self, school_id: UUID, *, except_class: UUID) -> list[str]:
        return [
            klass.name
            for class_id, klass in self.classes.items()
            if klass.school_id == school_id and class_id != except_class and klass.live
        ]

    async def rename_class(self, class_id: UUID, name: str) -> None:
        klass = self.classes.get(class_id)
        if klass is None:
            return
        if klass.live and self._live_class_named(klass.school_id, name) not in (None, class_id):
            _duplicate("classes_active_name")
        klass.name = name

    async def renew_code(self, account_id: UUID, code: str, expires_at: datetime) -> None:
        account = self.accounts.get(account_id)
        if account is not None:
            account.activation_code, account.activation_expires_at = code, expires_at

    async def activate(self, account_id: UUID, at: datetime) -> bool:
        account = self.accounts.get(account_id)
        if account is None or account.activated_at is not None:
            return False
        account.activated_at, account.activation_code = at, None
        return True


def _pairs(desired: Pairs) -> set[tuple[UUID, UUID]]:
    return {(owner, i) for owner, ids in desired.items() for i in ids}


@dataclass
class FakeFeedStore(FakeAccountStore):
    """``ports.FeedStore`` in memory: the feed's tables besides."""

    feed_names: dict[tuple[UUID, str], UUID] = field(default_factory=dict)  # (school, name)
    # (school, parent's feed id, child's feed id): links waiting for both sides' accounts
    feed_links: set[tuple[UUID, UUID, UUID]] = field(default_factory=set)
    feed_runs: dict[UUID, RunProgress] = field(default_factory=dict)
    # (school, feed id) -> (login, when deleted)
    deleted_feed_logins: dict[tuple[UUID, UUID], tuple[str, datetime]] = field(default_factory=dict)
    transactions: int = 0  # stands for now(): bumped by the harness at each message
    # The identity keys each chunk locked (lock_identities), in the order it took them.
    identities_locked: list[list[str]] = field(default_factory=list)
    identity_claims: dict[str, datetime] = field(default_factory=dict)  # key -> claimed at
    # (school, run, kind, account) -> other account: feed_run_findings
    run_findings_rows: dict[tuple[UUID, UUID, str, UUID], UUID | None] = field(default_factory=dict)

    def _home_accounts(self, school_id: UUID) -> dict[UUID, UUID]:
        return {
            account.feed_id: account_id
            for account_id, account in self.accounts.items()
            if account.school_id == school_id and account.feed_id is not None
        }

    def _attached_accounts(self, school_id: UUID) -> dict[UUID, UUID]:
        return {
            feed_id: account_id
            for (account_id, school), (feed_id, _) in self.account_schools.items()
            if school == school_id and feed_id is not None
        }

    def _feed_accounts(self, school_id: UUID) -> dict[UUID, UUID]:
        """The school's feed ids and their accounts, home or attached."""
        return self._attached_accounts(school_id) | self._home_accounts(school_id)

    def _held_elsewhere(self, account_id: UUID) -> bool:
        return any(a == account_id for a, _ in self.account_schools)

    def _cascade(self, *, accounts: Collection[UUID] = (), classes: Collection[UUID] = ()) -> None:
        """ON DELETE CASCADE: the rows that referenced accounts or classes now gone."""
        gone_accounts, gone_classes = set(accounts), set(classes)

        def kept(account_id: UUID, class_id: UUID) -> bool:
            return account_id not in gone_accounts and class_id not in gone_classes

        self.account_classes = {(a, c) for a, c in self.account_classes if kept(a, c)}
        self.teaching = {k: f for k, f in self.teaching.items() if kept(k[1], k[0])}
        self.archived_teaching = {
            k: f for k, f in self.archived_teaching.items() if kept(k[1], k[0])
        }
        self.parent_children = {
            (p, c) for p, c in self.parent_children if not {p, c} & gone_accounts
        }
        self.account_schools = {
            k: v for k, v in self.account_schools.items() if k[0] not in gone_accounts
        }
        self.feed_names = {k: c for k, c in self.feed_names.items() if c not in gone_classes}

    # Runs ------------------------------------------------------------------------------

    async def lock_school_feed(self, school_id: UUID) -> None:
        return None

    async def lock_fed_school(self, school_id: UUID) -> SchoolInfo | None:
        self.transactions += 1  # a chunk's transaction begins: now() moves on
        return await self.school(school_id)

    async def run_progress(self, school_id: UUID) -> RunProgress | None:
        return self.feed_runs.get(school_id)

    async def has_feed_classes(self, school_id: UUID) -> bool:
        return any(school == school_id for school, _ in self.feed_names)

    async def count_chunk(self, school_id: UUID, version: int, chunks: int) -> bool:
        self._require_school(school_id)
        last = self.feed_runs.get(school_id)
        applied = last.applied + 1 if last and last.version == version else 1
        self.feed_runs[school_id] = RunProgress(version, chunks, applied)
        return applied >= chunks

    # Classes ---------------------------------------------------------------------------

    async def feed_classes(self, school_id: UUID) -> dict[str, FeedClassRow]:
        found: dict[str, FeedClassRow] = {}
        for (school, name), class_id in self.feed_names.items():
            if school == school_id:
                klass = self.classes[class_id]
                found[name] = FeedClassRow(class_id, klass.name, klass.level, not klass.live)
        return found

    async def upsert_feed_classes(
        self,
        school_id: UUID,
        classes: list[tuple[UUID, str, str | None]],
        levels: dict[str, str | None],
    ) -> tuple[list[FeedClassRow], dict[str, UUID]]:
        created: list[FeedClassRow] = []
        mapped: dict[str, UUID] = {}
        if classes:
            created = self._create_feed_classes(school_id, classes)
            mapped = self._map_feed_classes(school_id, {name for _, name, _ in classes})
        made = {c.name for c in created}
        for name, level in levels.items():
            class_id = self.feed_names.get((school_id, name))
            if class_id is not None and name not in made:
                self.classes[class_id].level = level
        return created, mapped

    def _create_feed_classes(
        self, school_id: UUID, classes: list[tuple[UUID, str, str | None]]
    ) -> list[FeedClassRow]:
        """Those of ``classes`` no feed class nor live class of the school is named as."""
        fed = {name for school, name in self.feed_names if school == school_id}
        created: list[FeedClassRow] = []
        for class_id, name, level in classes:
            if name in fed or self._live_class_named(school_id, name) is not None:
                continue
            self._insert_class(class_id, school_id, name, level)
            created.append(FeedClassRow(class_id, name, level))
        return created

    def _map_feed_classes(self, school_id: UUID, names: set[str]) -> dict[str, UUID]:
        """The school's live classes of these names become the feed's, unless the feed has
        a class of that name already."""
        mapped: dict[str, UUID] = {}
        for class_id, klass in self.classes.items():
            key = (school_id, klass.name)
            named = klass.school_id == school_id and klass.name in names and klass.live
            if named and key not in self.feed_names:
                self.feed_names[key] = mapped[klass.name] = class_id
        return mapped

    async def unarchive_classes(self, class_ids: list[UUID]) -> dict[UUID, list[UUID]]:
        wanted = set(class_ids)
        back: dict[UUID, list[UUID]] = {}
        for class_id, klass in self.classes.items():
            if class_id in wanted and not klass.live:
                if self._live_class_named(klass.school_id, klass.name) is not None:
                    _duplicate("classes_active_name")
                klass.archived_at = None
                back[class_id] = []
        for key in [k for k in self.archived_teaching if k[0] in back]:
            from_feed = self.archived_teaching.pop(key)
            class_id, teacher = key
            if self.accounts[teacher].deactivated_at is None and key not in self.teaching:
                self.teaching[key] = from_feed
                back[class_id].append(teacher)
        return {class_id: sorted(teachers, key=str) for class_id, teachers in back.items()}

    async def remember_logins(self, account_ids: list[UUID], at: datetime) -> None:
        for account_id in account_ids:
            account = self.accounts.get(account_id)
            if account is not None and account.feed_id is not None:
                key = (account.school_id, account.feed_id)
                self.deleted_feed_logins[key] = (account.login, at)

    async def take_deleted_logins(self, school_id: UUID, feed_ids: list[UUID]) -> dict[UUID, str]:
        taken: dict[UUID, str] = {}
        for feed_id in feed_ids:
            if (school_id, feed_id) in self.deleted_feed_logins:
                taken[feed_id] = self.deleted_feed_logins.pop((school_id, feed_id))[0]
        return taken

    async def forget_deleted_logins(self, cutoff: datetime) -> int:
        due = [k for k, (_, deleted_at) in self.deleted_feed_logins.items() if deleted_at <= cutoff]
        for key in due:
            del self.deleted_feed_logins[key]
        return len(due)

    # Who is who ------------------------------------------------------------------------

    async def mapped_accounts(self, school_id: UUID, feed_ids: list[UUID]) -> list[MappedAccount]:
        found: list[MappedAccount] = []
        for home, mapped in (
            (True, self._home_accounts(school_id)),
            (False, self._attached_accounts(school_id)),
        ):
            for feed_id in set(feed_ids) & set(mapped):
                account = self.accounts[mapped[feed_id]]
                found.append(
                    MappedAccount(
                        feed_id,
                        mapped[feed_id],
                        account.profile,
                        account.activated_at is not None,
                        account.deactivated_at,
                        account.ine,
                        home,
                        not home or self._held_elsewhere(mapped[feed_id]),
                        account.email is not None,
                    )
                )
        return sorted(found, key=lambda m: m.account_id)

    async def match_candidates(self, school_id: UUID, keys: list[MatchKey]) -> list[Candidate]:
        wanted = {k for k in keys if not (k[0] == "student" and k[3] is None)}
        return [
            Candidate(account_id, account.key, account.deactivated_at)
            for account_id, account in self.accounts.items()
            if account.school_id == school_id
            and account.profile != "administrator"
            and (account.feed_id is None or account.deactivated_at is not None)
            and account.key in wanted
        ]

    async def remap_feed_ids(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        for feed_id, account_id in found.items():
            account = self.accounts.get(account_id)
            if account is None or account.school_id != school_id:
                continue
            if self._account_of_feed(school_id, feed_id) not in (None, account_id):
                _duplicate("accounts_feed")
            account.feed_id = feed_id

    async def ine_candidates(self, school_id: UUID, ines: list[str]) -> list[IneCandidate]:
        wanted = set(ines)
        return [
            IneCandidate(account_id, account.ine, account.deactivated_at)
            for account_id, account in sorted(self.accounts.items())
            if account.ine is not None
            and account.ine in wanted
            and account.profile == "student"
            and account.school_id != school_id
            and (account_id, school_id) not in self.account_schools
        ]

    async def parent_candidates(
        self, school_id: UUID, parents: list[tuple[str, str, str | None]], since: datetime
    ) -> list[ParentCandidate]:
        others = [
            ParentCandidate(
                account_id,
                account.first_folded,
                account.last_folded,
                account.email,
                account.feed_id is not None,
                account.deactivated_at,
            )
            for account_id, account in sorted(self.accounts.items())
            if account.profile == "relative"
            and account.school_id != school_id
            and (account.deactivated_at is None or account.deactivated_at > since)
            and (account_id, school_id) not in self.account_schools
        ]
        chosen: dict[UUID, ParentCandidate] = {}
        for first, last, email in parents:
            named = [c for c in others if (c.first_folded, c.last_folded) == (first, last)]
            same = [c for c in named if c.fed and email and email_key(c.email) == email]
            chosen |= {c.account_id: c for c in [*same[:2], *named[:1]]}
        return [chosen[a] for a in sorted(chosen)]

    async def lock_identities(self, keys: list[str], at: datetime) -> None:
        """One message at a time in the fake: nothing to wait for."""
        self.identities_locked.append(list(keys))
        for key in keys:
            self.identity_claims[key] = at

    async def forget_identity_claims(self, cutoff: datetime) -> int:
        due = [key for key, at in self.identity_claims.items() if at <= cutoff]
        for key in due:
            del self.identity_claims[key]
        return len(due)

    async def record_run_findings(
        self,
        school_id: UUID,
        run_id: UUID,
        attached: Collection[UUID],
        duplicates: Mapping[UUID, UUID],
    ) -> None:
        self._require_school(school_id)
        found: list[tuple[str, UUID, UUID | None]] = [("attached", a, None) for a in attached]
        found += [("possible_duplicate", a, other) for a, other in duplicates.items()]
        for kind, account_id, other in found:
            self.run_findings_rows.setdefault((school_id, run_id, kind, account_id), other)

    async def run_findings(self, school_id: UUID, run_id: UUID) -> RunFindings:
        mine = [(k, a) for s, r, k, a in self.run_findings_rows if (s, r) == (school_id, run_id)]
        attached = sum(1 for kind, _ in mine if kind == "attached")
        duplicates = [
            PossibleDuplicate(
                a, self.accounts[a].profile, self.accounts[a].first_name, self.accounts[a].last_name
            )
            for kind, a in mine
            if kind == "possible_duplicate" and a in self.accounts
        ]
        duplicates.sort(key=lambda d: (d.last_name, d.first_name, d.account_id))
        return RunFindings(attached, duplicates)

    async def attach_accounts(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        for feed_id, account_id in found.items():
            if (account_id, school_id) in self.account_schools:
                _duplicate("account_schools_pkey")
            if feed_id in self._attached_accounts(school_id):
                _duplicate("account_schools_school_id_feed_id_key")
            self._require_account(account_id)
            self.account_schools[account_id, school_id] = (feed_id, self.transactions)

    async def rehome_accounts(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        for feed_id, account_id in found.items():
            account = self.accounts.get(account_id)
            if account is None:
                continue
            if self._account_of_feed(school_id, feed_id) not in (None, account_id):
                _duplicate("accounts_feed")
            account.school_id, account.feed_id = school_id, feed_id

    async def detach_accounts(self, school_id: UUID, account_ids: list[UUID]) -> None:
        leaving = set(account_ids)
        self.account_classes = {
            (a, c)
            for a, c in self.account_classes
            if not (a in leaving and self.classes[c].school_id == school_id)
        }
        self.teaching = {
            (c, a): f
            for (c, a), f in self.teaching.items()
            if not (a in leaving and self.classes[c].school_id == school_id)
        }
        for account_id in leaving:
            self.account_schools.pop((account_id, school_id), None)
        for account_id in sorted(leaving & set(self.accounts)):
            account = self.accounts[account_id]
            others = sorted(
                (attached_at, school, feed_id)
                for (a, school), (feed_id, attached_at) in self.account_schools.items()
                if a == account_id
            )
            if account.school_id == school_id and others:
                _, school, feed_id = others[0]
                del self.account_schools[account_id, school]
                account.school_id, account.feed_id = school, feed_id

    async def give_codes(self, codes: Mapping[UUID, str], expires_at: datetime) -> set[UUID]:
        given = set()
        for account_id, code in codes.items():
            account = self.accounts.get(account_id)
            if account is None or account.activated_at or account.activation_code:
                continue
            if account.deactivated_at is None:
                account.activation_code, account.activation_expires_at = code, expires_at
                given.add(account_id)
        return given

    async def update_people(self, people: list[PersonUpdate]) -> set[UUID]:
        changed: set[UUID] = set()
        for person in people:
            account = self.accounts.get(person.account_id)
            if account is None:
                continue
            now = (person.first_name, person.last_name, person.email, person.birth_date)
            was = (account.first_name, account.last_name, account.email, account.birth_date)
            ine = person.ine if person.ine is not None else account.ine
            shown = account.deactivated_at is not None or now != was
            if not shown and ine == account.ine:
                continue
            account.first_name, account.last_name, account.email, account.birth_date = now
            account.first_folded, account.last_folded = person.first_folded, person.last_folded
            account.deactivated_at, account.ine = None, ine
            if shown:
                changed.add(person.account_id)
        return changed

    # Classes and links of persons ------------------------------------------------------

    async def replace_account_classes(
        self, desired: Pairs, fresh: Collection[UUID] = (), school_id: UUID | None = None
    ) -> set[UUID]:
        wanted = _pairs(desired)
        owners = {owner for owner in desired if owner not in fresh}
        gone = {
            p
            for p in self.account_classes
            if p[0] in owners
            and p not in wanted
            and (school_id is None or self.classes[p[1]].school_id == school_id)
        }
        added = wanted - self.account_classes
        self.account_classes -= gone
        self._link_classes(added)
        return {account_id for account_id, _ in gone | added}

    async def replace_feed_teaching(
        self, desired: Pairs, fresh: Collection[UUID] = ()
    ) -> set[UUID]:
        wanted = {(class_id, teacher) for teacher, class_id in _pairs(desired)}
        owners = {owner for owner in desired if owner not in fresh}
        gone = {
            key
            for key, from_feed in self.teaching.items()
            if key[1] in owners and from_feed and key not in wanted
        }
        added = wanted - set(self.teaching)
        for key in gone:
            del self.teaching[key]
        for class_id, teacher in added:
            self._require_class(class_id)
            self._require_account(teacher)
            self.teaching[class_id, teacher] = True
        return {teacher for _, teacher in gone | added}

    async def feed_links_of(
        self, school_id: UUID, parent_feed_ids: list[UUID]
    ) -> dict[UUID, set[UUID]]:
        wanted = set(parent_feed_ids)
        links: dict[UUID, set[UUID]] = {}
        for school, parent, child in self.feed_links:
            if school == school_id and parent in wanted:
                links.setdefault(parent, set()).add(child)
        return links

    async def replace_feed_links(
        self, school_id: UUID, desired: Pairs, fresh: Collection[UUID] = ()
    ) -> None:
        known = {parent for parent in desired if parent not in fresh}
        await self.forget_feed_links(school_id, list(known))
        self.feed_links |= {(school_id, parent, child) for parent, child in _pairs(desired)}

    async def resolve_feed_links(self, school_id: UUID, feed_ids: list[UUID]) -> set[UUID]:
        touched = set(feed_ids)
        accounts = self._feed_accounts(school_id)
        gained: set[UUID] = set()
        for school, parent_feed, child_feed in self.feed_links:
            if school != school_id or not {parent_feed, child_feed} & touched:
                continue
            parent, child = accounts.get(parent_feed), accounts.get(child_feed)
            if parent is None or child is None or (parent, child) in self.parent_children:
                continue
            self.parent_children.add((parent, child))
            gained.add(parent)
        return gained

    async def drop_stale_children(self, school_id: UUID, parents: list[UUID]) -> set[UUID]:
        # (parent's account, child's account) of the links any school's feed still gives
        given: set[tuple[UUID, UUID]] = set()
        for school in {s for s, _, _ in self.feed_links}:
            accounts = self._feed_accounts(school)
            given |= {
                (accounts[p], accounts[c])
                for s, p, c in self.feed_links
                if s == school and p in accounts and c in accounts
            }
        asked = set(parents)
        stale: set[tuple[UUID, UUID]] = set()
        for parent, child in self.parent_children:
            feed_id = self.accounts[parent].feed_id
            if parent in asked and feed_id is not None and (parent, child) not in given:
                stale.add((parent, child))
        self.parent_children -= stale
        return {parent for parent, _ in stale}

    async def family_classes(
        self, parents: list[UUID], children: Collection[UUID] = ()
    ) -> tuple[list[UUID], list[tuple[UUID, UUID]], dict[UUID, list[UUID]]]:
        kids = set(children)
        asked = set(parents) | {p for p, c in self.parent_children if c in kids}
        active = sorted(
            p for p in asked if p in self.accounts and self.accounts[p].deactivated_at is None
        )
        links = [(p, c) for p, c in self.parent_children if p in set(active)]
        attended = {
            child: [
                class_id
                for account_id, class_id in self.account_classes
                if account_id == child and self.classes[class_id].live
            ]
            for _, child in links
        }
        return active, links, attended

    # Leavers ---------------------------------------------------------------------------

    async def delete_accounts(self, account_ids: list[UUID]) -> None:
        for account_id in account_ids:
            self.accounts.pop(account_id, None)
        self._cascade(accounts=account_ids)

    async def deactivate_accounts(self, account_ids: list[UUID], at: datetime) -> None:
        gone = set(account_ids)
        for account_id in gone & set(self.accounts):
            account = self.accounts[account_id]
            account.deactivated_at, account.activation_code = at, None
        self.account_classes = {p for p in self.account_classes if p[0] not in gone}
        self.teaching = {k: f for k, f in self.teaching.items() if k[1] not in gone}

    async def forget_feed_links(self, school_id: UUID, parent_feed_ids: list[UUID]) -> None:
        parents = set(parent_feed_ids)
        self.feed_links = {
            link for link in self.feed_links if not (link[0] == school_id and link[1] in parents)
        }

    def _expired(self, cutoff: datetime) -> dict[UUID, AccountRecord]:
        return {
            account_id: account
            for account_id, account in self.accounts.items()
            if account.deactivated_at is not None and account.deactivated_at <= cutoff
        }

    async def schools_with_expired(self, cutoff: datetime) -> list[UUID]:
        return sorted({account.school_id for account in self._expired(cutoff).values()})

    async def delete_archived_classes(self, cutoff: datetime) -> int:
        gone = [
            class_id
            for class_id, klass in self.classes.items()
            if klass.archived_at is not None and klass.archived_at <= cutoff
        ]
        for class_id in gone:
            del self.classes[class_id]
        self._cascade(classes=gone)
        return len(gone)

    async def claim_expired(self, school_id: UUID, cutoff: datetime, limit: int) -> list[UUID]:
        expired = self._expired(cutoff)
        return sorted(a for a, account in expired.items() if account.school_id == school_id)[:limit]

    # Events ----------------------------------------------------------------------------

    async def account_views(
        self,
        account_ids: list[UUID],
        inserted: Mapping[UUID, tuple[NewAccount, str]] | None = None,
    ) -> dict[UUID, AccountView]:
        inserted = inserted or {}
        views: dict[UUID, AccountView] = {}
        for account_id in account_ids:
            if account_id in inserted:
                row = _as_record(*inserted[account_id])
            elif account_id in self.accounts:
                row = self.accounts[account_id]
            else:
                continue
            views[account_id] = self._view(account_id, row)
        return views

    def _view(self, account_id: UUID, row: AccountRecord) -> AccountView:
        # Classes by name then id, children by id: the order the statement sorts them in.
        classes = sorted(self._live_classes(account_id), key=lambda c: (self.classes[c].name, c))
        children = sorted(
            child
            for parent, child in self.parent_children
            if parent == account_id and self.accounts[child].deactivated_at is None
        )
        return AccountView(
            account_id=account_id,
            school_id=row.school_id,
            profile=row.profile,
            first_name=row.first_name,
            last_name=row.last_name,
            login=row.login,
            email=row.email,
            birth_date=row.birth_date,
            class_ids=classes,
            class_names=[self.classes[c].name for c in classes],
            children=children,
            activation_code=row.activation_code,
            activation_expires_at=row.activation_expires_at,
        )


def _as_record(account: NewAccount, login: str) -> AccountRecord:
    """The row ``account`` is inserted as, under ``login``."""
    return AccountRecord(
        school_id=account.school_id,
        profile=account.profile,
        first_name=account.first_name,
        last_name=account.last_name,
        login=login,
        email=account.email,
        birth_date=account.birth_date,
        activation_code=account.activation_code,
        activation_expires_at=account.activation_expires_at,
        first_folded=account.first_folded,
        last_folded=account.last_folded,
        feed_id=account.feed_id,
        ine=account.ine,
    )


def _satisfies(accounts: FakeAccountStore, feed: FakeFeedStore) -> tuple[AccountStore, FeedStore]:
    return accounts, feed  # mypy (make lint) checks the fakes against the Protocols here


class AccountManager:
    """The worker's message path over one fake store, as bootstrap wires it: login ranks
    reserved apart (``ranks``), and a clock the test moves (``now``)."""

    def __init__(
        self, store: FakeFeedStore | None = None, settings: AccountManagerSettings | None = None
    ) -> None:
        self.store = store or FakeFeedStore()
        self.ranks = FakeRankReserver()
        self.now = NOW
        self._processor = MessageProcessor(
            routes(settings or AccountManagerSettings(), lambda: self.now, self.ranks),
            unit_of_work(self.store),
        )
        self._sent = 0

    async def take(
        self, topic: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> Outcome:
        """A message as a sender publishes it (a command correlated by its request id)."""
        self._sent += 1
        event = cloudevent(
            data,
            event_id=event_id or f"evt-{self._sent}",
            event_type=topic,
            correlationid=data.get("request_id") or f"corr-{self._sent}",
        )
        return await self._processor.process(json.dumps(event, default=str).encode())

    async def take_chunk(self, chunk: DirectorySynced, *, event_id: str | None = None) -> Outcome:
        """A chunk of the feed as directory_sync publishes it."""
        event = new_event(
            chunk,
            source="urn:one:directory_sync",
            correlationid=f"sync:{chunk.run_id}",
            event_id=event_id,
        )
        return await self._processor.process(event.to_json())

    async def send(self, topic: str, data: dict[str, Any]) -> list[Envelope[Any]]:
        """Take a message that must be applied; the events it emitted."""
        before = len(self.store.emitted)
        outcome = await self.take(topic, data)
        assert outcome.kind == "applied", outcome
        return self.store.emitted[before:]

    async def send_chunk(self, chunk: DirectorySynced) -> list[Envelope[Any]]:
        before = len(self.store.emitted)
        outcome = await self.take_chunk(chunk)
        assert outcome.kind == "applied", outcome
        return self.store.emitted[before:]

    def data_of(self, topic: str) -> list[Any]:
        return [event.data for event in self.store.emitted if event.type == topic]
