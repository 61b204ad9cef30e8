"""Sign-in, sign-out, password change and the staff profile."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from portal import uow
from portal.accounts import User
from portal.auth import services
from portal.auth.forms import ChangePasswordForm, LoginForm, ProfileForm
from portal.errors import RuleViolation
from portal.redirects import safe_next
from portal.security import PUBLIC, STAFF, access

bp = Blueprint("auth", __name__)


def _start_session(user: User) -> None:
    """Sign ``user`` in with a fresh CSRF token: one seen before sign-in (a shared computer,
    a page an attacker prepared) is worthless after it."""
    key = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")  # Flask-WTF's keys
    session.pop(key, None)
    g.pop(key, None)
    login_user(user)


@bp.route("/login", methods=["GET", "POST"])
@access(PUBLIC)
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        ip = request.remote_addr or ""
        result = services.authenticate(form.email.data, form.password.data, ip)
        if result.user:
            _start_session(result.user)
            return redirect(safe_next(request.args.get("next")))
        uow.commit()  # kept although the answer is an error: failures count to the lockout
        form.password.errors.append(result.error)
        status = result.status
    elif form.is_submitted():
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@access(STAFF)
def logout() -> ResponseReturnValue:
    services.sign_out(current_user)
    logout_user()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@access(STAFF)
def change_password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(
                current_user, form.current_password.data, form.new_password.data
            )
        except RuleViolation as err:
            getattr(form, err.field or "new_password").errors.append(err.message)
        else:
            _start_session(current_user._get_current_object())  # the session id changed
            flash(_("Your password has been changed."), "success")
            return redirect(url_for("main.dashboard"))
    status = 422 if form.errors else 200
    return render_template("auth/change_password.html", form=form), status


@bp.route("/profile", methods=["GET", "POST"])
@access(STAFF)
def profile() -> ResponseReturnValue:
    form = ProfileForm(obj=current_user)
    if request.method == "GET":
        form.locale.data = current_user.locale or ""
    if form.validate_on_submit():
        services.update_profile(current_user, name=form.name.data, locale=form.locale.data,
                                notify_by_email=form.notify_by_email.data)
        flash(_("Your profile has been saved."), "success")
        return redirect(url_for("auth.profile"))
    status = 422 if form.errors else 200
    return render_template("auth/profile.html", form=form), status
