"""The whole pipeline as processes: four workers, a real SMTP server, real Chromium."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from shared import topics
from tests.conftest import Stack
from tests.support.broker import EventSpy
from tools import smtp_sink
from tools.ports import free_port
from tools.waits import eventually
from tools.workers import WorkerProcess

ENT_URL = "https://ent.example.org"
# A school's first feed may reach account_manager before its school.initialised does (two
# queues, no order between them): account_manager retries it (services/account_manager/
# feed.py), by design, with this reason in its warnings.
SCHOOL_NOT_KNOWN_YET = "is not known yet"


@dataclass
class Pipeline:
    stack: Stack
    workers: dict[str, WorkerProcess]
    sink: smtp_sink.FileSink
    smtp_port: int
    smtp: Any = None  # the running aiosmtpd controller, None while "down"
    feed_dir: Path = Path("var/feed")  # where the académies' ONDE drops land

    def smtp_down(self) -> None:
        self.smtp.stop()
        self.smtp = None

    def smtp_up(self) -> None:
        self.smtp = Controller(self.sink, hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()

    def log_lines(self) -> list[str]:
        return [line for w in self.workers.values() for line in w.lines]

    def troubles(self, *, besides: tuple[str, ...] = ()) -> list[str]:
        """Log lines above INFO, and lines that are not JSON (tracebacks), per worker;
        those whose reason holds one of ``besides`` (a retry the test expects) aside."""
        found = []
        for name, worker in self.workers.items():
            for record in worker.records():
                if any(text in str(record.get("reason", "")) for text in besides):
                    continue
                if record.get("level") not in (None, "info", "debug"):
                    found.append(f"{name}: {record}")
                elif record.get("event") == "<not json>":
                    found.append(f"{name}: {record['line']}")
        return found

    async def quiescent(self) -> bool:
        """Nothing left to do anywhere: queues empty, outboxes and deliveries done."""
        conn = await self.stack.admin()
        try:
            for worker in topics.WORKERS:
                if await conn.fetchval(
                    f"SELECT count(*) FROM {worker}.outbox WHERE published_at IS NULL"
                ):
                    return False
            return not await conn.fetchval(
                "SELECT count(*) FROM credential_dispatch.deliveries WHERE status = 'pending'"
            )
        finally:
            await conn.close()


@pytest.fixture
async def pipeline(stack: Stack, tmp_path: Path) -> AsyncIterator[Pipeline]:
    port = free_port()
    controller, sink = smtp_sink.start(tmp_path / "mail", port=port)
    feed_dir = tmp_path / "feed"
    feed_dir.mkdir()
    env = stack.env(
        feed_dir=str(feed_dir),
        smtp_port=port,
        ent_url=ENT_URL,
        log_level="INFO",
        prefetch=8,
        delivery_retry_base_seconds=0.5,
        delivery_lease_seconds=4.0,
    )
    workers = {name: WorkerProcess(name, env) for name in topics.WORKERS}
    pipeline = Pipeline(stack, workers, sink, port, controller, feed_dir=feed_dir)
    try:
        await asyncio.gather(*(w.start() for w in workers.values()))
        yield pipeline
    finally:
        await asyncio.gather(*(w.stop() for w in workers.values()))
        if pipeline.smtp is not None:
            pipeline.smtp.stop()


async def every_account(spy: EventSpy, persons: int) -> list[dict]:
    """The accounts.created entries of ``persons`` persons (the administrator aside)."""

    async def everyone() -> list[dict] | None:
        created = [
            a
            for e in spy.of_type("accounts.created")
            for a in e["data"]["accounts"]
            if a["profile"] != "administrator"
        ]
        return created if len(created) >= persons else None

    found: list[dict] = await eventually(everyone, timeout=90, what="every person's account")
    return found
