"""Rendering a post-mortem to PDF with WeasyPrint, the way notice PDFs are made: system CJK
fonts, the shared print stylesheet, and a URL fetcher that fetches nothing."""

from __future__ import annotations

import hashlib

from flask import current_app, render_template

from portal.models import utcnow
from portal.notices.pdf import STYLESHEET, Stamp, refusing_fetcher
from portal.postmortems import services
from portal.postmortems.models import PostmortemPdf


def render_pdf(row: PostmortemPdf, stamp: Stamp, found: services.Facts) -> bytes:
    """The PDF bytes of the row's post-mortem, with the facts as computed now."""
    from weasyprint import CSS, HTML

    postmortem = row.postmortem
    html = render_template(
        "postmortems/pdf.html", postmortem=postmortem, event=postmortem.event,
        steps=services.steps(postmortem), facts=found, stamp=stamp, generated_at=utcnow(),
        company=current_app.config["PORTAL_COMPANY_NAME"],
    )
    fetcher = refusing_fetcher()
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    identifier = hashlib.sha256(f"postmortem:{row.id}:{row.lock_version}".encode()).digest()[:16]
    return document.write_pdf(
        stylesheets=[CSS(string=STYLESHEET.read_text(), url_fetcher=fetcher)],
        pdf_identifier=identifier, uncompressed_pdf=False,
    )
