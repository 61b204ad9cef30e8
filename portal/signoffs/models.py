"""Sign-off requests: what was asked, the exact snapshot, and legal's one decision."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.extensions import db
from portal.i18n import Message, user_text
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
# A notice snapshot's publish plan when it is published as soon as it is approved.
ON_APPROVAL = "on approval"
# …and when someone publishes it by hand once it is approved.
BY_HAND = "by hand"

# Why someone was refused a decision (codes kept in the audit entry of the refused attempt).
DECIDE_REFUSALS = {
    "not_legal": _l("not in the legal team"),
    "own_request": _l("they requested this sign-off"),
    "own_content": _l("they wrote this content"),
}

STATUS_LABELS = {
    SignoffStatus.PENDING: _l("Pending"),
    SignoffStatus.APPROVED: _l("Approved"),
    SignoffStatus.REJECTED: _l("Rejected"),
    SignoffStatus.CHANGES_REQUESTED: _l("Changes requested"),
    SignoffStatus.VOIDED: _l("Voided"),
}
SUBJECT_LABELS = {"notice_version": _l("Notice"), "case_decision": _l("Case decision"),
                  "postmortem": _l("Post-mortem"), "offer_terms": _l("Offer terms"),
                  "programme": _l("Programme")}
# Why a request was voided: the codes the subjects' domains pass to ``void_scope``.
VOID_REASONS = {
    "case edited": _l("case edited"),
    "case closed": _l("case closed"),
    "case rejected": _l("case rejected"),
    "case withdrawn": _l("case withdrawn"),
    "content changed": _l("content changed"),
    "published in an emergency": _l("published in an emergency"),
    "notice withdrawn": _l("notice withdrawn"),
    "post-mortem edited": _l("post-mortem edited"),
    "facts changed": _l("facts changed"),
    "offer terms edited": _l("offer terms edited"),
    "programme edited": _l("programme edited"),
    "entitlements changed": _l("entitlements changed"),
}


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
    # The title in English as written, and the message it was written from, read in the
    # reader's language (NULL for requests opened before titles were kept as messages).
    title: Mapped[str] = mapped_column(String(300))
    title_message: Mapped[Any | None] = mapped_column(JSON)
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
    def heading(self) -> str:
        """The title in the reader's language."""
        if self.title_message is None:
            return self.title
        return str(Message.from_json(self.title_message))

    @property
    def heading_html(self) -> Markup:
        """:attr:`heading` for a page, with what people typed (a notice's title) marked."""
        if self.title_message is None:
            return user_text(self.title)
        return Message.from_json(self.title_message).html()

    @property
    def publish_plan_label(self) -> str:
        """A notice snapshot's publish plan for the reader: a time, or "on approval"."""
        plan = (self.snapshot or {}).get("publish_plan")
        if plan is None or plan == ON_APPROVAL:
            return _("on approval")
        if plan == BY_HAND:
            return _("by hand, once legal approves it")
        return format_datetime(datetime.fromisoformat(plan), "short")

    @property
    def void_reason_label(self) -> str | None:
        return (None if self.void_reason is None
                else str(VOID_REASONS.get(self.void_reason, self.void_reason)))

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


class SignoffSetting(db.Model):
    """An admin-chosen setting of legal's sign-offs (e.g. how PDFs name the approver); a
    missing row means the default."""

    __tablename__ = "signoff_setting"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(40))
