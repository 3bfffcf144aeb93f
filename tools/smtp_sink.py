"""A local SMTP server that keeps every mail it receives as files.

``out/mail/<n>-<to>.eml`` holds each message; its attachments are written beside it in
``out/pdf/``. It stands in for a real mail server in the demo and in ``make run``.
"""

import argparse
import asyncio
import email
import email.policy
import re
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class FileSink:
    def __init__(self, folder: Path) -> None:
        self.mail_dir = folder / "mail"
        self.pdf_dir = folder / "pdf"
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.pdf_dir.mkdir(parents=True, exist_ok=True)
        self.received: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.received.append(message)
        number = len(self.received)
        to = _safe(",".join(envelope.rcpt_tos))
        (self.mail_dir / f"{number:04d}-{to}.eml").write_bytes(raw)
        for part in message.iter_attachments():
            name = _safe(part.get_filename() or f"{number:04d}.bin")
            payload: Any = part.get_content()  # str for a text/* attachment (CSV)
            data = payload.encode() if isinstance(payload, str) else payload
            (self.pdf_dir / name).write_bytes(data)
        return "250 Message accepted for delivery"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)[:120]


def start(folder: Path, host: str = "127.0.0.1", port: int = 1025) -> tuple[Controller, FileSink]:
    sink = FileSink(folder)
    controller = Controller(sink, hostname=host, port=port)
    controller.start()
    return controller, sink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=Path("out"))
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args()
    controller, _ = start(args.folder, port=args.port)
    print(f"SMTP sink on 127.0.0.1:{args.port}, writing to {args.folder}/", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
