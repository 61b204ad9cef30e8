"""A mailing, its materialised recipients and its test sends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.customers.models import Customer
from portal.events.models import Event
from portal.extensions import db
from portal.models import UTCDateTime, utcnow
from portal.notices.models import Notice, NoticeVersion

# Mailing states: draft → sending ⇄ paused → done; draft/sending/paused → cancelled.
DRAFT, SENDING, PAUSED, DONE, CANCELLED = "draft", "sending", "paused", "done", "cancelled"
MAILING_STATUSES = (DRAFT, SENDING, PAUSED, DONE, CANCELLED)
# Recipient states: pending → sending (claimed) → sent | failed; or skipped / cancelled.
PENDING, CLAIMED, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
RECIPIENT_STATUSES = (PENDING, CLAIMED, SENT, FAILED, SKIPPED, CANCELLED)
OPEN_RECIPIENT_STATUSES = (PENDING, CLAIMED)

STATUS_LABELS = {
    DRAFT: _l("Draft"),
    SENDING: _l("Sending"),
    PAUSED: _l("Paused"),
    DONE: _l("Finished"),
    CANCELLED: _l("Cancelled"),
    PENDING: _l("Waiting"),
    CLAIMED: _l("Being sent"),
    SENT: _l("Sent"),
    FAILED: _l("Failed"),
    SKIPPED: _l("Skipped"),
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Mailing(db.Model):
    __tablename__ = "mailing"
    __table_args__ = (CheckConstraint(_in("status", MAILING_STATUSES), name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notice.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("notice_version.id"))
    status: Mapped[str] = mapped_column(String(12), default=DRAFT)
    # {"tags": [...], "locales": [...], "case_statuses": [...]}; an empty list means "any".
    audience: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    greeting_zh: Mapped[str] = mapped_column(Text, default="")
    greeting_en: Mapped[str] = mapped_column(Text, default="")
    attach_pdf: Mapped[bool] = mapped_column(Boolean, default=False)
    # Copied from legal's sign-off when sending starts: mandatory notices reach the unsubscribed.
    mandatory: Mapped[bool] = mapped_column(Boolean, default=False)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Why sending stopped by itself (the mail server could not be used); cleared on resume.
    pause_reason: Mapped[str | None] = mapped_column(Text)

    event: Mapped[Event] = relationship()
    notice: Mapped[Notice] = relationship()
    version: Mapped[NoticeVersion] = relationship()
    created_by: Mapped[User | None] = relationship()

    @property
    def editable(self) -> bool:
        return self.status == DRAFT

    def audit_state(self) -> dict[str, Any]:
        return {
            "status": self.status, "notice": self.notice.ref if self.notice else None,
            "version_id": self.version_id, "audience": self.audience,
            "attach_pdf": self.attach_pdf, "mandatory": self.mandatory, "total": self.total,
            "greeting_zh": self.greeting_zh, "greeting_en": self.greeting_en,
        }


class MailingRecipient(db.Model):
    """One customer of one mailing: written before anything is queued, claimed before sending."""

    __tablename__ = "mailing_recipient"
    __table_args__ = (
        UniqueConstraint("mailing_id", "customer_id"),
        Index("ix_mailing_recipient_chunk", "mailing_id", "chunk", "status"),
        Index("ix_mailing_recipient_status", "mailing_id", "status"),
        CheckConstraint(_in("status", RECIPIENT_STATUSES), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailing.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    email: Mapped[str] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(8))
    # Which RQ job carries this row; skipped rows have none.
    chunk: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(255))

    mailing: Mapped[Mailing] = relationship()
    customer: Mapped[Customer] = relationship()


class MailingTestSend(db.Model):
    """A test message to the requesting staff member, personalised as one customer."""

    __tablename__ = "mailing_test_send"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailing.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    to_address: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued/sending/sent/failed
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    customer: Mapped[Customer | None] = relationship()
