"""onectl reads the workers' operators' views only (``<worker>_ops.<name>_v<N>``): no SQL
in its source names a worker's own schema or table, and every view it names is made by
that worker's migrations and granted to one_ops there; deploy/postgres/init.sql makes
one_ops and the _ops schemas.

The source is read as Python (every string literal, each f-string with a hole where a
value goes), so that a schema formatted into a query (``{s}.schools``) shows up as such.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import topics
from tools import deploy_config as dc

ROOT = Path(__file__).resolve().parents[2]
ONECTL = ROOT / "onectl"
MIGRATIONS = {worker: ROOT / "services" / worker / "migrations" for worker in topics.WORKERS}
BACKBONE = ROOT / "shared" / "migrations"
HOLE = "{…}"  # where an f-string puts a value
WORKER = "|".join(topics.WORKERS)
# What a query reads, as onectl writes SQL (keywords in capitals).
RELATION = re.compile(r"\b(?:FROM|JOIN)\s+([^\s,();]+)")
OPS_VIEW = re.compile(rf"(?:{WORKER})_ops\.[a-z_]+_v[0-9]+")
CATALOG = re.compile(r"pg_[a-z_]+")  # Postgres's own catalogs, which every role may read
PRIVATE_SCHEMA = re.compile(rf"\b(?:{WORKER})\.")
UNNAMED = re.compile(r"\b(?:FROM|JOIN)\s*$")  # a relation added to the string later
CREATED = re.compile(r"\bCREATE\s+(TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_.0-9]+)", re.I)


def strings(source: str) -> Iterator[str]:
    """Every string of a module as it is written: an f-string whole, with a ``HOLE`` for
    each value (the literals it is made of are not given apart)."""
    tree = ast.parse(source)
    parts: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts.update(id(value) for value in node.values)
            yield "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            yield node.value


def onectl_strings() -> list[str]:
    return [text for path in sorted(ONECTL.glob("*.py")) for text in strings(path.read_text())]


def onectl_sql() -> list[str]:
    return [text for text in onectl_strings() if RELATION.search(text)]


def private_tables() -> set[str]:
    """Every table a worker's migrations (or the backbone's) create in its own schema."""
    files = [*BACKBONE.glob("*.sql"), *(f for d in MIGRATIONS.values() for f in d.glob("*.sql"))]
    return {
        name
        for f in files
        for kind, name in CREATED.findall(f.read_text())
        if kind.upper() == "TABLE"
    }


def problems(text: str, tables: set[str]) -> list[str]:
    """What, in one string of onectl's, reads anything but a worker's _ops view."""
    found = []
    if PRIVATE_SCHEMA.search(text):
        found.append(f"names a worker's own schema: {text!r}")
    if UNNAMED.search(text):
        found.append(f"reads what is put in at run time: {text!r}")
    for relation in RELATION.findall(text):
        if OPS_VIEW.fullmatch(relation) or CATALOG.fullmatch(relation):
            continue
        what = "a worker's table" if relation.rsplit(".", 1)[-1] in tables else "not a view"
        found.append(f"reads {relation!r} ({what}) in {text!r}")
    return found


def source_problems(source: str) -> list[str]:
    tables = private_tables()
    return [p for text in strings(source) for p in problems(text, tables)]


def views_made(worker: str) -> set[str]:
    return {
        name
        for f in MIGRATIONS[worker].glob("*.sql")
        for kind, name in CREATED.findall(f.read_text())
        if kind.upper() == "VIEW"
    }


def test_onectl_reads_nothing_but_the_workers_ops_views() -> None:
    # Every query of status, trace, audit and the feed's reports: the scan found them.
    assert len(onectl_sql()) >= 25, onectl_sql()
    tables = private_tables()
    assert {"accounts", "orders", "outbox", "sync_runs", "deliveries"} <= tables
    assert [p for text in onectl_strings() for p in problems(text, tables)] == []


@pytest.mark.parametrize(
    "source",
    [
        'q = "SELECT uai FROM {s}.schools WHERE uai = $1"',  # formatted later, with .format
        'q = f"SELECT uai FROM {schema}.schools WHERE uai = $1"',
        'q = f"SELECT {COLUMNS} FROM order_intake.orders WHERE order_id = $1"',
        'q = "SELECT 1 FROM account_manager_ops.accounts_v1 a JOIN class_teachers USING (x)"',
        'q = "SELECT count(*) FROM accounts WHERE school_id = $1"',  # found by search_path
        'q = "SELECT * FROM account_manager_ops.accounts"',  # unversioned
        'VIEW = "credential_dispatch.audit"',  # a table's name kept apart from its query
        'q = "SELECT at FROM " + view',
    ],
)
def test_the_scan_catches_a_read_of_a_private_table(source: str) -> None:
    assert source_problems(source), source


def test_the_scan_lets_views_and_catalogs_through() -> None:
    source = (
        'q = (f"SELECT {COLUMNS} FROM directory_sync_ops.sync_runs_v1 r"\n'
        '     " JOIN directory_sync_ops.feed_registrations_v1 f USING (school_id)")\n'
        'c = "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"\n'
        'w = OUTBOX + " WHERE correlationid = $1"\n'
    )
    assert len(list(strings(source))) == 3
    assert source_problems(source) == []


def test_every_view_onectl_reads_is_made_by_its_workers_migrations() -> None:
    named = {view for text in onectl_sql() for view in OPS_VIEW.findall(text)}
    assert named, "onectl names no view"
    for view in sorted(named):
        worker = view.split(".", 1)[0].removesuffix("_ops")
        assert view in views_made(worker), f"{view}: no migration of {worker} creates it"


@pytest.mark.parametrize("worker", topics.WORKERS)
def test_the_grants_to_one_ops_are_written_once_in_migrate(worker: str) -> None:
    """shared.db.migrate grants a worker's views to one_ops after its migrations, at every
    start: no migration repeats it (tests/integration/test_ops_role.py reads them)."""
    for f in MIGRATIONS[worker].glob("*.sql"):
        assert "one_ops" not in re.sub(r"--[^\n]*", "", f.read_text()), f.name


def test_init_sql_makes_one_ops_a_reader_of_the_ops_schemas_only() -> None:
    """deploy/postgres/init.sql: one_ops without a login (operators log in as themselves,
    members of it), allowed to connect and to use each worker's _ops schema, which the
    worker owns (its migrations make the views there); nothing on a worker's own schema."""
    sql = dc.INIT_SQL.read_text()
    assert re.search(r"^CREATE ROLE one_ops NOLOGIN;$", sql, re.M)
    assert re.search(rf"^GRANT CONNECT ON DATABASE {dc.DATABASE} TO one_ops;$", sql, re.M)
    for worker in topics.WORKERS:
        owner = dc.db_role(worker)
        assert re.search(rf"^CREATE SCHEMA {worker}_ops AUTHORIZATION {owner};$", sql, re.M)
        assert re.search(rf"^GRANT USAGE ON SCHEMA {worker}_ops TO one_ops;$", sql, re.M)
    granted = re.findall(r"^GRANT (.+) TO one_ops;$", sql, re.M)
    assert sorted(granted) == sorted(
        [f"CONNECT ON DATABASE {dc.DATABASE}"]
        + [f"USAGE ON SCHEMA {worker}_ops" for worker in topics.WORKERS]
    )
    assert sql.index("CREATE ROLE one_ops") < sql.index("TO one_ops;")
