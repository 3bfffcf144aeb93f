"""account_manager's own cost of a directory.synced chunk, alone: the handler in a loop on
real Postgres, nothing else on the cores but Postgres, so that a change to the handler
shows in its figures (the whole feed benchmark, bench/feed.py, moves by more than that on
a shared machine).

A school of tools/onde_generator (4 classes of 25 pupils) is compared by directory_sync's
own code with an empty snapshot; its one chunk is then applied
1. as a first import, each time to a new school (after as many schools again and an
   analysis of the tables, as the worker's statistics loop keeps them);
2. as a quiet night's chunk (two parents' emails, one pupil moved), again and again to
   one school.
Printed: the Python CPU of the handler a chunk (its event serialised, as the outbox would),
the wall time a chunk (Postgres's work included), and the statements a quiet night's
chunk runs.

    python -m bench.feed_apply [--chunks 60]
"""

import argparse
import asyncio
import itertools
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Namespace, report_rows
from services.account_manager.bootstrap import build
from services.account_manager.feed import AccountLifetimes, handle_directory_synced
from services.account_manager.feed_store import PostgresFeedStore
from services.account_manager.settings import AccountManagerSettings
from services.directory_sync import domain
from services.directory_sync.feed_folder import read_folder
from services.directory_sync.settings import DirectorySyncSettings
from shared.contracts.directory import DirectorySynced
from shared.envelope import new_event
from tools import onde_generator

SETTINGS = DirectorySyncSettings()
LIFETIMES = AccountLifetimes(activation_ttl=timedelta(days=90), grace=timedelta(days=90))
UAI = onde_generator.uai_for("074", 1)


def first_import_chunk() -> DirectorySynced:
    """The one chunk of a school's first import, as directory_sync computes it."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = onde_generator.write_drop(Path(tmp), UAI, classes=4, pupils_per_class=25)
        drop = read_folder(folder, max_file_bytes=SETTINGS.feed_max_file_bytes)
        assert drop is not None
        result = domain.compute(
            domain.NO_STORED_SNAPSHOT,
            drop,
            drop.digest(),
            run_id=uuid.uuid4(),
            school_id=uuid.uuid4(),
            dry_run=False,
            limits=SETTINGS.feed_limits,
            leave_share=0.1,
            chunk_size=500,
        )
    [text] = result.chunks_json
    return DirectorySynced.model_validate_json(text)


def of_school(full: DirectorySynced, n: int) -> DirectorySynced:
    """The same export as another school's: its persons other persons (their emails and
    INEs its own), so that a first import finds nobody in the schools before it (one
    person across schools, issue 22) and makes every account, as a real académie's."""
    people = [
        p.model_copy(
            update={
                "last_name": f"{p.last_name}-{_letters(n)}",
                "email": f"e{n}.{p.email}" if p.email else None,
                "ine": f"{p.ine}{n}" if p.ine else None,
            }
        )
        for p in full.created
    ]
    return full.model_copy(update={"created": people, "run_id": uuid.uuid4()})


def _letters(n: int) -> str:
    """``n`` written in letters (a, b, … ba, bb …): another family name for each school."""
    text = ""
    while True:
        n, digit = divmod(n, 26)
        text = chr(ord("a") + digit) + text
        if not n:
            return text


def quiet_night(full: DirectorySynced, night: int) -> DirectorySynced:
    """Two parents' emails changed and a pupil moved, as a 1 % night gives a school: the
    school's run ``night + 2`` (its first import was run 1)."""
    pupil = next(p for p in full.created if p.profile == "student")
    parents = [p for p in full.created if p.profile == "relative"][:2]
    names = [c.name for c in full.classes]
    return full.model_copy(
        update={
            "run_id": uuid.uuid4(),
            "version": night + 2,
            "created": [],
            "moved": [pupil.model_copy(update={"classes": [names[night % 2]]})],
            "updated": [
                p.model_copy(update={"email": f"nuit{night}.{p.email or 'x@example.org'}"})
                for p in parents
            ],
        }
    )


class Counting:
    """A connection that counts the statements run through it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.statements = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            return await attr(*args, **kwargs)

        return counted


async def timed(n: int, step: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """(Python CPU ms, wall ms) a call of ``step``, after a few to warm up."""
    for i in range(5):
        await step(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        await step(5 + i)
    return (time.process_time() - cpu) / n * 1000, (time.perf_counter() - wall) / n * 1000


async def run(chunks: int) -> dict[str, Any]:
    full = first_import_chunk()
    ns = Namespace()
    env = ns.env()
    worker = build(
        AccountManagerSettings(
            database_url=env["ONE_DATABASE_URL"],
            exchange=env["ONE_EXCHANGE"],
            topology_prefix=env["ONE_TOPOLOGY_PREFIX"],
        )
    )
    await worker.start()
    try:
        assert worker.context is not None
        pool = worker.context.pool
        counted = Counting(None)
        numbers = itertools.count(2)  # UAIs of the schools made here

        async def apply(school_id: uuid.UUID, uai: str, chunk: DirectorySynced) -> None:
            data = chunk.model_copy(update={"school_id": school_id, "uai": uai})
            event = new_event(data, source="urn:one:bench", correlationid="bench")
            async with pool.acquire() as conn, conn.transaction():
                counted._conn = conn
                store = PostgresFeedStore(counted)  # type: ignore[arg-type]
                await handle_directory_synced(
                    event, store=store, lifetimes=LIFETIMES, now=datetime.now(UTC)
                )
                for emitted in store.emitted:
                    emitted.to_json()

        async def new_school() -> tuple[uuid.UUID, str]:
            school_id = uuid.uuid4()
            uai = onde_generator.uai_for("074", next(numbers))
            async with pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO schools (school_id, uai, name, provisioning)"
                    " VALUES ($1, $2, 'École', 'automatic')",
                    school_id,
                    uai,
                )
            return school_id, uai

        # Made before the timing: the persons of each school a first import makes.
        schools = iter([of_school(full, n) for n in range(2 * chunks + 5)])

        async def first_import(_: int) -> None:
            await apply(*await new_school(), next(schools))

        school = await new_school()
        await apply(*school, full)

        # As many schools again before the timing, then statistics: in a real import the
        # worker's statistics loop keeps them within a factor of two of the tables; planned
        # on an empty database's, a first-import chunk read a parent's children by
        # sequential scans (10 ms of its 28).
        for i in range(chunks):
            await first_import(i)
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE")
        first_cpu, first_wall = await timed(chunks, first_import)
        async with pool.acquire() as conn:  # as the worker's statistics loop would
            await conn.execute("ANALYZE")
        nights = itertools.count()  # each night the school's next run

        async def night(_: int) -> None:
            await apply(*school, quiet_night(full, next(nights)))

        night_cpu, night_wall = await timed(chunks * 5, night)
        counted.statements = 0
        await night(0)
        return {
            "persons": len(full.created),
            "first_import_cpu_ms": first_cpu,
            "first_import_wall_ms": first_wall,
            "night_cpu_ms": night_cpu,
            "night_wall_ms": night_wall,
            "night_statements": counted.statements,
        }
    finally:
        await worker.stop()
        await ns.drop()


def report(r: dict[str, Any]) -> None:
    print(f"\naccount_manager alone, a chunk of {r['persons']} persons (one school's first import)")
    per_person = r["first_import_cpu_ms"] * 1000 / r["persons"]
    rows = [
        ("first import: Python CPU a chunk (ms)", f"{r['first_import_cpu_ms']:.2f}", ""),
        ("  a person (µs)", f"{per_person:.0f}", ""),
        ("  wall a chunk, Postgres included (ms)", f"{r['first_import_wall_ms']:.2f}", ""),
        ("quiet night: Python CPU a chunk (ms)", f"{r['night_cpu_ms']:.2f}", ""),
        ("  wall a chunk, Postgres included (ms)", f"{r['night_wall_ms']:.2f}", ""),
        ("  statements a chunk", str(r["night_statements"]), ""),
    ]
    report_rows("feed_apply", rows, r, widths=(44, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=60)
    report(asyncio.run(run(parser.parse_args().chunks)))


if __name__ == "__main__":
    main()
