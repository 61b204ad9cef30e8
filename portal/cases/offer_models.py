"""Offers to customers: an event's offer terms (whether customers must accept, the text per
language that legal approves), and each customer's decision on the offer of a case."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.extensions import db
from portal.models import UTCDateTime, utcnow

OFFER_LOCALES = ("zh_CN", "en")


class OfferTerms(db.Model):
    """One event's offer setting: ``required`` says an approved case of the event is paid
    only after the customer accepted the offer shown with these (signed-off) terms."""

    __tablename__ = "offer_terms"

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), primary_key=True)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    text_zh: Mapped[str] = mapped_column(Text, default="")
    text_en: Mapped[str] = mapped_column(Text, default="")
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    updated_by: Mapped[User | None] = relationship()

    def text_in(self, locale: str) -> str:
        return self.text_en if locale == "en" else self.text_zh

    def audit_state(self) -> dict[str, object]:
        # Written by staff for every customer of the event: kept readable.
        return {"required": self.required, "text_zh": self.text_zh, "text_en": self.text_en}


class Decision(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"


class OfferStatus(StrEnum):
    """What the staff case page says of a case's offer."""

    NOT_OFFERED = "not_offered"
    WAITING = "waiting"
    NOT_READY = "not_ready"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    VOIDED = "voided"


OFFER_STATUS_LABELS = {
    OfferStatus.NOT_OFFERED: _l("shown to the customer once the case is approved"),
    OfferStatus.WAITING: _l("waiting for the customer"),
    OfferStatus.NOT_READY: _l("not shown yet: the offer terms await legal's sign-off"),
    OfferStatus.ACCEPTED: _l("accepted"),
    OfferStatus.DECLINED: _l("declined"),
    OfferStatus.VOIDED: _l("voided, waiting for the customer again"),
}
REQUIRED_LABELS = {"true": _l("yes"), "false": _l("no")}
# Why a decision was voided (codes kept on the row and in the audit entry).
OFFER_VOID_REASONS = {
    "case edited": _l("the case was edited"),
    "terms changed": _l("the offer terms changed"),
}


class OfferDecision(db.Model):
    """A customer's acceptance or refusal of exactly the offer shown: ``offer_hash`` is the
    SHA-256 of the terms text, amount, currency, case ref and language they saw. At most one
    standing (not voided) decision per case; a voided row stays as the record."""

    __tablename__ = "offer_decision"
    __table_args__ = (
        CheckConstraint("decision IN ('accepted', 'declined')", name="decision_known"),
        Index("uq_offer_decision_standing", "case_id", unique=True,
              postgresql_where=text("voided_at IS NULL"),
              sqlite_where=text("voided_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    decision: Mapped[str] = mapped_column(String(10))
    locale: Mapped[str] = mapped_column(String(8))
    amount: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    offer_hash: Mapped[str] = mapped_column(String(64))
    # The customer's reason for declining (scrubbed by erasure; the trail has its digest).
    reason: Mapped[str | None] = mapped_column(Text)
    # The client IP as a digest keyed with the customer's salt (unlinkable after erasure).
    ip_digest: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    void_reason: Mapped[str | None] = mapped_column(String(20))

    @property
    def accepted(self) -> bool:
        return self.decision == Decision.ACCEPTED

    @property
    def void_reason_label(self) -> str | None:
        return (None if self.void_reason is None
                else str(OFFER_VOID_REASONS.get(self.void_reason, self.void_reason)))
