"""The staff audit page, its CSV export, chain verification and per-subject history."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal import exports, jobs
from portal.accounts import Role, User
from portal.audit import checkpoints, services, tasks
from portal.audit.chain import public_key_hex
from portal.audit.findings import describe
from portal.audit.forms import AuditFilterForm
from portal.audit.models import AuditVerification, VerificationStatus
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.security import STAFF, access
from portal.web import database_int, wants_partial

bp = Blueprint("audit", __name__, url_prefix="/audit")
bp.add_app_template_global(VerificationStatus, "VerificationStatus")
bp.add_app_template_global(describe, "describe_finding")


def _filter_form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    users = db.session.scalars(select(User).order_by(User.email)).all()
    form.actor.choices = [("", _("Anyone"))] + [(str(u.id), u.email) for u in users]
    form.action.choices = [("", _("Any action")),
                           (services.REFUSED_ACTIONS, _("Refused attempts (*.refused)"))] + [
        (a, a) for a in services.known_actions()]
    form.subject_type.choices = [("", _("Any subject"))] + [
        (s, s) for s in services.known_subject_types()
    ]
    return form


@bp.route("/")
@access(STAFF)
def index() -> ResponseReturnValue:
    form = _filter_form()
    flt = form.to_filter() if form.validate() else services.AuditFilter()
    page = db.paginate(
        services.entries(flt), page=request.args.get("page", 1, type=database_int),
        per_page=current_app.config["AUDIT_PAGE_SIZE"], error_out=False,
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    context = {"form": form, "page": page, "args": args}
    if wants_partial("audit-results"):
        return render_template("audit/_results.html", **context)
    latest = db.session.scalar(select(AuditVerification).order_by(AuditVerification.id.desc()))
    return render_template("audit/index.html", latest=latest, confirm=ConfirmForm(),
                           recent_checkpoints=checkpoints.recent(), public_key=public_key_hex(),
                           **context)


@bp.route("/export.csv")
@access(STAFF)
def export() -> ResponseReturnValue:
    form = _filter_form()
    flt = form.to_filter() if form.validate() else services.AuditFilter()
    return exports.response("audit.csv", services.export_csv(flt))


@bp.route("/verify", methods=["POST"])
@access(Role.ADMIN)
def verify() -> ResponseReturnValue:
    verification = services.request_verification(current_user)
    jobs.enqueue_after_commit(
        tasks.queue_verification, verification.id,
        unreachable=_("The job queue cannot be reached. The check is saved and will run when "
                      "the queue is back."))
    return redirect(url_for("audit.verification", verification_id=verification.id))


@bp.route("/verify/<int:verification_id>")
@access(STAFF)
def verification(verification_id: int) -> ResponseReturnValue:
    item = db.get_or_404(AuditVerification, verification_id)
    if wants_partial():
        return render_template("audit/_verification.html", verification=item)
    return render_template("audit/verification.html", verification=item)


@bp.route("/history/<subject_type>/<subject_id>")
@access(STAFF)
def history(subject_type: str, subject_id: str) -> ResponseReturnValue:
    return render_template(
        "audit/_history.html", history=services.history(subject_type, subject_id)
    )
