"""SIGKILL of each worker in the middle of a stream of orders, then a restart: nothing is
lost and nothing is applied twice."""

import asyncio
import json
import random
from collections import Counter

import pytest

from services.credential_dispatch.settings import CredentialDispatchSettings
from shared import topics
from tests.e2e.conftest import Pipeline
from tests.support.broker import EventSpy, publish_raw
from tests.support.orders import cloudevent, order_data
from tools.waits import eventually

ORDERS = 40
_defaults = CredentialDispatchSettings.model_fields
IN_FLIGHT = _defaults["delivery_batch"].default * _defaults["delivery_lanes"].default
pytestmark = pytest.mark.slow


def order(i: int) -> dict:
    data = order_data(
        f"BC-K-{i:03d}",
        department=random.choice(["074", "075", "057", "013"]),
        number=i,
        classes=2,
        admin_email=f"admin{i}@example.org",
        billing_email=f"billing{i}@example.org",
    )
    data["school"]["address"]["postal_code"] = "75011"
    return cloudevent(data, event_id=f"k-{i}")


async def test_sigkill_each_worker_mid_stream_loses_and_doubles_nothing(
    pipeline: Pipeline, channel
):
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange)

    async def stream() -> None:
        for i in range(ORDERS):
            await publish_raw(
                channel,
                pipeline.stack.exchange,
                topics.ORDER_RECEIVED,
                json.dumps(order(i)).encode(),
            )
            await asyncio.sleep(0.05)

    publishing = asyncio.create_task(stream())
    for name in topics.WORKERS:
        await asyncio.sleep(random.uniform(0.2, 0.6))
        worker = pipeline.workers[name]
        await worker.kill()
        await worker.start()
    await publishing

    def distinct(topic: str) -> set[str]:
        return {e["correlationid"] for e in spy.of_type(topic)}

    async def all_done() -> bool:
        return (
            len(distinct(topics.CREDENTIALS_DISPATCHED)) == ORDERS
            and len(distinct(topics.INVOICE_DELIVERED)) == ORDERS
        )

    try:
        await eventually(all_done, timeout=120, interval=0.5, what="every order dispatched")
    except AssertionError:
        counts = {
            t: len(distinct(t))
            for t in (
                topics.SCHOOL_INITIALISED,
                topics.INVOICE_ISSUED,
                topics.ACCOUNTS_CREATED,
                topics.CREDENTIALS_DISPATCHED,
                topics.INVOICE_DELIVERED,
            )
        }
        print("distinct correlation ids per topic:", counts)
        print("\n".join(pipeline.troubles()[-60:]))
        raise
    await eventually(pipeline.quiescent, timeout=60, what="pipeline idle")

    conn = await pipeline.stack.admin()
    try:
        assert await conn.fetchval("SELECT count(*) FROM order_intake.schools") == ORDERS
        seqs = [
            r["seq"] for r in await conn.fetch("SELECT seq FROM order_intake.invoices ORDER BY seq")
        ]
        assert seqs == list(range(1, ORDERS + 1))  # no gap, no double
        assert await conn.fetchval("SELECT count(*) FROM account_manager.accounts") == ORDERS
        assert (
            await conn.fetchval("SELECT count(DISTINCT login) FROM account_manager.accounts")
            == ORDERS
        )
        statuses = await conn.fetch(
            "SELECT status, count(*) AS n FROM credential_dispatch.deliveries GROUP BY status"
        )
        assert {r["status"]: r["n"] for r in statuses} == {"sent": 2 * ORDERS}
    finally:
        await conn.close()

    # Every event id that reached the wire twice is the same event (at-least-once relay);
    # the outcome of each order was reported by exactly one event.
    for topic in (
        topics.SCHOOL_INITIALISED,
        topics.INVOICE_ISSUED,
        topics.ACCOUNTS_CREATED,
        topics.CREDENTIALS_DISPATCHED,
        topics.INVOICE_DELIVERED,
    ):
        ids = {e["id"] for e in spy.of_type(topic)}
        assert len(ids) == ORDERS, topic

    # Every email arrived. A second copy can only come from a SIGKILL of credential_dispatch
    # falling between the SMTP server's acceptance of a mail and the record of it: at most
    # the deliveries it had in flight (its claimed batches), with the same Message-ID.
    per_message_id = Counter(str(m["Message-ID"]) for m in pipeline.sink.received)
    assert len(per_message_id) == 2 * ORDERS
    resent = sum(n - 1 for n in per_message_id.values())
    kills = pipeline.workers[topics.CREDENTIAL_DISPATCH].starts - 1
    print(f"emails sent twice after {kills} SIGKILL of credential_dispatch: {resent}")
    assert resent <= kills * IN_FLIGHT
    recipients = {str(m["To"]) for m in pipeline.sink.received}
    assert recipients == {f"admin{i}@example.org" for i in range(ORDERS)} | {
        f"billing{i}@example.org" for i in range(ORDERS)
    }
