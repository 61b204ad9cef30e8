"""Account rules: sign-in with lockouts, and every change to an account (audited)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from portal import metrics
from portal.accounts import Role, User, new_session_token
from portal.audit import services as audit
from portal.auth.models import LoginFailure
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import utcnow

MIN_PASSWORD_LENGTH = 10
# Compared against when the e-mail is unknown, so timing does not reveal which accounts exist.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_METHOD"])


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check_password_rules(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RuleViolation(
            _("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH), field=field
        )


@dataclass
class SignInResult:
    user: User | None
    error: str | None = None
    status: int = 200


def _ip_is_limited(ip: str) -> bool:
    cfg = current_app.config
    since = utcnow() - timedelta(minutes=cfg["LOGIN_IP_WINDOW_MINUTES"])
    count = db.session.scalar(
        select(func.count(LoginFailure.id)).where(LoginFailure.ip == ip, LoginFailure.at >= since)
    )
    return (count or 0) >= cfg["LOGIN_IP_MAX_FAILURES"]


def _sign_in_refused() -> SignInResult:
    """One answer for a wrong password, an unknown e-mail and a locked account, so the
    sign-in form never tells which accounts exist."""
    cfg = current_app.config
    return SignInResult(None, _(
        "Wrong e-mail or password, or the account is locked for %(m)d minutes after %(n)d "
        "failed sign-ins.", m=cfg["LOGIN_LOCKOUT_MINUTES"], n=cfg["LOGIN_MAX_FAILURES"]))


def authenticate(email: str, password: str, ip: str) -> SignInResult:
    """Check credentials, applying the per-IP limit and the per-account lockout."""
    cfg = current_app.config
    email = normalise_email(email)
    if _ip_is_limited(ip):
        message = _("Too many failed sign-ins from your address. Try again later.")
        return SignInResult(None, message, 429)

    user = db.session.scalar(select(User).where(User.email == email))
    now = utcnow()
    locked = bool(user and user.locked_until and user.locked_until > now)
    # Always compare a hash (the same work whether the account exists or is locked).
    valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user and valid and user.active and not locked:
        if user.failed_logins or user.locked_until:
            user.failed_logins = 0
            user.locked_until = None
        user.last_login_at = now
        audit.record("auth.login", "user", user.id,
                     N_("%(email)s signed in", email=user.email), actor=user)
        return SignInResult(user)

    db.session.add(LoginFailure(ip=ip, email=email[:254], at=now))
    metrics.login_failed()
    if user and user.active and not locked:
        user.failed_logins += 1
        if user.failed_logins >= cfg["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + timedelta(minutes=cfg["LOGIN_LOCKOUT_MINUTES"])
            user.failed_logins = 0
            audit.record(
                "auth.locked", "user", user.id,
                N_("%(email)s locked for %(minutes)d minutes after %(failures)d failed "
                   "sign-ins", email=user.email, minutes=cfg["LOGIN_LOCKOUT_MINUTES"],
                   failures=cfg["LOGIN_MAX_FAILURES"]),
                actor=None,
            )
    return _sign_in_refused()


def sign_out(user: User) -> None:
    """End the session on the server too: a new session token makes every copy of the
    session cookie worthless (it signs the account out on every device)."""
    user.session_token = new_session_token()
    audit.record("auth.logout", "user", user.id, N_("%(email)s signed out", email=user.email),
                 actor=user)


def prune_login_failures(older_than: timedelta = timedelta(days=1)) -> int:
    result = db.session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - older_than))
    return result.rowcount or 0


def _email_taken(email: str, exclude_id: int | None = None) -> bool:
    stmt = select(User.id).where(User.email == email)
    if exclude_id is not None:
        stmt = stmt.where(User.id != exclude_id)
    return db.session.scalar(stmt) is not None


def create_user(
    email: str, name: str, role: Role | str, password: str | None = None,
    *, actor: User | None = None, must_change_password: bool = True,
) -> tuple[User, str]:
    """Create an account; returns it with its initial password (generated if not given)."""
    email = normalise_email(email)
    role = Role(role)
    if _email_taken(email):
        raise RuleViolation(_("An account with this e-mail already exists."), field="email")
    if password is None:
        password = generate_password()
    check_password_rules(password)
    user = User(
        email=email, name=name.strip() or email, role=role.value,
        password_hash=hash_password(password), active=True,
        must_change_password=must_change_password, session_token=new_session_token(),
        failed_logins=0,
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.create", "user", user.id,
                 N_("Account %(email)s created as %(role)s", email=email,
                    role=term("role", role.value)),
                 after=user.audit_state(), actor=actor)
    return user, password


def update_user(user: User, *, name: str, role: Role | str, actor: User) -> bool:
    """Change name and role; returns whether anything changed."""
    role = Role(role)
    if user.id == actor.id and role != Role.ADMIN and user.role == Role.ADMIN:
        raise RuleViolation(_("You cannot remove your own admin role."), field="role")
    before = user.audit_state()
    user.name = name.strip() or user.name
    if user.role != role.value:
        _ensure_other_admin_remains(user)
        user.role = role.value
        user.session_token = new_session_token()  # new rights start with a new session
    after = user.audit_state()
    if before == after:
        return False
    audit.record("user.update", "user", user.id,
                 N_("Account %(email)s updated", email=user.email),
                 before=before, after=after, actor=actor)
    return True


def _ensure_other_admin_remains(user: User) -> None:
    if user.role != Role.ADMIN or not user.active:
        return
    others = db.session.scalar(
        select(func.count(User.id)).where(User.role == Role.ADMIN.value, User.active.is_(True),
                                          User.id != user.id)
    )
    if not others:
        raise RuleViolation(_("The portal needs at least one active admin."), field="role")


def set_active(user: User, active: bool, *, actor: User) -> None:
    if user.active == active:
        return
    if not active:
        if user.id == actor.id:
            raise RuleViolation(_("You cannot deactivate your own account."))
        _ensure_other_admin_remains(user)
    before = user.audit_state()
    user.active = active
    user.session_token = new_session_token()
    if active:
        user.locked_until = None
        user.failed_logins = 0
    action = "user.activate" if active else "user.deactivate"
    audit.record(action, "user", user.id,
                 N_("Account %(email)s reactivated", email=user.email) if active
                 else N_("Account %(email)s deactivated", email=user.email),
                 before=before, after=user.audit_state(), actor=actor)


def reset_password(user: User, *, actor: User) -> str:
    """Give the account a temporary password that must be changed at next sign-in."""
    password = generate_password()
    before = user.audit_state()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.session_token = new_session_token()
    user.locked_until = None
    user.failed_logins = 0
    audit.record("user.password_reset", "user", user.id,
                 N_("Password of %(email)s reset; must be changed at next sign-in",
                    email=user.email),
                 before=before, after=user.audit_state(), actor=actor)
    return password


def change_password(user: User, current: str, new: str) -> None:
    if not check_password_hash(user.password_hash, current):
        raise RuleViolation(_("The current password is wrong."), field="current_password")
    check_password_rules(new, field="new_password")
    if check_password_hash(user.password_hash, new):
        raise RuleViolation(_("Choose a password different from the current one."),
                            field="new_password")
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.session_token = new_session_token()
    audit.record("user.password_change", "user", user.id,
                 N_("%(email)s changed their password", email=user.email), actor=user)


def update_profile(user: User, *, name: str, locale: str | None,
                   notify_by_email: bool | None = None) -> None:
    """Name, language and (when given) whether to be e-mailed about one's work."""
    before = user.audit_state()
    user.name = name.strip() or user.name
    user.locale = locale or None
    if notify_by_email is not None:
        user.notify_by_email = notify_by_email
    if before != user.audit_state():
        audit.record("user.profile", "user", user.id,
                     N_("%(email)s updated their profile", email=user.email),

                     before=before, after=user.audit_state(), actor=user)
