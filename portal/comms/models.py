"""The update cadence of public notices per severity, and the reminders its clock sent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.extensions import db
from portal.models import UTCDateTime, utcnow


class CadencePolicy(db.Model):
    """An admin's "next public update due within N minutes" for one severity (0: off)."""

    __tablename__ = "comms_cadence"
    __table_args__ = (CheckConstraint("minutes >= 0", name="minutes_not_negative"),)

    severity: Mapped[str] = mapped_column(String(8), primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer)


class ReminderKind(StrEnum):
    DUE_SOON = "due_soon"  # the next update is due within REMINDER_LEAD_MINUTES
    OVERDUE = "overdue"  # it is due and no update was published


class ReminderStatus(StrEnum):
    """pending → sending (claimed by the job) → sent | failed; skipped: its moment passed
    while the job was down, an update reset the clock, or the lead left before it went."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


REMINDER_KIND_LABELS = {"due_soon": _l("Update due soon"), "overdue": _l("Update overdue")}
REMINDER_STATUS_LABELS = {
    "pending": _l("Waiting"), "sending": _l("Sending"), "sent": _l("Sent"),
    "failed": _l("Failed"), "skipped": _l("Not sent"),
}


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class CadenceReminder(db.Model):
    """One e-mail to an event's communications lead about one due time: written once (unique
    per event, kind and due time) before it is sent, so it goes out once however often the
    periodic job runs."""

    __tablename__ = "comms_cadence_reminder"
    __table_args__ = (
        UniqueConstraint("event_id", "kind", "due_at"),
        CheckConstraint(_in("kind", ReminderKind), name="kind_known"),
        CheckConstraint(_in("status", ReminderStatus), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(8), default=ReminderStatus.PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)

    lead: Mapped[User | None] = relationship()
