"""One school's drop, read whole: its files recognised by their headers, parsed, the
children of the parents file matched to the pupils."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.directory_sync.onde.children import link_children
from services.directory_sync.onde.decode import decode
from services.directory_sync.onde.model import (
    DEFAULT_LIMITS,
    KINDS,
    ClassRef,
    Drop,
    Export,
    Kind,
    Limits,
    Parent,
    Problem,
    Pupil,
    Teacher,
)
from services.directory_sync.onde.parents import parse_parents
from services.directory_sync.onde.pupils import parse_pupils
from services.directory_sync.onde.recognise import LABELS, SPECS, recognise, refusal
from services.directory_sync.onde.table import Table, read_table
from services.directory_sync.onde.teachers import parse_teachers, unknown_classes
from shared.contracts.common import valid_uai
from shared.names import fold_name


@dataclass
class _Found:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    suspicious: list[Problem] = field(default_factory=list)
    tables: dict[Kind, list[Table]] = field(default_factory=lambda: {k: [] for k in KINDS})


def _table(name: str, content: bytes, limits: Limits, found: _Found) -> None:
    """The file recognised and filed under its kind, or why not."""
    if not content.strip():
        found.errors.append(Problem(name, None, "empty file"))
        return
    lines = content.count(b"\n") + 1
    if lines > limits.max_rows:
        found.errors.append(
            Problem(name, None, f"{lines} lines, more than the {limits.max_rows} allowed: refused")
        )
        return
    text, encoding = decode(content, name)
    table, errors, shape = read_table(text, name)
    found.errors.extend(errors)
    if table is None:
        found.suspicious.extend(encoding)
        return
    kind = recognise(table)
    if kind is None:  # its encoding and shape do not matter: it is not read
        problem, is_error = refusal(table)
        (found.errors if is_error else found.warnings).append(problem)
        return
    found.suspicious.extend(encoding + shape + _cut_short(table, kind))
    found.tables[kind].append(table)


def _cut_short(table: Table, kind: Kind) -> list[Problem]:
    """The last row of a file without a final line break, stopping before a column every
    row of its kind fills: the copy stopped there. (A row that stops after its last child,
    and a file without a final line break, are ONDE's habits: neither alone is suspicious.)"""
    if table.final_break or not table.rows:
        return []
    mandatory = [s.names for s in SPECS[kind].values() if s.mandatory]
    needed = max((i for names in mandatory if (i := table.find(names)) is not None), default=0)
    line, last = table.rows[-1]
    if len(last) > needed:
        return []
    return [
        Problem(
            table.file,
            line,
            f"the last row stops after {len(last)} fields, before the column "
            f"'{table.header[needed]}', and the file has no final line break: file truncated?",
        )
    ]


def _classes(pupils: Sequence[Pupil], file: str, warnings: list[Problem]) -> tuple[ClassRef, ...]:
    levels: dict[str, set[str | None]] = {}
    ids: dict[str, str | None] = {}
    for pupil in pupils:
        if pupil.class_name is not None:
            levels.setdefault(pupil.class_name, set()).add(pupil.level)
            ids.setdefault(pupil.class_name, pupil.class_id)
    by_fold: dict[str, str] = {}
    for name in sorted(levels):
        other = by_fold.setdefault(fold_name(name), name)
        if other != name:
            warnings.append(
                Problem(file, None, f"classes {other!r} and {name!r} differ only by spelling")
            )
    # A class of several levels ("CE1-CE2") has no single level.
    return tuple(
        ClassRef(name, next(iter(found)) if len(found) == 1 else None, ids[name])
        for name, found in sorted(levels.items())
    )


def read_drop(drop: Drop, limits: Limits = DEFAULT_LIMITS) -> Export:
    """The export of a school from its drop, read once by the caller (its entries refused
    before reading are errors, those left aside warnings).

    The pupils file is mandatory; parents and teachers files are optional (a warning when
    absent). A file of none of the three kinds is reported and ignored; two of one kind
    are an error naming both.
    """
    uai = drop.uai
    found = _Found(errors=list(drop.refused), warnings=list(drop.ignored))
    if not valid_uai(uai):
        found.errors.append(Problem(uai, None, f"folder name {uai!r} is not a UAI"))
    for name, content in drop.files:
        _table(name, content, limits, found)
    chosen: dict[Kind, Table] = {}
    for kind, tables in found.tables.items():
        if len(tables) > 1:
            names = ", ".join(t.file for t in tables)
            found.errors.append(Problem(uai, None, f"several {LABELS[kind]}s: {names}"))
        elif tables:
            chosen[kind] = tables[0]
        elif kind == "pupils":
            found.errors.append(Problem(uai, None, f"no {LABELS[kind]} in the drop"))
        else:
            found.warnings.append(Problem(uai, None, f"no {LABELS[kind]} in the drop"))
    pupils, parents, teachers = _parse(chosen, limits, found)
    classes = _classes(pupils, chosen["pupils"].file, found.warnings) if pupils else ()
    if pupils and teachers:
        known = {fold_name(c.name) for c in classes}
        found.warnings.extend(unknown_classes(teachers, known, chosen["teachers"].file))
    return Export(
        uai=uai,
        pupils=tuple(pupils),
        parents=tuple(parents),
        teachers=tuple(teachers),
        classes=classes,
        files={kind: table.file for kind, table in chosen.items()},
        errors=tuple(found.errors),
        warnings=tuple(found.warnings),
        suspicious=tuple(found.suspicious),
    )


def _parse(
    chosen: dict[Kind, Table], limits: Limits, found: _Found
) -> tuple[list[Pupil], list[Parent], list[Teacher]]:
    pupils: list[Pupil] = []
    parents: list[Parent] = []
    teachers: list[Teacher] = []
    if "pupils" in chosen:
        pupils, errors, warnings = parse_pupils(chosen["pupils"], limits)
        found.errors.extend(errors)
        found.warnings.extend(warnings)
    if "parents" in chosen:
        parents, errors, warnings = parse_parents(chosen["parents"], limits)
        found.errors.extend(errors)
        found.warnings.extend(warnings)
        if pupils:
            parents, warnings = link_children(pupils, parents, chosen["parents"].file)
            found.warnings.extend(warnings)
    if "teachers" in chosen:
        teachers, errors, warnings = parse_teachers(chosen["teachers"], limits)
        found.errors.extend(errors)
        found.warnings.extend(warnings)
    return pupils, parents, teachers
