"""Admin: create accounts, set roles, deactivate, reset passwords."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts import Role, User
from portal.audit import services as audit
from portal.auth import services
from portal.errors import RuleViolation
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.security import access
from portal.users.forms import UserCreateForm, UserEditForm
from portal.web import refuse

bp = Blueprint("users", __name__, url_prefix="/admin/users")


@bp.route("/")
@access(Role.ADMIN)
def index() -> ResponseReturnValue:
    users = db.session.scalars(select(User).order_by(User.active.desc(), User.email)).all()
    return render_template("users/index.html", users=users)


@bp.route("/new", methods=["GET", "POST"])
@access(Role.ADMIN)
def create() -> ResponseReturnValue:
    form = UserCreateForm()
    if form.validate_on_submit():
        try:
            user, password = services.create_user(
                form.email.data, form.name.data, form.role.data, actor=current_user
            )
        except RuleViolation as err:
            getattr(form, err.field or "email").errors.append(err.message)
        else:
            return render_template("users/password_issued.html", user=user, password=password)
    return render_template("users/new.html", form=form), 422 if form.errors else 200


@bp.route("/<int:user_id>", methods=["GET", "POST"])
@access(Role.ADMIN)
def detail(user_id: int) -> ResponseReturnValue:
    user = db.get_or_404(User, user_id)
    form = UserEditForm(obj=user)
    if form.validate_on_submit():
        try:
            changed = services.update_user(
                user, name=form.name.data, role=form.role.data, actor=current_user
            )
        except RuleViolation as err:
            getattr(form, err.field or "role").errors.append(err.message)
        else:
            flash(_("Account %(email)s saved.", email=user.email) if changed
                  else _("Account %(email)s: nothing changed.", email=user.email), "success")
            return redirect(url_for("users.detail", user_id=user.id))
    return render_template(
        "users/detail.html", user=user, form=form, confirm=ConfirmForm(),
        history=audit.history("user", user.id),
    ), 422 if form.errors else 200


@bp.route("/<int:user_id>/active", methods=["POST"])
@access(Role.ADMIN)
def toggle_active(user_id: int) -> ResponseReturnValue:
    user = db.get_or_404(User, user_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.set_active(user, not user.active, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Account %(email)s reactivated.", email=user.email) if user.active
              else _("Account %(email)s deactivated.", email=user.email), "success")
    return redirect(url_for("users.detail", user_id=user.id))


@bp.route("/<int:user_id>/reset-password", methods=["POST"])
@access(Role.ADMIN)
def reset_password(user_id: int) -> ResponseReturnValue:
    user = db.get_or_404(User, user_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    password = services.reset_password(user, actor=current_user)
    return render_template("users/password_issued.html", user=user, password=password)
