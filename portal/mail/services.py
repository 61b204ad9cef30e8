"""Sending one e-mail over SMTP with the configured server (the local aiosmtpd in development
and tests)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app


def build_message(to: str, subject: str, text: str, html: str | None = None,
                  headers: dict[str, str] | None = None) -> EmailMessage:
    cfg = current_app.config
    message = EmailMessage()
    message["From"] = cfg["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=cfg["PORTAL_BASE_URL"].split("//")[-1].split(":")[0]
                                       or "aftercare.local")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def send(message: EmailMessage) -> None:
    """Deliver one message; SMTP errors propagate (4xx temporary, 5xx permanent)."""
    cfg = current_app.config
    with smtplib.SMTP(cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=30) as smtp:
        if cfg["SMTP_STARTTLS"]:
            smtp.starttls()
        if cfg["SMTP_USERNAME"]:
            smtp.login(cfg["SMTP_USERNAME"], cfg["SMTP_PASSWORD"])
        smtp.send_message(message)
