"""Subscribers (public readers, not imported customers), their one-time codes and the
deliveries of published notice versions to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.events.models import Event
from portal.extensions import db
from portal.models import UTCDateTime, utcnow

ALL = "all"  # the scope of a subscription to every public notice


class SubscriptionStatus(StrEnum):
    """pending (until the link is opened) → active → unsubscribed."""

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


STATUS_LABELS = {
    SubscriptionStatus.PENDING: _l("Waiting for confirmation"),
    SubscriptionStatus.ACTIVE: _l("Active"),
    SubscriptionStatus.UNSUBSCRIBED: _l("Unsubscribed"),
}

# The two scopes and why a subscription was removed, as the audit trail says them.
SCOPE_LABELS = {"all": _l("all notices"), "event": _l("one event's notices")}
REMOVAL_LABELS = {"erasure": _l("erasure of the person's data"),
                  "expired": _l("not confirmed in time"),
                  "unsubscribed": _l("ended long ago"),
                  "retention": _l("the event's retention")}


class MailKind(StrEnum):
    """Which e-mail a subscription waits to be sent (``Subscription.mail``)."""

    CONFIRM = "confirm"  # the confirmation link of a new subscription
    ALREADY = "already"  # "you are already subscribed": same answer, no enumeration
    SENDING = "sending"  # claimed by a job


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Subscription(db.Model):
    """One address subscribed to one scope: an event's notices or all of them (``ALL``).
    ``nonce`` is in every signed link of the row; a new one makes the old links void."""

    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("email", "scope"),
        CheckConstraint(_in("status", SubscriptionStatus), name="status_known"),
        CheckConstraint("locale IN ('zh_CN', 'en')", name="locale_known"),
        Index("ix_subscription_scope_status", "scope", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # folded (lower case)
    scope: Mapped[str] = mapped_column(String(24))  # "all" or "event:<id>"
    event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    locale: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(14), default=SubscriptionStatus.PENDING)
    nonce: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # while pending
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The e-mail waiting to go out (MailKind) and when a job claimed it.
    mail: Mapped[str | None] = mapped_column(String(10))
    mail_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mail_attempts: Mapped[int] = mapped_column(Integer, default=0)

    event: Mapped[Event | None] = relationship()

    @property
    def waiting(self) -> bool:
        """Not confirmed yet."""
        return self.status == SubscriptionStatus.PENDING

    @property
    def ended(self) -> bool:
        return self.status == SubscriptionStatus.UNSUBSCRIBED

    def audit_state(self) -> dict[str, object]:
        """No address: the audit trail never holds it in clear."""
        return {"scope": self.scope, "locale": self.locale, "status": self.status}


class SubscriptionCode(db.Model):
    """The one-time code that lets the owner of an address manage its subscriptions: stored
    as a keyed digest, short-lived, a few attempts. Made by the job that e-mails it."""

    __tablename__ = "subscription_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    locale: Mapped[str] = mapped_column(String(8))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # "queued" until the job claims it ("sending"), then None once sent.
    mail: Mapped[str | None] = mapped_column(String(10))
    mail_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mail_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SubscriptionDelivery(db.Model):
    """One published notice version to one subscriber: written with the publication, claimed
    before it is sent, so it goes out once (the same Message-ID if a dead worker's row is
    sent again)."""

    __tablename__ = "subscription_delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "version_id"),
        Index("ix_subscription_delivery_version_status", "version_id", "status"),
        CheckConstraint(_in("status", DeliveryStatus), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscription.id", ondelete="CASCADE"), index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notice.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("notice_version.id"))
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    subscription: Mapped[Subscription] = relationship()
