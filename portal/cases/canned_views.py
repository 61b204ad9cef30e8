"""Admin pages for canned replies: list, write, edit, retire (each audited)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts import Role
from portal.audit import services as audit
from portal.cases import canned
from portal.cases.forms import CannedReplyForm
from portal.cases.models import CannedReply
from portal.errors import RuleViolation
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.security import access
from portal.web import refuse

bp = Blueprint("canned", __name__, url_prefix="/admin/canned-replies")


def _input(form: CannedReplyForm) -> canned.CannedInput:
    return canned.CannedInput(form.title.data or "", form.body_zh.data or "",
                              form.body_en.data or "")


@bp.route("/")
@access(Role.ADMIN)
def index() -> ResponseReturnValue:
    return render_template("cases/canned_index.html", replies=canned.every())


@bp.route("/new", methods=["GET", "POST"])
@access(Role.ADMIN)
def create() -> ResponseReturnValue:
    form = CannedReplyForm()
    failed = False
    if form.validate_on_submit():
        try:
            reply = canned.create(_input(form), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
            failed = True
        else:
            flash(_("Canned reply “%(title)s” saved.", title=reply.title), "success")
            return redirect(url_for("canned.index"))
    return render_template("cases/canned_form.html", form=form, reply=None), (
        422 if form.errors or failed else 200)


@bp.route("/<int:reply_id>", methods=["GET", "POST"])
@access(Role.ADMIN)
def edit(reply_id: int) -> ResponseReturnValue:
    reply = db.get_or_404(CannedReply, reply_id)
    form = CannedReplyForm(obj=reply)
    failed = False
    if form.validate_on_submit():
        try:
            changed = canned.update(reply, _input(form), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
            failed = True
        else:
            flash(_("Canned reply “%(title)s” saved.", title=reply.title) if changed
                  else _("Canned reply “%(title)s” already said that; nothing changed.",
                         title=reply.title), "success")
            return redirect(url_for("canned.index"))
    return render_template("cases/canned_form.html", form=form, reply=reply,
                           retire_form=ConfirmForm(),
                           history=audit.history("canned_reply", reply.id)), (
        422 if form.errors or failed else 200)


@bp.route("/<int:reply_id>/retire", methods=["POST"])
@access(Role.ADMIN)
def retire(reply_id: int) -> ResponseReturnValue:
    reply = db.get_or_404(CannedReply, reply_id)
    try:
        canned.retire(reply, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Canned reply “%(title)s” retired: it is no longer offered.",
                title=reply.title), "success")
    return redirect(url_for("canned.index"))
