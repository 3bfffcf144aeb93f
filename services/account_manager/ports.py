"""What account_manager's handlers need of a store: the Protocols they are written against,
and the rows that cross them.

``AccountStore`` serves the commands and ``school.initialised``; ``FeedStore`` adds what
the ONDE feed (``directory.synced``), the school year and the purge need. The real ones
are ``store.PostgresAccountStore`` and ``feed_store.PostgresFeedStore`` (all the SQL);
tests/fakes holds in-memory ones that record state, so that the handlers run without
Postgres in the unit tier.
"""

from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from services.account_manager.domain import NewAccount
from services.account_manager.feed_rules import (
    Candidate,
    IneCandidate,
    MatchKey,
    ParentCandidate,
    RunProgress,
)
from services.account_manager.scope import AccountRow, ClassRow, Requester
from shared.contracts.accounts import ArchivedClass, ClassInfo
from shared.store import EventStore

# Reserves ranks of login bases: base -> count wanted, to base -> last rank reserved.
ReserveRanks = Callable[[Counter[str]], Awaitable[dict[str, int]]]
# owner -> ids (an account's classes, a parent's children), as the feed wants them.
Pairs = Mapping[UUID, Iterable[UUID]]


@dataclass(frozen=True)
class SchoolInfo:
    school_id: UUID
    uai: str
    name: str
    provisioning: str


@dataclass(frozen=True)
class MappedAccount:
    """The account a feed id already is."""

    feed_id: UUID
    account_id: UUID
    profile: str
    activated: bool
    deactivated_at: datetime | None
    ine: str | None = None
    home: bool = True  # the feed id is the account's home one, else an attachment's
    held_elsewhere: bool = False  # another school holds the account too
    has_email: bool = False  # a parent another school can find by his names and email


@dataclass(frozen=True)
class PossibleDuplicate:
    """A new account whose names alone are those of an account of another school."""

    account_id: UUID
    profile: str
    first_name: str
    last_name: str


@dataclass(frozen=True)
class RunFindings:
    """What applying a run decided across schools, summed over its chunks."""

    attached: int
    duplicates: list[PossibleDuplicate]  # by last and first name


@dataclass(frozen=True)
class PersonUpdate:
    """What the feed says of an existing account, in full."""

    account_id: UUID
    first_name: str
    last_name: str
    email: str | None
    birth_date: date | None
    first_folded: str
    last_folded: str
    ine: str | None = None  # a pupil's, when the feed gives it (None keeps the one known)


@dataclass(frozen=True)
class AccountView:
    """An account as the accounts.* events publish it."""

    account_id: UUID
    school_id: UUID
    profile: str
    first_name: str
    last_name: str
    login: str
    email: str | None
    birth_date: date | None
    class_ids: list[UUID]
    class_names: list[str]
    children: list[UUID]
    activation_code: str | None
    activation_expires_at: datetime | None


@dataclass(frozen=True)
class FeedClassRow:
    class_id: UUID
    name: str
    level: str | None
    archived: bool = False


class AccountStore(EventStore, Protocol):
    """Schools, classes, accounts and their links, as the commands read and change them.
    A class is live until archived: archived classes are out of every scope."""

    async def add_school(self, school_id: UUID, *, uai: str, name: str, provisioning: str) -> bool:
        """False if the school was already there (a UAI another school has is refused)."""
        ...

    async def add_classes(self, school_id: UUID, classes: list[tuple[UUID, str]]) -> None:
        """Refused for a name a live class of the school has."""
        ...

    async def add_account(
        self, account: NewAccount, *, login_base: str, reserve: ReserveRanks | None = None
    ) -> str:
        """Insert the account under the first free login of ``login_base``; that login."""
        ...

    async def add_accounts(
        self, accounts: list[NewAccount], bases: list[str], reserve: ReserveRanks | None = None
    ) -> dict[UUID, str]:
        """Insert ``accounts`` under the first free logins of their ``bases`` (ranks of the
        batch reserved at once, by ``reserve`` or else in the transaction); account id ->
        login. A login taken by another base's account goes to the next rank."""
        ...

    async def add_accounts_as(
        self, accounts: list[NewAccount], logins: list[str]
    ) -> dict[UUID, str]:
        """Insert ``accounts`` under these very logins, where still free; account id ->
        login of those inserted."""
        ...

    async def school(self, school_id: UUID) -> SchoolInfo | None: ...

    async def requester(self, account_id: UUID) -> Requester | None:
        """The active account with the classes he teaches; None when unknown or
        deactivated (a deactivated account asks for nothing)."""
        ...

    async def school_classes(self, school_id: UUID) -> dict[UUID, ClassRow]:
        """The school's live classes."""
        ...

    async def class_row(self, class_id: UUID) -> ClassRow | None:
        """The class if live, locked until the transaction ends."""
        ...

    async def account_rows(
        self, account_ids: list[UUID], *, lock: bool = False
    ) -> dict[UUID, AccountRow]:
        """The accounts with their live classes (attended or taught); ``lock``: locked
        until the transaction ends."""
        ...

    async def existing_people(
        self, school_id: UUID, keys: list[tuple[str, str, str, date | None]]
    ) -> set[tuple[str, str, str, date | None]]:
        """Which of (profile, folded first, folded last, birth date) already have an
        account in the school; the birth date counts for pupils only."""
        ...

    async def lock_people(self, school_id: UUID, keys: list[tuple[Any, ...]]) -> None:
        """Each person about to be created locked until the transaction ends: a concurrent
        request for the same person waits."""
        ...

    async def archive_classes(
        self, class_ids: list[UUID], at: datetime
    ) -> tuple[list[ArchivedClass], list[UUID]]:
        """Archive these classes (their teachers detached, kept aside); the classes archived
        now, and those of them that lost teachers (sorted)."""
        ...

    async def year_classes(self, school_id: UUID) -> tuple[list[ClassInfo], list[ClassInfo]]:
        """The school's live classes by name, and those of them without a teacher."""
        ...

    async def year_closed_at(self, school_id: UUID) -> datetime | None: ...

    async def mark_year_closed(self, school_id: UUID, at: datetime) -> None: ...

    async def parents_of(self, children: list[UUID], *, active: bool = False) -> set[UUID]:
        """The parents of ``children``; ``active``: those not deactivated only."""
        ...

    async def link_to_class(self, account_ids: list[UUID], class_id: UUID) -> None: ...

    async def link_class_pairs(self, links: list[tuple[UUID, UUID]]) -> None:
        """(account, class) links."""
        ...

    async def link_children_pairs(self, links: list[tuple[UUID, UUID]]) -> None:
        """(parent, child) links."""
        ...

    async def classes_of(self, account_ids: list[UUID]) -> dict[UUID, set[UUID]]:
        """The classes each account attends (archived ones too)."""
        ...

    async def class_teachers(self, class_id: UUID) -> set[UUID]: ...

    async def set_class_teachers(self, class_id: UUID, teachers: list[UUID]) -> None:
        """The class's teachers are these (those already there keep how they came)."""
        ...

    async def class_names(self, school_id: UUID, *, except_class: UUID) -> list[str]:
        """The names of the school's other live classes."""
        ...

    async def rename_class(self, class_id: UUID, name: str) -> None: ...

    async def renew_code(self, account_id: UUID, code: str, expires_at: datetime) -> None: ...

    async def activate(self, account_id: UUID, at: datetime) -> bool:
        """Spend the account's code; False when unknown or already activated."""
        ...


class FeedStore(AccountStore, Protocol):
    """What the ONDE feed, the school year and the purge need besides: feed ids of
    accounts, feed classes, pending parent-child links, runs, leavers."""

    async def lock_school_feed(self, school_id: UUID) -> None:
        """The school's feed locked until the transaction ends: its chunks (and its purge)
        are applied one at a time, whichever replica has them."""
        ...

    async def lock_fed_school(self, school_id: UUID) -> SchoolInfo | None:
        """The school, its feed locked (``lock_school_feed``) when it is known."""
        ...

    async def run_progress(self, school_id: UUID) -> RunProgress | None: ...

    async def has_feed_classes(self, school_id: UUID) -> bool:
        """Whether the feed already gave the school classes (every applied run has)."""
        ...

    async def count_chunk(self, school_id: UUID, version: int, chunks: int) -> bool:
        """One more chunk of run ``version`` applied; its first makes it the school's run.
        Whether the run is now applied whole."""
        ...

    async def feed_classes(self, school_id: UUID) -> dict[str, FeedClassRow]:
        """The school's feed classes by their feed name, as they are now."""
        ...

    async def upsert_feed_classes(
        self,
        school_id: UUID,
        classes: list[tuple[UUID, str, str | None]],
        levels: dict[str, str | None],
    ) -> tuple[list[FeedClassRow], dict[str, UUID]]:
        """Create the feed classes ``classes`` the school lacks (a same-named class of the
        school is taken over), set the levels given in ``levels``; the classes created,
        and the class each of ``classes`` now is."""
        ...

    async def unarchive_classes(self, class_ids: list[UUID]) -> dict[UUID, list[UUID]]:
        """Archived classes back, with the teachers they had (those still active); each
        class back, and its teachers (sorted)."""
        ...

    async def remember_logins(self, account_ids: list[UUID], at: datetime) -> None:
        """The logins of feed accounts about to be deleted, by feed id."""
        ...

    async def take_deleted_logins(self, school_id: UUID, feed_ids: list[UUID]) -> dict[UUID, str]:
        """The logins the school's feed accounts of ``feed_ids`` had when deleted (and
        forget them: they are used now)."""
        ...

    async def forget_deleted_logins(self, cutoff: datetime) -> int:
        """Forget the logins remembered at or before ``cutoff``; how many."""
        ...

    async def mapped_accounts(self, school_id: UUID, feed_ids: list[UUID]) -> list[MappedAccount]:
        """The accounts these feed ids are in the school (his home or an attachment), by
        account id, locked until the transaction ends."""
        ...

    async def match_candidates(self, school_id: UUID, keys: list[MatchKey]) -> list[Candidate]:
        """Accounts of the school with one of ``keys`` that no feed person is now: leavers
        (deactivated) and accounts made by hand (administrators aside). A pupil's key
        without a birth date matches no one."""
        ...

    async def remap_feed_ids(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        """Accounts ``found`` (feed id -> account) take these feed ids."""
        ...

    async def ine_candidates(self, school_id: UUID, ines: list[str]) -> list[IneCandidate]:
        """Pupil accounts with one of ``ines`` that the school does not hold (neither home
        nor attached), deactivated ones too: the rule looks at their grace period."""
        ...

    async def parent_candidates(
        self, school_id: UUID, parents: list[tuple[str, str, str | None]], since: datetime
    ) -> list[ParentCandidate]:
        """Parent accounts the school does not hold (neither home nor attached), active or
        deactivated after ``since``, for each newcomer's folded (first, last) names and
        email key: at most two made by the feed with those names and that email (two tell
        an ambiguity), and the first by account id with those names whatever its email or
        maker (a possible duplicate). Each account once, by account id: however common a
        name in the académie, a few rows a newcomer."""
        ...

    async def lock_identities(self, keys: list[str], at: datetime) -> None:
        """Claims on these identity keys (an INE, a parent's names and email), held until
        the transaction ends, taken before looking for them in other schools: a chunk of
        another school about to create the same person waits, then finds him. Row locks,
        not advisory ones: a chunk's hundreds of keys never fill the shared lock table."""
        ...

    async def forget_identity_claims(self, cutoff: datetime) -> int:
        """Forget the claims taken at or before ``cutoff``; how many."""
        ...

    async def attach_accounts(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        """Accounts of other schools ``found`` (feed id -> account) are in this school too,
        under these feed ids."""
        ...

    async def rehome_accounts(self, school_id: UUID, found: Mapping[UUID, UUID]) -> None:
        """Accounts ``found`` (feed id -> account), deactivated leavers of another school,
        have this school as their home now, under these feed ids."""
        ...

    async def detach_accounts(self, school_id: UUID, account_ids: list[UUID]) -> None:
        """Accounts leaving this school while another holds them: out of its classes (taught
        or attended); an attachment to it goes, and one whose home it is moves home to the
        school he was attached to first."""
        ...

    async def record_run_findings(
        self,
        school_id: UUID,
        run_id: UUID,
        attached: Collection[UUID],
        duplicates: Mapping[UUID, UUID],
    ) -> None:
        """The accounts of another school this chunk of run ``run_id`` brought into the
        school (``attached``), and its new accounts whose names alone are those of an
        account of another school (``duplicates``: new account -> that account)."""
        ...

    async def run_findings(self, school_id: UUID, run_id: UUID) -> RunFindings:
        """What the chunks of the school's run ``run_id`` recorded, the duplicates still
        existing."""
        ...

    async def give_codes(self, codes: Mapping[UUID, str], expires_at: datetime) -> set[UUID]:
        """Each of these accounts that is active, never activated and has no code (a leaver
        taken back: deactivating voided it) gets its code; those that got one."""
        ...

    async def update_people(self, people: list[PersonUpdate]) -> set[UUID]:
        """Names, email and birth date as the feed gives them, and any of them that was
        deactivated is active again; the accounts that changed."""
        ...

    async def replace_account_classes(
        self, desired: Pairs, fresh: Collection[UUID] = (), school_id: UUID | None = None
    ) -> set[UUID]:
        """Each account of ``desired`` ends in exactly those classes; those that changed.
        Accounts ``fresh`` (created in this transaction, in no class yet) are only added.
        ``school_id``: only that school's classes are replaced (those of his other schools
        stay)."""
        ...

    async def replace_feed_teaching(
        self, desired: Pairs, fresh: Collection[UUID] = ()
    ) -> set[UUID]:
        """Each teacher of ``desired`` teaches the classes the feed names; attachments the
        administrator made by hand stay. The teachers whose classes changed. Teachers
        ``fresh`` (created in this transaction) are only added."""
        ...

    async def feed_links_of(
        self, school_id: UUID, parent_feed_ids: list[UUID]
    ) -> dict[UUID, set[UUID]]:
        """Parent feed id -> his children's feed ids, as stored."""
        ...

    async def replace_feed_links(
        self, school_id: UUID, desired: Pairs, fresh: Collection[UUID] = ()
    ) -> None:
        """Parent feed id -> his children's feed ids, as this chunk gives them. Parents
        ``fresh`` (by feed id: their accounts created in this transaction) have none yet."""
        ...

    async def resolve_feed_links(self, school_id: UUID, feed_ids: list[UUID]) -> set[UUID]:
        """Make the parent-child links of the feed whose both sides now have an account,
        for links touching ``feed_ids``; the parents that gained a child."""
        ...

    async def drop_stale_children(self, school_id: UUID, parents: list[UUID]) -> set[UUID]:
        """Unlink feed parents from children the feed no longer gives them; those parents."""
        ...

    async def family_classes(
        self, parents: list[UUID], children: Collection[UUID] = ()
    ) -> tuple[list[UUID], list[tuple[UUID, UUID]], dict[UUID, list[UUID]]]:
        """For the active ones of ``parents`` and of the parents of ``children``: them
        (sorted), their (parent, child) links, and each child's live classes."""
        ...

    async def delete_accounts(self, account_ids: list[UUID]) -> None:
        """Gone for good, with their links and classes, and their feed ids."""
        ...

    async def deactivate_accounts(self, account_ids: list[UUID], at: datetime) -> None:
        """Kept for the grace period, out of every class, with no usable code; parent-child
        links stay."""
        ...

    async def forget_feed_links(self, school_id: UUID, parent_feed_ids: list[UUID]) -> None: ...

    async def schools_with_expired(self, cutoff: datetime) -> list[UUID]:
        """Schools with accounts deactivated at or before ``cutoff``, sorted."""
        ...

    async def delete_archived_classes(self, cutoff: datetime) -> int:
        """Classes archived at or before ``cutoff`` gone, with their memberships; how many."""
        ...

    async def claim_expired(self, school_id: UUID, cutoff: datetime, limit: int) -> list[UUID]:
        """Deactivated accounts of the school past their grace period, sorted, locked."""
        ...

    async def account_views(
        self,
        account_ids: list[UUID],
        inserted: Mapping[UUID, tuple[NewAccount, str]] | None = None,
    ) -> dict[UUID, AccountView]:
        """Accounts as published: live classes (taught or attended) by name, active
        children. Those ``inserted`` in this transaction (the rows and their logins) are
        not read back: only their classes and children are."""
        ...
