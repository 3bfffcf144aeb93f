"""The chaos suite's pipeline: two replicas of every worker as processes, an SMTP sink that
can go down, a feed folder; sized by ``ONE_CHAOS_ORDERS`` (40 by default, the short run of
``make test``; ``make test-chaos`` runs 500)."""

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest

from shared import topics
from shared.messaging.topology import all_queue_names
from tests.chaos import harness
from tests.conftest import TEST_RETRY_DELAYS, Stack
from tests.e2e.conftest import ENT_URL, free_port

# Retries spaced as in production, only shorter: an outage of a few seconds must not
# exhaust a message's attempts (the database watch pauses consuming meanwhile).
CHAOS_RETRY_DELAYS = [0.5, 1.0, 2.0, 5.0]
CHAOS_MAX_ATTEMPTS = 8


def chaos_orders() -> int:
    return int(os.environ.get("ONE_CHAOS_ORDERS", "40"))


PLAN = harness.Plan.for_size(chaos_orders())


@dataclass
class Chaos:
    plan: harness.Plan
    stack: Stack
    swarm: harness.Swarm
    mail: harness.Mail
    feed_dir: Path
    logs: Path

    @property
    def amqp_url(self) -> str:
        return self.stack.services.amqp_url

    def queue_names(self) -> list[str]:
        return all_queue_names(self.stack.names, CHAOS_RETRY_DELAYS)


@pytest.fixture
async def chaos(stack: Stack, tmp_path: Path) -> AsyncIterator[Chaos]:
    plan = PLAN
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
    )
    logs = tmp_path / "logs"
    swarm = harness.make_swarm(topics.WORKERS, env, plan, logs)
    chaos = Chaos(plan, stack, swarm, mail, feed_dir, logs)
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
