"""Reading a school's drop folder ``$ONE_FEED_DIR/<UAI>/`` once, safely: each regular file's
bytes, and every other entry refused or ignored, never followed.

The folder is written by the académie's transfer, or by whoever can write there: an entry
is opened without following symbolic links, checked to be a regular file once open, and
read no further than the size allowed, so that a link to another school's drop or to a
secret, a device or a pipe, or a file of many gigabytes neither leaks nor stalls the worker.
"""

import os
import stat
from pathlib import Path

from services.directory_sync.onde import Drop, Problem

# Files a transfer or an editor leaves while it writes: not the drop yet.
_TEMPORARY = (".part", ".tmp", ".filepart", ".crdownload", "~")
_NAME_LENGTH = 120


def shown_name(name: str) -> str:
    """An entry's name fit for a report: decodable, without control characters, bounded."""
    readable = name.encode("utf-8", "replace").decode("utf-8")
    printable = "".join(c if c.isprintable() else "?" for c in readable)
    return printable if len(printable) <= _NAME_LENGTH else printable[:_NAME_LENGTH] + "…"


def _read_regular(path: Path, max_bytes: int) -> bytes | str:
    """The file's bytes, or why it is refused; opened without following a link and without
    blocking on a pipe, checked once open (the entry may have been swapped meanwhile)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror}): refused"
    with os.fdopen(descriptor, "rb") as opened:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return "not a regular file: refused, never read"
        content = opened.read(max_bytes + 1)
    if len(content) > max_bytes:
        return f"larger than the {max_bytes} bytes allowed: refused before being read whole"
    return content


def read_folder(folder: Path, *, max_file_bytes: int) -> Drop | None:
    """The drop of the school the folder is named after; None when there is no drop (no
    folder, or a link in its place). Hidden and temporary files are left aside unread."""
    if folder.is_symlink() or not folder.is_dir():
        return None
    files: list[tuple[str, bytes]] = []
    refused: list[Problem] = []
    ignored: list[Problem] = []
    with os.scandir(folder) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    for entry in listed:
        name = entry.name
        if name.startswith(".") or name.lower().endswith(_TEMPORARY):
            continue
        shown = shown_name(name)
        info = entry.stat(follow_symlinks=False)
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            refused.append(Problem(shown, None, "symbolic link: refused, never followed"))
        elif stat.S_ISDIR(mode):
            ignored.append(Problem(shown, None, "a folder: refused, nothing in it read"))
        elif not stat.S_ISREG(mode):
            refused.append(Problem(shown, None, "not a regular file: refused, never read"))
        elif info.st_size > max_file_bytes:
            refused.append(
                Problem(
                    shown,
                    None,
                    f"{info.st_size} bytes, more than the {max_file_bytes} allowed: refused",
                )
            )
        else:
            content = _read_regular(folder / name, max_file_bytes)
            if isinstance(content, str):
                refused.append(Problem(shown, None, content))
            else:
                files.append((shown, content))
    return Drop(folder.name, tuple(files), tuple(refused), tuple(ignored))
