"""SIGTERM drains: the worker finishes what it holds, exits cleanly, and whatever it had
not taken waits in its queue for the next start."""

import json

from shared import topics
from tests.e2e.conftest import Pipeline
from tests.support.broker import EventSpy, publish_raw
from tests.support.orders import cloudevent, order_data
from tools.waits import eventually

ORDERS = 30


async def test_sigterm_drains_then_a_restart_takes_up_the_rest(pipeline: Pipeline, channel):
    spy = EventSpy()
    await spy.start(channel, pipeline.stack.exchange, topics.INVOICE_ISSUED)
    for i in range(ORDERS):
        data = order_data(f"BC-T-{i:03d}", department="075", number=i)
        await publish_raw(
            channel,
            pipeline.stack.exchange,
            topics.ORDER_RECEIVED,
            json.dumps(cloudevent(data, event_id=f"t-{i}")).encode(),
        )

    intake = pipeline.workers[topics.ORDER_INTAKE]
    assert await intake.stop() == 0
    events = [r["event"] for r in intake.records()]
    assert events[-1] == "stopped"
    # It stopped through its drain (exit 0 above), not by being killed.
    assert "stopping" in events[events.index("started") :]
    assert not pipeline.troubles()

    await intake.start()
    await eventually(
        lambda: _ready(len({e["correlationid"] for e in spy.events}) == ORDERS),
        timeout=60,
        what="every order invoiced",
    )
    await eventually(pipeline.quiescent, timeout=30, what="pipeline idle")
    assert len(spy.events) == ORDERS  # none applied twice across the restart


async def _ready(value: bool) -> bool:
    return value
