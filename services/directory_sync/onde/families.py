"""The rows of a parents file made persons: one parent over several rows (a row per child,
or per three children, or per address), homonyms without email told apart by address and
never merged without a word, and each parent's children once."""

from collections.abc import Iterable
from dataclasses import dataclass

from services.directory_sync.onde.model import ChildRef, Parent, Problem, person
from shared.names import fold_name


@dataclass
class ParentRows:
    """A parent as his rows read so far give him."""

    civility: str | None
    last_name: str
    usage_name: str | None
    first_name: str
    email: str | None
    address: str | None  # only without email: it tells homonyms apart
    children: list[ChildRef]
    lines: list[int]


Key = tuple[str, str, str, str, str]  # folded names, email, and address when no email


def key(draft: ParentRows) -> Key:
    names = (
        fold_name(draft.last_name),
        fold_name(draft.usage_name or ""),
        fold_name(draft.first_name),
    )
    if draft.email:
        return (*names, draft.email.casefold(), "")
    return (*names, "", fold_name(draft.address or ""))


def homonyms_without_email(drafts: Iterable[ParentRows], file: str) -> list[Problem]:
    """A possible-duplicate warning for each name that rows without email give several
    times: taken as one person where the address is the same, else as several."""
    by_names: dict[tuple[str, str, str], list[ParentRows]] = {}
    for draft in drafts:
        if draft.email is None:
            by_names.setdefault(key(draft)[:3], []).append(draft)
    warnings: list[Problem] = []
    for same in by_names.values():
        lines = sorted(line for draft in same for line in draft.lines)
        if len(lines) < 2:
            continue
        who = person(same[0].first_name, same[0].last_name)
        listed = ", ".join(map(str, lines))
        if len(same) == 1:
            what = "taken as one person (same address on each row): check they are not two"
        else:
            what = f"taken as {len(same)} persons (different addresses): check they are not one"
        warnings.append(
            Problem(
                file,
                lines[0],
                f"possible duplicate: parent {who} without email on lines {listed}, {what}",
            )
        )
    return warnings


def _distinct(children: list[ChildRef]) -> tuple[ChildRef, ...]:
    """Each child once: a parent's rows may name one twice (a row for each address)."""
    if len(children) < 2:
        return tuple(children)
    unique: dict[tuple[str, str, str, str], ChildRef] = {}
    for child in children:
        key = (
            fold_name(child.last_name),
            fold_name(child.usage_name or ""),
            fold_name(child.first_name),
            fold_name(child.class_name or ""),
        )
        unique.setdefault(key, child)
    return tuple(unique.values())


def parents(drafts: Iterable[ParentRows], file: str, warnings: list[Problem]) -> list[Parent]:
    parents: list[Parent] = []
    for draft in drafts:
        children = _distinct(draft.children)
        if not children:
            warnings.append(
                Problem(
                    file,
                    draft.lines[0],
                    f"parent {person(draft.first_name, draft.last_name)} has no child: ignored",
                )
            )
            continue
        parents.append(
            Parent(
                civility=draft.civility,
                last_name=draft.last_name,
                usage_name=draft.usage_name,
                first_name=draft.first_name,
                email=draft.email,
                address=draft.address,
                children=children,
                lines=tuple(draft.lines),
            )
        )
    return parents
