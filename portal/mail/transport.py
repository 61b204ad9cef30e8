"""The one SMTP client of the portal and its one rulebook, for mailings and case replies.

A failure is judged on two axes:

- **scope**: ``RECIPIENT`` when only this message or address is at fault (a refused recipient,
  a rejected message, a message that cannot be built, a connection that broke mid-message);
  ``CONNECTION`` when no message can get through (the server cannot be reached, refuses our
  login or our sender address, or closes the service): counting it against each recipient
  would fail them all for one bad setting;
- **temporary**: 4xx answers and broken or refused connections may succeed later; 5xx answers
  and messages that cannot be built never will.
"""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage, Message
from email.utils import formataddr, formatdate
from types import TracebackType

from flask import current_app

RECIPIENT, CONNECTION = "recipient", "connection"
# CR, LF and the other control characters end a header line or break it; a display name (a
# customer's name, from an import) never needs them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class Failure:
    scope: str
    temporary: bool
    reason: str


class ServerUnavailable(Exception):
    """Opening the connection failed (connect, TLS or login): nothing can be sent."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _answer(code: int, text: bytes | str) -> str:
    return f"{code} {_text(text)}"


def classify(exc: BaseException) -> Failure:
    """Where the blame lies for ``exc`` and whether trying again can help."""
    if isinstance(exc, ServerUnavailable):
        cause = exc.cause
        if isinstance(cause, smtplib.SMTPResponseException):
            return Failure(CONNECTION, 400 <= cause.smtp_code < 500,
                           _answer(cause.smtp_code, cause.smtp_error))
        return Failure(CONNECTION, True, f"{type(cause).__name__}: {cause}")
    if isinstance(exc, smtplib.SMTPSenderRefused):  # our MAIL FROM: a setting, for every message
        return Failure(CONNECTION, 400 <= exc.smtp_code < 500,
                       _answer(exc.smtp_code, exc.smtp_error))
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return Failure(RECIPIENT, 400 <= code < 500, _answer(code, text))
    if isinstance(exc, smtplib.SMTPResponseException):
        scope = CONNECTION if exc.smtp_code == 421 else RECIPIENT  # 421: service closing
        return Failure(scope, 400 <= exc.smtp_code < 500, _answer(exc.smtp_code, exc.smtp_error))
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # e.g. SMTPUTF8 address, no support
        return Failure(RECIPIENT, False, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
        return Failure(RECIPIENT, True, f"{type(exc).__name__}: {exc}")
    return Failure(RECIPIENT, False, f"cannot build or send this message: "
                                     f"{type(exc).__name__}: {exc}")


def backoff(attempts: int) -> timedelta:
    """Wait before retrying a temporary failure: base, 4×base, 16×base …"""
    base = float(current_app.config["MAILING_RETRY_BASE_SECONDS"])
    return timedelta(seconds=base * 4 ** max(attempts - 1, 0))


def header_name(name: str) -> str:
    """A display name safe in a header: control characters (newlines) become one space."""
    return " ".join(_CONTROL.sub(" ", name).split())


def address(name: str, email: str) -> str:
    """``name <email>`` for a To: header; an address with a control character (a newline
    would start a header of its own) is refused: it names nobody."""
    if _CONTROL.search(email):
        raise ValueError("the e-mail address contains a line break or control character")
    return formataddr((header_name(name), email), charset="utf-8")


def message_domain() -> str:
    return current_app.config["PORTAL_BASE_URL"].split("//")[-1].split(":")[0].split("/")[0] \
        or "aftercare.local"


def build_message(to: str, subject: str, text: str, *, msg_id: str,
                  headers: dict[str, str] | None = None) -> EmailMessage:
    """A plain-text message from the portal (case replies)."""
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = address("", to)
    message["Subject"] = header_name(subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = msg_id
    for name, value in (headers or {}).items():
        message[name] = header_name(value)
    message.set_content(text)
    return message


class Client:
    """One SMTP connection with the configured settings, opened on first use and again after
    it broke. Use it as a context manager; it closes on exit."""

    def __init__(self) -> None:
        self.smtp: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        cfg = current_app.config
        smtp = smtplib.SMTP(timeout=30)
        try:
            smtp.connect(cfg["SMTP_HOST"], cfg["SMTP_PORT"])
            if cfg["SMTP_STARTTLS"]:
                smtp.starttls()
            if cfg["SMTP_USERNAME"]:
                smtp.login(cfg["SMTP_USERNAME"], cfg["SMTP_PASSWORD"])
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise ServerUnavailable(exc) from exc
        return smtp

    def send(self, message: Message, sender: str, recipients: list[str]) -> None:
        """Hand one message to the server; raises what :func:`classify` judges."""
        if self.smtp is None:
            self.smtp = self._open()
        try:
            self.smtp.send_message(message, sender, recipients)  # CRLF, SMTPUTF8 if needed
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                smtplib.SMTPDataError):
            raise  # smtplib reset the transaction; the connection stays usable
        except BaseException:
            self.close()  # the transaction is in an unknown state: start afresh next time
            raise

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
