"""A manual school opened in account_manager, and commands sent to it as the ENT would."""

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel

from shared import topics
from tests.support.broker import EventSpy, publish_raw
from tests.support.orders import cloudevent, uai

OUTCOMES = (
    topics.ACCOUNTS_CREATED,
    topics.CLASS_RENAMED,
    topics.CLASS_TEACHERS_ASSIGNED,
    topics.ACTIVATION_CODE_RENEWED,
    topics.COMMAND_REJECTED,
)


@dataclass
class School:
    channel: AbstractChannel
    exchange: str
    spy: EventSpy
    school_id: str
    admin_id: str
    class_ids: list[str]
    sent: list[str] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        data: dict[str, Any],
        *,
        request_id: str | None = None,
        event_id: str | None = None,
    ) -> str:
        request_id = request_id or f"req-{uuid.uuid4().hex[:8]}"
        data = {"request_id": request_id, **data}
        event = cloudevent(
            data, event_id=event_id or str(uuid.uuid4()), event_type=topic, correlationid=request_id
        )
        await publish_raw(self.channel, self.exchange, topic, json.dumps(event).encode())
        self.sent.append(request_id)
        return request_id

    async def outcome(self, request_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The one event that answers ``request_id`` (fails if there are more)."""
        return await self.outcome_of(request_id, OUTCOMES, timeout=timeout)

    async def outcome_of(
        self, request_id: str, types: tuple[str, ...], timeout: float = 20.0
    ) -> dict[str, Any]:
        async def answered() -> list[dict[str, Any]] | None:
            found = [
                e
                for e in self.spy.events
                if e["correlationid"] == request_id and e["type"] in types
            ]
            return found or None

        from tools.waits import eventually

        [event] = await eventually(answered, timeout=timeout, what=f"outcome of {request_id}")
        return event

    async def create(self, requested_by: str, *accounts: dict[str, Any]) -> dict[str, Any]:
        request = await self.send(
            topics.ACCOUNTS_CREATE_REQUESTED,
            {"requested_by": requested_by, "school_id": self.school_id, "accounts": list(accounts)},
        )
        return await self.outcome(request)

    async def teacher(self, first: str, last: str, *class_ids: str) -> str:
        event = await self.create(
            self.admin_id,
            {
                "profile": "teacher",
                "first_name": first,
                "last_name": last,
                "class_ids": list(class_ids),
            },
        )
        assert event["type"] == topics.ACCOUNTS_CREATED, event
        return str(event["data"]["accounts"][0]["account_id"])


def school_initialised(
    school_id: str,
    *,
    department: str,
    number: int,
    provisioning: str,
    classes: int,
    name: str,
    academie: str | None,
) -> dict[str, Any]:
    """school.initialised's data, as order_intake would publish it."""
    return {
        "school_id": school_id,
        "order_id": f"BC-{school_id[:8]}",
        "uai": uai(department, number),
        "name": name,
        "academie": academie,
        "department": department,
        "provisioning": provisioning,
        "classes": classes,
        "administrator": {
            "first_name": "Claire",
            "last_name": "Martin",
            "email": "claire.martin@example.org",
        },
    }


async def publish_school(channel: AbstractChannel, exchange: str, data: dict[str, Any]) -> None:
    event = cloudevent(
        data,
        event_id=str(uuid.uuid4()),
        event_type=topics.SCHOOL_INITIALISED,
        correlationid=data["order_id"],
    )
    await publish_raw(channel, exchange, topics.SCHOOL_INITIALISED, json.dumps(event).encode())


async def open_school(
    channel: AbstractChannel, exchange: str, spy: EventSpy, *, number: int = 1, classes: int = 3
) -> School:
    school_id = str(uuid.uuid4())
    data = school_initialised(
        school_id,
        department="075",
        number=number,
        provisioning="manual",
        classes=classes,
        name="École élémentaire Jules-Ferry",
        academie=None,
    )
    await publish_school(channel, exchange, data)
    [created] = await spy.wait_for(topics.ACCOUNTS_CREATED, school_id=school_id)
    [classes_event] = await spy.wait_for(topics.CLASSES_CREATED, school_id=school_id)
    return School(
        channel,
        exchange,
        spy,
        school_id,
        admin_id=created["data"]["accounts"][0]["account_id"],
        class_ids=[c["class_id"] for c in classes_event["data"]["classes"]],
    )
