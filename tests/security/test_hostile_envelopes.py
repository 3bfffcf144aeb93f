"""A publisher who writes what he likes in an envelope and its headers: every attribute is
bounded, what the worker writes back (reasons, headers, metric labels) is bounded, names
carrying control characters are refused with a reason and invisible reordering characters
removed."""

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from pydantic import ValidationError

from shared import topics
from shared.contracts.commands import AccountsCreateRequested, ClassRenameRequested
from shared.envelope import Envelope
from shared.errors import PermanentError
from shared.messaging.consumer import REASON_BYTES
from shared.metrics import Metrics
from shared.store import TransactionStore
from tests.conftest import Stack
from tests.security.test_oversized import (
    FakeMessage,
    FakePublisher,
    order_worker,
    processor,
    settling,
)
from tests.support.broker import publish_raw, wait_for_queue
from tests.support.orders import cloudevent, order_data

HUGE = "x" * 300_000


@pytest.mark.parametrize(
    "attribute", ["type", "source", "dataschema", "id", "correlationid", "causationid"]
)
async def test_an_envelope_attribute_over_200_characters_is_dead_with_a_short_reason(
    attribute: str,
) -> None:
    event = cloudevent(order_data("BC-HUGE"), event_id="huge-1")
    event[attribute] = HUGE
    outcome = await processor().process(json.dumps(event).encode())
    assert outcome.kind == "dead" and outcome.reason is not None
    assert len(outcome.reason) < 1000 and "at most 200 characters" in outcome.reason
    assert HUGE[:1000] not in outcome.reason


async def test_forged_topics_all_count_as_other_on_the_metrics_page() -> None:
    metrics = Metrics(topics.ORDER_INTAKE)
    consuming = settling(FakePublisher(), metrics)
    for n in range(1000):
        message = FakeMessage({"x-one-topic": f"forged.{n}.{uuid.uuid4()}"})
        await consuming._settle(message)  # type: ignore[arg-type]
    page = metrics.render().decode()
    series = [line for line in page.splitlines() if line and not line.startswith("#")]
    assert len(series) < 200
    assert "forged" not in page
    assert 'one_consumed_total{outcome="dead",topic="other",worker="order_intake"} 1000.0' in page


async def test_a_long_failure_gives_a_bounded_reason_header(
    stack: Stack, channel: AbstractChannel, tmp_path: Path
) -> None:
    """A handler failing with a 10 KB message: the dead letter's reason is cut, and the
    next message is consumed."""
    handled: list[str] = []

    async def handler(event: Envelope[Any], *, store: TransactionStore) -> None:
        if event.id == "long-1":
            raise PermanentError("refused: " + "é" * 10_000)
        handled.append(event.id)

    worker = order_worker(stack, tmp_path, handler)
    await worker.start()
    try:
        huge_type = cloudevent(order_data("BC-T"), event_id="type-1")
        huge_type["type"] = HUGE
        for body in (
            json.dumps(huge_type).encode(),
            json.dumps(cloudevent(order_data("BC-L"), event_id="long-1")).encode(),
        ):
            await publish_raw(channel, stack.exchange, topics.ORDER_RECEIVED, body)
        dead = await wait_for_queue(channel, stack.names.dead_letter_queue, count=2, timeout=30)
        reasons = sorted(str(d.headers["x-one-reason"]) for d in dead)
        assert all(len(r.encode()) <= REASON_BYTES < 1024 for r in reasons)
        assert reasons[0].startswith("PermanentError: refused: éé") and reasons[0].endswith("…")
        assert "at most 200 characters" in reasons[1]
        await publish_raw(
            channel,
            stack.exchange,
            topics.ORDER_RECEIVED,
            json.dumps(cloudevent(order_data("BC-N"), event_id="next-1")).encode(),
        )
        for _ in range(200):
            if handled:
                break
            await asyncio.sleep(0.05)
        assert handled == ["next-1"]
    finally:
        await worker.stop()


def create(first_name: str) -> dict[str, Any]:
    return {
        "request_id": "r-1",
        "requested_by": str(uuid.uuid4()),
        "school_id": str(uuid.uuid4()),
        "accounts": [{"profile": "teacher", "first_name": first_name, "last_name": "Roy"}],
    }


@pytest.mark.parametrize("name", ["Zo\x00é", "Zoé\r\nBcc: x@example.org", "Zo\x1b[31mé"])
def test_a_control_character_in_a_name_is_a_reason_not_a_crash(name: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AccountsCreateRequested.model_validate(create(name))
    [error] = refused.value.errors()
    assert error["loc"] == ("accounts", 0, "first_name")
    assert "control character" in error["msg"]


def test_bidirectional_and_invisible_characters_are_removed_from_names() -> None:
    # "\u202e" would print the rest of the name backwards on a sheet.
    command = AccountsCreateRequested.model_validate(create("\u202eLéo\u200b\u2066"))
    assert command.accounts[0].first_name == "Léo"
    renamed = ClassRenameRequested.model_validate(
        {
            "request_id": "r-2",
            "requested_by": str(uuid.uuid4()),
            "class_id": str(uuid.uuid4()),
            "name": "CP \u202dA",
        }
    )
    assert renamed.name == "CP A"
    with pytest.raises(ValidationError):  # nothing left once they are gone
        AccountsCreateRequested.model_validate(create("\u202e\u202c"))
