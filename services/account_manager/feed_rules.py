"""Pure decisions of the ONDE feed (directory.synced): who is an existing account, what
becomes of a leaver, a parent's classes, which parents' links change, logins of a batch,
the grace period.

Nothing here does I/O or awaits; ``feed.py`` loads the facts, asks here, and writes.
"""

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, NamedTuple
from uuid import UUID

from services.account_manager.domain import fold_name_part, login_with_rank

# (profile, folded first name, folded last name, birth date for a pupil else None)
MatchKey = tuple[str, str, str, date | None]
LeaverFate = Literal["delete", "deactivate", "detach", "already_gone"]
ChunkTurn = Literal["apply", "wait", "stale"]


def match_key(profile: str, first_name: str, last_name: str, birth_date: date | None) -> MatchKey:
    """DESIGN §4: same profile, same folded names, and the same birth date for a pupil."""
    birth = birth_date if profile == "student" else None
    return (profile, fold_name_part(first_name), fold_name_part(last_name), birth)


@dataclass(frozen=True)
class RunProgress:
    """The school's last numbered run that account_manager began to apply."""

    version: int
    chunks: int
    applied: int  # chunks of it applied so far

    @property
    def complete(self) -> bool:
        return self.applied >= self.chunks


def chunk_turn(
    progress: RunProgress | None, version: int, *, fed_unnumbered: bool = False
) -> ChunkTurn:
    """Whether a chunk of run ``version`` may be applied now.

    Each run is computed against the one before, so run n applied before run n - 1 is
    whole would let the older run overwrite the newer one's changes for good. A chunk of
    the run being applied goes (chunks of one run come in any order); the first chunk of
    the next run goes once the last run is whole; a later run waits; a run older than
    one already begun is stale. A school with no numbered run yet starts with run 1,
    unless it was fed before runs were numbered (``fed_unnumbered``): then whatever
    comes first goes.
    """
    if progress is None:
        return "apply" if version == 1 or fed_unnumbered else "wait"
    if version == progress.version:
        return "apply"
    if version < progress.version:
        return "stale"
    if version == progress.version + 1 and progress.complete:
        return "apply"
    return "wait"


@dataclass(frozen=True)
class Candidate:
    """An account of the school a newcomer may be: a leaver still in his grace period, or
    an account no feed person is mapped to (made by hand before the feed took over)."""

    account_id: UUID
    key: MatchKey
    deactivated_at: datetime | None


def restorable(deactivated_at: datetime, now: datetime, grace: timedelta) -> bool:
    """A deactivated account comes back only while its grace period runs."""
    return deactivated_at > purge_cutoff(now, grace)


def purge_cutoff(now: datetime, grace: timedelta) -> datetime:
    """Accounts deactivated at or before this instant are due for removal."""
    if now.utcoffset() is None:
        raise ValueError("the purge needs a timezone-aware 'now'")
    if grace < timedelta(0):
        raise ValueError(f"a grace period cannot be negative, got {grace}")
    return now - grace


def choose_matches(
    newcomers: Sequence[tuple[UUID, MatchKey]],
    candidates: Iterable[Candidate],
    *,
    now: datetime,
    grace: timedelta,
) -> dict[UUID, UUID]:
    """feed id -> account id of the newcomers that are an existing account.

    A newcomer is that account when it is the one candidate of his key and he is the one
    newcomer of that key: two candidates (or two newcomers) with the same key cannot be
    told apart, so a new account is made (DESIGN §4: several candidates, a new account).
    """
    usable: dict[MatchKey, list[UUID]] = {}
    for candidate in candidates:
        gone = candidate.deactivated_at
        if gone is None or restorable(gone, now, grace):
            usable.setdefault(candidate.key, []).append(candidate.account_id)
    arrivals = Counter(key for _, key in newcomers)
    return {
        feed_id: usable[key][0]
        for feed_id, key in newcomers
        if arrivals[key] == 1 and len(usable.get(key, ())) == 1
    }


def leaver_fate(
    *, activated: bool, deactivated: bool, held_elsewhere: bool = False, kept: bool = False
) -> LeaverFate:
    """DESIGN §4, for the school left only: an account another school still holds is
    detached from this one; else a never-activated account goes at once, unless ``kept``
    (``kept_at_turnover``); an activated one is kept, deactivated, for the grace period;
    one already deactivated stays as it is."""
    if deactivated:
        return "already_gone"
    if held_elsewhere:
        return "detach"
    return "deactivate" if activated or kept else "delete"


def kept_at_turnover(profile: str, ine: str | None, has_email: bool = False) -> bool:
    """A pupil leaving at the year's turnover may arrive in another school of the platform
    in September, which takes him back by his INE (one-person-across-schools §3), and his
    parents with him, found by their names and email: they are deactivated for the grace
    period, not deleted, even if never activated. Without an INE (a pupil) or an email (a
    parent) no other school can find them: they go as any leaver. (account_manager is not
    told which leavers directory_sync expected: every one leaving in a turnover run is.)"""
    if profile == "student":
        return ine is not None
    return profile == "relative" and has_email


@dataclass(frozen=True)
class IneCandidate:
    """A pupil account of another school with a newcomer's INE."""

    account_id: UUID
    ine: str
    deactivated_at: datetime | None


class IneMatches(NamedTuple):
    found: dict[UUID, UUID]  # newcomer's feed id -> the account of another school he is
    ambiguous: list[str]  # INEs of several usable accounts: a new account, and a warning


def choose_by_ine(
    newcomers: Sequence[tuple[UUID, str]],
    candidates: Iterable[IneCandidate],
    *,
    now: datetime,
    grace: timedelta,
) -> IneMatches:
    """One person across schools (§1): a newcomer pupil is the account of another school
    with his INE when it is the only one (active, or deactivated within its grace period)
    and he is the only newcomer with that INE. Never across schools without an INE."""
    usable: dict[str, list[UUID]] = {}
    for candidate in candidates:
        gone = candidate.deactivated_at
        if gone is None or restorable(gone, now, grace):
            usable.setdefault(candidate.ine, []).append(candidate.account_id)
    arrivals = Counter(ine for _, ine in newcomers)
    found = {
        feed_id: usable[ine][0]
        for feed_id, ine in newcomers
        if arrivals[ine] == 1 and len(usable.get(ine, ())) == 1
    }
    ambiguous = sorted({ine for _, ine in newcomers if len(usable.get(ine, ())) > 1})
    return IneMatches(found, ambiguous)


# (folded first name, folded last name, email as compared): a parent's key across schools
ParentKey = tuple[str, str, str]


def email_key(email: str | None) -> str | None:
    """An email as two schools' exports are compared on: trimmed, case folded; none when
    blank."""
    found = (email or "").strip().lower()
    return found or None


@dataclass(frozen=True)
class ParentCandidate:
    """A parent account of another school with a newcomer parent's folded names."""

    account_id: UUID
    first_folded: str
    last_folded: str
    email: str | None
    fed: bool  # made by the feed: an account made by command is never merged (§1)
    deactivated_at: datetime | None


class ParentMatches(NamedTuple):
    found: dict[UUID, UUID]  # newcomer's feed id -> the account of another school he is
    # Newcomers left to a new account whose names alone are an account's of another school:
    # feed id -> that account (a possible duplicate, for his school to look at).
    duplicates: dict[UUID, UUID]


def choose_parents(
    newcomers: Sequence[tuple[UUID, str, str, str | None]],
    candidates: Iterable[ParentCandidate],
    *,
    now: datetime,
    grace: timedelta,
) -> ParentMatches:
    """One person across schools (§1): a newcomer parent (feed id, folded names, email) is
    the fed parent account of another school with his folded names and his email, both
    present, when it is the only one (active, or deactivated within its grace period) and
    he is the only newcomer with that key. Anything less is a new account; when his names
    alone match an account, a possible duplicate."""
    usable: dict[ParentKey, list[UUID]] = {}
    named: dict[tuple[str, str], list[UUID]] = {}
    for candidate in candidates:
        gone = candidate.deactivated_at
        if gone is not None and not restorable(gone, now, grace):
            continue
        names = (candidate.first_folded, candidate.last_folded)
        named.setdefault(names, []).append(candidate.account_id)
        email = email_key(candidate.email)
        if candidate.fed and email is not None:
            usable.setdefault((*names, email), []).append(candidate.account_id)
    keys = {f: parent_key(first, last, email) for f, first, last, email in newcomers}
    arrivals = Counter(key for key in keys.values() if key is not None)
    found = {
        feed_id: usable[key][0]
        for feed_id, key in keys.items()
        if key is not None and arrivals[key] == 1 and len(usable.get(key, ())) == 1
    }
    duplicates = {
        feed_id: named[first, last][0]
        for feed_id, first, last, _ in newcomers
        if feed_id not in found and (first, last) in named
    }
    return ParentMatches(found, duplicates)


def parent_key(first_folded: str, last_folded: str, email: str | None) -> ParentKey | None:
    """A parent's key across schools; none without an email (he is never merged)."""
    compared = email_key(email)
    return None if compared is None else (first_folded, last_folded, compared)


def identity_locks(ines: Iterable[str], parents: Iterable[ParentKey]) -> list[str]:
    """The identity keys a chunk locks before it looks for them in other schools (§4), in
    the one order every replica takes them (so that two never deadlock)."""
    keys = {f"ine:{ine}" for ine in ines} | {"parent:" + "\x1f".join(k) for k in parents}
    return sorted(keys)


def parent_classes(
    links: Iterable[tuple[UUID, UUID]],
    child_classes: Mapping[UUID, Iterable[UUID]],
    parents: Iterable[UUID] = (),
) -> dict[UUID, frozenset[UUID]]:
    """A parent is attached to the classes of his children (DESIGN §4).

    ``links`` are (parent, child) pairs; ``parents`` are parents to answer for even with no
    child left (they lose every class).
    """
    derived: dict[UUID, set[UUID]] = {parent: set() for parent in parents}
    for parent, child in links:
        derived.setdefault(parent, set()).update(child_classes.get(child, ()))
    return {parent: frozenset(classes) for parent, classes in derived.items()}


def relinked(
    desired: Mapping[UUID, Iterable[UUID]],
    current: Mapping[UUID, Iterable[UUID]],
    fresh: Collection[UUID] = (),
) -> dict[UUID, frozenset[UUID]]:
    """The parents (by feed id) whose children the feed now gives differently from the
    links stored, with their children: those links are written again. Parents ``fresh``
    (just given an account) have none stored. Most nights a parent is in a chunk for his
    email or address, his children unchanged: nothing to write."""
    changed: dict[UUID, frozenset[UUID]] = {}
    for parent, children in desired.items():
        wanted = frozenset(children)
        if parent in fresh or wanted != frozenset(current.get(parent, ())):
            changed[parent] = wanted
    return changed


def logins_for(bases: Sequence[str], last_ranks: Mapping[str, int]) -> list[str]:
    """Logins of a batch, in the order of ``bases``.

    ``last_ranks`` is each base's counter after the batch reserved ``bases.count(base)``
    ranks in one step: the batch owns the ranks just below it, handed out in order.
    """
    wanted = Counter(bases)
    next_rank = {base: last_ranks[base] - n + 1 for base, n in wanted.items()}
    logins = []
    for base in bases:
        logins.append(login_with_rank(base, next_rank[base]))
        next_rank[base] += 1
    return logins
