"""Failed sign-in records (the accounts themselves are ``portal.accounts``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models import UTCDateTime, utcnow


class LoginFailure(db.Model):
    """One failed sign-in, kept for the per-IP limit."""

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    email: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
