"""A real SMTP server (aiosmtpd) that records what it receives, for mailer tests.

The server runs in its own thread and event loop, on 127.0.0.1 and a free port. Replies
can be scripted: a reply per recipient (``rcpt_replies``) or one for every DATA
(``data_reply``), e.g. ``"550 5.7.1 Message refused"`` or ``"451 4.3.0 Try again later"``.
"""

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tools.ports import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: Any

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    sessions: list[Any] = field(default_factory=list)  # the peer of each EHLO/HELO
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        self.sessions.append(session.peer)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.sessions.append(session.peer)
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        data = envelope.original_content or b""
        self.received.append(
            Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), data, session.peer)
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    host: str
    port: int
    handler: RecordingHandler
    controller: Controller
    running: bool = True

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def messages(self) -> list[EmailMessage]:
        return [item.message for item in self.handler.received]

    @property
    def connections(self) -> int:
        """SMTP sessions opened so far (each client connection greets once)."""
        return len(set(self.handler.sessions))

    def stop(self) -> None:
        """Stop the server, dropping every open connection."""
        if self.running:
            self.controller.stop()
            self.running = False

    def start(self) -> None:
        """Serve again on the same port."""
        if not self.running:
            self.controller = _start(self.handler, self.host, self.port)
            self.running = True

    def restart(self) -> None:
        self.stop()
        self.start()


def _start(handler: RecordingHandler, host: str, port: int) -> Controller:
    controller = Controller(handler, hostname=host, port=port, ready_timeout=10)
    controller.start()
    return controller


@contextmanager
def running_sink(host: str = "127.0.0.1", port: int | None = None) -> Iterator[SmtpSink]:
    handler = RecordingHandler()
    port = port or free_port(host)
    sink = SmtpSink(host, port, handler, _start(handler, host, port))
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A recording SMTP server for one test (import it into a test module to use it)."""
    with running_sink() as sink:
        yield sink
