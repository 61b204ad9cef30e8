"""A mailing, its materialised recipients and its test sends."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
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


class MailingStatus(StrEnum):
    """draft → sending ⇄ paused → done; draft/sending/paused → cancelled."""

    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    """pending → sending (claimed by a job) → sent | failed; or skipped / cancelled."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class MailingTestSendStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


TEST_SEND_LABELS = {
    MailingTestSendStatus.QUEUED: _l("Queued"),
    MailingTestSendStatus.SENDING: _l("Sending"),
    MailingTestSendStatus.SENT: _l("Sent"),
    MailingTestSendStatus.FAILED: _l("Failed"),
}
# What pausing, resuming and cancelling did, as the audit trail says it.
CHANGE_LABELS = {"pause": _l("paused"), "resume": _l("resumed"), "cancel": _l("cancelled")}
# How a customer unsubscribed.
UNSUBSCRIBE_VIA = {"one-click": _l("one-click"), "unsubscribe page": _l("unsubscribe page")}


# Not finished yet: a withdrawn notice cancels these.
OPEN_MAILING_STATUSES = (MailingStatus.DRAFT, MailingStatus.SENDING, MailingStatus.PAUSED)
OPEN_RECIPIENT_STATUSES = (RecipientStatus.PENDING, RecipientStatus.SENDING)

STATUS_LABELS = {
    MailingStatus.DRAFT: _l("Draft"),
    MailingStatus.SENDING: _l("Sending"),
    MailingStatus.PAUSED: _l("Paused"),
    MailingStatus.DONE: _l("Finished"),
    MailingStatus.CANCELLED: _l("Cancelled"),
}
# A recipient's own words: its "sending" is not the mailing's (the two enums share values, so
# one dict for both showed a sending mailing as "Being sent").
RECIPIENT_LABELS = {
    RecipientStatus.PENDING: _l("Waiting"),
    RecipientStatus.SENDING: _l("Being sent"),
    RecipientStatus.SENT: _l("Sent"),
    RecipientStatus.FAILED: _l("Failed"),
    RecipientStatus.SKIPPED: _l("Skipped"),
    RecipientStatus.CANCELLED: _l("Cancelled"),
}


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Mailing(db.Model):
    __tablename__ = "mailing"
    __table_args__ = (CheckConstraint(_in("status", MailingStatus), name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notice.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("notice_version.id"))
    status: Mapped[str] = mapped_column(String(12), default=MailingStatus.DRAFT)
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
        return self.status == MailingStatus.DRAFT

    @property
    def under_way(self) -> bool:
        """Started and not finished: it can be paused, resumed or cancelled."""
        return self.status in (MailingStatus.SENDING, MailingStatus.PAUSED)

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
        CheckConstraint(_in("status", RecipientStatus), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailing.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    email: Mapped[str] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(8))
    # Which RQ job carries this row; skipped rows have none.
    chunk: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default=RecipientStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(255))
    # The code in this message's footer (see portal/verification.py): written with the row,
    # unique, so /verify finds the message in one indexed lookup.
    verification_code: Mapped[str | None] = mapped_column(String(10), unique=True)

    mailing: Mapped[Mailing] = relationship()
    customer: Mapped[Customer] = relationship()


class MailingTestSend(db.Model):
    """A test message to the requesting staff member, personalised as one customer."""

    __tablename__ = "mailing_test_send"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailing_id: Mapped[int] = mapped_column(ForeignKey("mailing.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    to_address: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(10), default=MailingTestSendStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    customer: Mapped[Customer | None] = relationship()
