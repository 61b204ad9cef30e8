"""Legal's sign-off queue and the decision page."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts import Role
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.extensions import db
from portal.security import STAFF, access
from portal.signoffs import services, stamp
from portal.signoffs.forms import DecisionForm, StampForm
from portal.signoffs.models import STATUS_LABELS, SUBJECT_LABELS, SignoffRequest, SignoffStatus
from portal.web import refuse

bp = Blueprint("signoffs", __name__, url_prefix="/signoffs")
bp.add_app_template_global(SignoffStatus, "SignoffStatus")


@bp.app_context_processor
def signoff_labels() -> dict[str, object]:
    return {"signoff_labels": STATUS_LABELS, "subject_labels": SUBJECT_LABELS}


@bp.route("/")
@access(Role.LEGAL, Role.ADMIN)
def queue() -> ResponseReturnValue:
    kind = request.args.get("kind") or None
    if kind and kind not in SUBJECT_LABELS:
        kind = None
    return render_template("signoffs/queue.html", requests=services.queue(kind), kind=kind)


@bp.route("/<int:request_id>")
@access(STAFF)
def detail(request_id: int) -> ResponseReturnValue:
    item = db.get_or_404(SignoffRequest, request_id)
    return render_template(
        "signoffs/detail.html", item=item, form=DecisionForm(),
        refusal=services.may_decide(item, current_user),
        history=audit.history("signoff", item.id), changes=services.changes(item),
    )


@bp.route("/<int:request_id>/decide", methods=["POST"])
@access(Role.LEGAL)
def decide(request_id: int) -> ResponseReturnValue:
    item = db.get_or_404(SignoffRequest, request_id)
    form = DecisionForm()
    status = 422
    if form.validate_on_submit():
        try:
            decided = services.decide(item.id, form.decision.data, form.comment.data or "",
                                      actor=current_user, mandatory=bool(form.mandatory.data))
        except RuleViolation as err:
            refuse(err, form)
            status = getattr(err, "status", 422)  # a refusal of who decides: 403
        else:
            flash(decided.outcome or _("Sign-off of “%(subject)s”: %(decision)s.",
                                       subject=decided.heading,
                                       decision=STATUS_LABELS[decided.status]), "success")
            return redirect(url_for("signoffs.queue"))
    item = db.get_or_404(SignoffRequest, request_id)
    return render_template(
        "signoffs/detail.html", item=item, form=form,
        refusal=services.may_decide(item, current_user),
        history=audit.history("signoff", item.id), changes=services.changes(item),
    ), status


@bp.route("/settings", methods=["GET", "POST"])
@access(Role.ADMIN)
def settings() -> ResponseReturnValue:
    """What legal's stamp on PDFs names: the legal department (the default) or the approver."""
    form = StampForm()
    if request.method == "GET":
        form.stamp.data = stamp.stamp_mode()
    elif form.validate_on_submit():
        try:
            changed = stamp.set_stamp_mode(form.stamp.data, actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("PDF stamp saved; it applies to PDFs rendered from now on.") if changed
                  else _("The PDF stamp already was that; nothing changed."),
                  "success" if changed else "info")
            return redirect(url_for("signoffs.settings"))
    return render_template("signoffs/settings.html", form=form), 422 if form.errors else 200
