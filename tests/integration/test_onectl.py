"""onectl against real RabbitMQ and Postgres, with the workers running in-process and the
CLI run as its own process (as an operator runs it, reading the workers' views as a member
of one_ops): publish, status, trace, the dead-letter queue and its replay, the feed, the
schema export."""

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from services.account_manager.bootstrap import build as build_accounts
from services.account_manager.settings import AccountManagerSettings
from services.credential_dispatch.bootstrap import build as build_dispatch
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.directory_sync.bootstrap import build as build_sync
from services.directory_sync.settings import DirectorySyncSettings
from services.order_intake.bootstrap import build as build_orders
from services.order_intake.settings import OrderIntakeSettings
from shared import topics
from shared.worker import Worker
from tests.conftest import Stack
from tests.support.broker import EventSpy, publish_raw
from tests.support.onectl import ROOT, Cli
from tests.support.operators import operator_login
from tests.support.orders import cloudevent, order_data, uai
from tools import schemas, smtp_sink
from tools.onde_generator import write_drop
from tools.ports import free_port
from tools.waits import eventually


async def fetchval(stack: Stack, query: str, *args: Any) -> Any:
    conn = await stack.admin()
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def item(status: dict[str, Any], step: str, key: str) -> dict[str, Any]:
    [found] = [
        i for s in status["steps"] if s["key"] == step for i in s["items"] if i["key"] == key
    ]
    return found


@pytest.fixture
async def pipeline(stack: Stack, tmp_path: Path) -> AsyncIterator[Path]:
    """The four workers in-process, an SMTP sink, and the ONDE feed directory."""
    port = free_port()
    controller, _sink = smtp_sink.start(tmp_path / "mail", port=port)
    feed_dir = tmp_path / "feed"
    feed_dir.mkdir()
    # ops_port 0: several workers in one process each serve /healthz on a free port.
    small = {"db_pool_min": 1, "db_pool_max": 4, "ops_port": 0}
    workers: list[Worker] = [
        build_orders(stack.settings(OrderIntakeSettings, **small)),
        build_sync(
            stack.settings(DirectorySyncSettings, feed_dir=feed_dir, run_poll_seconds=0.3, **small)
        ),
        build_accounts(stack.settings(AccountManagerSettings, **small)),
        build_dispatch(
            stack.settings(
                CredentialDispatchSettings,
                smtp_port=port,
                ent_url="https://ent.example.org",
                delivery_retry_base_seconds=0.3,
                render_concurrency=1,
                **small,
            )
        ),
    ]
    await asyncio.gather(*(w.start() for w in workers))
    try:
        yield feed_dir
    finally:
        await asyncio.gather(*(w.stop() for w in workers))
        controller.stop()


@pytest.fixture
async def operator_cli(stack: Stack, pipeline: Path) -> AsyncIterator[Cli]:
    """onectl as an operator runs it: their own login, a member of one_ops (made by the
    workers' start), and no superuser URL."""
    async with operator_login(stack) as url:
        cli = Cli(stack)
        cli.env["ONE_OPS_DATABASE_URL"] = url
        cli.env["ONE_DATABASE_ADMIN_URL"] = ""
        yield cli


async def test_an_order_from_file_to_status_trace_and_feed(
    stack: Stack, pipeline: Path, operator_cli: Cli, channel: AbstractChannel, tmp_path: Path
) -> None:
    cli = operator_cli
    spy = EventSpy()
    await spy.start(channel, stack.exchange)
    school = uai("074", 4321)  # Haute-Savoie: fed automatically from ONDE
    write_drop(pipeline, school, classes=2, pupils_per_class=5)
    data = order_data("BC-ONECTL-1", number=4321)

    # An invalid file: exit 2, every reason, nothing on the exchange.
    spoiled = json.loads(json.dumps(data))
    spoiled["school"]["uai"] = "0744321A"
    spoiled["lines"] = []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spoiled))
    refused = await cli.json("publish", str(bad), "--wrap", topics.ORDER_RECEIVED, code=2)
    assert {r["field"] for r in refused["reasons"]} == {"data.school.uai", "data.lines"}
    code, _, err = await cli("publish", str(bad), "--wrap", topics.ORDER_RECEIVED)
    assert code == 2 and "data.school.uai" in err

    # Plain data wrapped in a CloudEvent and published with confirms.
    good = tmp_path / "order.json"
    good.write_text(json.dumps(data))
    sent = await cli.json("publish", str(good), "--wrap", topics.ORDER_RECEIVED)
    assert sent["published"] and sent["correlationid"] == "BC-ONECTL-1"
    [received] = await spy.wait_for(topics.ORDER_RECEIVED)
    assert received["id"] == sent["id"]
    assert not [e for e in spy.events if e.get("data", {}).get("order_id") == "0744321A"]

    async def onboarded() -> bool:
        return bool(
            await fetchval(
                stack,
                "SELECT count(*) FROM credential_dispatch.deliveries "
                "WHERE status = 'sent' AND kind IN ('first_access', 'invoice')",
            )
            == 2
            and await fetchval(
                stack, "SELECT count(*) FROM account_manager.accounts WHERE profile = 'student'"
            )
        )

    await eventually(onboarded, timeout=60, what="order applied, feed synced, mails sent")

    status = await cli.json("status", school)
    assert status["school"]["uai"] == school and status["school"]["provisioning"] == "automatic"
    assert status["steps"][0]["done"], status["steps"][0]
    for key in ("order_received", "space_initialised", "administrator_access_sent"):
        assert item(status, "opening", key)["done"]
    assert item(status, "opening", "invoice_sent")["count"] == 1
    assert item(status, "accounts", "directory_synced")["done"]
    assert item(status, "accounts", "classes_created")["count"] == 2
    per_profile = item(status, "accounts", "accounts_created")["per_profile"]
    pupils = await fetchval(
        stack, "SELECT count(*) FROM account_manager.accounts WHERE profile = 'student'"
    )
    assert per_profile["student"] == pupils == 10 and per_profile["administrator"] == 1
    activated = item(status, "credentials", "accounts_activated")
    assert activated["count"] == 0 and activated["total"] == sum(per_profile.values())
    assert not status["ready"]
    assert (await cli.json("status", "BC-ONECTL-1"))["school"]["uai"] == school
    code, out, _ = await cli("status", "BC-ONECTL-1")
    assert code == 0 and "Étape 1" in out and "Bon de commande reçu" in out
    assert (await cli.json("status", uai("074", 9999), code=1))["code"] == 1

    # The order's timeline across the workers.
    traced = await cli.json("trace", "BC-ONECTL-1")
    timeline = traced["timeline"]
    workers = {e["worker"] for e in timeline}
    assert {topics.ORDER_INTAKE, topics.ACCOUNT_MANAGER, topics.CREDENTIAL_DISPATCH} <= workers
    published = [(e["worker"], e["topic"]) for e in timeline if e["action"] == "published"]
    assert (topics.ORDER_INTAKE, topics.SCHOOL_INITIALISED) in published
    assert (topics.CREDENTIAL_DISPATCH, topics.CREDENTIALS_DISPATCHED) in published
    first = timeline[0]
    assert (first["action"], first["worker"], first["message_id"]) == (
        "received",
        topics.ORDER_INTAKE,
        sent["id"],
    )
    times = [e["at"] for e in timeline]
    assert times == sorted(times)
    code, out, _ = await cli("trace", "BC-ONECTL-1")
    assert code == 0 and "school.initialised" in out
    assert (await cli("trace", "no-such-order"))[0] == 1

    # The feed: the first sync is reported; a dry run on demand, waited for.
    report = await cli.json("sync", "report", school)
    [first_sync] = report["runs"]
    assert (first_sync["trigger"], first_sync["status"]) == ("first_sync", "applied")
    dry = await cli.json("sync", "run", school, "--dry-run", "--wait", "--timeout", "60")
    answer = dry["answer"]["data"]
    assert answer["request_id"] == dry["request_id"] and answer["dry_run"]
    assert answer["status"] in ("dry_run", "unchanged")
    runs = (await cli.json("sync", "report", school))["runs"]
    assert len(runs) == 2 and runs[0]["request_id"] == dry["request_id"]
    code, out, _ = await cli("sync", "report", school)
    assert code == 0 and "first_sync" in out
    refused = await cli.json("sync", "run", uai("054", 1), "--wait", "--timeout", "30", code=2)
    assert refused["reasons"][0]["field"] == "uai"
    assert (await cli.json("sync", "report", uai("054", 1), code=1))["code"] == 1
    assert (await cli.json("sync", "run", "not-a-uai", code=2))["reasons"][0]["field"] == "uai"
    missing = await cli.json("sync", "approve", school, str(uuid.uuid4()), "--by", "Ops", code=1)
    assert "no run" in missing["error"]


@pytest.fixture
async def order_intake(stack: Stack) -> AsyncIterator[Worker]:
    worker = build_orders(
        stack.settings(OrderIntakeSettings, db_pool_min=1, db_pool_max=2, ops_port=0)
    )
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def test_dead_letters_are_listed_in_place_and_replayed_once(
    stack: Stack, order_intake: Worker, channel: AbstractChannel, tmp_path: Path
) -> None:
    cli = Cli(stack)
    # A poison message: a schema major version no worker reads.
    poison_id = str(uuid.uuid4())
    poison = cloudevent(order_data("BC-POISON"), event_id=poison_id, major=2)
    await publish_raw(
        channel,
        stack.exchange,
        topics.ORDER_RECEIVED,
        json.dumps(poison).encode(),
        message_id=poison_id,
    )
    # A valid order that fails transiently (its table is gone) until the worker gives up,
    # sent twice with the same CloudEvent id (an upstream retry).
    await fetchval(stack, "ALTER TABLE order_intake.orders RENAME TO orders_away")
    order_id = str(uuid.uuid4())
    path = tmp_path / "order.json"
    path.write_text(json.dumps(cloudevent(order_data("BC-DLQ-1"), event_id=order_id)))
    for _ in range(2):
        assert (await cli.json("publish", str(path)))["id"] == order_id

    async def three_dead() -> list[dict[str, Any]] | None:
        letters: list[dict[str, Any]] = await cli.json("dlq", "list")
        return letters if len(letters) == 3 else None

    letters = await eventually(three_dead, timeout=30, interval=0.5, what="3 dead letters")
    by_id = {letter["id"]: letter for letter in letters}
    assert "unsupported dataschema" in by_id[poison_id]["reason"]
    assert by_id[poison_id]["worker"] == topics.ORDER_INTAKE
    assert by_id[poison_id]["topic"] == topics.ORDER_RECEIVED
    retried = [letter for letter in letters if letter["id"] == order_id]
    assert len(retried) == 2
    assert all("gave up after 4 attempts" in letter["reason"] for letter in retried)
    assert all(letter["attempts"] == 4 and letter["dead_at"] for letter in retried)
    assert by_id[poison_id]["attempts"] == 1
    # Listing left them in place.
    assert len(await cli.json("dlq", "list")) == 3
    shown = await cli.json("dlq", "show", poison_id)
    assert shown["body"]["id"] == poison_id and shown["headers"]["x-one-worker"] == "order_intake"
    code, out, _ = await cli("dlq", "list")
    assert code == 0 and "unsupported dataschema" in out
    assert (await cli.json("dlq", "show", "no-such-id", code=1))["code"] == 1

    # The cause is fixed; both copies replayed: applied once, the other ignored.
    await fetchval(stack, "ALTER TABLE order_intake.orders_away RENAME TO orders")
    replayed = await cli.json("dlq", "replay", order_id)
    assert [r["topic"] for r in replayed["replayed"]] == [topics.ORDER_RECEIVED] * 2
    consumer = order_intake._consumer
    assert consumer is not None
    await eventually(
        lambda: _true(consumer.counts["duplicate"] >= 1), what="the second copy ignored"
    )
    assert await fetchval(stack, "SELECT count(*) FROM order_intake.orders") == 1
    initialised = await fetchval(
        stack,
        "SELECT count(*) FROM order_intake.outbox WHERE topic = $1",
        topics.SCHOOL_INITIALISED,
    )
    assert initialised == 1
    # Replaying again finds nothing of it; the poison is still there, untouched.
    assert (await cli.json("dlq", "replay", order_id, code=1))["code"] == 1
    assert [letter["id"] for letter in await cli.json("dlq", "list")] == [poison_id]

    # Replaying a message that is still poison is harmless too: it comes back, reasoned.
    assert len((await cli.json("dlq", "replay", "--all"))["replayed"]) == 1

    async def back() -> list[dict[str, Any]] | None:
        letters: list[dict[str, Any]] = await cli.json("dlq", "list")
        return letters or None

    [again] = await eventually(back, timeout=20, interval=0.3, what="the poison back")
    assert again["id"] == poison_id and "unsupported dataschema" in again["reason"]
    assert await fetchval(stack, "SELECT count(*) FROM order_intake.orders") == 1


async def _true(value: bool) -> bool:
    return value


async def test_schema_export_writes_what_tools_schemas_writes(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "onectl",
        "schema",
        "export",
        "--out",
        str(tmp_path),
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    expected = schemas.expected()
    assert sorted(json.loads(out)["files"]) == sorted(expected)
    written = {
        str(p.relative_to(tmp_path)): p.read_text() for p in tmp_path.rglob("*") if p.is_file()
    }
    assert written == expected
    assert "asyncapi.json" in written
    assert json.loads(written["asyncapi.json"])["asyncapi"] == "3.0.0"
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "onectl", "schema", "export", "--out", str(tmp_path), "--check",
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await check.wait() == 0
