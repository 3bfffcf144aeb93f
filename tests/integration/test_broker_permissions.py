"""Who may publish what, on a real broker: a vhost set up from the generated definitions
(tools/deploy_config.py), with real users and passwords. The broker refuses a worker that
publishes another worker's event or a command, the ENT that publishes an event, the
integration user that publishes at all; and the whole pipeline still runs an order and
an ONDE feed end to end under those users, credential_dispatch catching up on what was
published before it ever started."""

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.exceptions import ChannelClosed

from services.account_manager.bootstrap import build as build_accounts
from services.account_manager.settings import AccountManagerSettings
from services.credential_dispatch.bootstrap import build as build_dispatch
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.directory_sync.bootstrap import build as build_sync
from services.directory_sync.settings import DirectorySyncSettings
from services.order_intake.bootstrap import build as build_orders
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.messaging.topology import Names
from shared.settings import CommonSettings
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.orders import cloudevent, order_data, uai
from tools import deploy_config as dc
from tools import onde_generator, smtp_sink
from tools.ports import free_port
from tools.waits import eventually

NAMES = Names()  # the definitions' names, inside the test's own vhost
DEFAULT_DELAYS = CommonSettings.model_construct().retry_delays


@dataclass(frozen=True)
class Broker:
    vhost: str
    tag: str
    passwords: dict[str, str]
    host: str
    port: int

    def url(self, user: str) -> str:
        return (
            f"amqp://{user}_{self.tag}:{self.passwords[user]}@{self.host}:{self.port}/{self.vhost}"
        )


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout} {done.stderr}"


@pytest.fixture
def broker(stack: Stack) -> Iterator[Broker]:
    if shutil.which("rabbitmqctl") is None or stack.services.origin == "testcontainers":
        if os.environ.get("CI") == "true":
            pytest.fail("rabbitmqctl is needed to load broker definitions into the local node")
        pytest.skip("no local rabbitmqctl to load broker definitions")
    tag = uuid.uuid4().hex[:8]
    vhost = f"one_test_{tag}"
    passwords = {user: secrets.token_urlsafe(16) for user in dc.dev_passwords()}
    defs = dc.definitions(
        NAMES, passwords, salt=lambda _: None, vhost=vhost, user=lambda name: f"{name}_{tag}"
    )
    # rabbitmqctl runs as the broker's own user: the file must be readable by it (pytest's
    # temporary folders are not); it holds this test's passwords' hashes, for a moment.
    descriptor, path = tempfile.mkstemp(prefix="one-definitions-", suffix=".json")
    try:
        with os.fdopen(descriptor, "w") as written:
            written.write(dc.render_definitions(defs))
        os.chmod(path, 0o644)
        _rabbitmqctl("import_definitions", path)
    finally:
        os.unlink(path)
    host = stack.services.amqp_url.split("@")[-1].split("/")[0]
    found = Broker(vhost, tag, passwords, host.split(":")[0], int(host.split(":")[1]))
    try:
        asyncio.run(_until_imported(found))
        yield found
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        for user in passwords:
            _rabbitmqctl("delete_user", f"{user}_{tag}")


async def _until_imported(broker: Broker) -> None:
    """The import goes on in the background: until the last user can reach its queue."""

    async def ready() -> bool:
        try:
            return await read_as(broker, dc.INTEGRATION_USER, NAMES.upstream_queue) == "read"
        except Exception:
            return False

    await eventually(ready, timeout=60, what="the definitions imported")


async def publish_as(broker: Broker, user: str, routing_key: str) -> str:
    """'confirmed', or the broker's refusal."""
    connection = await aio_pika.connect(broker.url(user))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(NAMES.exchange, ensure=False)
        body = json.dumps({"forged": True}).encode()
        try:
            await exchange.publish(aio_pika.Message(body), routing_key=routing_key, timeout=10)
        except ChannelClosed as exc:
            return "ACCESS_REFUSED" if "ACCESS_REFUSED" in str(exc) else str(exc)
        return "confirmed"
    finally:
        await connection.close()


async def read_as(broker: Broker, user: str, queue: str) -> str:
    connection = await aio_pika.connect(broker.url(user))
    try:
        channel = await connection.channel()
        try:
            found = await channel.get_queue(queue, ensure=False)
            await found.get(no_ack=False, fail=False, timeout=5)
        except ChannelClosed as exc:
            return "ACCESS_REFUSED" if "ACCESS_REFUSED" in str(exc) else str(exc)
        return "read"
    finally:
        await connection.close()


async def test_each_user_may_publish_what_it_publishes_and_nothing_else(broker: Broker) -> None:
    account_manager = dc.amqp_user(topics.ACCOUNT_MANAGER)
    dispatch = dc.amqp_user(topics.CREDENTIAL_DISPATCH)
    sync = dc.amqp_user(topics.DIRECTORY_SYNC)
    orders = dc.amqp_user(topics.ORDER_INTAKE)
    cases = [
        (account_manager, topics.ACCOUNTS_CREATED, "confirmed"),
        # Another worker's event, a command: the forged accounts.created of an "admin" with
        # the attacker's address, then a dispatch in his name, would mail every code.
        (account_manager, topics.SCHOOL_INITIALISED, "ACCESS_REFUSED"),
        (dispatch, topics.ACCOUNTS_CREATED, "ACCESS_REFUSED"),
        (dispatch, topics.CREDENTIALS_DISPATCH_REQUESTED, "ACCESS_REFUSED"),
        (sync, topics.DIRECTORY_SYNC_APPROVE_REQUESTED, "ACCESS_REFUSED"),
        (orders, topics.ACCOUNT_ACTIVATED, "ACCESS_REFUSED"),
        (dc.ENT_USER, topics.CREDENTIALS_DISPATCH_REQUESTED, "confirmed"),
        (dc.ENT_USER, topics.ACCOUNTS_CREATED, "ACCESS_REFUSED"),
        (dc.ENT_USER, topics.DIRECTORY_SYNCED, "ACCESS_REFUSED"),
        (dc.ENT_USER, topics.ORDER_RECEIVED, "ACCESS_REFUSED"),
        (dc.ORDERS_USER, topics.ORDER_RECEIVED, "confirmed"),
        (dc.ORDERS_USER, topics.ACCOUNTS_CREATE_REQUESTED, "ACCESS_REFUSED"),
        (dc.INTEGRATION_USER, topics.ORDER_RECEIVED, "ACCESS_REFUSED"),
    ]
    outcomes = [await publish_as(broker, user, key) for user, key, _ in cases]
    assert outcomes == [expected for _, _, expected in cases]
    # Reading: each worker its own queue; the integration user the feed, nothing else.
    assert await read_as(broker, dispatch, NAMES.work_queue(topics.CREDENTIAL_DISPATCH)) == "read"
    assert await read_as(broker, dispatch, NAMES.work_queue(topics.ACCOUNT_MANAGER)) == (
        "ACCESS_REFUSED"
    )
    assert await read_as(broker, dispatch, NAMES.upstream_queue) == "ACCESS_REFUSED"
    assert await read_as(broker, dc.INTEGRATION_USER, NAMES.upstream_queue) == "read"
    assert await read_as(broker, dc.INTEGRATION_USER, NAMES.dead_letter_queue) == ("ACCESS_REFUSED")


class Upstream:
    """What an integrator sees: the integration feed, read as one_integration."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def start(self, broker: Broker) -> aio_pika.abc.AbstractConnection:
        connection = await aio_pika.connect(broker.url(dc.INTEGRATION_USER))
        channel = await connection.channel()
        queue = await channel.get_queue(NAMES.upstream_queue, ensure=False)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            self.events.append(json.loads(message.body))
            await message.ack()

        await queue.consume(on_message)
        return connection

    def of(self, topic: str, **data: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == topic and all(e["data"].get(k) == v for k, v in data.items())
        ]


@pytest.fixture
async def feed_dir(tmp_path: Path) -> Path:
    return tmp_path / "feed"


async def test_the_pipeline_runs_under_its_users_and_dispatch_catches_up(
    broker: Broker, stack: Stack, tmp_path: Path
) -> None:
    number = 4444
    school_uai = uai("074", number)
    feed_dir = tmp_path / "feed"
    shape = {"classes": 2, "pupils_per_class": 5, "seed": 3}
    school = onde_generator.build_school(school_uai, **shape)
    onde_generator.write_drop(feed_dir, school_uai, **shape)
    persons = len(school.pupils) + len(school.parents) + len(school.teachers)

    def settings(cls: type[Any], worker: str, **more: Any) -> Any:
        return stack.settings(
            cls,
            amqp_url=broker.url(dc.amqp_user(worker)),
            exchange=NAMES.exchange,
            topology_prefix=NAMES.prefix,
            retry_delays=DEFAULT_DELAYS,
            **more,
        )

    workers: list[Worker] = [
        build_orders(settings(OrderIntakeSettings, topics.ORDER_INTAKE)),
        build_sync(settings(DirectorySyncSettings, topics.DIRECTORY_SYNC, feed_dir=feed_dir)),
        build_accounts(settings(AccountManagerSettings, topics.ACCOUNT_MANAGER)),
    ]
    upstream = Upstream()
    watching = await upstream.start(broker)
    port = free_port()
    controller, sink = smtp_sink.start(tmp_path / "mail", port=port)
    try:
        await asyncio.gather(*(w.start() for w in workers))
        order = cloudevent(order_data("BC-PERM-1", number=number), event_id="o-perm-1")
        connection = await aio_pika.connect(broker.url(dc.ORDERS_USER))
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(NAMES.exchange, ensure=False)
            await exchange.publish(
                aio_pika.Message(json.dumps(order).encode()), routing_key=topics.ORDER_RECEIVED
            )

        async def fed() -> bool:
            created = upstream.of(topics.ACCOUNTS_CREATED)
            return sum(len(e["data"]["accounts"]) for e in created) >= persons + 1

        await eventually(fed, timeout=90, what="every account of the school, upstream")
        [invoice] = upstream.of(topics.INVOICE_ISSUED)
        [report] = upstream.of(topics.DIRECTORY_SYNC_REPORTED)
        assert report["data"]["status"] == "applied"
        assert sink.received == []  # credential_dispatch never ran yet

        # credential_dispatch starts now: its queue held everything published meanwhile.
        dispatch = build_dispatch(
            settings(CredentialDispatchSettings, topics.CREDENTIAL_DISPATCH, smtp_port=port)
        )
        workers.append(dispatch)
        await dispatch.start()

        async def mailed() -> bool:
            subjects = [str(m["Subject"]) for m in sink.received]
            return any(invoice["data"]["invoice_number"] in s for s in subjects) and any(
                "ONE" in s and "accès" in s.lower() for s in subjects
            )

        await eventually(mailed, timeout=90, what="the invoice and the first access mailed")
        # A command from the ENT, under its own user: answered, upstream.
        admin = next(
            a
            for e in upstream.of(topics.ACCOUNTS_CREATED)
            for a in e["data"]["accounts"]
            if a["profile"] == "administrator"
        )
        request_id = f"perm-{uuid.uuid4()}"
        command = cloudevent(
            {
                "request_id": request_id,
                "requested_by": admin["account_id"],
                "school_id": invoice["data"]["school_id"],
                "filter": {"profiles": ["teacher"]},
                "channel": "print",
                "layout": "compact",
            },
            event_id=request_id,
            event_type=topics.CREDENTIALS_DISPATCH_REQUESTED,
            correlationid=request_id,
        )
        connection = await aio_pika.connect(broker.url(dc.ENT_USER))
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(NAMES.exchange, ensure=False)
            await exchange.publish(
                aio_pika.Message(json.dumps(command).encode()),
                routing_key=topics.CREDENTIALS_DISPATCH_REQUESTED,
            )

        async def answered() -> bool:
            return bool(upstream.of(topics.CREDENTIALS_DISPATCHED, request_id=request_id))

        await eventually(answered, timeout=60, what="the ENT's print answered")
    finally:
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        await watching.close()
        controller.stop()
