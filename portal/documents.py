"""Documents made by a job (notice and post-mortem PDFs): one pipeline from a row to a download.

A domain asks for a document by adding its row (a model with the :class:`DocumentRow` columns,
"queued"; :func:`request`) and queues it once the unit of work is committed
(:func:`queue_after_commit`, or :func:`requested` from a view). The one job,
:func:`render_document_job`, claims the row (``portal.jobs``), calls the domain's render
callback, stores the bytes content-addressed — named by their SHA-256 under ``PDF_DIR`` (the
instance folder's ``pdf/`` by default) — and marks the row done; a render that kills its worker
``MAX_ATTEMPTS`` times fails with the reason. :meth:`Pipeline.requeue_lost` queues again the
rows whose job vanished. Staff follow the row on its status partial (``_pdf_status.html``,
polling itself; :func:`status_page`) and download the file with its hash as the ETag
(:func:`download`).

Each domain declares its :class:`Pipeline` (its row model, what to render, the file's name,
the blueprint of its status and file views) and ``portal.wiring`` registers it, so every
process (the worker's too) knows it. PDFs are drawn by WeasyPrint from HTML (:func:`write_pdf`)
with the shared print stylesheet and a URL fetcher that fetches nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Response, abort, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from portal import config, jobs, metrics
from portal.extensions import db, rq
from portal.models import PdfStatus, UTCDateTime, utcnow
from portal.web import wants_partial

# Renders of one row a worker may start; one that kills its worker each time (deep recursion,
# memory) then fails with the reason instead of being retried forever.
MAX_ATTEMPTS = 3
TIMEOUT_SECONDS = 120
STYLESHEET = Path(__file__).resolve().parent.parent / "static" / "css" / "pdf.css"


# --- storage ---------------------------------------------------------------------------------

def storage_dir() -> Path:
    return config.instance_folder("pdf", "PDF_DIR")


def stored_path(sha256: str, suffix: str = ".pdf") -> Path:
    """Where the file (a PDF unless ``suffix`` says otherwise) with this SHA-256 is kept."""
    return storage_dir() / f"{sha256}{suffix}"


def store(data: bytes, suffix: str = ".pdf") -> tuple[str, Path]:
    """Content-addressed: the file is named by its SHA-256, so storing twice is harmless."""
    digest = hashlib.sha256(data).hexdigest()
    path = stored_path(digest, suffix)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(path)
    return digest, path


# --- rendering -------------------------------------------------------------------------------

class FetchRefused(ValueError):
    """Raised for every URL a document asks WeasyPrint to fetch."""


def refusing_fetcher() -> Any:
    """A WeasyPrint URL fetcher that fetches nothing: no file://, no http(s)://, no data:."""
    from weasyprint.urls import URLFetcher

    class RefusingFetcher(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            raise FetchRefused(f"PDF rendering fetches nothing; refused {url[:80]!r}")

    return RefusingFetcher()


def write_pdf(html: str, identity: str) -> bytes:
    """The PDF of ``html`` with the print stylesheet. Fonts come from the system (Noto Sans CJK
    SC, with libharfbuzz-subset0 for fast subsetting); nothing is fetched, so a document can
    never make the renderer read a local file or call out. The PDF identifier is derived from
    ``identity``: the same input gives the same bytes."""
    from weasyprint import CSS, HTML

    fetcher = refusing_fetcher()
    with metrics.pdf_render():
        document = HTML(string=html, url_fetcher=fetcher, base_url=None)
        return document.write_pdf(
            stylesheets=[CSS(string=STYLESHEET.read_text(), url_fetcher=fetcher)],
            pdf_identifier=hashlib.sha256(identity.encode()).digest()[:16],
            uncompressed_pdf=False,
        )


# --- rows ------------------------------------------------------------------------------------

class DocumentRow(jobs.Claimable):
    """The columns of a document's row (a model mixin): the row comes first, the job fills it."""

    status: Mapped[str] = mapped_column(String(12), default=PdfStatus.QUEUED)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def finished(self) -> bool:
        """Rendered or given up: no job will change it any more."""
        return self.status in (PdfStatus.DONE, PdfStatus.FAILED)


def request(model: type[DocumentRow], identity: dict[str, Any],
            **on_create: Any) -> tuple[Any, bool]:
    """The newest row of ``model`` matching ``identity``, and whether it is new: created
    (with ``on_create`` too) when there is none; a failed one is asked for again, with a new
    set of attempts. The caller queues it after the commit."""
    row = db.session.scalar(select(model).filter_by(**identity).order_by(model.id.desc())
                            .limit(1))
    if row is None:
        row = model(**identity, **on_create, status=PdfStatus.QUEUED, requested_at=utcnow())
        db.session.add(row)
        db.session.flush()
        return row, True
    if row.status == PdfStatus.FAILED:
        row.status, row.error, row.requested_at, row.attempts = (PdfStatus.QUEUED, None,
                                                                  utcnow(), 0)
    return row, False


# --- the pipeline ----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Pipeline:
    """One kind of document. ``render`` gives the row's bytes, or None when it has recorded
    (``jobs.record_failure``) why it will not; ``download_name`` names the file; ``views`` is
    the blueprint with the ``pdf_status`` and ``pdf_file`` endpoints. Documents other than
    PDFs (payout files) say their ``mimetype`` per row and the ``suffix`` they are kept
    under; ``attachment`` files are saved, never shown in the browser (a bank file is
    handed on, not read: shown inline, Chromium's XML viewer also breaks the CSP)."""

    name: str  # the job ids are "<name>-<row id>"
    model: type[DocumentRow]
    render: Callable[[Any], bytes | None]
    download_name: Callable[[Any], str]
    views: str
    mimetype: Callable[[Any], str] = lambda _row: "application/pdf"
    suffix: str = ".pdf"
    attachment: bool = False
    timeout: int = TIMEOUT_SECONDS  # the job's, and its claim's lease (a letter run: longer)

    @property
    def claim(self) -> jobs.Claim:
        # From "done" too: a finished row whose file is gone is rendered again.
        return jobs.Claim(self.model, waiting=(PdfStatus.QUEUED, PdfStatus.DONE),
                          running=PdfStatus.RUNNING, lease=timedelta(seconds=self.timeout),
                          max_attempts=MAX_ATTEMPTS)

    def job_id(self, row_id: int) -> str:
        return f"{self.name}-{row_id}"

    def queue(self, row_id: int) -> bool:
        return jobs.enqueue(render_document_job, self.name, row_id, job_id=self.job_id(row_id),
                            timeout=self.timeout)

    def requeue_lost(self, min_age: timedelta) -> int:
        """The reconciler: queue again the waiting rows whose job vanished."""
        model = self.model
        stmt = select(model.id).where(model.status.in_([PdfStatus.QUEUED, PdfStatus.RUNNING]),
                                      model.requested_at < utcnow() - min_age)
        return jobs.requeue_lost(stmt, self.job_id, self.queue)


_PIPELINES: dict[str, Pipeline] = {}


def register(*pipelines: Pipeline) -> None:
    """Make the pipelines known to :func:`render_document_job` (done by ``portal.wiring``)."""
    for pipeline in pipelines:
        _PIPELINES[pipeline.name] = pipeline


def pipeline_of(model: type) -> Pipeline:
    return next(p for p in _PIPELINES.values() if p.model is model)


def queue_after_commit(row: DocumentRow, *, unreachable: str | None = None) -> None:
    """Queue the row's job once the unit of work is committed (``jobs.enqueue_after_commit``)."""
    jobs.enqueue_after_commit(pipeline_of(type(row)).queue, row.id, unreachable=unreachable)


@rq.job
@jobs.unit_of_work
def render_document_job(pipeline_name: str, row_id: int) -> str | None:
    """Render one row; a finished row whose file exists is left alone (idempotent)."""
    pipeline = _PIPELINES[pipeline_name]
    row = db.session.get(pipeline.model, row_id)
    if row is None:
        return None
    if (row.status == PdfStatus.DONE and row.sha256
            and stored_path(row.sha256, pipeline.suffix).exists()):
        return row.sha256
    with jobs.claimed(pipeline.claim, row_id) as mine:
        return _render(pipeline, row_id) if mine else None


def _render(pipeline: Pipeline, row_id: int) -> str | None:
    row = db.session.get(pipeline.model, row_id)
    with jobs.failure_recorded(pipeline.model, row_id):
        data = pipeline.render(row)
        if data is None:
            return None
        digest, _path = store(data, pipeline.suffix)
    row.status, row.sha256, row.size, row.finished_at = PdfStatus.DONE, digest, len(data), utcnow()
    return digest


# --- the views' part -------------------------------------------------------------------------

def requested(row: DocumentRow, *others: DocumentRow) -> Response:
    """A view's answer to asking for a document (or several, such as one per language): their
    jobs queued after the commit (unless finished), then the status page of the first."""
    unreachable = _("The job queue cannot be reached. The PDF is saved as requested and will "
                    "be made when the queue is back.")
    for each in (row, *others):
        if not each.finished:
            queue_after_commit(each, unreachable=unreachable)  # said once however many
    return redirect(url_for(f"{pipeline_of(type(row)).views}.pdf_status", pdf_id=row.id))


def status_page(pipeline: Pipeline, row_id: int, page: str) -> str:
    """The row's status: the self-polling partial for htmx, else the domain's full ``page``."""
    row = db.get_or_404(pipeline.model, row_id)
    return render_template("_pdf_status.html" if wants_partial() else page, row=row,
                           pdf_views=pipeline.views)


def download(pipeline: Pipeline, row_id: int) -> Response:
    """The finished row's file for staff, with its hash as the ETag (304 on revalidation)."""
    row = db.session.get(pipeline.model, row_id)
    if row is None or row.status != PdfStatus.DONE:
        abort(404)
    return send_file(stored_path(row.sha256, pipeline.suffix), mimetype=pipeline.mimetype(row),
                     etag=row.sha256, conditional=True, as_attachment=pipeline.attachment,
                     download_name=pipeline.download_name(row))
