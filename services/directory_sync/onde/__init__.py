"""Reading one school's ONDE drop: pure functions from the files' bytes to an ``Export``.

The caller reads the drop once (``services.directory_sync.feed_folder``) and hands its
``(name, bytes)`` pairs here, so that the digest and the parse see the same files. The
steps, one module each:

- ``decode``: bytes to text (ISO-8859-1, Windows-1252 or UTF-8 with or without a byte order
  mark) and the signs of an encoding gone wrong;
- ``table``: the text as a header and rows with their line numbers, and the signs of real
  damage (a quoted field never closed, a row wider than its header);
- ``recognise``: which file it is, by its header (downloads are all ``CSVExtraction*.csv``);
- ``pupils``, ``parents``, ``teachers``: one module per kind of file, each knowing its
  columns under the names of every layout ONDE has produced;
- ``children``: each child of the parents file matched to one pupil;
- ``drop``: all of it for one school.

Every error and warning is located by file and line; ``suspicious`` findings hold the run
for an operator (DESIGN §4 "Safety hold").
"""

from services.directory_sync.onde.drop import read_drop
from services.directory_sync.onde.model import (
    DEFAULT_LIMITS,
    ChildRef,
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

__all__ = [
    "DEFAULT_LIMITS",
    "ChildRef",
    "ClassRef",
    "Drop",
    "Export",
    "Kind",
    "Limits",
    "Parent",
    "Problem",
    "Pupil",
    "Teacher",
    "read_drop",
]
