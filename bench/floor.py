"""What storing a first import's rows costs Postgres, with nothing else running: the floor
under ``bench.feed``'s CPU a person that no change of the workers' code can go below while
the tables stay as they are.

It reads the rows a real first import left: ``python -m bench.feed --first-import-only
--keep-database`` for ``--schools`` schools, run first and its database dropped at the end,
or a database such a run kept (``--database``): account_manager's accounts, their classes,
links, feed links, identity claims, login counters and findings, and credential_dispatch's
copy. Then, into empty clones of those tables in the same database, it writes them again
school by school, one transaction a school as the feed's chunks are, each table by COPY
(the cheapest way rows reach Postgres), four times:

1. **as the pipeline's tables are**: every index, unique constraint and foreign key;
2. **without foreign keys**: every index, no foreign key;
3. **keys only**: primary keys, without the secondary indexes and foreign keys;
4. **bare**: no index, no constraint.

Printed for each: Postgres's CPU µs a person (every Postgres process, as ``bench.feed``
counts it), the benchmark's own, and the rows and index entries a person. Compare the first
with the target of issue 19 (90 µs a person over every process) and with ``bench.feed``'s
Postgres figure: what the tables cost, and what the statements add.

    python -m bench.floor [--schools 200 | --database one_bench_1a2b3c4d] [--keep-clones]
"""

import argparse
import asyncio
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.common import Namespace, Watch, report_rows

# How each table's rows find their school (the SQL gives it first, then the columns
# ``{c}``); None: rows that belong to no school (login counters, identity claims), dealt
# out evenly.
_OWN = "SELECT t.school_id, {c} FROM {t} t"
_ACCOUNT_S = "SELECT a.school_id, {c} FROM {t} t JOIN {s}.accounts a USING (account_id)"
_PARENT_S = "SELECT a.school_id, {c} FROM {t} t JOIN {s}.accounts a ON a.account_id = t.parent_id"
_COPY = (
    ("classes", _OWN),
    ("accounts", _OWN),
    ("account_classes", _ACCOUNT_S),
    ("parent_children", _PARENT_S),
)
# (schema, table, SQL), in the order a chunk writes them.
SOURCES: tuple[tuple[str, str, str | None], ...] = (
    *(("account_manager", table, query) for table, query in _COPY),
    ("account_manager", "feed_links", _OWN),
    ("account_manager", "identity_claims", None),
    ("account_manager", "login_counters", None),
    ("account_manager", "feed_run_findings", _OWN),
    # credential_dispatch's copy has the same four tables.
    *(("credential_dispatch", table, query) for table, query in _COPY),
)
# Written before the clock starts: what the foreign keys point at.
PRELOADED = (("account_manager", "schools"), ("credential_dispatch", "schools"))
VARIANTS = ("as the pipeline's tables are", "without foreign keys", "keys only", "bare")
SCHEMAS = ("account_manager", "credential_dispatch")


@dataclass
class Rows:
    """A table's columns and its rows, by school."""

    schema: str
    table: str
    columns: list[str]
    by_school: dict[Any, list[tuple[Any, ...]]]

    @property
    def count(self) -> int:
        return sum(len(rows) for rows in self.by_school.values())


def cpu_s() -> tuple[float, float]:
    """CPU seconds so far of every Postgres process and of this benchmark, counted as
    ``bench.feed`` counts them."""
    spent = Watch({}).cpu_by_process()
    return spent["postgres"], spent["benchmark"]


async def columns_of(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        f"{schema}.{table}",
    )
    return [r["attname"] for r in rows]


async def read_rows(conn: asyncpg.Connection) -> tuple[list[Rows], list[Any]]:
    """Every source table's rows by school, and the schools (account_manager's)."""
    schools = [
        r["school_id"]
        for r in await conn.fetch("SELECT school_id FROM account_manager.schools ORDER BY 1")
    ]
    found: list[Rows] = []
    for schema, table, query in SOURCES:
        columns = await columns_of(conn, schema, table)
        by_school: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
        if query is None:
            records = await conn.fetch(f"SELECT {', '.join(columns)} FROM {schema}.{table}")
            for n, record in enumerate(records):
                by_school[schools[n % len(schools)]].append(tuple(record))
        else:
            listed = ", ".join(f"t.{column}" for column in columns)
            sql = query.format(t=f"{schema}.{table}", s=schema, c=listed)
            for record in await conn.fetch(sql):
                values = tuple(record)
                by_school[values[0]].append(values[1:])
        found.append(Rows(schema, table, columns, dict(by_school)))
    return found, schools


def clone_name(schema: str) -> str:
    return f"floor_{schema}"


async def clone(conn: asyncpg.Connection, variant: str) -> None:
    """Empty clones of the source tables (and of the schools they point at), in schemas
    ``floor_<schema>``, with what ``variant`` keeps of their indexes and constraints."""
    tables = [(s, t) for s, t, _ in SOURCES] + list(PRELOADED)
    for schema in {s for s, _ in tables}:
        await conn.execute(f"DROP SCHEMA IF EXISTS {clone_name(schema)} CASCADE")
        await conn.execute(f"CREATE SCHEMA {clone_name(schema)}")
    including = {
        VARIANTS[0]: "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES",
        VARIANTS[1]: "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES",
        VARIANTS[2]: "INCLUDING DEFAULTS INCLUDING CONSTRAINTS",
        VARIANTS[3]: "INCLUDING DEFAULTS",
    }[variant]
    for schema, table in tables:
        await conn.execute(
            f"CREATE TABLE {clone_name(schema)}.{table} (LIKE {schema}.{table} {including})"
        )
    for schema, table in tables:
        if variant == VARIANTS[2]:
            primary = await conn.fetchval(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = $1::regclass AND contype = 'p'",
                f"{schema}.{table}",
            )
            if primary:
                await conn.execute(f"ALTER TABLE {clone_name(schema)}.{table} ADD {primary}")
        if variant == VARIANTS[0]:
            await _foreign_keys(conn, schema, table)


async def _foreign_keys(conn: asyncpg.Connection, schema: str, table: str) -> None:
    # Read with the source schema first in the path, so that the referenced tables come
    # unqualified; added with the clone's schema first, so that they point at the clones.
    await conn.execute(f"SET search_path = {schema}")
    definitions = await conn.fetch(
        "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'f'",
        f"{schema}.{table}",
    )
    await conn.execute(f"SET search_path = {clone_name(schema)}")
    for row in definitions:
        await conn.execute(f"ALTER TABLE {table} ADD {row['d']}")
    await conn.execute("RESET search_path")


async def preload(conn: asyncpg.Connection) -> None:
    for schema, table in PRELOADED:
        await conn.execute(
            f"INSERT INTO {clone_name(schema)}.{table} SELECT * FROM {schema}.{table}"
        )


async def write(conn: asyncpg.Connection, sources: list[Rows], schools: list[Any]) -> None:
    """Every school's rows, one transaction a school, each table by COPY."""
    for school in schools:
        async with conn.transaction():
            for rows in sources:
                records = rows.by_school.get(school)
                if records:
                    await conn.copy_records_to_table(
                        rows.table,
                        records=records,
                        columns=rows.columns,
                        schema_name=clone_name(rows.schema),
                    )


async def index_entries(conn: asyncpg.Connection) -> int:
    """Index entries of the clones' tables (each index's tuples)."""
    total = 0
    for schema in SCHEMAS:
        total += await conn.fetchval(
            "SELECT coalesce(sum(c.reltuples), 0)::bigint FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = $1 AND t.relname <> 'schools'",
            clone_name(schema),
        )
    return total


async def run(database: str, keep_clones: bool) -> dict[str, Any]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")
    try:
        sources, schools = await read_rows(conn)
        persons = sources[1].count  # account_manager's accounts
        results: dict[str, Any] = {
            "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "database": database,
            "schools": len(schools),
            "persons": persons,
            "rows_a_person": round(sum(r.count for r in sources) / persons, 2),
            "variants": {},
        }
        for variant in VARIANTS:
            await clone(conn, variant)
            await preload(conn)
            await conn.execute("CHECKPOINT")
            figures: dict[str, Any] = {"wall_s": 0.0, "postgres_us_a_person": 0}
            figures["benchmark_us_a_person"] = 0
            # Each worker's rows in transactions of their own, as each writes its own
            # schema: account_manager's, then credential_dispatch's copy.
            for schema in SCHEMAS:
                pg_before, own_before = cpu_s()
                started = time.perf_counter()
                await write(conn, [r for r in sources if r.schema == schema], schools)
                wall = time.perf_counter() - started
                pg_after, own_after = cpu_s()
                pg, own = pg_after - pg_before, own_after - own_before
                figures[f"postgres_us_a_person {schema}"] = round(pg / persons * 1e6)
                figures["wall_s"] = round(figures["wall_s"] + wall, 2)
                figures["postgres_us_a_person"] += round(pg / persons * 1e6)
                figures["benchmark_us_a_person"] += round(own / persons * 1e6)
            for schema, table, _ in SOURCES:
                await conn.execute(f"ANALYZE {clone_name(schema)}.{table}")
            figures["index_entries_a_person"] = round(await index_entries(conn) / persons, 1)
            results["variants"][variant] = figures
        if not keep_clones:
            for schema in SCHEMAS:
                await conn.execute(f"DROP SCHEMA {clone_name(schema)} CASCADE")
        return results
    finally:
        await conn.close()


def report(r: dict[str, Any]) -> None:
    print(
        f"\nStorage floor — {r['date']}, {r['schools']:,} schools, {r['persons']:,} persons"
        f" ({r['rows_a_person']} rows a person over the tables), database {r['database']}"
    )
    rows: list[tuple[str, str, str]] = []
    for variant, v in r["variants"].items():
        rows.append((variant, f"{v['wall_s']:.1f} s", ""))
        rows.append(
            ("  Postgres CPU µs a person", f"{v['postgres_us_a_person']}", "≤ 90 (all processes)")
        )
        for schema in SCHEMAS:
            rows.append((f"    writing {schema}'s", f"{v[f'postgres_us_a_person {schema}']}", ""))
        rows.append(("  benchmark CPU µs a person", f"{v['benchmark_us_a_person']}", ""))
        rows.append(("  index entries a person", f"{v['index_entries_a_person']}", ""))
    report_rows(f"floor-{r['schools']}", rows, r, widths=(34, 10))


def first_import(schools: int) -> Namespace:
    """A first import of ``schools`` by bench.feed, its database kept: its namespace."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.feed", "--schools", str(schools)),
            *("--first-import-only", "--keep-database"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    kept = [line for line in done.stdout.splitlines() if line.startswith("database kept: ")]
    if done.returncode != 0 or not kept:
        raise SystemExit(f"bench.feed failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return Namespace(tag=kept[0].removeprefix("database kept: one_bench_"))


async def measured(schools: int, keep_clones: bool) -> dict[str, Any]:
    namespace = first_import(schools)
    try:
        return await run(namespace.database, keep_clones)
    finally:
        await namespace.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--schools", type=int, default=200, help="first import this many")
    source.add_argument("--database", help="a database bench.feed kept, instead")
    parser.add_argument("--keep-clones", action="store_true")
    args = parser.parse_args()
    if args.database:
        report(asyncio.run(run(args.database, args.keep_clones)))
    else:
        report(asyncio.run(measured(args.schools, args.keep_clones)))


if __name__ == "__main__":
    main()
