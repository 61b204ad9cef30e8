"""Staff accounts and their roles: who is signed in, which the security core checks on every
request and every domain records as the actor of its changes. Signing in, passwords and
lockout are ``portal.auth``; administering accounts is ``portal.users``."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models import UTCDateTime, utcnow


class Role(StrEnum):
    AGENT = "agent"
    LEGAL = "legal"
    ADMIN = "admin"
    FINANCE = "finance"

    @property
    def label(self) -> str:
        return str(ROLE_LABELS[self])


ROLE_LABELS = {
    Role.AGENT: _l("Customer service"),
    Role.LEGAL: _l("Legal"),
    Role.ADMIN: _l("Admin / incident lead"),
    Role.FINANCE: _l("Finance"),
}


def new_session_token() -> str:
    return secrets.token_urlsafe(16)


class User(UserMixin, db.Model):
    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint("role IN ('agent', 'legal', 'admin', 'finance')", name="role_known"),
        CheckConstraint("locale IS NULL OR locale IN ('zh_CN', 'en')", name="locale_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(8))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of the session id: changing it signs the user out everywhere.
    session_token: Mapped[str] = mapped_column(String(32), default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # E-mails about one's own work (sign-offs asked of legal or decided, cases assigned);
    # switched off in the profile.
    notify_by_email: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def audit_state(self) -> dict[str, object]:
        """What the audit trail records of this account (never the password hash)."""
        return {
            "email": self.email,
            "name": self.name,
            "role": str(self.role),
            "active": self.active,
            "must_change_password": self.must_change_password,
            "locale": self.locale,
            "notify_by_email": self.notify_by_email,
        }

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"


def load_user(session_id: str) -> User | None:
    """Flask-Login loader: ``id:token``; a changed token or inactive account signs out."""
    user_id, _sep, token = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or not secrets.compare_digest(user.session_token, token):
        return None
    return user
