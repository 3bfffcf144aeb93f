"""The mailer and TLS, against real aiosmtpd servers with a certificate made for the test:
STARTTLS taken whenever the server offers it, implicit TLS when asked, and a password never
sent over a connection left in clear."""

import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from services.credential_dispatch.documents import MailContent
from services.credential_dispatch.mailer import Mailer, TlsMode, build_message
from services.credential_dispatch.settings import CredentialDispatchSettings
from shared.errors import TransientError
from tests.support.smtp import RecordingHandler
from tools.ports import free_port

USER, PASSWORD = "one", "s3cret-pass"


@dataclass
class Server:
    port: int
    handler: "TlsRecorder"
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, over TLS)


def encrypted(server: Any, session: Any) -> bool:
    """Upgraded by STARTTLS, or speaking TLS from the start (implicit TLS)."""
    return session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None


class TlsRecorder(RecordingHandler):
    """Records, for each message, whether its session was encrypted."""

    def __init__(self) -> None:
        super().__init__()
        self.encrypted: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.encrypted.append(encrypted(server, session))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.fixture
def serve(certificate: tuple[Path, Path]) -> Iterator[Any]:
    controllers: list[Controller] = []

    def start(*, starttls: bool, implicit: bool = False) -> Server:
        handler = TlsRecorder()
        served = Server(free_port(), handler)

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):
            assert isinstance(auth, LoginPassword)
            served.logins.append((auth.login.decode(), encrypted(server, session)))
            ok = (auth.login.decode(), auth.password.decode()) == (USER, PASSWORD)
            return AuthResult(success=ok)

        options: dict[str, Any] = {"authenticator": authenticate, "auth_require_tls": False}
        if starttls:
            options["tls_context"] = server_context(certificate)
        if implicit:
            options["ssl_context"] = server_context(certificate)
        controller = Controller(
            handler, hostname="127.0.0.1", port=served.port, ready_timeout=10, **options
        )
        if implicit:  # the readiness probe must speak TLS as a client would

            def trigger() -> None:
                client = ssl.create_default_context(cafile=str(certificate[0]))
                with (
                    socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw,
                    client.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped,
                ):
                    wrapped.recv(1024)

            controller._trigger_server = trigger  # type: ignore[method-assign]
        controller.start()
        controllers.append(controller)
        return served

    yield start
    for controller in controllers:
        controller.stop()


def mailer(
    served: Server, certificate: tuple[Path, Path], tls: TlsMode, *, password: str | None = None
) -> Mailer:
    settings = CredentialDispatchSettings(smtp_ca_file=certificate[0], smtp_tls=tls)
    return Mailer(
        "127.0.0.1",
        served.port,
        tls=settings.smtp_tls,
        tls_context=settings.smtp_tls_context(),
        username=USER if password else None,
        password=password,
    )


def message() -> Any:
    return build_message(
        sender="ONE <ne-pas-repondre@example.org>",
        to="parent@example.org",
        subject="Votre accès",
        content=MailContent(
            subject="Votre accès", text="code abcd3456", html="<p>code abcd3456</p>"
        ),
    )


async def test_starttls_is_taken_whenever_the_server_offers_it(serve: Any, certificate) -> None:
    served = serve(starttls=True)
    async with mailer(served, certificate, "starttls", password=PASSWORD) as sending:
        await sending.send(message())
    assert served.handler.encrypted == [True]
    assert served.logins == [(USER, True)]  # the password went over TLS


async def test_a_password_is_never_sent_in_clear(serve: Any, certificate) -> None:
    served = serve(starttls=False)
    async with mailer(served, certificate, "starttls", password=PASSWORD) as sending:
        with pytest.raises(TransientError, match="not encrypted"):
            await sending.send(message())
    assert served.logins == [] and served.handler.received == []
    # Without a password there is nothing to protect but the message: it goes in clear.
    async with mailer(served, certificate, "starttls") as sending:
        await sending.send(message())
    assert served.handler.encrypted == [False]


async def test_implicit_tls_and_none(serve: Any, certificate) -> None:
    implicit = serve(starttls=False, implicit=True)
    async with mailer(implicit, certificate, "tls", password=PASSWORD) as sending:
        await sending.send(message())
    assert implicit.handler.encrypted == [True] and implicit.logins == [(USER, True)]

    offered = serve(starttls=True)
    async with mailer(offered, certificate, "none") as sending:
        await sending.send(message())
    assert offered.handler.encrypted == [False]  # only when an operator set it


def test_the_default_is_starttls() -> None:
    assert CredentialDispatchSettings().smtp_tls == "starttls"
    assert CredentialDispatchSettings().smtp_tls_context() is None  # the system's trust
