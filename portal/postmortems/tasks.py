"""RQ jobs of the post-mortems: the PDF. Jobs take row ids; the row is the truth."""

from __future__ import annotations

from datetime import timedelta

from flask_babel import force_locale
from sqlalchemy import select

from portal import documents, jobs
from portal.extensions import db, rq
from portal.models import PdfStatus, utcnow
from portal.notices import pdf as notice_pdf
from portal.postmortems import pdf, services
from portal.postmortems.models import PostmortemPdf
from portal.signoffs import services as signoffs

PDF_TIMEOUT_SECONDS = 120
PDF_CLAIM = jobs.Claim(PostmortemPdf, waiting=(PdfStatus.QUEUED, PdfStatus.DONE),
                       running=PdfStatus.RUNNING, lease=timedelta(seconds=PDF_TIMEOUT_SECONDS),
                       max_attempts=notice_pdf.MAX_ATTEMPTS)


def pdf_job_id(pdf_id: int) -> str:
    return f"postmortem-pdf-{pdf_id}"


def queue_pdf(pdf_id: int) -> bool:
    return jobs.enqueue(render_postmortem_pdf_job, pdf_id, job_id=pdf_job_id(pdf_id),
                        timeout=PDF_TIMEOUT_SECONDS)


@rq.job
@jobs.unit_of_work
def render_postmortem_pdf_job(pdf_id: int) -> str | None:
    """Render one PDF row; a finished row whose file exists is left alone (idempotent)."""
    row = db.session.get(PostmortemPdf, pdf_id)
    if row is None:
        return None
    if row.status == PdfStatus.DONE and row.sha256 and (
            documents.stored_path(row.sha256)).exists():
        return row.sha256
    with jobs.claimed(PDF_CLAIM, pdf_id) as mine:
        return _render(pdf_id) if mine else None


def _render(pdf_id: int) -> str | None:
    row = db.session.get(PostmortemPdf, pdf_id)
    postmortem = row.postmortem
    if postmortem.lock_version != row.lock_version:
        # The text asked for no longer exists; a PDF of newer text would mislabel it.
        jobs.record_failure(PostmortemPdf, pdf_id, "The post-mortem was edited after the PDF "
                            "was requested; request a new PDF.")
        return None
    with jobs.failure_recorded(PostmortemPdf, pdf_id):
        found = services.facts(postmortem.event)
        signoff = row.signoff
        # The stamp only if legal's grant still covers exactly this text and these facts.
        if signoff is not None and not signoffs.check_binding(
                signoff, services.snapshot(postmortem, found)):
            signoff = None
        with force_locale("zh_CN"):
            data = pdf.render_pdf(row, notice_pdf.stamp_for(signoff), found)
        digest, _path = documents.store(data)
    row = db.session.get(PostmortemPdf, pdf_id)
    row.status, row.sha256, row.size, row.finished_at = PdfStatus.DONE, digest, len(data), utcnow()
    return digest


def requeue_lost_postmortem_pdfs(min_age: timedelta) -> int:
    stmt = select(PostmortemPdf.id).where(PostmortemPdf.status.in_([PdfStatus.QUEUED,
                                                                    PdfStatus.RUNNING]),
                                          PostmortemPdf.requested_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, pdf_job_id, queue_pdf)
