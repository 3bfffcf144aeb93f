"""La rentrée: the run in which a school's year turns over, and who leaves as expected.

Every September each school's export changes more than on any other night: the pupils of
the school's last level have gone (to collège, or from maternelle to élémentaire), every
other pupil has moved up a level, new pupils arrive. A run in which most continuing pupils
moved up a level is the school's turnover run. Its expected leavers (pupils who were in
the last level the school teaches, or whose "Décision de passage" sends them on, and the
parents whose children all left that way) do not count toward the safety hold.

Pure: no database, no broker.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from shared.names import fold_name

# Levels of French primary schools, youngest first, under the names ONDE's "Niveau" and
# schools give them.
_RANKS: dict[str, int] = {}
for _rank, _names in enumerate(
    (
        ("tps", "toutepetitesection"),
        ("ps", "petitesection"),
        ("ms", "moyennesection"),
        ("gs", "grandesection"),
        ("cp", "courspreparatoire"),
        ("ce1", "courselementaire1", "courselementairepremiereannee"),
        ("ce2", "courselementaire2", "courselementairedeuxiemeannee"),
        ("cm1", "coursmoyen1", "coursmoyenpremiereannee"),
        ("cm2", "coursmoyen2", "coursmoyendeuxiemeannee"),
    )
):
    for _name in _names:
        _RANKS[_name] = _rank
# A "Décision de passage" that sends a pupil out of the school: to collège, or another one.
_LEAVING = ("6e", "6eme", "sixieme", "college", "sortie", "depart", "radiation", "autreecole")
# Most continuing pupils moved up: more than this share of those whose levels are known.
TURNOVER_SHARE = 0.5


def rank(level: str | None) -> int | None:
    """A level's place, youngest first (TPS 0 … CM2 8), or None for an unknown level."""
    return _RANKS.get(fold_name(level)) if level else None


def sends_on(decision: str | None) -> bool:
    """Whether a "Décision de passage" sends the pupil out of the school."""
    folded = fold_name(decision) if decision else ""
    return any(word in folded for word in _LEAVING)


@dataclass(frozen=True)
class Pupil:
    """What the turnover looks at of a pupil of the last applied feed."""

    feed_id: UUID
    level: str | None
    decision: str | None


@dataclass(frozen=True)
class Parent:
    feed_id: UUID
    children: tuple[UUID, ...]


@dataclass(frozen=True)
class Turnover:
    turnover: bool
    expected: frozenset[UUID]  # feed ids of the expected leavers (none unless turnover)


NO_TURNOVER = Turnover(False, frozenset())


def moved_up(levels: Iterable[tuple[str | None, str | None]]) -> bool:
    """Whether most continuing pupils, (level before, level now), moved up a level."""
    known = [(rank(before), rank(now)) for before, now in levels]
    ranked = [(b, n) for b, n in known if b is not None and n is not None]
    if not ranked:
        return False
    up = sum(1 for before, now in ranked if now > before)
    return up / len(ranked) > TURNOVER_SHARE


def recognise(
    continuing: Iterable[tuple[str | None, str | None]],
    pupils: Sequence[Pupil],
    parents: Sequence[Parent],
    leavers: Iterable[UUID],
) -> Turnover:
    """The run's turnover: whether most ``continuing`` pupils (level before, level now)
    moved up; if so, which ``leavers`` were expected. ``pupils`` and ``parents`` are the
    last applied feed's."""
    if not moved_up(continuing):
        return NO_TURNOVER
    gone = set(leavers)
    ranks = [r for p in pupils if (r := rank(p.level)) is not None]
    last = max(ranks, default=None)
    expected = {
        p.feed_id
        for p in pupils
        if p.feed_id in gone
        and ((last is not None and rank(p.level) == last) or sends_on(p.decision))
    }
    expected |= {
        p.feed_id
        for p in parents
        if p.feed_id in gone and p.children and all(c in expected for c in p.children)
    }
    return Turnover(True, frozenset(expected))
