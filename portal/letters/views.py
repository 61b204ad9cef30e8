"""Staff pages of letters: an event's letter runs (start one, history), a run's self-polling
progress and its downloads (audited: the files hold personal data)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, send_file
from flask.typing import ResponseReturnValue
from flask_login import current_user

from portal import documents, uow
from portal.accounts import Role
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.letters import services
from portal.letters.forms import StartForm
from portal.letters.models import SOURCE_LABELS, LetterRun
from portal.models import PdfStatus
from portal.security import STAFF, access
from portal.web import refuse, wants_partial

bp = Blueprint("letters", __name__, url_prefix="/letters")
SENDERS = (Role.AGENT, Role.ADMIN)


def _page(event: Event, form: StartForm) -> str:
    return render_template("letters/index.html", event=event, form=form,
                           runs=services.runs_of(event), labels=SOURCE_LABELS)


@bp.route("/events/<int:event_id>")
@access(STAFF)
def index(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = StartForm().offer(services.choices(event))
    form.source.data = request.args.get("source")  # from a programme's or notice's page
    return _page(event, form)


@bp.route("/events/<int:event_id>/start", methods=["POST"])
@access(*SENDERS)
def start(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = StartForm().offer(services.choices(event))
    if form.validate_on_submit():
        try:
            run = services.start(event, form.source.data, with_zip=form.with_zip.data,
                                 actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            return documents.requested(run)
    event = db.get_or_404(Event, event_id)
    return _page(event, form), 422


@bp.route("/runs/<int:pdf_id>")
@access(STAFF)
def pdf_status(pdf_id: int) -> ResponseReturnValue:
    run = db.get_or_404(LetterRun, pdf_id)
    if wants_partial("letter-run"):
        return render_template("letters/_run.html", run=run)
    return render_template("letters/run.html", run=run, labels=SOURCE_LABELS,
                           history=audit.history(services.SUBJECT, run.id))


def _download(run: LetterRun, what: str, sha256: str | None, suffix: str,
              mimetype: str) -> ResponseReturnValue:
    if run.status != PdfStatus.DONE or not sha256:
        abort(404)
    path = documents.stored_path(sha256, suffix)
    if not path.exists():
        abort(404)
    services.record_download(run, what, actor=current_user)
    uow.commit()  # a GET, but who took the letters (personal data) is audited before they leave
    return send_file(path, mimetype=mimetype, as_attachment=True, etag=sha256,
                     download_name=f"letters-{run.id}{suffix}")


@bp.route("/runs/<int:pdf_id>/file")
@access(*SENDERS)
def pdf_file(pdf_id: int) -> ResponseReturnValue:
    run = db.get_or_404(LetterRun, pdf_id)
    return _download(run, "pdf", run.sha256, ".pdf", "application/pdf")


@bp.route("/runs/<int:pdf_id>/zip")
@access(*SENDERS)
def zip_file(pdf_id: int) -> ResponseReturnValue:
    run = db.get_or_404(LetterRun, pdf_id)
    return _download(run, "zip", run.zip_sha256, ".zip", "application/zip")
