"""Mails through a real SMTP server (aiosmtpd): MIME structure, failures, connection reuse."""

import asyncio
import contextlib
import itertools
import math
import time

import pytest

from services.credential_dispatch.documents import MailContent
from services.credential_dispatch.mailer import Mailer, build_message
from shared.errors import PermanentError, TransientError
from tests.support.smtp import SmtpSink, running_sink
from tools.ports import free_port

PDF = b"%PDF-1.7\n% fake but binary \xe2\xe3\xcf\xd3\n%%EOF\n"
CONTENT = MailContent(
    subject="Votre accès à ONE — École primaire du Lac",
    text="Bonjour Zoé,\n\nIdentifiant : zoe.lefevre\nCode d'activation : abcd3456\n",
    html="<p>Bonjour Zoé,</p><p>Identifiant : <b>zoe.lefevre</b></p>",
)
SENDER = "ONE <ne-pas-repondre@one.example.org>"


@pytest.fixture
def sink():
    with running_sink() as started:
        yield started


@pytest.fixture
async def mailer(sink: SmtpSink):
    mailer = Mailer(sink.host, sink.port, pool_size=2, timeout=5)
    yield mailer
    await mailer.close()


def message(to: str = "zoe.parent@example.org", number: int = 1, **overrides):
    values = {
        "sender": SENDER,
        "to": to,
        "subject": CONTENT.subject,
        "content": CONTENT,
        "attachments": [("fiche-de-connexion-zoé.pdf", PDF, "application/pdf")],
        "message_id": f"delivery-{number}@one.example.org",
    }
    return build_message(**{**values, **overrides})


async def test_message_arrives_with_its_structure_accents_and_message_id(sink, mailer):
    await mailer.send(message())

    [received] = sink.received
    assert received.rcpt_tos == ("zoe.parent@example.org",)
    assert received.mail_from == "ne-pas-repondre@one.example.org"
    mail = received.message
    assert mail.get_content_type() == "multipart/mixed"
    alternative, attachment = mail.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = alternative.iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content_charset() == "utf-8"
    assert html.get_content_type() == "text/html"
    assert text.get_content().replace("\r\n", "\n") == CONTENT.text
    assert "Bonjour Zoé" in html.get_content()
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "fiche-de-connexion-zoé.pdf"
    assert attachment.get_content() == PDF
    assert str(mail["Subject"]) == CONTENT.subject
    assert str(mail["Message-ID"]) == "<delivery-1@one.example.org>"
    assert str(mail["From"]) == SENDER and str(mail["To"]) == "zoe.parent@example.org"
    assert mail["Date"] is not None


def test_line_breaks_in_headers_are_refused():
    for field in ("subject", "to", "sender"):
        value = {
            "subject": "Bonjour\r\nBcc: evil@example.org",
            "to": "a@example.org\nBcc: evil@example.org",
            "sender": "x@example.org\r\nX-Evil: 1",
        }[field]
        with pytest.raises(PermanentError):
            message(**{field: value})


def test_bad_addresses_and_message_ids_are_refused():
    for kwargs in (
        {"to": "not an address"},
        {"to": "a@example.org, b@example.org"},
        {"message_id": "no domain"},
    ):
        with pytest.raises(PermanentError):
            message(**kwargs)
    assert str(message(message_id="<x@y>")["Message-ID"]) == "<x@y>"
    generated = message(message_id=None)["Message-ID"]
    assert generated.startswith("<") and generated.endswith("@one.example.org>")


async def test_recipient_refused_with_550_is_permanent(sink, mailer):
    sink.handler.rcpt_replies["nobody@example.org"] = "550 5.1.1 No such user here"
    with pytest.raises(PermanentError) as refused:
        await mailer.send(message(to="nobody@example.org"))
    assert "550" in refused.value.reason and "No such user" in refused.value.reason
    await mailer.send(message(number=2))  # the connection is still good
    assert len(sink.received) == 1


async def test_message_refused_with_550_is_permanent(sink, mailer):
    sink.handler.data_reply = "550 5.7.1 Message refused as spam"
    with pytest.raises(PermanentError) as refused:
        await mailer.send(message())
    assert "550 5.7.1 Message refused as spam" in refused.value.reason


async def test_451_is_transient(sink, mailer):
    sink.handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(TransientError) as deferred:
        await mailer.send(message())
    assert "451" in deferred.value.reason
    sink.handler.data_reply = None
    await mailer.send(message())
    assert len(sink.received) == 1


async def test_recipient_deferred_with_450_is_transient(sink, mailer):
    sink.handler.rcpt_replies["busy@example.org"] = "450 4.2.1 Mailbox busy"
    with pytest.raises(TransientError):
        await mailer.send(message(to="busy@example.org"))


async def test_nothing_listening_is_transient():
    mailer = Mailer("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(TransientError):
        await mailer.send(message())
    await mailer.close()


async def test_a_server_that_never_answers_is_transient():
    async def mute(reader, writer):
        await asyncio.sleep(30)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mailer = Mailer("127.0.0.1", port, timeout=0.5)
    try:
        with pytest.raises(TransientError):
            await mailer.send(message())
    finally:
        await mailer.close()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


async def test_a_server_refusing_sessions_is_transient():
    # A 554 greeting says the server will not talk to us now, nothing about the message.
    async def refuse(reader, writer):
        writer.write(b"554 5.3.2 No service for you\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    mailer = Mailer("127.0.0.1", server.sockets[0].getsockname()[1], timeout=2)
    try:
        with pytest.raises(TransientError) as refused:
            await mailer.send(message())
        assert "554" in refused.value.reason
    finally:
        await mailer.close()
        server.close()


async def test_connections_are_reused(sink, mailer):
    for number in range(5):
        await mailer.send(message(number=number))
    assert len(sink.received) == 5
    assert sink.connections == 1 == mailer.connections_opened

    await asyncio.gather(*(mailer.send(message(number=n)) for n in range(5, 15)))
    assert len(sink.received) == 15
    assert sink.connections <= 2  # pool_size


async def test_a_dropped_connection_is_replaced(sink, mailer):
    await mailer.send(message(number=1))
    sink.restart()  # the server goes away and comes back: the idle connection is dead
    await asyncio.sleep(0.2)
    await mailer.send(message(number=2))
    assert [str(m["Message-ID"]) for m in sink.messages] == [
        "<delivery-1@one.example.org>",
        "<delivery-2@one.example.org>",
    ]
    assert mailer.connections_opened == 2


async def test_a_server_that_went_away_is_transient_then_recovers(sink, mailer):
    await mailer.send(message(number=1))
    sink.stop()
    with pytest.raises(TransientError):
        await mailer.send(message(number=2))
    sink.start()
    await mailer.send(message(number=3))
    assert len(sink.received) == 2


async def test_the_body_never_reaches_the_logs(sink, mailer, capsys):
    sink.handler.data_reply = "451 4.3.0 later"
    with contextlib.suppress(TransientError):
        await mailer.send(message())
    sink.handler.data_reply = None
    await mailer.send(message())
    out = capsys.readouterr()
    assert "abcd3456" not in out.out + out.err


# --- rate ---------------------------------------------------------------------------------


SINK_SLACK = 0.01  # how late the sink's thread may note an arrival


def stamp_arrivals(sink: SmtpSink) -> list[tuple[str, float]]:
    """Make the sink note (time.monotonic()) when each MAIL command and each whole message
    arrives. The server runs in a thread of this process: same clock as the mailer's."""
    marks: list[tuple[str, float]] = []
    handle_data = sink.handler.handle_DATA

    async def handle_MAIL(server, session, envelope, address, mail_options):
        marks.append(("mail", time.monotonic()))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(server, session, envelope):
        reply = await handle_data(server, session, envelope)
        marks.append(("data", time.monotonic()))
        return reply

    # aiosmtpd looks the hooks up on the handler for each new connection.
    sink.handler.handle_MAIL = handle_MAIL  # type: ignore[attr-defined]
    sink.handler.handle_DATA = handle_DATA  # type: ignore[method-assign]
    return marks


def spans(marks: list[tuple[str, float]]) -> tuple[float, list[float]]:
    """From the first MAIL to the last message received, and the gaps between MAILs."""
    starts = sorted(t for kind, t in marks if kind == "mail")
    ends = sorted(t for kind, t in marks if kind == "data")
    return ends[-1] - starts[0], [b - a for a, b in itertools.pairwise(starts)]


async def test_a_rate_spaces_sends_over_all_connections(sink):
    marks = stamp_arrivals(sink)
    mailer = Mailer(sink.host, sink.port, pool_size=3, timeout=5, rate_per_second=20)
    try:
        await asyncio.gather(*(mailer.send(message(number=n)) for n in range(6)))
    finally:
        await mailer.close()
    assert len(sink.received) == 6 and sink.connections <= 3
    total, gaps = spans(marks)
    # Six messages at 20 per second: five intervals of 50 ms between their starts. The
    # sink notes a command when its thread gets to run: on a busy machine that can be a
    # few milliseconds late, hence the slack (unthrottled, the six take some 20 ms).
    assert total >= 0.25 - SINK_SLACK, total
    assert min(gaps) >= 0.05 - 2 * SINK_SLACK, gaps  # evenly spaced, over every connection
    assert total < 1.5, total  # and not slower than asked


async def test_without_a_rate_sends_are_not_held_back(sink):
    marks = stamp_arrivals(sink)
    mailer = Mailer(sink.host, sink.port, pool_size=3, timeout=5)
    try:
        await mailer.send(message(number=0))  # connected: what follows is sending only
        marks.clear()
        await asyncio.gather(*(mailer.send(message(number=n)) for n in range(1, 7)))
    finally:
        await mailer.close()
    assert len(sink.received) == 7
    total, _ = spans(marks)
    assert total < 0.25, total  # 20 per second would take at least 0.25 s


async def test_a_rate_leaves_idle_time_unspent(sink):
    # After a pause, the next message goes at once: no burst allowance piles up, and
    # no wait is owed either.
    marks = stamp_arrivals(sink)
    mailer = Mailer(sink.host, sink.port, pool_size=1, timeout=5, rate_per_second=4)
    try:
        await mailer.send(message(number=1))
        await asyncio.sleep(0.6)
        started = time.monotonic()
        await mailer.send(message(number=2))
        assert time.monotonic() - started < 0.2
        await mailer.send(message(number=3))
    finally:
        await mailer.close()
    _, gaps = spans(marks)
    assert gaps[1] >= 0.25 - 2 * SINK_SLACK, gaps  # the third waited its turn


def test_a_rate_must_be_positive():
    for rate in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError):
            Mailer("127.0.0.1", 25, rate_per_second=rate)
    assert Mailer("127.0.0.1", 25, rate_per_second=0.5).rate_per_second == 0.5
