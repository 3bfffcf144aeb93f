"""Each child a parents row names, matched to one pupil of the pupils file.

A child is the pupil with his folded first name and his folded family or usage name: in
the class the row gives, else anywhere in the school (the parents file often writes classes
with other labels than the pupils file: ``CLASSE  CE2`` for ``Classe de M. Machin``), and
among homonyms the one born on the row's ``Date de naissance élève``. A child still unknown
or ambiguous is left unlinked with a warning: his parent is created without that link, and
the school's run goes on.
"""

from collections.abc import Sequence

from services.directory_sync.onde.model import ChildRef, Parent, Problem, Pupil, person
from shared.names import fold_name

_Index = dict[tuple[str, str], list[Pupil]]


def _index(pupils: Sequence[Pupil]) -> _Index:
    index: _Index = {}
    for pupil in pupils:
        first = fold_name(pupil.first_name)
        last = fold_name(pupil.last_name)
        index.setdefault((first, last), []).append(pupil)
        usage = fold_name(pupil.usage_name) if pupil.usage_name else ""
        if usage and usage != last:
            index.setdefault((first, usage), []).append(pupil)
    return index


def _candidates(index: _Index, child: ChildRef) -> list[Pupil]:
    """The pupils under the child's names, each once, in file order."""
    first = fold_name(child.first_name)
    last = fold_name(child.last_name)
    usage = fold_name(child.usage_name) if child.usage_name else ""
    found = index.get((first, last), [])
    if not usage or usage == last:  # most children: one name
        return found
    more = index.get((first, usage), [])
    if not more:
        return found
    return sorted({p.line: p for p in (*found, *more)}.values(), key=lambda p: p.line)


def _folded_class(pupil: Pupil) -> str:
    return fold_name(pupil.class_name) if pupil.class_name else ""


def choose(child: ChildRef, candidates: list[Pupil]) -> list[Pupil]:
    """The pupils the child may be, best first narrowed: class, then birth date."""
    pool = candidates
    if child.class_name and len(pool) > 1:
        wanted = fold_name(child.class_name)
        in_class = [p for p in pool if _folded_class(p) == wanted]
        pool = in_class or pool
    if len(pool) > 1 and child.birth_date is not None:
        born = [p for p in pool if p.birth_date == child.birth_date]
        pool = born or pool
    return pool


class _Report:
    """The warnings of one parents file: one per child left unlinked or linked to a pupil
    of another class of the pupils file; one per class label the pupils file does not have
    (its children matched by name)."""

    def __init__(self, file: str, pupil_classes: set[str]) -> None:
        self.file = file
        self.pupil_classes = pupil_classes
        self.warnings: list[Problem] = []
        self.other_labels: dict[str, tuple[str, int | None, int]] = {}

    def linked(self, child: ChildRef, pupil: Pupil) -> None:
        if not child.class_name:
            return
        wanted = fold_name(child.class_name)
        if wanted == _folded_class(pupil):
            return
        if wanted not in self.pupil_classes:
            label, line, count = self.other_labels.get(wanted, (child.class_name, child.line, 0))
            self.other_labels[wanted] = (label, line, count + 1)
            return
        self.warnings.append(
            Problem(
                self.file,
                child.line,
                f"child {person(child.first_name, child.last_name)}: class "
                f"{child.class_name!r} differs from the pupils file ({pupil.class_name!r}, "
                f"line {pupil.line}); linked to that pupil",
            )
        )

    def unlinked(self, child: ChildRef, parent: Parent, matches: list[Pupil]) -> None:
        who = person(child.first_name, child.last_name)
        where = f" in class {child.class_name!r}" if child.class_name else ""
        if matches:
            lines = ", ".join(str(p.line) for p in matches)
            what = f"matches {len(matches)} pupils (pupils file lines {lines})"
        else:
            what = "matches no pupil of the pupils file"
        self.warnings.append(
            Problem(
                self.file,
                child.line,
                f"child {who}{where} {what}: parent "
                f"{person(parent.first_name, parent.last_name)} created without this link",
            )
        )

    def all(self) -> list[Problem]:
        labels = [
            Problem(
                self.file,
                line,
                f"class {label!r} is not a class of the pupils file: its {count} "
                f"child(ren) were matched by name",
            )
            for label, line, count in self.other_labels.values()
        ]
        return labels + self.warnings


def link_children(
    pupils: Sequence[Pupil], parents: Sequence[Parent], file: str
) -> tuple[list[Parent], list[Problem]]:
    """Each parent's children matched to the export's pupils: (parents, warnings)."""
    index = _index(pupils)
    report = _Report(file, {_folded_class(p) for p in pupils})
    linked: list[Parent] = []
    for parent in parents:
        children: list[ChildRef] = []
        for child in parent.children:
            matches = choose(child, _candidates(index, child))
            if len(matches) == 1:
                report.linked(child, matches[0])
                children.append(child.matched(matches[0].line))
            else:
                report.unlinked(child, parent, matches)
                children.append(child)
        linked.append(parent.with_children(tuple(children)))
    return linked, report.all()
