"""Customers and their CSV import batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import User
from portal.events.models import Event
from portal.extensions import db
from portal.models import UTCDateTime, utcnow

CUSTOMER_LOCALES = ("zh_CN", "en")


class Customer(db.Model):
    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("event_id", "external_ref"),
        Index("ix_customer_event_name", "event_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    external_ref: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="", index=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Set from the public unsubscribe page or a List-Unsubscribe one-click POST.
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    event: Mapped[Event] = relationship()

    def audit_state(self) -> dict[str, Any]:
        return {
            "external_ref": self.external_ref, "name": self.name, "company": self.company,
            "email": self.email, "phone": self.phone, "locale": self.locale,
            "tags": list(self.tags or []),
        }


class ImportBatch(db.Model):
    """One uploaded CSV: validated by a job (preview), then imported whole or discarded."""

    __tablename__ = "customer_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    encoding: Mapped[str | None] = mapped_column(String(16))
    # uploaded → validating → validated → importing → imported | discarded | failed
    status: Mapped[str] = mapped_column(String(12), default="uploaded")
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    valid_rows: Mapped[int] = mapped_column(Integer, default=0)
    error_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    first_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    event: Mapped[Event] = relationship()
    uploaded_by: Mapped[User | None] = relationship()

    @property
    def busy(self) -> bool:
        return self.status in ("uploaded", "validating", "importing")
