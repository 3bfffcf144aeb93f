"""Columns known by their folded names, each with the aliases that the layouts of ONDE
(BE1D, with INE, parents since 2021) and the files schools write give it."""

from collections.abc import Mapping
from dataclasses import dataclass

from services.directory_sync.onde.model import Problem
from services.directory_sync.onde.table import Table


@dataclass(frozen=True)
class Column:
    label: str  # as ONDE writes it, for messages
    names: frozenset[str]  # folded names accepted
    mandatory: bool = False


def column(label: str, *names: str, mandatory: bool = False) -> Column:
    return Column(label, frozenset(names), mandatory)


Columns = Mapping[str, Column]


def locate(table: Table, specs: Columns) -> tuple[dict[str, int], list[Problem]]:
    """Each column's position (an absent one's is ``table.width``: ``cells`` leaves an empty
    cell there), and an error for each mandatory column missing."""
    at: dict[str, int] = {}
    errors: list[Problem] = []
    for key, spec in specs.items():
        index = table.find(spec.names)
        if index is None and spec.mandatory:
            errors.append(
                Problem(table.file, table.header_line, f"mandatory column '{spec.label}' missing")
            )
        at[key] = table.width if index is None else index
    return at, errors


def all_of(table: Table, spec: Column) -> list[int]:
    """Every column of ``spec`` (a teacher's several "Classe" columns)."""
    return [i for i, name in enumerate(table.folded) if name in spec.names]


def missing(folded: set[str], specs: Columns) -> list[str]:
    """The labels of the mandatory columns that ``folded`` lacks."""
    return [spec.label for spec in specs.values() if spec.mandatory and not folded & spec.names]
