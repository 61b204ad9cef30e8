"""Finance's pages for a batch's bank results: the upload, its progress and outcome, and the
reconciliation of a batch and of a programme."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from portal import jobs
from portal.accounts import Role
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import Message
from portal.payouts import reconciliation, result_tasks, results
from portal.payouts.models import BATCH_STATUS_LABELS, PayoutBatch, PayoutResult
from portal.payouts.result_forms import ResultUploadForm
from portal.programmes.models import Programme
from portal.security import access
from portal.web import roll_back, wants_partial

bp = Blueprint("payout_results", __name__, url_prefix="/payouts")
FINANCE = (Role.FINANCE, Role.ADMIN)
RESULT_STATUS_LABELS = {results.ResultStatus.UPLOADED: _l("waiting to be applied"),
                        results.ResultStatus.APPLYING: _l("being applied"),
                        results.ResultStatus.DONE: _l("applied"),
                        results.ResultStatus.FAILED: _l("refused whole")}
FINDING_LABELS = {
    "paid_no_payment": _l("paid by the bank, but the case has no payment"),
    "payment_differs": _l("the case payment differs from the line"),
    "pending_but_paid": _l("pending in the batch, but the case was paid"),
    "rejected_but_paid": _l("rejected by the bank, but a payment names this line"),
    "member_payment_differs": _l("the member's payment differs from the member's amount"),
}
BUCKET_LABELS = {"paid": _l("paid"), "in_batch": _l("in a batch"),
                 "awaiting": _l("awaiting payment"), "unclaimed": _l("held (unclaimed)"),
                 "written_off": _l("written off (low value)"), "left": _l("left the programme")}


@bp.context_processor
def _labels() -> dict[str, object]:
    return {"result_status_labels": RESULT_STATUS_LABELS, "finding_labels": FINDING_LABELS,
            "bucket_labels": BUCKET_LABELS}


def _problem_message(problem: dict) -> Message:
    return Message.from_json(problem["message"])


bp.add_app_template_filter(_problem_message, "payout_problem")


@bp.route("/batches/<int:batch_id>/results", methods=["GET", "POST"])
@access(*FINANCE)
def upload(batch_id: int) -> ResponseReturnValue:
    """Upload the bank's result file of a released batch; the earlier ones are listed."""
    batch = db.get_or_404(PayoutBatch, batch_id)
    form = ResultUploadForm()
    if form.validate_on_submit():
        try:
            result = results.start_result(batch, form.file.data.stream,
                                          form.file.data.filename or "result",
                                          actor=current_user)
        except RuleViolation as err:
            roll_back(err)
            form.file.errors = [*form.file.errors, err.message]
        else:
            jobs.enqueue_after_commit(
                result_tasks.queue_result, result.id,
                unreachable=_("The job queue cannot be reached. The file is saved and will be "
                              "applied when the queue is back."))
            return redirect(url_for("payout_results.result", result_id=result.id))
    earlier = db.session.scalars(select(PayoutResult).where(PayoutResult.batch_id == batch.id)
                                 .order_by(PayoutResult.id.desc())).all()
    return render_template("payouts/result_upload.html", batch=batch, form=form,
                           earlier=earlier, status_labels=BATCH_STATUS_LABELS), (
        422 if form.errors else 200)


@bp.route("/results/<int:result_id>")
@access(*FINANCE)
def result(result_id: int) -> ResponseReturnValue:
    """A result file's progress (polled while the job works) and outcome."""
    row = db.get_or_404(PayoutResult, result_id)
    context = {"result": row, "failure": results.failure(row), "busy": row.status in
               results.BUSY}
    if wants_partial("result-status"):
        return render_template("payouts/_result_status.html", **context)
    return render_template("payouts/result.html", batch=row.batch,
                           history=audit.history("payout_result", row.id), **context)


@bp.route("/batches/<int:batch_id>/reconciliation")
@access(*FINANCE)
def batch_reconciliation(batch_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(PayoutBatch, batch_id)
    return render_template("payouts/reconciliation.html", batch=batch,
                           recon=reconciliation.for_batch(batch),
                           status_labels=BATCH_STATUS_LABELS)


@bp.route("/programmes/<int:programme_id>/reconciliation")
@access(*FINANCE)
def programme_reconciliation(programme_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    batches = db.session.scalars(select(PayoutBatch).where(
        PayoutBatch.programme_id == programme.id).order_by(PayoutBatch.id)).all()
    return render_template("payouts/programme_reconciliation.html", programme=programme,
                           programme_name=programme.name_in(str(get_locale())),
                           recon=reconciliation.for_programme(programme), batches=batches,
                           buckets=reconciliation.BUCKETS, status_labels=BATCH_STATUS_LABELS)
