"""Builders shared by the notice tests."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from portal.accounts import Role, User
from portal.events import services as events
from portal.events.models import Event
from portal.notices import publishing
from portal.notices import services as notices
from portal.notices.models import Notice
from portal.signoffs import services as signoffs

ZH = {"title": "CRM 系统故障通知", "body": "出金申请请致电 **400-800-1234**。"}
EN = {"title": "CRM outage", "body": "For withdrawals call **400-800-1234**."}


def make_event(severity: str = "sev1", title: str = "CRM 系统故障") -> Event:
    return events.create_event(title=title, kind="incident", severity=severity, cause="system")


def make_notice(users: dict[Role, User], event: Event | None = None, **kw) -> Notice:
    return notices.create_notice(event or make_event(), audience=kw.pop("audience", "public"),
                                 content=kw.pop("content", {"zh_CN": ZH, "en": EN}),
                                 actor=users[Role.AGENT], **kw)


def approve(notice: Notice, users: dict[Role, User]) -> None:
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])


def publish(notice: Notice, users: dict[Role, User]) -> None:
    approve(notice, users)
    publishing.publish(notice, actor=users[Role.AGENT])


def marked(page: str, tag: str) -> list[str]:
    """The texts a diff page marks with ``<del>`` or ``<ins>``, without the words announced to
    screen readers (unescaped)."""
    hidden = re.compile(r'<span class="visually-hidden">.*?</span>', re.DOTALL)
    return [html.unescape(hidden.sub("", inner))
            for inner in re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)]


def pdf_text_and_fonts(path: Path) -> tuple[str, str]:
    """What pdftotext reads from a PDF, and the pdffonts table (embedded fonts)."""
    for tool in ("pdftotext", "pdffonts"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make test`, which installs poppler-utils")
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True,
                           check=True).stdout
    return text, fonts
