"""credentials.dispatch.requested against real RabbitMQ, Postgres, Chromium and an SMTP
server: print (detailed, compact, CSV) and email channels, scope refusals, hostile names."""

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel

from services.account_manager.bootstrap import build as build_accounts
from services.account_manager.settings import AccountManagerSettings
from services.credential_dispatch.bootstrap import build as build_dispatch
from services.credential_dispatch.settings import CredentialDispatchSettings
from shared import topics
from tests.conftest import Stack
from tests.support.broker import EventSpy
from tests.support.commands import School, open_school
from tests.support.pdf import decode_qr_codes, page_count, pdf_text, stored_document
from tools import smtp_sink
from tools.ports import free_port
from tools.waits import eventually

ENT = "https://ent.example.org"


@dataclass
class Setup:
    school: School
    sink: smtp_sink.FileSink
    teacher: str
    pupils: dict[str, dict]  # first name -> accounts.created entry
    parents: dict[str, dict]

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sink.received if str(m["To"]) == address]


@pytest.fixture
async def setup(stack: Stack, channel: AbstractChannel, tmp_path) -> AsyncIterator[Setup]:
    port = free_port()
    controller, sink = smtp_sink.start(tmp_path, port=port)
    accounts = build_accounts(stack.settings(AccountManagerSettings))
    dispatch = build_dispatch(
        stack.settings(
            CredentialDispatchSettings, smtp_port=port, ent_url=ENT, delivery_retry_base_seconds=0.3
        )
    )
    await asyncio.gather(accounts.start(), dispatch.start())
    try:
        spy = EventSpy()
        await spy.start(channel, stack.exchange)
        school = await open_school(channel, stack.exchange, spy)
        class_1, class_2 = school.class_ids[:2]
        created = await school.create(
            school.admin_id,
            {
                "profile": "teacher",
                "first_name": "Marie",
                "last_name": "Curie",
                "email": "marie.curie@example.org",
                "class_ids": [class_1],
            },
        )
        teacher = created["data"]["accounts"][0]["account_id"]
        created = await school.create(
            school.admin_id,
            {
                "ref": "a",
                "profile": "student",
                "first_name": "Zoé",
                "last_name": "Lefèvre",
                "birth_date": "2018-03-14",
                "class_ids": [class_1],
            },
            {
                "ref": "b",
                "profile": "student",
                "first_name": "<b>Léo</b>",
                "last_name": "Roy",
                "birth_date": "2017-05-02",
                "class_ids": [class_1],
            },
            {
                "ref": "c",
                "profile": "student",
                "first_name": "Inès",
                "last_name": "Martin",
                "birth_date": "2016-01-20",
                "class_ids": [class_2],
            },
            {
                "profile": "relative",
                "first_name": "Jean",
                "last_name": "Lefèvre",
                "email": "jean.lefevre@example.org",
                "children": ["a"],
            },
            {"profile": "relative", "first_name": "Anne", "last_name": "Roy", "children": ["b"]},
        )
        made = created["data"]["accounts"]
        pupils = {a["first_name"]: a for a in made if a["profile"] == "student"}
        parents = {a["first_name"]: a for a in made if a["profile"] == "relative"}
        # credential_dispatch has its copy once the admin's first access went out.
        await eventually(lambda: _ready(len(sink.received) >= 1), what="admin's first access")
        yield Setup(school, sink, teacher, pupils, parents)
    finally:
        await asyncio.gather(accounts.stop(), dispatch.stop())
        controller.stop()


async def _ready(value: bool) -> bool:
    return value


async def request(setup: Setup, requested_by: str, **data) -> dict:
    request_id = await setup.school.send(
        topics.CREDENTIALS_DISPATCH_REQUESTED,
        {"requested_by": requested_by, "school_id": setup.school.school_id, **data},
    )
    return await setup.school.outcome_of(
        request_id, (topics.CREDENTIALS_DISPATCHED, topics.COMMAND_REJECTED), timeout=60
    )


def attachment(message: EmailMessage) -> tuple[str, bytes]:
    [part] = list(message.iter_attachments())
    content = part.get_content()  # str for text/csv
    return part.get_content_type(), content.encode() if isinstance(content, str) else content


async def test_email_channel_sends_each_pupils_sheet_to_his_parents(setup: Setup):
    zoe, leo = setup.pupils["Zoé"], setup.pupils["<b>Léo</b>"]
    event = await request(
        setup,
        setup.teacher,
        channel="email",
        filter={"class_id": setup.school.class_ids[0], "profiles": ["student"]},
    )
    assert event["type"] == topics.CREDENTIALS_DISPATCHED, event
    assert event["data"]["delivered"] == [
        {"account_id": zoe["account_id"], "to": "jean.lefevre@example.org"}
    ]
    assert event["data"]["undeliverable"] == [
        {"account_id": leo["account_id"], "reason": "no parent with an email address"}
    ]
    [mail] = setup.mails_to("jean.lefevre@example.org")
    assert mail.get_content_type() == "multipart/mixed"
    [alternative] = [p for p in mail.iter_parts() if p.get_content_type().startswith("multipart")]
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    kind, pdf = attachment(mail)
    assert kind == "application/pdf"
    [page] = pdf_text(pdf)
    assert zoe["login"] in page and zoe["activation_code"] in page
    assert decode_qr_codes(pdf) == [
        f"{ENT}/auth/activation?login={zoe['login']}&activationCode={zoe['activation_code']}"
    ]


async def test_print_detailed_groups_by_class_and_is_stored(setup: Setup, stack: Stack):
    event = await request(
        setup,
        setup.school.admin_id,
        channel="print",
        layout="detailed",
        filter={"profiles": ["student"]},
    )
    assert event["type"] == topics.CREDENTIALS_DISPATCHED, event
    assert {d["to"] for d in event["data"]["delivered"]} == {"claire.martin@example.org"}
    assert len(event["data"]["delivered"]) == 3
    document_id = event["data"]["document_id"]
    [mail] = [
        m for m in setup.mails_to("claire.martin@example.org") if "Fiches" in str(m["Subject"])
    ]
    kind, pdf = attachment(mail)
    assert kind == "application/pdf"
    assert page_count(pdf) == 2 + 3  # a cover per class, a page per pupil
    text = "\n".join(pdf_text(pdf))
    assert text.index("Classe 1") < text.index("Lefèvre") < text.index("Classe 2")
    assert "<b>Léo</b>" in text  # a name with HTML in it is printed as text
    assert await stored_document(stack, document_id) == pdf


async def send_again(setup: Setup, requested_by: str, document_id: str) -> dict:
    request_id = await setup.school.send(
        topics.CREDENTIALS_DOCUMENT_SEND_REQUESTED,
        {
            "requested_by": requested_by,
            "school_id": setup.school.school_id,
            "document_id": document_id,
        },
    )
    return await setup.school.outcome_of(
        request_id, (topics.CREDENTIALS_DISPATCHED, topics.COMMAND_REJECTED), timeout=60
    )


async def test_a_printed_document_is_sent_again_by_its_id(setup: Setup):
    first = await request(
        setup,
        setup.teacher,
        channel="print",
        layout="compact",
        filter={"class_id": setup.school.class_ids[0]},
    )
    assert first["type"] == topics.CREDENTIALS_DISPATCHED, first
    document_id = first["data"]["document_id"]
    teacher_mail = "marie.curie@example.org"
    [printed] = [m for m in setup.mails_to(teacher_mail) if "Fiches" in str(m["Subject"])]

    again = await send_again(setup, setup.teacher, document_id)
    assert again["type"] == topics.CREDENTIALS_DISPATCHED, again
    assert again["data"]["document_id"] == document_id
    assert again["data"]["delivered"] == first["data"]["delivered"]
    resent = [m for m in setup.mails_to(teacher_mail) if "Fiches" in str(m["Subject"])]
    assert len(resent) == 2
    assert attachment(resent[1]) == attachment(printed)  # the same bytes, not a new print

    # The school's administrator may have it too; it goes to his own address.
    by_admin = await send_again(setup, setup.school.admin_id, document_id)
    assert {d["to"] for d in by_admin["data"]["delivered"]} == {"claire.martin@example.org"}

    # Nobody else, and no document of another id.
    parent = setup.parents["Jean"]["account_id"]
    refused = await send_again(setup, parent, document_id)
    assert refused["type"] == topics.COMMAND_REJECTED
    assert [r["field"] for r in refused["data"]["reasons"]] == ["requested_by"]
    unknown = await send_again(setup, setup.school.admin_id, str(uuid.uuid4()))
    assert unknown["type"] == topics.COMMAND_REJECTED
    assert unknown["data"]["reasons"][0]["field"] == "document_id"


async def test_print_compact_and_csv(setup: Setup):
    event = await request(
        setup,
        setup.school.admin_id,
        channel="print",
        layout="compact",
        filter={"profiles": ["student", "relative"]},
    )
    assert event["type"] == topics.CREDENTIALS_DISPATCHED, event
    event = await request(
        setup,
        setup.school.admin_id,
        channel="print",
        layout="csv",
        account_ids=[p["account_id"] for p in setup.pupils.values()],
    )
    assert event["type"] == topics.CREDENTIALS_DISPATCHED, event
    [mail] = [
        m
        for m in setup.mails_to("claire.martin@example.org")
        if any(p.get_content_type() == "text/csv" for p in m.iter_attachments())
    ]
    _, content = attachment(mail)
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == 1 + 3
    assert {r[4] for r in rows[1:]} == {p["login"] for p in setup.pupils.values()}


async def test_scope_refusals(setup: Setup, channel, stack: Stack):
    class_2 = setup.school.class_ids[1]
    ines = setup.pupils["Inès"]["account_id"]
    event = await request(setup, setup.teacher, channel="email", filter={"class_id": class_2})
    assert event["type"] == topics.COMMAND_REJECTED
    assert [r["field"] for r in event["data"]["reasons"]] == ["filter.class_id"]
    event = await request(setup, setup.teacher, channel="print", account_ids=[ines])
    assert [r["field"] for r in event["data"]["reasons"]] == ["account_ids.0"]
    event = await request(
        setup, setup.parents["Jean"]["account_id"], channel="print", account_ids=[ines]
    )
    assert [r["field"] for r in event["data"]["reasons"]] == ["requested_by"]
    other = await open_school(channel, stack.exchange, setup.school.spy, number=2)
    event = await request(setup, other.admin_id, channel="print", account_ids=[ines])
    assert [r["field"] for r in event["data"]["reasons"]] == ["requested_by"]


async def test_a_teacher_never_hands_out_a_co_teacher_s_code(setup: Setup):
    """Marie prints or emails her class: its pupils and parents, and herself, whatever the
    layout, never Paul's sheet, who teaches the same class; the administrator gets Paul's.
    Detached from the class since, Marie no longer has her printed document sent again."""
    class_1 = setup.school.class_ids[0]
    created = await setup.school.create(
        setup.school.admin_id,
        {
            "profile": "teacher",
            "first_name": "Paul",
            "last_name": "Langevin",
            "email": "paul.langevin@example.org",
            "class_ids": [class_1],
        },
    )
    paul = created["data"]["accounts"][0]
    secrets = (paul["login"], paul["activation_code"])
    pupils_of_class_1 = {setup.pupils[n]["account_id"] for n in ("Zoé", "<b>Léo</b>")}
    document_id = ""
    for layout in ("detailed", "compact", "csv"):
        event = await request(
            setup, setup.teacher, channel="print", layout=layout, filter={"class_id": class_1}
        )
        assert event["type"] == topics.CREDENTIALS_DISPATCHED, event
        handed = {d["account_id"] for d in event["data"]["delivered"]}
        assert paul["account_id"] not in handed and pupils_of_class_1 <= handed
        [mail] = [m for m in setup.mails_to("marie.curie@example.org") if layout_of(m) == layout]
        _, content = attachment(mail)
        text = content.decode("utf-8-sig") if layout == "csv" else "\n".join(pdf_text(content))
        assert not any(secret in text for secret in secrets), layout
        document_id = event["data"]["document_id"]
    event = await request(setup, setup.teacher, channel="email", filter={"class_id": class_1})
    assert paul["account_id"] not in {d["account_id"] for d in event["data"]["delivered"]}
    assert setup.mails_to("paul.langevin@example.org") == []

    event = await request(
        setup, setup.school.admin_id, channel="print", layout="csv", filter={"class_id": class_1}
    )
    assert paul["account_id"] in {d["account_id"] for d in event["data"]["delivered"]}

    detached = await setup.school.send(
        topics.CLASS_TEACHERS_ASSIGN_REQUESTED,
        {"requested_by": setup.school.admin_id, "class_id": class_1, "remove": [setup.teacher]},
    )
    await setup.school.outcome_of(detached, (topics.CLASS_TEACHERS_ASSIGNED,))

    async def refused() -> dict | None:
        again = await send_again(setup, setup.teacher, document_id)
        return again if again["type"] == topics.COMMAND_REJECTED else None

    again = await eventually(refused, timeout=30, what="the re-send refused")
    assert [r["field"] for r in again["data"]["reasons"]] == ["document_id"]


def layout_of(message: EmailMessage) -> str:
    kinds = {p.get_content_type() for p in message.iter_attachments()}
    if "text/csv" in kinds:
        return "csv"
    if "application/pdf" not in kinds or "Fiches" not in str(message["Subject"]):
        return ""
    _, pdf = attachment(message)
    return "detailed" if page_count(pdf) > 2 else "compact"


async def test_every_hand_out_is_audited_without_a_code(setup: Setup, stack: Stack):
    """The audit lists the administrator's first access, a print, an email dispatch and a
    refused request, with who asked, for whom, how and what was delivered; never a code.
    onectl audit shows it; printed documents go after their retention, the audit stays."""
    from onectl import render
    from services.credential_dispatch.retention import RetentionLoop
    from tests.support.onectl import Cli

    class_1 = setup.school.class_ids[0]
    zoe = setup.pupils["Zoé"]
    printed = await request(
        setup, setup.teacher, channel="print", layout="compact", filter={"class_id": class_1}
    )
    emailed = await request(setup, setup.teacher, channel="email", account_ids=[zoe["account_id"]])
    ines = setup.pupils["Inès"]["account_id"]
    refused = await request(setup, setup.teacher, channel="print", account_ids=[ines])
    assert refused["type"] == topics.COMMAND_REJECTED

    cli = Cli(stack)
    shown = await cli.json("audit", setup.school.school_id)
    entries = {e["request_id"] or e["purpose"]: e for e in shown["entries"]}
    first_access = entries["first_access"]
    assert first_access["requested_by"] is None and first_access["channel"] == "email"
    assert first_access["delivered"] == [
        {"account_id": setup.school.admin_id, "to": "claire.martin@example.org"}
    ]
    by_print = entries[printed["data"]["request_id"]]
    assert (by_print["purpose"], by_print["channel"], by_print["layout"]) == (
        "request",
        "print",
        "compact",
    )
    assert (by_print["requested_by"], by_print["requester_profile"]) == (setup.teacher, "teacher")
    assert zoe["account_id"] in by_print["accounts"]
    assert by_print["document_id"] == printed["data"]["document_id"]
    assert by_print["delivered"] == [{"account_id": None, "to": "marie.curie@example.org"}]
    by_mail = entries[emailed["data"]["request_id"]]
    assert (by_mail["channel"], by_mail["accounts"]) == ("email", [zoe["account_id"]])
    assert by_mail["delivered"] == [
        {"account_id": zoe["account_id"], "to": "jean.lefevre@example.org"}
    ]
    denied = entries[refused["data"]["request_id"]]
    assert denied["accounts"] == [ines] and denied["completed_at"] is None
    assert [r["field"] for r in denied["refused"]] == ["account_ids.0"]
    codes = [a["activation_code"] for a in [*setup.pupils.values(), *setup.parents.values()]]
    assert not any(code in json.dumps(shown) for code in codes)
    only_ines = await cli.json("audit", setup.school.school_id, "--account", ines)
    assert [e["request_id"] for e in only_ines["entries"]] == [refused["data"]["request_id"]]
    code, out, _ = await cli("audit", setup.school.school_id)
    assert code == 0 and "refused: account_ids.0" in out and "compact" in out
    assert render.audit_table(shown).row_count == len(shown["entries"])

    # A month on: the document goes (it holds codes), the audit stays.
    admin = await stack.admin()
    try:
        await admin.execute(
            "UPDATE credential_dispatch.documents SET created_at = now() - interval '31 days'"
        )
        pool = await asyncpg.create_pool(
            stack.database_url,
            min_size=1,
            max_size=1,
            server_settings={"search_path": "credential_dispatch"},
        )
        try:
            retention = RetentionLoop(pool, document_days=30, audit_days=400, interval_seconds=60)
            documents, entries_gone = await retention.purge_once()
        finally:
            await pool.close()
        assert documents >= 1 and entries_gone == 0
        left = await admin.fetchval("SELECT count(*) FROM credential_dispatch.documents")
        assert left == 0
    finally:
        await admin.close()
    again = await send_again(setup, setup.teacher, printed["data"]["document_id"])
    assert again["type"] == topics.COMMAND_REJECTED
