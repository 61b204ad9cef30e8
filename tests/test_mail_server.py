"""The local SMTP server used in development and tests is a real one."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from portal.mail.devsmtp import read_messages


def test_messages_are_kept_as_eml_files(smtp_server) -> None:
    message = EmailMessage()
    message["From"] = "noreply@aftercare.example"
    message["To"] = "kunde@example.com"
    message["Subject"] = "系统故障通知"
    message.set_content("出金申请请致电 400-800-1234。")
    with smtplib.SMTP(smtp_server["host"], smtp_server["port"], timeout=10) as smtp:
        refused = smtp.send_message(message, to_addrs=["kunde@example.com", "cc@example.com"])
    assert refused == {}
    [kept] = read_messages(smtp_server["dir"])
    assert kept["Subject"] == "系统故障通知"
    assert kept.get_all("X-Envelope-To") == ["kunde@example.com", "cc@example.com"]
    assert "400-800-1234" in kept.get_content()
