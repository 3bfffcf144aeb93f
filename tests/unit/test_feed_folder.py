"""Reading a drop folder: regular files once, every other entry refused or ignored and never
followed, sizes bounded before anything is read (on this machine's filesystem)."""

import os
from pathlib import Path

from services.directory_sync.feed_folder import read_folder, shown_name
from services.directory_sync.onde import read_drop
from tests.support import onde_exports as real

UAI = "0741234P"
LIMIT = 1 << 20


def drop_folder(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / UAI
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def test_regular_files_are_read_once_and_named_by_the_folder(tmp_path: Path) -> None:
    folder = drop_folder(tmp_path, real.BE1D)
    drop = read_folder(folder, max_file_bytes=LIMIT)
    assert drop is not None and drop.uai == UAI
    assert dict(drop.files) == real.BE1D and (drop.refused, drop.ignored) == ((), ())
    assert read_drop(drop).ok


def test_no_folder_or_a_link_in_its_place_is_no_drop(tmp_path: Path) -> None:
    assert read_folder(tmp_path / UAI, max_file_bytes=LIMIT) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / UAI).symlink_to(drop_folder(elsewhere, real.BE1D), target_is_directory=True)
    assert read_folder(tmp_path / UAI, max_file_bytes=LIMIT) is None


def test_links_pipes_and_folders_are_never_followed_nor_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"Nom;Pr\xe9nom\r\nTOP;SECRET\r\n")
    folder = drop_folder(tmp_path, real.BE1D)
    (folder / "CSVExtraction(1).csv").symlink_to(secret)
    os.mkfifo(folder / "pipe.csv")  # opening it for reading would block the worker
    (folder / "archives").mkdir()
    (folder / "archives" / "old.csv").write_bytes(real.BE1D_PUPILS)

    drop = read_folder(folder, max_file_bytes=LIMIT)
    assert drop is not None
    assert dict(drop.files) == real.BE1D
    assert all(b"SECRET" not in content for _, content in drop.files)
    assert [(p.file, p.message) for p in drop.refused] == [
        ("CSVExtraction(1).csv", "symbolic link: refused, never followed"),
        ("pipe.csv", "not a regular file: refused, never read"),
    ]
    assert [(p.file, p.message) for p in drop.ignored] == [
        ("archives", "a folder: refused, nothing in it read")
    ]
    export = read_drop(drop)
    assert not export.ok and "symbolic link" in export.errors[0].message
    assert any(w.file == "archives" for w in export.warnings)


def test_a_file_over_the_size_allowed_is_refused_before_it_is_read(tmp_path: Path) -> None:
    folder = drop_folder(tmp_path, real.BE1D)
    with (folder / "CSVExtraction(9).csv").open("wb") as huge:
        huge.truncate(50 << 30)  # 50 GiB, sparse: reading it would take the machine down
    drop = read_folder(folder, max_file_bytes=LIMIT)
    assert drop is not None and dict(drop.files) == real.BE1D
    [refused] = drop.refused
    assert refused.file == "CSVExtraction(9).csv"
    assert refused.message == f"{50 << 30} bytes, more than the {LIMIT} allowed: refused"


def test_hidden_and_partial_files_are_left_aside(tmp_path: Path) -> None:
    folder = drop_folder(
        tmp_path,
        real.BE1D
        | {
            ".CSVExtraction.csv.swp": b"x",
            "CSVExtraction(3).csv.part": b"x",
            "CSVExtraction(4).csv.crdownload": b"x",
            "notes.txt~": b"x",
        },
    )
    drop = read_folder(folder, max_file_bytes=LIMIT)
    assert drop is not None and dict(drop.files) == real.BE1D and drop.refused == ()


def test_a_name_fit_for_a_report() -> None:
    assert shown_name("CSVExtraction.csv") == "CSVExtraction.csv"
    assert shown_name("a\x1b[31mb\nc.csv") == "a?[31mb?c.csv"
    assert shown_name("\udcff.csv") == "?.csv"  # bytes that were not UTF-8
    assert shown_name("x" * 500) == "x" * 120 + "…"
