"""The notice's PDFs in the shared document pipeline (``portal.documents``): a version rendered
for the readers of one language, watermarked as a draft or stamped with legal's sign-off.

A row's language (``NoticePdf.locale``) gives the PDF's words (stamp, header, watermark) and
its text; a version without text in that language gets the other language's text under a note
saying so, as the public page falls back. A stamped PDF carries only what legal approved: its
title and body come from the sign-off's snapshot, after checking that the snapshot still hashes
to the signed hash and holds exactly the version's text in each language."""

from __future__ import annotations

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import select

from portal import documents, jobs, uow, verification
from portal.extensions import db
from portal.markdown import render_markdown
from portal.notices import services, signals
from portal.notices.models import NoticePdf, NoticeVersion, Publication
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from portal.signoffs.stamp import Stamp, stamp_for


def version_entry(version: NoticeVersion, locale: str) -> tuple[str, dict[str, str]]:
    """The language shown to ``locale``'s readers, with the title and sanitised body HTML."""
    shown_locale, entry = version.in_locale(locale)
    return shown_locale, {"title": entry["title"], "body_html": render_markdown(entry["body"])}


def approval_mismatch(signoff: SignoffRequest, version: NoticeVersion) -> str | None:
    """Why the grant does not cover this version's text exactly (None when it does): the
    stored snapshot must hash to what legal signed, and hold the version's text in each of its
    languages, no more and no fewer."""
    if signoffs.snapshot_hash(signoff.snapshot) != signoff.snapshot_hash:
        return "the approved snapshot no longer matches its signed hash"
    approved = (signoff.snapshot or {}).get("locales") or {}
    if set(approved) != set(version.content()):
        return "the languages approved differ from the version's"
    for locale in approved:
        if approved[locale] != version_entry(version, locale)[1]:
            return f"the {locale} text differs from what legal approved"
    return None


def render_pdf(version: NoticeVersion, stamp: Stamp, locale: str = "zh_CN",
               approved: dict[str, dict[str, str]] | None = None,
               code: str | None = None) -> bytes:
    """The PDF bytes for ``locale``'s readers; ``approved`` (the snapshot's text per language)
    is what goes in when given, and ``code`` (the publication's verification code) below it,
    with a QR code to its check. Identical input gives identical bytes."""
    shown_locale, entry = version_entry(version, locale)
    if approved is not None:
        entry = approved[shown_locale]
    url = verification.verify_url(code) if code else None
    with force_locale(locale):
        html = render_template(
            "notices/pdf.html", version=version, notice=version.notice, entry=entry,
            stamp=stamp, locale=locale, shown_locale=shown_locale,
            company=current_app.config["PORTAL_COMPANY_NAME"],
            verification_code=verification.grouped(code), verify_url=url,
            verification_qr=verification.qr_svg(url) if url else "",
        )
    return documents.write_pdf(html, f"{version.id}:{version.content_hash}:{locale}")


def _render(row: NoticePdf) -> bytes | None:
    """The row's PDF; a signed one carries the stamp of the publication (or, not published yet
    — a mailing of an approved version — of legal's grant) and legal's approved text."""
    version = row.version
    signoff, emergency, code = None, False, None
    if row.kind == "signed":
        publication = db.session.scalar(select(Publication).where(
            Publication.version_id == version.id).order_by(Publication.id.desc()))
        signoff = (publication.signoff if publication
                   else signoffs.granted(services.SUBJECT, version.id))
        emergency = bool(publication and publication.emergency)
        code = publication.verification_code if publication else None
    stamp = stamp_for(signoff, emergency)
    approved = None
    if stamp.approved:
        problem = approval_mismatch(signoff, version)
        if problem:
            jobs.record_failure(NoticePdf, row.id, f"Not rendered: {problem}.")
            return None
        approved = signoff.snapshot["locales"]
    data = render_pdf(version, stamp, row.locale, approved, code)
    uow.after_commit(signals.public_content_changed.send)  # the public page offers it now
    return data


PIPELINE = documents.Pipeline(
    "notice-pdf", NoticePdf, render=_render, views="notices",
    download_name=lambda row: f"{row.version.notice.ref}-v{row.version.number}"
                              f"-{row.locale}.pdf")
