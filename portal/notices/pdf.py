"""Rendering a notice version to PDF with WeasyPrint.

Fonts come from the system (Noto Sans CJK SC, with libharfbuzz-subset0 for fast subsetting).
Nothing is fetched: the stylesheet is passed as a string and the URL fetcher refuses every
URL, so a notice body can never make the renderer read a local file or call out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale

from portal.markdown import render_markdown
from portal.notices.models import NoticeVersion
from portal.signoffs.models import SignoffRequest, SignoffStatus

# Renders of one PDF row a worker may start; one that kills its worker each time (deep
# recursion, memory) then fails with the reason instead of being retried forever.
MAX_ATTEMPTS = 3
STYLESHEET = Path(__file__).resolve().parent.parent.parent / "static" / "css" / "pdf.css"


class FetchRefused(ValueError):
    """Raised for every URL a document asks WeasyPrint to fetch."""


def refusing_fetcher() -> Any:
    """A WeasyPrint URL fetcher that fetches nothing: no file://, no http(s)://, no data:."""
    from weasyprint.urls import URLFetcher

    class RefusingFetcher(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            raise FetchRefused(f"PDF rendering fetches nothing; refused {url[:80]!r}")

    return RefusingFetcher()


@dataclass
class Stamp:
    """What the PDF says about its approval."""

    approved: bool
    by: str | None = None
    at: datetime | None = None
    hash_prefix: str | None = None
    emergency: bool = False


def stamp_for(signoff: SignoffRequest | None, emergency: bool = False) -> Stamp:
    if signoff is not None and signoff.status == SignoffStatus.APPROVED and not signoff.retroactive:
        return Stamp(True, signoff.decided_by.name if signoff.decided_by else None,
                     signoff.decided_at, signoff.snapshot_hash[:12])
    return Stamp(False, emergency=emergency)


def render_pdf(version: NoticeVersion, stamp: Stamp, locale: str = "zh_CN") -> bytes:
    """The PDF bytes; identical input gives identical bytes (fixed dates and identifier)."""
    from weasyprint import CSS, HTML

    shown_locale, entry = version.in_locale(locale)
    with force_locale(shown_locale):
        html = render_template(
            "notices/pdf.html", version=version, notice=version.notice, entry=entry,
            body_html=render_markdown(entry["body"]), stamp=stamp, locale=shown_locale,
            company=current_app.config["PORTAL_COMPANY_NAME"],
        )
    fetcher = refusing_fetcher()
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    identifier = hashlib.sha256(f"{version.id}:{version.content_hash}".encode()).digest()[:16]
    return document.write_pdf(
        stylesheets=[CSS(string=STYLESHEET.read_text(), url_fetcher=fetcher)],
        pdf_identifier=identifier, uncompressed_pdf=False,
    )
