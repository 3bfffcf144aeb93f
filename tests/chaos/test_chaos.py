"""Chaos on one broker node: the stream of orders (tests/chaos/order_flow.py) through two
replicas of every worker while each worker is SIGKILLed and restarted three times, RabbitMQ
is restarted once, Postgres once, and the SMTP server is down for a while.

``ONE_CHAOS_ORDERS`` sets the size (40 by default; 500 for ``make test-chaos``),
``ONE_CHAOS_SEED`` replays a run's order of faults.
"""

import pytest

from shared import topics
from tests.chaos import harness
from tests.chaos.conftest import PLAN, Chaos, seeded
from tests.chaos.order_flow import orders_through_faults

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(PLAN.test_timeout)]


async def test_chaos_loses_nothing_and_applies_nothing_twice(chaos: Chaos) -> None:
    rng = seeded(f"chaos: {chaos.plan.orders} orders, {chaos.plan.replicas} replicas per worker")
    outages: dict[str, float] = {}

    async def restart(service: str) -> None:
        chaos.swarm.note(service, "restart")
        if service == "rabbitmq":
            outages[service] = await harness.restart_rabbitmq(chaos.plan.outage_seconds)
        else:
            admin_url = chaos.stack.services.admin_url
            outages[service] = await harness.restart_postgres(chaos.plan.outage_seconds, admin_url)
        chaos.swarm.note(service, "back", f"after {outages[service]:.1f}s")

    faults = harness.shuffled_faults(topics.WORKERS, chaos.plan.kills_per_worker, rng)
    await orders_through_faults(
        chaos, faults=faults, other_fault=restart, rng=rng, smtp_outage=True, outages=outages
    )
