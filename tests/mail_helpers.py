"""A scripted SMTP server and a mail worker in its own process, for the mailing tests and the
mailing benchmark."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portal.mail import devsmtp


class ScriptedHandler(devsmtp.MaildirHandler):
    """The development server, with answers chosen per recipient: ``defer`` answers 451 that
    many times before accepting; ``refuse`` always answers 550; ``before_store`` runs on each
    message (numbered from 1) before it is kept, and may make the server answer 451 instead;
    ``refuse_sender`` answers 553 to every MAIL FROM."""

    def __init__(self, directory: Path, defer: dict[str, int] | None = None,
                 refuse: set[str] | None = None,
                 before_store: Callable[[int], bool] | None = None,
                 refuse_sender: bool = False) -> None:
        super().__init__(directory)
        self.refuse_sender = refuse_sender
        self.defer = dict(defer or {})
        self.refuse = set(refuse or ())
        self.before_store = before_store
        self.received = 0
        self.rcpt_answers: list[tuple[str, str]] = []

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.refuse_sender:
            return "553 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            self.rcpt_answers.append((address, "550"))
            return "550 5.1.1 No such user here"
        if self.defer.get(address, 0) > 0:
            self.defer[address] -= 1
            self.rcpt_answers.append((address, "451"))
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        if self.before_store is not None and not self.before_store(self.received):
            return "451 4.3.0 Not stored"
        return await super().handle_DATA(server, session, envelope)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refuse_every_login(*_: Any) -> Any:
    """An aiosmtpd authenticator that answers 535 to any user and password."""
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=False, handled=False)


def start_server(directory: Path, *, require_login: bool = False,
                 **kw: Any) -> tuple[Any, ScriptedHandler, int]:
    """A scripted server; with ``require_login`` it offers AUTH (without TLS) and refuses it."""
    handler = ScriptedHandler(directory, **kw)
    port = free_port()
    options = {"authenticator": refuse_every_login, "auth_require_tls": False} \
        if require_login else {}
    return devsmtp.start(directory, "127.0.0.1", port, handler=handler, **options), handler, port


def recipients_received(directory: Path) -> Counter[str]:
    """How many messages each envelope recipient got."""
    counts: Counter[str] = Counter()
    for path in directory.glob("*.eml"):
        with path.open("rb") as fh:
            for line in fh:
                if not line.startswith(b"X-Envelope-To: "):
                    break
                counts[line.split(b": ", 1)[1].strip().decode()] += 1
    return counts


WORKER_SCRIPT = """
import json, os, sys
from portal import create_app
from portal.mailings.cli import work
app = create_app(json.loads(os.environ["AFTERCARE_TEST_CONFIG"]))
with app.app_context():
    work(app, burst=bool(int(os.environ.get("AFTERCARE_BURST", "0"))))
"""


def start_worker(config: dict[str, Any], burst: bool = False,
                 log: Path | None = None) -> subprocess.Popen[bytes]:
    """`flask mailings worker` for ``config``, in a process of its own (so it can be killed);
    its log goes to ``log`` when given."""
    env = {**os.environ, "AFTERCARE_TEST_CONFIG": json.dumps(config),
           "AFTERCARE_BURST": "1" if burst else "0"}
    output = log.open("ab") if log else None
    try:
        return subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT], env=env,
                                cwd=Path(__file__).resolve().parent.parent,
                                stdout=output, stderr=output)
    finally:
        if output:
            output.close()
