"""The chaos suite's machinery: replicas of every worker under a supervisor, faults (SIGKILL,
RabbitMQ and Postgres restarts, an SMTP outage) and what the suite reads at the end.

Only the suite's own processes are killed (by their pid); RabbitMQ and Postgres are
restarted with their own tools and the suite always waits until both answer again.
"""

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from aiosmtpd.controller import Controller

from shared.messaging import cluster
from tools import smtp_sink
from tools.waits import eventually
from tools.workers import ROOT, WorkerProcess

PG_VERSION = os.environ.get("ONE_CHAOS_PG_VERSION", "15")


@dataclass(frozen=True)
class Plan:
    """How hard and how long: the same faults for every size, compressed for the short run."""

    orders: int
    replicas: int = 2
    kills_per_worker: int = 3
    gap: tuple[float, float] = (1.0, 3.0)  # between two faults
    publish_seconds: float = 50.0  # the orders are spread over this long
    smtp_down_after: tuple[float, float] = (10.0, 30.0)
    smtp_down_seconds: float = 15.0
    outage_seconds: float = 3.0  # how long RabbitMQ and Postgres stay down
    settle_seconds: float = 300.0  # deadline for everything to be done after the faults
    drop_classes: int = 2
    drop_pupils_per_class: int = 5

    @classmethod
    def for_size(cls, orders: int, **fixed: Any) -> "Plan":
        if orders <= 100:
            return cls(orders, **fixed)
        return cls(
            orders,
            **fixed,
            gap=(4.0, 10.0),
            publish_seconds=max(60.0, orders / 3),
            smtp_down_after=(30.0, 90.0),
            smtp_down_seconds=30.0,
            outage_seconds=5.0,
            settle_seconds=max(900.0, orders * 3.0),
        )

    @property
    def test_timeout(self) -> int:
        return 600 if self.orders <= 100 else int(1200 + self.settle_seconds + self.orders)


# ---------------------------------------------------------------------------------------
# The SMTP server
# ---------------------------------------------------------------------------------------


class TimedSink(smtp_sink.FileSink):
    """The file sink, also noting when each mail arrived (to explain duplicates)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.arrivals: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.arrivals.append(time.monotonic())
        return answer


@dataclass
class Mail:
    sink: TimedSink
    port: int
    controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# ---------------------------------------------------------------------------------------
# Workers, replicas and their supervisor
# ---------------------------------------------------------------------------------------


@dataclass
class Replica:
    worker: str
    index: int
    process: WorkerProcess
    busy: bool = False  # being killed or restarted on purpose: the supervisor keeps off

    @property
    def label(self) -> str:
        return f"{self.worker}#{self.index}"

    @property
    def alive(self) -> bool:
        p = self.process.process
        return p is not None and p.returncode is None


@dataclass
class Event:
    at: float
    kind: str  # kill | rabbitmq | postgres | smtp_down | smtp_up | death | failed_start
    target: str = ""
    detail: str = ""


@dataclass
class Swarm:
    """Every replica of every worker, and what happened to them."""

    replicas: list[Replica]
    started_at: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    deaths: list[str] = field(default_factory=list)  # unexpected exits, with their log tail
    failed_starts: list[str] = field(default_factory=list)
    _supervising: asyncio.Task[None] | None = None
    _restarts: set[asyncio.Task[None]] = field(default_factory=set)

    def note(self, kind: str, target: str = "", detail: str = "") -> Event:
        event = Event(time.monotonic(), kind, target, detail)
        self.events.append(event)
        print(f"[chaos +{event.at - self.started_at:6.1f}s] {kind} {target} {detail}", flush=True)
        return event

    def of(self, worker: str) -> list[Replica]:
        return [r for r in self.replicas if r.worker == worker]

    async def start_all(self) -> None:
        await asyncio.gather(*(r.process.start() for r in self.replicas))
        self.started_at = time.monotonic()
        self._supervising = asyncio.create_task(self._supervise())

    async def stop_all(self) -> None:
        if self._supervising is not None:
            self._supervising.cancel()
            await asyncio.gather(self._supervising, return_exceptions=True)
        for task in list(self._restarts):
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        await asyncio.gather(*(r.process.stop() for r in self.replicas), return_exceptions=True)

    async def kill_and_restart(self, replica: Replica) -> None:
        """SIGKILL (no drain), then start again as a process manager would."""
        replica.busy = True
        try:
            self.note("kill", replica.label)
            if replica.alive:
                await replica.process.kill()
            await self._start(replica)
        finally:
            replica.busy = False

    async def _start(self, replica: Replica) -> None:
        """Start until the worker logs ``started``; an exit before that is a failed start
        (Postgres or RabbitMQ away at that moment), retried a second later."""
        for _ in range(120):
            try:
                await replica.process.start()
                return
            except AssertionError as exc:
                self.failed_starts.append(f"{replica.label}: {exc}")
                self.note("failed_start", replica.label, str(exc).splitlines()[0])
                if replica.alive:
                    await replica.process.kill()
                await asyncio.sleep(1.0)  # a process manager's back-off
        raise AssertionError(f"{replica.label} would not start again")

    async def _supervise(self) -> None:
        """Restart any replica that died without being killed: counted and reported."""
        while True:
            for replica in self.replicas:
                if replica.busy or replica.alive:
                    continue
                code = replica.process.process.returncode if replica.process.process else None
                tail = "\n".join(replica.process.lines[-40:])
                self.deaths.append(f"{replica.label} exited with {code}:\n{tail}")
                self.note("death", replica.label, f"exit code {code}")
                replica.busy = True
                task = asyncio.create_task(self._revive(replica))
                self._restarts.add(task)
                task.add_done_callback(self._restarts.discard)
            await asyncio.sleep(0.5)

    async def _revive(self, replica: Replica) -> None:
        try:
            if replica.process._reader is not None:
                await replica.process._reader
            await self._start(replica)
        finally:
            replica.busy = False

    def troubles(self) -> Counter[str]:
        """Log events above INFO, and non-JSON lines (tracebacks), per worker and event."""
        found: Counter[str] = Counter()
        for replica in self.replicas:
            for record in replica.process.records():
                level = record.get("level")
                if level not in (None, "info", "debug"):
                    found[f"{replica.worker} {level} {record.get('event')}"] += 1
                elif record.get("event") == "<not json>":
                    found[f"{replica.worker} <not json>"] += 1
        return found


def make_swarm(
    workers: tuple[str, ...],
    env: dict[str, str],
    plan: Plan,
    logs: Path,
    replica_env: Callable[[str, int], dict[str, str]] = lambda worker, index: {},
) -> Swarm:
    logs.mkdir(parents=True, exist_ok=True)
    replicas = [
        Replica(
            name,
            i,
            WorkerProcess(name, {**env, **replica_env(name, i)}, log_file=logs / f"{name}-{i}.log"),
        )
        for name in workers
        for i in range(1, plan.replicas + 1)
    ]
    return Swarm(replicas)


# ---------------------------------------------------------------------------------------
# RabbitMQ and Postgres
# ---------------------------------------------------------------------------------------


async def run(*argv: str, timeout: float = 120.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"{argv[0]} timed out after {timeout}s"
    return process.returncode or 0, out.decode(errors="replace")


async def start_detached(*argv: str) -> None:
    """A daemon that forks itself away: no pipes kept open on it."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    await process.wait()


async def rabbitmq_running() -> bool:
    code, _ = await run("rabbitmq-diagnostics", "-q", "check_running", timeout=30)
    return code == 0


async def postgres_answers(admin_url: str) -> bool:
    try:
        conn = await asyncpg.connect(admin_url, timeout=2)
    except Exception:
        return False
    try:
        return bool(await conn.fetchval("SELECT 1"))
    except Exception:
        return False
    finally:
        await conn.close()


async def restart_rabbitmq(hold: float) -> float:
    """Stop the node, keep it down ``hold`` seconds, start it; seconds it was unusable."""
    began = time.monotonic()
    code, out = await run("rabbitmqctl", "shutdown", timeout=120)
    if code != 0:
        code, out = await run("rabbitmqctl", "stop", timeout=120)
    assert code == 0, f"rabbitmqctl shutdown/stop failed: {out}"
    await asyncio.sleep(hold)  # spacing the fault: the broker stays down this long
    await start_detached("rabbitmq-server", "-detached")
    await eventually(rabbitmq_running, timeout=180, interval=1.0, what="RabbitMQ running again")
    return time.monotonic() - began


async def restart_postgres(hold: float, admin_url: str) -> float:
    began = time.monotonic()
    cluster = ("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main")
    code, out = await run(*cluster, "stop", "-m", "fast", timeout=120)
    assert code == 0, f"pg_ctlcluster stop failed: {out}"
    await asyncio.sleep(hold)  # spacing the fault: Postgres stays down this long
    code, out = await run(*cluster, "start", timeout=120)
    assert code == 0, f"pg_ctlcluster start failed: {out}"
    await eventually(
        lambda: postgres_answers(admin_url), timeout=120, interval=0.5, what="Postgres back"
    )
    return time.monotonic() - began


async def ensure_services() -> str:
    """Whatever happened, leave Postgres and RabbitMQ running."""
    code, out = await run(str(ROOT / "scripts" / "ensure-services.sh"), timeout=300)
    return f"ensure-services exit {code}: {out.strip()}"


# ---------------------------------------------------------------------------------------
# Publishing through broker restarts, and reading queues
# ---------------------------------------------------------------------------------------


class Publisher:
    """Publishes with confirms on a robust connection; retries until confirmed (an order
    sent twice is the same event: the workers' inboxes ignore the second)."""

    def __init__(self, amqp_urls: list[str], exchange: str) -> None:
        self._urls = amqp_urls
        self._exchange_name = exchange
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self.retries = 0

    async def open(self) -> None:
        # Over every node given, as the order system would: it follows the cluster.
        self._connection = await cluster.connect(self._urls, name="chaos-publisher")
        channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await channel.get_exchange(self._exchange_name)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            body,
            content_type="application/cloudevents+json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
        )
        for _ in range(300):
            try:
                await self._exchange.publish(message, routing_key=routing_key, timeout=10)
                return
            except Exception:
                self.retries += 1
                await asyncio.sleep(0.5)  # the broker is restarting: try again shortly
        raise AssertionError(f"could not publish {message_id}")


async def queue_depths(amqp_url: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """(messages ready, consumers) of each queue, by a passive declare (no management API);
    -1 for a queue that does not exist."""
    depths: dict[str, tuple[int, int]] = {}
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in names:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                depths[name] = (-1, 0)
                continue
            result = queue.declaration_result
            depths[name] = (int(result.message_count or 0), int(result.consumer_count or 0))
            await channel.close()
    return depths


async def read_dead_letters(amqp_url: str, queue_name: str) -> list[dict[str, Any]]:
    """Every message of the dead-letter queue: its id, topic and reason."""
    found = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        while True:
            message = await queue.get(fail=False, timeout=2)
            if message is None:
                break
            await message.ack()
            event_id = message.message_id
            if not event_id:
                try:
                    event_id = json.loads(message.body).get("id")
                except ValueError:
                    event_id = None
            headers = message.headers or {}
            found.append(
                {
                    "id": event_id,
                    "topic": headers.get("x-one-topic") or message.routing_key,
                    "reason": headers.get("x-one-reason"),
                    "worker": headers.get("x-one-worker"),
                    "x-death": bool(headers.get("x-death")),
                }
            )
    return found


async def inject_faults(
    swarm: Swarm,
    faults: list[str],
    *,
    gap: tuple[float, float],
    rng: random.Random,
    other_fault: Callable[[str], Awaitable[None]],
) -> None:
    """Each of ``faults`` in turn, after a random gap: a worker's name SIGKILLs one of its
    replicas (restarted at once), any other is run by ``other_fault``."""
    for fault in faults:
        await asyncio.sleep(rng.uniform(*gap))  # spacing the faults
        replicas = swarm.of(fault)
        if replicas:
            await swarm.kill_and_restart(rng.choice(replicas))
        else:
            await other_fault(fault)


def shuffled_faults(
    workers: tuple[str, ...],
    kills: int,
    rng: random.Random,
    services: tuple[str, ...] = ("rabbitmq", "postgres"),
) -> list[str]:
    """Every worker ``kills`` times and each of ``services`` once, in a random order where
    no service comes first nor late (it falls while the work is still coming)."""
    faults = [w for w in workers for _ in range(kills)]
    rng.shuffle(faults)
    for service in services:
        faults.insert(rng.randint(1, max(1, len(faults) * 2 // 3)), service)
    return faults
