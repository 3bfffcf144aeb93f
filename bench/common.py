"""What the benchmarks share: an isolated pipeline namespace, RSS/CPU watching, cleanup."""

import asyncio
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import psutil

from services.credential_dispatch.renderer import CHROMIUM_ARGS
from shared.messaging.topology import Names, all_exchange_names, all_queue_names
from shared.settings import CommonSettings
from tools.workers import WorkerProcess

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CHROMIUM = os.environ.get("ONE_CHROMIUM_PATH", "/usr/bin/chromium")


@dataclass
class Namespace:
    """A database and broker names of their own, so a benchmark never sees other data."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def database(self) -> str:
        return f"one_bench_{self.tag}"

    @property
    def prefix(self) -> str:
        return f"bench{self.tag}"

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.events"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "ONE_DATABASE_URL": f"postgresql://127.0.0.1:5432/{self.database}",
            "ONE_EXCHANGE": self.exchange,
            "ONE_TOPOLOGY_PREFIX": self.prefix,
            "ONE_LOG_LEVEL": "INFO",
            **extra,
        }

    async def drop(self) -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            delays = CommonSettings.model_fields["retry_delays"].get_default(
                call_default_factory=True
            )
            names = Names(self.exchange, self.prefix)
            for queue in all_queue_names(names, delays):
                await channel.queue_delete(queue)
            for exchange in all_exchange_names(names):
                await channel.exchange_delete(exchange)
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Watch:
    """Peak RSS and CPU seconds of worker processes (and of their children)."""

    workers: dict[str, WorkerProcess]
    peak: dict[str, float] = field(default_factory=dict)
    children_peak: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    children_cpu: dict[str, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            self.sample()
            await asyncio.sleep(every)

    def sample(self) -> None:
        for name, worker in self.workers.items():
            if worker.process is None or worker.process.returncode is not None:
                continue
            try:
                proc = psutil.Process(worker.process.pid)
                kids = proc.children(recursive=True)
                rss = proc.memory_info().rss / 2**20
                # Proportional set size: Chromium's processes share most of their pages.
                kids_rss = sum(c.memory_full_info().pss for c in kids) / 2**20
                self.cpu[name] = sum(proc.cpu_times()[:2])
                if kids:
                    self.children_cpu[name] = sum(sum(c.cpu_times()[:2]) for c in kids)
            except psutil.NoSuchProcess:
                continue
            self.peak[name] = max(self.peak.get(name, 0.0), rss)
            if kids:
                self.children_peak[name] = max(self.children_peak.get(name, 0.0), kids_rss)

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of everything a benchmark's pipeline runs on: each worker
        (its own worker processes apart), Postgres and RabbitMQ (all their processes: a
        benchmark has them to itself), and the benchmark. Differences of two of these give
        a phase's CPU, a steadier figure than its seconds on a shared machine."""
        self.sample()
        found = dict(self.cpu)
        found |= {f"{name} worker processes": s for name, s in self.children_cpu.items()}
        found |= {"postgres": 0.0, "rabbitmq": 0.0}
        for proc in psutil.process_iter(["name"]):
            name = proc.info["name"] or ""
            service = "postgres" if name.startswith("postgres") else None
            service = "rabbitmq" if name.startswith("beam") else service
            if service is None:
                continue
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            # A connection's backend that has exited counts in its parent's children_*.
            found[service] += times.user + times.system + times.children_user
            found[service] += times.children_system
        mine = psutil.Process().cpu_times()
        found["benchmark"] = mine.user + mine.system
        return found


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 1) for name in after}


@contextlib.asynccontextmanager
async def running(workers: dict[str, WorkerProcess], every: float = 0.2) -> AsyncIterator["Watch"]:
    """The workers started, and watched (peak RSS, CPU seconds) every ``every`` seconds
    until the block ends; then stopped, whatever happened in the block."""
    watch, stop = Watch(workers), asyncio.Event()
    watcher: asyncio.Task[None] | None = None
    try:
        await asyncio.gather(*(w.start() for w in workers.values()))
        watcher = asyncio.create_task(watch.run(stop, every))
        yield watch
    finally:
        stop.set()
        await asyncio.gather(*(w.stop() for w in workers.values()))
        if watcher is not None:
            await watcher


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def ready(value: bool) -> bool:
    return value


async def bare_pdf_ms(samples: int = 20) -> float:
    """Baseline for sheets: a bare Chromium page.pdf of a one-line page, median ms."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS)
        )
        page = await browser.new_page()
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            await page.set_content("<p>Bonjour</p>")
            await page.pdf(format="A4")
            times.append((time.perf_counter() - started) * 1000)
        await browser.close()
    return statistics.median(times)


@contextlib.asynccontextmanager
async def spying(
    exchange_name: str, routing_keys: Iterable[str]
) -> AsyncIterator[tuple[aio_pika.abc.AbstractExchange, aio_pika.abc.AbstractQueue]]:
    """A connection to the broker for the block, the namespace's topic exchange, and an
    exclusive queue bound to it for each routing key, through which a benchmark watches
    the pipeline's events."""
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        spy = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in routing_keys:
            await spy.bind(exchange, routing_key=key)
        yield exchange, spy


def envelope(topic: str, data: dict[str, Any], correlationid: str) -> bytes:
    """A CloudEvent of ``topic`` as the benchmarks publish it, serialised."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "urn:one:bench",
            "type": topic,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "dataschema": f"urn:one:schema:{topic}:1",
            "correlationid": correlationid,
            "data": data,
        }
    ).encode()


async def raw_copy_rows_per_s(columns: str, records: Sequence[tuple[Any, ...]]) -> float:
    """Baseline: COPY of ``records`` into a bare, index-free table of ``columns``."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f"CREATE TEMP TABLE bare ({columns})")
        started = time.perf_counter()
        await conn.copy_records_to_table("bare", records=records)
        return len(records) / (time.perf_counter() - started)
    finally:
        await conn.close()


def report_rows(
    name: str,
    rows: Sequence[tuple[str, str, str]],
    results: dict[str, Any],
    *,
    widths: tuple[int, int],
) -> None:
    """Print the (name, value, target) rows, then write the results to bench/results/<name>.json."""
    label_width, value_width = widths
    for label, value, target in rows:
        print(f"  {label:<{label_width}} {value:>{value_width}}   {target}")
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
