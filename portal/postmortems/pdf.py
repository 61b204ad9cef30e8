"""The post-mortem's PDF in the shared document pipeline (``portal.documents``): the six steps
and the event's facts as computed when it is rendered, stamped if legal's grant still covers
them."""

from __future__ import annotations

from flask import current_app, render_template
from flask_babel import force_locale

from portal import documents, jobs
from portal.models import utcnow
from portal.postmortems import services
from portal.postmortems.models import PostmortemPdf
from portal.signoffs import services as signoffs
from portal.signoffs.stamp import Stamp, stamp_for


def render_pdf(row: PostmortemPdf, stamp: Stamp, found: services.Facts) -> bytes:
    """The PDF bytes of the row's post-mortem, with the facts as computed now."""
    postmortem = row.postmortem
    html = render_template(
        "postmortems/pdf.html", postmortem=postmortem, event=postmortem.event,
        steps=services.steps(postmortem), facts=found, stamp=stamp, generated_at=utcnow(),
        company=current_app.config["PORTAL_COMPANY_NAME"],
    )
    return documents.write_pdf(html, f"postmortem:{row.id}:{row.lock_version}")


def _render(row: PostmortemPdf) -> bytes | None:
    postmortem = row.postmortem
    if postmortem.lock_version != row.lock_version:
        # The text asked for no longer exists; a PDF of newer text would mislabel it.
        jobs.record_failure(PostmortemPdf, row.id, "The post-mortem was edited after the PDF "
                            "was requested; request a new PDF.")
        return None
    found = services.facts(postmortem.event)
    signoff = row.signoff
    # The stamp only if legal's grant still covers exactly this text and these facts.
    if signoff is not None and not signoffs.check_binding(
            signoff, services.snapshot(postmortem, found)):
        signoff = None
    with force_locale("zh_CN"):
        return render_pdf(row, stamp_for(signoff), found)


PIPELINE = documents.Pipeline(
    "postmortem-pdf", PostmortemPdf, render=_render, views="postmortems",
    download_name=lambda row: f"postmortem-event-{row.postmortem.event_id}"
                              f"-v{row.lock_version}.pdf")
