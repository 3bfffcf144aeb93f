"""The chaos suite's pipelines: replicas of the workers as processes, an SMTP sink that can
go down, a feed folder; on the local broker (``chaos``), on the three-node cluster of
scripts/cluster.sh (``cluster_chaos``), or the feed's two workers alone (``feed_chaos``).

Sizes: ``ONE_CHAOS_ORDERS`` (40 by default, the short run of ``make test``; ``make
test-chaos`` runs 500), ``ONE_CHAOS_CLUSTER_ORDERS`` (40; 200) and
``ONE_CHAOS_FEED_SCHOOLS`` (30; 200)."""

import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from shared import topics
from shared.messaging.topology import all_queue_names
from tests.chaos import harness
from tests.conftest import TEST_RETRY_DELAYS, Stack
from tests.e2e.conftest import ENT_URL
from tests.support.cluster import BrokerCluster
from tools.ports import free_port

# Retries spaced as in production, only shorter: an outage of a few seconds must not
# exhaust a message's attempts (the database watch pauses consuming meanwhile).
CHAOS_RETRY_DELAYS = [0.5, 1.0, 2.0, 5.0]
CHAOS_MAX_ATTEMPTS = 8


def _size(variable: str, short: int) -> int:
    return int(os.environ.get(variable, str(short)))


PLAN = harness.Plan.for_size(_size("ONE_CHAOS_ORDERS", 40))
CLUSTER_PLAN = harness.Plan.for_size(_size("ONE_CHAOS_CLUSTER_ORDERS", 40), kills_per_worker=2)
FEED_SCHOOLS = _size("ONE_CHAOS_FEED_SCHOOLS", 30)


def seeded(label: str) -> random.Random:
    """The run's random faults, replayable with ``ONE_CHAOS_SEED``."""
    seed = int(os.environ.get("ONE_CHAOS_SEED") or random.randrange(1 << 30))
    print(f"\n{label}, seed {seed}", flush=True)
    return random.Random(seed)


@dataclass
class Chaos:
    plan: harness.Plan
    stack: Stack
    swarm: harness.Swarm
    mail: harness.Mail
    feed_dir: Path
    logs: Path
    amqp_urls: list[str]

    @property
    def amqp_url(self) -> str:
        return self.stack.services.amqp_url

    def queue_names(self) -> list[str]:
        return all_queue_names(self.stack.names, CHAOS_RETRY_DELAYS)


@asynccontextmanager
async def running(
    stack: Stack,
    tmp_path: Path,
    plan: harness.Plan,
    *,
    workers: tuple[str, ...] = topics.WORKERS,
    amqp_urls: list[str] | None = None,
    replica_env: Callable[[str, int], dict[str, str]] = lambda worker, index: {},
    **settings: Any,
) -> AsyncIterator[Chaos]:
    port = free_port()
    mail = harness.Mail(harness.TimedSink(tmp_path / "mail"), port)
    mail.up()
    feed_dir = tmp_path / "feed"
    feed_dir.mkdir()
    env = stack.env(
        feed_dir=str(feed_dir),
        smtp_port=port,
        ent_url=ENT_URL,
        log_level="INFO",
        prefetch=8,
        retry_delays=CHAOS_RETRY_DELAYS,
        max_attempts=CHAOS_MAX_ATTEMPTS,
        # 8 processes share one Postgres (max_connections 100) with whatever else runs.
        db_pool_max=5,
        delivery_retry_base_seconds=0.5,
        delivery_lease_seconds=4.0,
        **settings,
    )
    logs = tmp_path / "logs"
    swarm = harness.make_swarm(workers, env, plan, logs, replica_env)
    urls = amqp_urls or [stack.services.amqp_url]
    chaos = Chaos(plan, stack, swarm, mail, feed_dir, logs, urls)
    try:
        await swarm.start_all()
        yield chaos
    finally:
        await swarm.stop_all()
        mail.down()
        print(await harness.ensure_services())
        # The stack's own cleanup knows the default retry tiers only.
        extra = set(chaos.queue_names()) - set(all_queue_names(stack.names, TEST_RETRY_DELAYS))
        connection = await aio_pika.connect(stack.services.amqp_url)
        async with connection:
            channel = await connection.channel()
            for name in sorted(extra):
                await channel.queue_delete(name)


@pytest.fixture
async def chaos(stack: Stack, tmp_path: Path) -> AsyncIterator[Chaos]:
    async with running(stack, tmp_path, PLAN) as started:
        yield started


@pytest.fixture
async def cluster_chaos(
    cluster_stack: Stack, broker_cluster: BrokerCluster, tmp_path: Path
) -> AsyncIterator[Chaos]:
    urls = list(broker_cluster.urls)

    def spread(worker: str, index: int) -> dict[str, str]:
        # Each replica its own first node, as a deployment spreads its clients.
        turn = (topics.WORKERS.index(worker) + index) % len(urls)
        return {"ONE_AMQP_URLS": ",".join(urls[turn:] + urls[:turn])}

    async with running(
        cluster_stack, tmp_path, CLUSTER_PLAN, amqp_urls=urls, replica_env=spread
    ) as started:
        yield started
