"""Claims: what a person asks for from a notice before it is a case.

A claim from someone who is not on the event's import list waits for the claimant to confirm
their e-mail address (double opt-in), then in the triage queue for an agent's decision: match
it to a customer of the event, create the customer from it, or reject it with a reason. A
listed customer's claim without an amount waits there too (a case needs one); with an amount it
becomes a case at once and no claim row is kept.

The claimant's name, e-mail and phone are stored as a customer's are (e-mail lower-cased),
shown only to staff, and recorded in the audit trail only as keyed digests under the claim's
own ``audit_salt``, which erasure deletes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.cases.models import Case
from portal.customers.models import Customer, keyed_digest, new_audit_salt
from portal.events.models import Event
from portal.extensions import db
from portal.models import UTCDateTime, utcnow
from portal.money import Money

# Recorded in the audit trail only as keyed digests.
CLAIMANT_FIELDS = ("name", "email", "phone", "order_ref", "description")


class ClaimStatus(StrEnum):
    """unconfirmed → waiting (in triage) → accepted (a case) | rejected."""

    UNCONFIRMED = "unconfirmed"
    WAITING = "waiting"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ClaimMail(StrEnum):
    """The one e-mail a claim has outstanding: queued → sending (claimed) → sent | failed."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


CLAIM_LABELS = {
    ClaimStatus.UNCONFIRMED: _l("Address not confirmed"),
    ClaimStatus.WAITING: _l("Waiting for triage"),
    ClaimStatus.ACCEPTED: _l("Became a case"),
    ClaimStatus.REJECTED: _l("Rejected"),
    "matched": _l("matched to a customer"),
    "created": _l("customer created from it"),
    "rejected": _l("rejected"),
    "confirm": _l("confirmation link"),
    "rejection": _l("rejection"),
}


class Claim(db.Model):
    __tablename__ = "case_claim"
    __table_args__ = (
        CheckConstraint("status IN ('unconfirmed', 'waiting', 'accepted', 'rejected')",
                        name="status_known"),
        Index("ix_case_claim_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=ClaimStatus.UNCONFIRMED)
    # Set for a listed customer's claim (no confirmation needed), or by the decision.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="", index=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    kind: Mapped[str] = mapped_column(String(16))
    order_ref: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal | None] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    description: Mapped[str] = mapped_column(Text, default="")
    audit_salt: Mapped[str | None] = mapped_column(String(64), default=new_audit_salt)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # An unconfirmed claim is purged after this moment (its link no longer works).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The decision: who, when, which ("matched", "created", "rejected"), why, the case.
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The e-mail to the claimant (the confirmation link, then a rejection's reason).
    mail_kind: Mapped[str | None] = mapped_column(String(10))
    mail_status: Mapped[str | None] = mapped_column(String(8))
    mail_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    mail_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mail_error: Mapped[str | None] = mapped_column(Text)

    event: Mapped[Event] = relationship()
    customer: Mapped[Customer | None] = relationship()
    decided_by: Mapped[User | None] = relationship()
    case: Mapped[Case | None] = relationship()

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("audit_salt", new_audit_salt())
        super().__init__(**kwargs)

    @property
    def from_listed_customer(self) -> bool:
        """Sent by a customer of the import list from their page (not through triage)."""
        return self.customer_id is not None and self.decision is None

    @property
    def waiting(self) -> bool:
        return self.status == ClaimStatus.WAITING

    def audit_digest(self, value: object) -> str:
        return keyed_digest(self.audit_salt, value)

    def audit_state(self) -> dict[str, object]:
        state: dict[str, object] = {
            "event_id": self.event_id, "status": self.status, "kind": self.kind,
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency, "locale": self.locale, "customer_id": self.customer_id,
            "decision": self.decision, "case_id": self.case_id}
        for name in CLAIMANT_FIELDS:
            state[name] = self.audit_digest(getattr(self, name))
        return state
