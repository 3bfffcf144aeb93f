"""A worker on a three-node RabbitMQ cluster (scripts/cluster.sh) while one node goes away.

Quorum queues keep a replica on each node; when the node a worker talks to stops (here,
also the leader of its queue), the worker reconnects to the next address of
ONE_AMQP_URLS by itself and goes on consuming what is published through another node.
"""

import json

import aio_pika
import asyncpg
import pytest

from services.order_intake.bootstrap import build
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.messaging.topology import all_queue_names
from tests.conftest import TEST_RETRY_DELAYS, Stack
from tests.support.broker import publish_raw
from tests.support.cluster import BrokerCluster
from tests.support.orders import cloudevent, order_data
from tools.waits import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_quorum_queues_keep_a_replica_on_each_node(
    cluster_stack: Stack, broker_cluster: BrokerCluster
) -> None:
    settings = cluster_stack.settings(OrderIntakeSettings, amqp_urls=broker_cluster.amqp_urls)
    worker = build(settings)
    await worker.start()  # declares the whole plan: guest may configure here
    try:
        queues = await broker_cluster.queues()
    finally:
        await worker.stop()
    ours = all_queue_names(cluster_stack.names, TEST_RETRY_DELAYS)
    assert ours and set(ours) <= set(queues)
    assert {name: queues[name]["members"] for name in ours} == {name: [1, 2, 3] for name in ours}


async def wait_for_schools(stack: Stack, expected: int, what: str) -> None:
    async def opened() -> bool:
        conn: asyncpg.Connection = await stack.admin()
        try:
            return bool(
                await conn.fetchval("SELECT count(*) FROM order_intake.schools") == expected
            )
        finally:
            await conn.close()

    await eventually(opened, timeout=60, interval=0.2, what=what)


async def send_order(url: str, stack: Stack, n: int) -> None:
    event = cloudevent(order_data(f"CLUSTER-{n}", number=2000 + n), event_id=f"cluster-{n}")
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await publish_raw(
            channel, stack.exchange, topics.ORDER_RECEIVED, json.dumps(event).encode()
        )


async def test_a_worker_goes_on_through_another_node_when_its_node_stops(
    cluster_stack: Stack, broker_cluster: BrokerCluster
) -> None:
    settings = cluster_stack.settings(OrderIntakeSettings, amqp_urls=broker_cluster.amqp_urls)
    worker = build(settings)
    await worker.start()
    try:
        assert worker.broker_node == "amqp://guest@127.0.0.1:5701/"  # the first address
        await send_order(broker_cluster.url(3), cluster_stack, 1)
        await wait_for_schools(cluster_stack, 1, "the first order applied")
        work_queue = cluster_stack.names.work_queue(topics.ORDER_INTAKE)
        assert (await broker_cluster.queues())[work_queue]["leader"] == 1

        await broker_cluster.stop_node(1)  # the worker's node and its queue's leader

        async def on_another_node() -> bool:
            return worker.broker_node not in (None, "amqp://guest@127.0.0.1:5701/")

        await eventually(on_another_node, timeout=60, what="the worker on another node")
        assert worker.broker_node == "amqp://guest@127.0.0.1:5702/"  # the next one
        await send_order(broker_cluster.url(3), cluster_stack, 2)
        await wait_for_schools(cluster_stack, 2, "the order sent while node 1 is down, applied")
        assert await worker.readiness() == {}
    finally:
        await broker_cluster.start_node(1)
        await worker.stop()
