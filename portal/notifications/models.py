"""One row per thing to tell one staff member; a job e-mails a recipient's waiting rows
together (a digest)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.extensions import db
from portal.models import UTCDateTime, utcnow


class NotificationKind(StrEnum):
    SIGNOFF_REQUESTED = "signoff_requested"  # subject: the sign-off request
    SIGNOFF_DECIDED = "signoff_decided"  # subject: the sign-off request
    CASE_ASSIGNED = "case_assigned"  # subject: the case
    CUSTOMER_MESSAGE = "customer_message"  # subject: the case the customer wrote on


class NotificationStatus(StrEnum):
    """pending → sending (claimed by a job) → sent | failed; skipped when the recipient
    switched the e-mails off or left before they went out."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Notification(db.Model):
    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_status_recipient", "status", "recipient_id"),
        CheckConstraint(_in("kind", NotificationKind), name="kind_known"),
        CheckConstraint(_in("status", NotificationStatus), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int] = mapped_column(Integer)
    # Who caused it (the requester, the decider, who assigned), for the message.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(8), default=NotificationStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)

    recipient: Mapped[User] = relationship(foreign_keys=[recipient_id])
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
