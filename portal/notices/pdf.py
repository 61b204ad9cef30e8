"""The notice's PDF in the shared document pipeline (``portal.documents``): a version rendered
in Chinese, watermarked as a draft or stamped with legal's sign-off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import select

from portal import documents, uow
from portal.extensions import db
from portal.markdown import render_markdown
from portal.notices import services, signals
from portal.notices.models import NoticePdf, NoticeVersion, Publication
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus


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
    shown_locale, entry = version.in_locale(locale)
    with force_locale(shown_locale):
        html = render_template(
            "notices/pdf.html", version=version, notice=version.notice, entry=entry,
            body_html=render_markdown(entry["body"]), stamp=stamp, locale=shown_locale,
            company=current_app.config["PORTAL_COMPANY_NAME"],
        )
    return documents.write_pdf(html, f"{version.id}:{version.content_hash}")


def _render(row: NoticePdf) -> bytes:
    """The row's PDF; a signed one carries the stamp of the publication (or, not published yet
    — a mailing of an approved version — of legal's grant)."""
    version = row.version
    signoff, emergency = None, False
    if row.kind == "signed":
        publication = db.session.scalar(select(Publication).where(
            Publication.version_id == version.id).order_by(Publication.id.desc()))
        signoff = (publication.signoff if publication
                   else signoffs.granted(services.SUBJECT, version.id))
        emergency = bool(publication and publication.emergency)
    with force_locale("zh_CN"):
        data = render_pdf(version, stamp_for(signoff, emergency))
    uow.after_commit(signals.public_content_changed.send)  # the public page offers it now
    return data


PIPELINE = documents.Pipeline(
    "notice-pdf", NoticePdf, render=_render, views="notices",
    download_name=lambda row: f"{row.version.notice.ref}-v{row.version.number}.pdf")
