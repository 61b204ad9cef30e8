"""RQ jobs of the notices: PDFs and scheduled publications. Jobs take ids, call services."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from flask_babel import force_locale
from sqlalchemy import select

from portal import documents, jobs, uow
from portal.extensions import db, rq
from portal.models import PdfStatus, utcnow
from portal.notices import pdf, publishing, services, signals
from portal.notices.models import NoticePdf, NoticeVersion, Publication
from portal.signoffs import services as signoffs

PDF_TIMEOUT_SECONDS = 120
# From "done" too: a finished row whose file is gone is rendered again.
PDF_CLAIM = jobs.Claim(NoticePdf, waiting=(PdfStatus.QUEUED, PdfStatus.DONE),
                       running=PdfStatus.RUNNING, lease=timedelta(seconds=PDF_TIMEOUT_SECONDS),
                       max_attempts=pdf.MAX_ATTEMPTS)
SCHEDULE_INTERVAL_SECONDS = 30


def pdf_job_id(pdf_id: int) -> str:
    return f"notice-pdf-{pdf_id}"


def request_pdf(version: NoticeVersion, kind: str) -> NoticePdf:
    """The row for a version's PDF (created once; the caller commits and then queues)."""
    row = db.session.scalar(select(NoticePdf).where(NoticePdf.version_id == version.id,
                                                    NoticePdf.kind == kind))
    if row is None:
        row = NoticePdf(version_id=version.id, kind=kind, status=PdfStatus.QUEUED,
                        requested_at=utcnow())
        db.session.add(row)
        db.session.flush()
    elif row.status == PdfStatus.FAILED:  # asked for again: a new set of attempts
        row.status, row.error, row.requested_at, row.attempts = PdfStatus.QUEUED, None, utcnow(), 0
    return row


def queue_pdf(pdf_id: int) -> bool:
    return jobs.enqueue(render_pdf_job, pdf_id, job_id=pdf_job_id(pdf_id),
                        timeout=PDF_TIMEOUT_SECONDS)


@rq.job
@jobs.unit_of_work
def render_pdf_job(pdf_id: int) -> str | None:
    """Render one PDF row; a finished row whose file exists is left alone (idempotent)."""
    row = db.session.get(NoticePdf, pdf_id)
    if row is None:
        return None
    if row.status == PdfStatus.DONE and row.sha256 and (documents.stored_path(row.sha256)).exists():
        return row.sha256
    with jobs.claimed(PDF_CLAIM, pdf_id) as mine:
        return _render(pdf_id) if mine else None


def _render(pdf_id: int) -> str:
    row = db.session.get(NoticePdf, pdf_id)
    with jobs.failure_recorded(NoticePdf, pdf_id):
        version = row.version
        signoff, emergency = None, False
        if row.kind == "signed":
            publication = db.session.scalar(select(Publication).where(
                Publication.version_id == version.id).order_by(Publication.id.desc()))
            # Not published yet (a mailing of an approved version): legal's grant stamps it.
            signoff = (publication.signoff if publication
                       else signoffs.granted(services.SUBJECT, version.id))
            emergency = bool(publication and publication.emergency)
        with force_locale("zh_CN"):
            data = pdf.render_pdf(version, pdf.stamp_for(signoff, emergency))
        digest, _path = documents.store(data)
    row.status, row.sha256, row.size, row.finished_at = PdfStatus.DONE, digest, len(data), utcnow()
    uow.after_commit(signals.public_content_changed.send)
    return digest


def requeue_lost_pdfs(min_age: timedelta) -> int:
    stmt = select(NoticePdf.id).where(NoticePdf.status.in_([PdfStatus.QUEUED, PdfStatus.RUNNING]),
                                      NoticePdf.requested_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, pdf_job_id, queue_pdf)


def after_publication(notice_ids: list[int]) -> None:
    """What follows a publication: the signed PDF's row, in the same unit of work; once it is
    committed, a fresh public cache and the PDF's job."""
    from portal.notices.models import Notice

    uow.after_commit(signals.public_content_changed.send)
    for notice_id in notice_ids:
        notice = db.session.get(Notice, notice_id)
        row = request_pdf(notice.published_version, "signed")
        uow.after_commit(partial(queue_pdf, row.id))


@rq.job
@jobs.unit_of_work
def publish_due_job() -> list[int]:
    published = publishing.publish_due()
    if published:
        after_publication(published)
    return published
