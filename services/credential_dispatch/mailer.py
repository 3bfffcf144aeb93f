"""Mails out through SMTP (aiosmtplib), over a small pool of reused connections.

``build_message`` assembles a MIME message (multipart/mixed: a multipart/alternative with
the text and HTML parts, then the attachments). ``Mailer.send`` hands it to the server and
speaks the pipeline's failure vocabulary: what may work later (server down, timeout,
dropped connection, 4xx reply) raises ``TransientError``; what never will (5xx reply:
recipient or message refused) raises ``PermanentError`` with the server's reply.

Message bodies carry activation codes: they are never logged. They travel encrypted
wherever the server allows: ``tls="starttls"`` (the default) upgrades every connection whose
server offers STARTTLS, ``"tls"`` speaks TLS from the first byte (port 465), ``"none"``
never encrypts. A password is never sent over a connection left in clear.
"""

import asyncio
import contextlib
import math
import re
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Literal

import aiosmtplib

from services.credential_dispatch.documents import MailContent
from shared.errors import PermanentError, PipelineError, TransientError
from shared.logs import get_logger

log = get_logger(__name__)

_MESSAGE_ID_RE = re.compile(r"^<?([^<>\s@]+@[^<>\s@]+)>?$")
_CLOSE_TIMEOUT = 5.0
TlsMode = Literal["starttls", "tls", "none"]


# --- Building ----------------------------------------------------------------------------


def _refuse_line_breaks(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\0" in value:
        # A line break in a header value would start a header of the caller's choosing.
        raise PermanentError(f"{name} contains a line break: refused")


def _check_address(name: str, value: str) -> None:
    _refuse_line_breaks(name, value)
    parsed = getaddresses([value])
    if len(parsed) != 1 or "@" not in parsed[0][1] or parsed[0][1].startswith("@"):
        raise PermanentError(f"{name} is not a single valid email address: {value!r}")
    try:
        Address(addr_spec=parsed[0][1])
    except (ValueError, IndexError) as exc:
        raise PermanentError(f"{name} is not a valid email address: {value!r}") from exc


def _safe_filename(filename: str) -> str:
    cleaned = " ".join(filename.replace("/", "-").replace("\\", "-").split())
    return cleaned or "piece-jointe"


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    content: MailContent,
    attachments: Sequence[tuple[str, bytes, str]] = (),
    message_id: str | None = None,
) -> EmailMessage:
    """A ready-to-send message.

    ``attachments`` are ``(filename, data, content type)``, e.g.
    ``("fiche-de-connexion.pdf", pdf, "application/pdf")``. ``message_id`` (``id@domain``,
    angle brackets optional) should be deterministic for one delivery, so that a resend
    carries the same Message-ID and receivers can spot it. CR or LF in the sender, the
    recipient or the subject raise ``PermanentError``.
    """
    _check_address("sender", sender)
    _check_address("recipient", to)
    _refuse_line_breaks("subject", subject)

    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    if message_id is None:
        domain = getaddresses([sender])[0][1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=domain)
    else:
        found = _MESSAGE_ID_RE.match(message_id)
        if not found:
            raise PermanentError(f"invalid Message-ID {message_id!r}: expected id@domain")
        message["Message-ID"] = f"<{found[1]}>"
    message["MIME-Version"] = "1.0"

    # Quoted-printable keeps accents intact through any relay, 8BITMIME or not.
    message.set_content(content.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(content.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for filename, data, content_type in attachments:
        maintype, _, subtype = content_type.partition("/")
        if not maintype or not subtype:
            raise ValueError(f"attachment content type {content_type!r} is not type/subtype")
        # add_attachment turns the multipart/alternative into multipart/mixed.
        if maintype == "text":  # a CSV: declared UTF-8, so that readers decode it as such
            message.add_attachment(
                data.decode("utf-8"),
                subtype=subtype,
                charset="utf-8",
                cte="base64",
                filename=_safe_filename(filename),
            )
            continue
        message.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=_safe_filename(filename)
        )
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # belongs to the top level only
    return message


# --- Sending -----------------------------------------------------------------------------


def _failure(exc: BaseException) -> PipelineError:
    """The pipeline's reading of an SMTP failure."""
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        replies = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if exc.recipients and all(r.code >= 500 for r in exc.recipients):
            return PermanentError(f"recipient refused: {replies}")
        return TransientError(f"recipient deferred: {replies}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # Wrong credentials are the operator's to fix, not the message's fault: retry later.
        return TransientError(f"SMTP authentication failed: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = {
            aiosmtplib.SMTPSenderRefused: "sender refused",
            aiosmtplib.SMTPDataError: "message refused",
        }.get(type(exc), "SMTP error")
        reason = f"{what}: {exc.code} {exc.message}"
        return PermanentError(reason) if 500 <= exc.code < 600 else TransientError(reason)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentError(f"not supported by the SMTP server: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException | ConnectionError | OSError | TimeoutError):
        return TransientError(f"SMTP server unreachable: {type(exc).__name__}: {exc}")
    return TransientError(f"SMTP failure: {type(exc).__name__}: {exc}")


def _stale(exc: BaseException) -> bool:
    """Failures that, on a reused connection, mean the server dropped it while idle."""
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421:
        return True
    return isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError)


def _refused(exc: BaseException) -> bool:
    """A reply refusing this message only: the connection itself is still good."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code != 421


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    idle_since: float


class Mailer:
    """Sends messages over at most ``pool_size`` SMTP connections, kept open between sends.

    An idle connection is reused; one the server closed meanwhile is replaced (and the
    message sent once more on a fresh connection), one idle for longer than ``max_idle``
    seconds is closed rather than trusted.

    ``rate_per_second`` caps the sending rate of the whole mailer, all connections
    together: messages start at least ``1 / rate_per_second`` seconds apart (evenly
    spaced, no burst after an idle time), which keeps a relay's per-client limits happy.
    The wait happens on an open connection, just before the message is handed over, so
    it is the server that sees the spacing. None (the default) sends as fast as the pool
    allows.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        pool_size: int = 4,
        timeout: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        tls: TlsMode = "starttls",
        tls_context: ssl.SSLContext | None = None,
        max_idle: float = 60.0,
        rate_per_second: float | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if rate_per_second is not None and not (
            math.isfinite(rate_per_second) and rate_per_second > 0
        ):
            raise ValueError("rate_per_second must be a positive number (or None: no limit)")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_idle = max_idle
        self._username = username
        self._password = password
        self._tls = tls
        self._tls_context = tls_context
        self._local_hostname = socket.gethostname() or "localhost"
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []
        self._closed = False
        self.connections_opened = 0
        self.rate_per_second = rate_per_second
        self._next_start = 0.0  # time.monotonic() before which no message may start

    async def send(self, message: EmailMessage) -> None:
        if self._closed:
            raise TransientError("the mailer is closed (worker stopping)")
        message_id = message.get("Message-ID")
        started = time.perf_counter()
        async with self._slots:
            client, reused = await self._acquire()
            try:
                await self._pace()
            except asyncio.CancelledError:
                await self._release(client)  # nothing was said on it: still usable
                raise
            try:
                try:
                    await self._deliver(client, message)
                except Exception as exc:
                    if not (reused and _stale(exc)):
                        raise
                    # The server closed the idle connection: once more on a fresh one.
                    log.info("mail.reconnect", message_id=message_id, error=type(exc).__name__)
                    await self._discard(client)
                    client = await self._connect()
                    await self._deliver(client, message)
            except asyncio.CancelledError:
                client.close()  # mid-conversation: the connection cannot be reused
                raise
            except Exception as exc:
                failure = _failure(exc)
                if _refused(exc):
                    await self._release(client)  # the envelope was reset: still usable
                else:
                    await self._discard(client)
                log.warning(
                    "mail.failed",
                    message_id=message_id,
                    failure=failure.failure.value,
                    reason=failure.reason,
                )
                if failure is exc:
                    raise
                raise failure from exc
            await self._release(client)
        log.info(
            "mail.sent",
            message_id=message_id,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._discard(connection.client)

    async def __aenter__(self) -> "Mailer":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _pace(self) -> None:
        """Wait for this message's turn: turns are ``1 / rate_per_second`` apart."""
        if self.rate_per_second is None:
            return
        now = time.monotonic()
        turn = max(now, self._next_start)
        self._next_start = turn + 1.0 / self.rate_per_second  # no await in between
        if turn > now:
            await asyncio.sleep(turn - now)

    # Connections ------------------------------------------------------------------------

    async def _acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        """An open connection, and whether it was reused."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.client.is_connected and now - connection.idle_since <= self.max_idle:
                return connection.client, True
            await self._discard(connection.client)
        return await self._connect(), False

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self._tls == "tls",
            # None: STARTTLS when the server offers it (aiosmtplib's opportunistic mode).
            start_tls=None if self._tls == "starttls" else False,
            tls_context=self._tls_context,
            local_hostname=self._local_hostname,
        )
        try:
            await client.connect()
            await self._login(client)
        except Exception as exc:
            await self._discard(client)
            # Whatever the reply (even a 5xx greeting), a server that will not talk to us
            # says nothing about this message: try again later.
            failure = _failure(exc)
            raise TransientError(f"cannot open an SMTP session: {failure.reason}") from exc
        self.connections_opened += 1
        return client

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        """Log in, on an encrypted connection only: a server that offered no STARTTLS gets
        no password (an operator sets ``ONE_SMTP_TLS=tls`` for implicit TLS)."""
        if self._username is None:
            return
        if self._password and client.get_transport_info("sslcontext") is None:
            raise TransientError(
                "the SMTP connection is not encrypted (the server offered no STARTTLS):"
                " the password is not sent"
            )
        await client.login(self._username, self._password or "")

    async def _deliver(self, client: aiosmtplib.SMTP, message: EmailMessage) -> None:
        errors, _reply = await client.send_message(message)
        if errors:
            # Some recipients refused, others accepted: the message went out, so it is
            # not retried; the refusals are reported.
            refused = "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in errors.items())
            log.warning(
                "mail.partially_refused", message_id=message.get("Message-ID"), refused=refused
            )

    async def _release(self, client: aiosmtplib.SMTP) -> None:
        if self._closed or not client.is_connected:
            await self._discard(client)
        else:
            self._idle.append(_Connection(client, time.monotonic()))

    @staticmethod
    async def _discard(client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), _CLOSE_TIMEOUT)
            except Exception:
                client.close()
        else:
            with contextlib.suppress(Exception):
                client.close()


__all__ = ["Mailer", "build_message"]
