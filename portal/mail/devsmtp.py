"""A real SMTP server (aiosmtpd) that keeps every message it receives as an .eml file.

Development runs it beside the portal; tests start it in-process. Nothing leaves the
machine, and each message can be opened with any mail reader.

    python -m portal.mail.devsmtp --port 8025 --dir instance/mail
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    """Writes each accepted message, envelope recipients included, to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        header = "".join(f"X-Envelope-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(header.encode() + envelope.original_content)
        tmp.rename(self.directory / name)  # readers never see half a message
        return "250 Message accepted for delivery"


def read_messages(directory: Path) -> list[EmailMessage]:
    """The messages the server kept, oldest first."""
    return [
        message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted(directory.glob("*.eml"))
    ]


def start(directory: Path, host: str = "127.0.0.1", port: int = 8025,
          handler: MaildirHandler | None = None, **options: Any) -> Controller:
    """Serve in a thread; ``options`` go to aiosmtpd (e.g. an ``authenticator``)."""
    controller = Controller(handler or MaildirHandler(directory), hostname=host, port=port,
                            **options)
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=Path("instance/mail"))
    args = parser.parse_args()
    controller = start(args.dir, args.host, args.port)
    print(f"SMTP server on {args.host}:{args.port}, keeping messages in {args.dir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
