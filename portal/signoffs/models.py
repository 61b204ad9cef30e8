"""Sign-off requests: what was asked, the exact snapshot, and legal's one decision."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.extensions import db
from portal.models import UTCDateTime, text_digest, utcnow


class SignoffStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    VOIDED = "voided"


DECISIONS = (SignoffStatus.APPROVED, SignoffStatus.REJECTED, SignoffStatus.CHANGES_REQUESTED)
# Asked for or granted: what a new change of the subject voids.
STANDING = (SignoffStatus.PENDING, SignoffStatus.APPROVED)
OVERDUE_AFTER = timedelta(hours=24)

STATUS_LABELS = {
    SignoffStatus.PENDING: _l("Pending"),
    SignoffStatus.APPROVED: _l("Approved"),
    SignoffStatus.REJECTED: _l("Rejected"),
    SignoffStatus.CHANGES_REQUESTED: _l("Changes requested"),
    SignoffStatus.VOIDED: _l("Voided"),
}
SUBJECT_LABELS = {"notice_version": _l("Notice"), "case_decision": _l("Case decision"),
                  "postmortem": _l("Post-mortem")}


class SignoffRequest(db.Model):
    __tablename__ = "signoff_request"
    __table_args__ = (
        # At most one open request per subject.
        Index("uq_signoff_request_open_subject", "subject_type", "subject_id", unique=True,
              postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index("ix_signoff_request_queue", "status", "requested_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int] = mapped_column(Integer)
    # The subject's owner (e.g. "notice:7"): a change there voids its open and granted requests.
    scope: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(300))
    snapshot: Mapped[Any] = mapped_column(JSON)
    snapshot_hash: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retroactive: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=SignoffStatus.PENDING)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    comment: Mapped[str | None] = mapped_column(Text)
    # Legal's mark on an approved notice: mailings reach customers who unsubscribed.
    mandatory: Mapped[bool] = mapped_column(Boolean, default=False)
    void_reason: Mapped[str | None] = mapped_column(Text)

    # Not stored: what the subject's domain said followed the decision just taken.
    outcome = None

    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

    @property
    def age(self) -> timedelta:
        return utcnow() - self.requested_at

    @property
    def overdue(self) -> bool:
        return (self.status == SignoffStatus.PENDING and self.retroactive
                and self.age > OVERDUE_AFTER)

    def audit_state(self) -> dict[str, object]:
        return {
            "subject": f"{self.subject_type}:{self.subject_id}", "status": self.status,
            # legal's comment stays on this row; the trail holds its digest
            "snapshot_hash": self.snapshot_hash, "comment_sha256": text_digest(self.comment),
            "retroactive": self.retroactive, "mandatory": self.mandatory,
        }
