"""Entitlements (what each customer is owed the basis of), their imports, programmes and the
programme's members (one per eligible customer, with the case created for them)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.customers.models import Customer, ImportProgress
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import reader_locale
from portal.jobs import Claimable
from portal.models import UTCDateTime, utcnow
from portal.money import Money


class EntitlementImport(ImportProgress, Claimable, db.Model):
    """One uploaded entitlements CSV: checked by a job, then imported whole or discarded
    (the same statuses as a customer import, ``portal.customers.models.ImportStatus``)."""

    __tablename__ = "entitlement_import"

    id: Mapped[int] = mapped_column(primary_key=True)


class Entitlement(db.Model):
    """What one customer is owed the basis of, for one order: the amount and the date it was
    owed from. Free columns of the file are kept as ``attributes`` (eligibility rules read
    them). Bank details given in the file are sealed like the customer's own
    (``portal.customers.payout``) and used only when the customer has confirmed none."""

    __tablename__ = "entitlement"
    __table_args__ = (
        UniqueConstraint("event_id", "customer_id", "order_ref"),
        CheckConstraint("basis_amount > 0", name="basis_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    order_ref: Mapped[str] = mapped_column(String(64))
    basis_amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    basis_date: Mapped[date] = mapped_column(Date)
    attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    payout_sealed: Mapped[str | None] = mapped_column(Text)
    last_import_id: Mapped[int | None] = mapped_column(ForeignKey("entitlement_import.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    customer: Mapped[Customer] = relationship()


class ProgrammeStatus(StrEnum):
    """draft → awaiting_signoff → approved → generating → running → closed. Any change to the
    rules, terms or the event's entitlements sends it back to draft (the sign-off is void)."""

    DRAFT = "draft"
    AWAITING_SIGNOFF = "awaiting_signoff"
    APPROVED = "approved"
    GENERATING = "generating"
    RUNNING = "running"
    CLOSED = "closed"


PROGRAMME_STATUS_LABELS = {
    ProgrammeStatus.DRAFT: _l("draft"),
    ProgrammeStatus.AWAITING_SIGNOFF: _l("awaiting legal sign-off"),
    ProgrammeStatus.APPROVED: _l("signed off, cases not created yet"),
    ProgrammeStatus.GENERATING: _l("creating cases"),
    ProgrammeStatus.RUNNING: _l("running"),
    ProgrammeStatus.CLOSED: _l("closed"),
}
WITH_CASES = (ProgrammeStatus.GENERATING, ProgrammeStatus.RUNNING, ProgrammeStatus.CLOSED)
SIGNED_OFF = (ProgrammeStatus.APPROVED, *WITH_CASES)
MODES = ("proactive", "opt_in")
MODE_LABELS = {"proactive": _l("proactive: pay everyone eligible"),
               "opt_in": _l("opt-in: customers accept by a deadline")}
LOW_VALUE_ACTIONS = ("pay", "write_off")
LOW_VALUE_LABELS = {"pay": _l("paid without asking"), "write_off": _l("written off")}


class Programme(Claimable, db.Model):
    """A remediation programme of an event. ``rules`` holds eligibility and amount rules as
    JSON (amounts as decimal strings; ``portal.programmes.rules`` reads it). Its sign-off
    snapshot binds the rules, the terms and the hashes of the entitlement and amount lists."""

    __tablename__ = "programme"
    __table_args__ = (
        CheckConstraint("kind IN ('refund', 'compensation')", name="kind_known"),
        CheckConstraint("mode IN ('proactive', 'opt_in')", name="mode_known"),
        CheckConstraint("low_value_action IN ('pay', 'write_off')", name="low_value_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    mode: Mapped[str] = mapped_column(String(10), default="proactive")
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    calculation_date: Mapped[date] = mapped_column(Date)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    low_value_threshold: Mapped[Decimal | None] = mapped_column(Money())
    low_value_action: Mapped[str] = mapped_column(String(10), default="pay")
    budget: Mapped[Decimal | None] = mapped_column(Money())
    terms_zh: Mapped[str] = mapped_column(Text, default="")
    terms_en: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=ProgrammeStatus.DRAFT)
    # Recorded when sign-off is asked: what the snapshot bound (hex SHA-256s).
    entitlements_sha256: Mapped[str | None] = mapped_column(String(64))
    amounts_sha256: Mapped[str | None] = mapped_column(String(64))
    signoff_id: Mapped[int | None] = mapped_column(ForeignKey("signoff_request.id"))
    # Case generation (a job): how far it got, and why it stopped if it did.
    eligible_count: Mapped[int] = mapped_column(Integer, default=0)
    generated_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}

    event: Mapped[Event] = relationship()
    created_by: Mapped[User | None] = relationship()

    def name_in(self, locale: str) -> str:
        return self.name_en if locale == "en" else self.name_zh

    @property
    def name(self) -> str:
        """The name in the language being rendered."""
        return self.name_in(reader_locale())

    @property
    def signoff_standing(self) -> bool:
        """Legal's sign-off is asked or granted: an edit would void it."""
        return self.status in (ProgrammeStatus.AWAITING_SIGNOFF, ProgrammeStatus.APPROVED)

    @property
    def ready_to_generate(self) -> bool:
        return self.status == ProgrammeStatus.APPROVED

    @property
    def generating(self) -> bool:
        return self.status == ProgrammeStatus.GENERATING

    @property
    def generation_started(self) -> bool:
        return bool(self.generated_count) or self.status in (
            ProgrammeStatus.GENERATING, ProgrammeStatus.RUNNING, ProgrammeStatus.CLOSED)

    @property
    def signed_off(self) -> bool:
        """Legal signed it off: its cases may be (or were) created."""
        return self.status in SIGNED_OFF

    @property
    def has_cases(self) -> bool:
        """Its cases are being or were created: mail, payouts and reconciliation apply."""
        return self.status in WITH_CASES

    def terms_in(self, locale: str) -> str:
        return self.terms_en if locale == "en" else self.terms_zh


class MemberStatus(StrEnum):
    """A member's way: created (its case exists, under the programme) → accepted (opt-in) →
    paid; ``left`` when an agent adjusted the case (it follows the normal case rules then);
    ``unclaimed`` with the amount held (no address, bounced, no acceptance by the deadline,
    payouts failed twice); ``late`` when an opt-in acceptance came after the deadline and
    awaits review; ``written_off`` below the low-value threshold when so chosen."""

    CREATED = "created"
    ACCEPTED = "accepted"
    PAID = "paid"
    LEFT = "left"
    UNCLAIMED = "unclaimed"
    LATE = "late"
    WRITTEN_OFF = "written_off"


class ProgrammeMember(db.Model):
    """One eligible customer of a programme: unique per programme and customer, so creating
    the cases again (a second job, a resumed one) creates none twice."""

    __tablename__ = "programme_member"
    __table_args__ = (
        UniqueConstraint("programme_id", "customer_id"),
        Index("ix_programme_member_status", "programme_id", "status"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default=MemberStatus.CREATED)
    unclaimed_reason: Mapped[str | None] = mapped_column(String(32))
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_payouts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    programme: Mapped[Programme] = relationship()
    customer: Mapped[Customer] = relationship()


class ProgrammeReminder(db.Model):
    """One reminder of an opt-in programme, ``days`` before its deadline: the row is written
    before its mailing, and unique per programme and days, so a reminder goes out once however
    often (or however many at once) the periodic job runs. ``mailing_id`` is None when
    nobody was left to remind."""

    __tablename__ = "programme_reminder"
    __table_args__ = (UniqueConstraint("programme_id", "days"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"))
    days: Mapped[int] = mapped_column(Integer)
    mailing_id: Mapped[int | None] = mapped_column(ForeignKey("mailing.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
