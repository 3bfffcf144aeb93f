"""Chaos on a three-node RabbitMQ cluster (scripts/cluster.sh): the stream of orders
(tests/chaos/order_flow.py) through two replicas of every worker, each replica listing the
three nodes from a node of its own, while each worker is SIGKILLed twice and the node
leading one worker's queue is stopped, then started again.

``ONE_CHAOS_CLUSTER_ORDERS`` sets the size (40 by default; 200 for ``make test-chaos``).
"""

import asyncio

import pytest

from shared import topics
from tests.chaos import harness
from tests.chaos.conftest import CLUSTER_PLAN, Chaos, seeded
from tests.chaos.order_flow import orders_through_faults
from tests.support.cluster import BrokerCluster

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(CLUSTER_PLAN.test_timeout)]


async def test_a_node_of_the_cluster_goes_away_and_nothing_is_lost_or_done_twice(
    cluster_chaos: Chaos, broker_cluster: BrokerCluster
) -> None:
    chaos = cluster_chaos
    rng = seeded(f"cluster chaos: {chaos.plan.orders} orders on {len(broker_cluster.urls)} nodes")
    outages: dict[str, float] = {}

    async def leader_away(_: str) -> None:
        victim = rng.choice(topics.WORKERS)
        queue = chaos.stack.names.work_queue(victim)
        node = int(str((await broker_cluster.queues())[queue]["leader"]))
        chaos.swarm.note("broker_node", f"stop node {node}", f"leader of {queue}")
        began = asyncio.get_running_loop().time()
        await broker_cluster.stop_node(node)
        await asyncio.sleep(chaos.plan.outage_seconds)  # the node stays away this long
        await broker_cluster.start_node(node)
        outages[f"broker node {node}"] = asyncio.get_running_loop().time() - began
        chaos.swarm.note("broker_node", f"node {node} back")
        # Its queue got a new leader on another node meanwhile.
        chaos.swarm.note("broker_node", f"{queue} led by {(await broker_cluster.queues())[queue]}")

    faults = harness.shuffled_faults(
        topics.WORKERS, chaos.plan.kills_per_worker, rng, services=("broker_node",)
    )
    await orders_through_faults(
        chaos, faults=faults, other_fault=leader_away, rng=rng, smtp_outage=False, outages=outages
    )
    assert any(name.startswith("broker node") for name in outages)

    # Every queue still has its replica on each node, the returned one included.
    queues = await broker_cluster.queues()
    members = {name: queues[name]["members"] for name in chaos.queue_names()}
    assert members == {name: [1, 2, 3] for name in chaos.queue_names()}
