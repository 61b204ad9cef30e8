"""Cases, payments, notes and replies, and the admin-set policies (SLA, thresholds)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.functions import FunctionElement

from portal.accounts import User
from portal.customers.models import Customer
from portal.events.models import Event
from portal.extensions import db
from portal.models import UTCDateTime, utcnow
from portal.money import Money

KINDS = ("refund", "compensation")
SOURCES = ("staff", "customer", "triage", "programme")
REASONS = ("service_outage", "business_shutdown", "order_not_delivered", "overcharge",
           "data_loss", "other")


class CaseStatus(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    PROPOSED = "proposed"
    AWAITING_SIGNOFF = "awaiting_signoff"
    APPROVED = "approved"
    PAID = "paid"
    CLOSED = "closed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


OPEN_STATUSES = (CaseStatus.NEW, CaseStatus.IN_PROGRESS, CaseStatus.PROPOSED,
                 CaseStatus.AWAITING_SIGNOFF, CaseStatus.APPROVED, CaseStatus.PAID)
CLOSED_STATUSES = (CaseStatus.CLOSED, CaseStatus.REJECTED, CaseStatus.WITHDRAWN)
# Until it is paid a case can be edited; an edit to a proposal or an approval sends it back.
EDITABLE_STATUSES = (CaseStatus.NEW, CaseStatus.IN_PROGRESS, CaseStatus.PROPOSED,
                     CaseStatus.AWAITING_SIGNOFF, CaseStatus.APPROVED)
UNDER_PROPOSAL = (CaseStatus.PROPOSED, CaseStatus.AWAITING_SIGNOFF)

LABELS = {
    "refund": _l("Refund"), "compensation": _l("Compensation"),
    "service_outage": _l("Service outage"), "business_shutdown": _l("Business shutdown"),
    "order_not_delivered": _l("Order not delivered"), "overcharge": _l("Overcharge"),
    "data_loss": _l("Data loss"), "other": _l("Other"),
    "new": _l("New"), "in_progress": _l("In progress"), "proposed": _l("Proposed"),
    "awaiting_signoff": _l("Awaiting legal sign-off"), "approved": _l("Approved"),
    "paid": _l("Paid"), "closed": _l("Closed"), "rejected": _l("Rejected"),
    "withdrawn": _l("Withdrawn"),
    "staff": _l("Staff"), "customer": _l("The customer"), "triage": _l("A triaged claim"),
    "programme": _l("A remediation programme"),
}


class ReplyStatus(StrEnum):
    """A reply to the customer: queued → sending (claimed by a job) → sent | failed."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


REPLY_LABELS = {
    ReplyStatus.QUEUED: _l("Queued"),
    ReplyStatus.SENDING: _l("Sending"),
    ReplyStatus.SENT: _l("Sent"),
    ReplyStatus.FAILED: _l("Failed"),
}


class Case(db.Model):
    __tablename__ = "case_file"
    __table_args__ = (
        CheckConstraint("kind IN ('refund', 'compensation')", name="kind_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        # Each list sort's key ends in the id (keyset pages compare the whole key; see
        # cases/search.py), alone and after the filters that come with it.
        Index("ix_case_status_due", "status", "due_at", "id"),
        Index("ix_case_status_created", "status", "created_at", "id"),
        Index("ix_case_event_created", "event_id", "created_at", "id"),
        # covers the navigation's count of one's due cases (main/my_work.py), on every page
        Index("ix_case_assignee_status", "assignee_id", "status", "due_at"),
        Index("ix_case_assignee_due", "assignee_id", "due_at", "id"),
        Index("ix_case_amount", "amount", "id"),
        Index("ix_case_created", "created_at", "id"),
        Index("ix_case_due", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    order_ref: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    reason: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.NEW)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    approved_amount: Mapped[Decimal | None] = mapped_column(Money())
    signoff_id: Mapped[int | None] = mapped_column(ForeignKey("signoff_request.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # Who opened it: staff, the customer on their page, or an agent's triage of a claim.
    source: Mapped[str] = mapped_column(String(10), default="staff", server_default="staff")
    # Approved under this remediation programme (its one sign-off); cleared when an agent
    # adjusts the case, which then follows the normal case rules.
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("programme.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Optimistic locking: an UPDATE from a stale copy matches no row and fails.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}

    event: Mapped[Event] = relationship()
    customer: Mapped[Customer] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    proposed_by: Mapped[User | None] = relationship(foreign_keys=[proposed_by_id])
    approved_by: Mapped[User | None] = relationship(foreign_keys=[approved_by_id])
    notes: Mapped[list[CaseNote]] = relationship(back_populates="case",
                                                 order_by="CaseNote.id")
    payment: Mapped[Payment | None] = relationship(back_populates="case", uselist=False)

    @property
    def overdue(self) -> bool:
        return (self.status in OPEN_STATUSES and self.status != CaseStatus.PAID
                and self.due_at < utcnow())

    @property
    def under_proposal(self) -> bool:
        """A proposal awaits its approval: an edit of its content sends it back."""
        return self.status in UNDER_PROPOSAL

    def audit_state(self) -> dict[str, object]:
        return {
            "ref": self.ref, "kind": self.kind, "order_ref": self.order_ref,
            "amount": str(self.amount), "currency": self.currency, "reason": self.reason,
            "status": self.status, "assignee_id": self.assignee_id,
            "approved_amount": None if self.approved_amount is None else str(self.approved_amount),
        }


class _Trim(FunctionElement[str]):
    """SQL trim(), spelt as PostgreSQL spells it back (TRIM(BOTH FROM …)) in the index it
    reflects, so comparing the models with the database finds no difference."""

    name = "trim"
    type = String()
    inherit_cache = True


@compiles(_Trim)
def _trim(element: _Trim, compiler: Any, **kw: Any) -> str:
    return f"trim({compiler.process(element.clauses, **kw)})"


@compiles(_Trim, "postgresql")
def _trim_postgresql(element: _Trim, compiler: Any, **kw: Any) -> str:
    return f"TRIM(BOTH FROM {compiler.process(element.clauses, **kw)})"


def order_ref_key(order_ref: Any) -> Any:
    """An order reference as duplicates are compared: trimmed and case-folded, by the
    database (the unique index below and the service's friendly check use this one
    expression, so they always agree). SQLite's lower() folds ASCII letters only."""
    return func.lower(_Trim(order_ref))


OPEN_CASE_WHERE = text("status NOT IN ('closed', 'rejected', 'withdrawn')")
# One open case per customer, kind and order: closed ones do not count.
Index("uq_case_open_per_order", Case.customer_id, Case.kind, order_ref_key(Case.order_ref),
      unique=True, postgresql_where=OPEN_CASE_WHERE, sqlite_where=OPEN_CASE_WHERE)
# The case list's search (cases/search.py) matches customers' lower(name), lower(email) and
# lower(company) anywhere in the word: on PostgreSQL pg_trgm's GIN indexes answer that LIKE
# (migration h16_d1 creates the extension); SQLite has none and reads the table.
for _column in ("name", "email", "company"):
    Index(f"ix_customer_{_column}_trgm",
          func.lower(getattr(Customer, _column)).label(f"lower_{_column}"),
          postgresql_using="gin", postgresql_ops={f"lower_{_column}": "gin_trgm_ops"},
          ).ddl_if(dialect="postgresql")
Index("ix_case_order_ref_lower", func.lower(Case.order_ref).label("lower_order_ref"),
      postgresql_ops={"lower_order_ref": "text_pattern_ops"}).ddl_if(dialect="postgresql")
# … and below three characters, every character and pair (SQL function of migration h16_d1)
for _column in ("name", "company"):
    Index(f"ix_customer_{_column}_grams",
          func.case_search_grams(func.lower(getattr(Customer, _column))),
          postgresql_using="gin").ddl_if(dialect="postgresql")


class Payment(db.Model):
    """A payout. ``case_id`` is unique: the database itself refuses a second payment."""

    __tablename__ = "case_payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    payout_ref: Mapped[str] = mapped_column(String(64), unique=True)
    paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="payment")
    paid_by: Mapped[User | None] = relationship()


class NoteKind(StrEnum):
    INTERNAL = "internal"  # staff only
    REPLY = "reply"  # staff to the customer, e-mailed by a job
    CUSTOMER = "customer"  # the customer's message, from their page (/my)


# The conversation with the customer, shown in order on the case page; internal notes apart.
CONVERSATION_KINDS = (NoteKind.REPLY, NoteKind.CUSTOMER)


class CaseNote(db.Model):
    """An internal note, a reply to the customer (e-mailed by a job), or a customer's message
    (``author_id`` empty: the case's customer wrote it)."""

    __tablename__ = "case_note"
    __table_args__ = (CheckConstraint("kind IN ('internal', 'reply', 'customer')",
                                      name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Replies only: queued → sending → sent | failed; a temporary failure goes back to queued
    # until ``next_attempt_at``; ``claimed_at`` lets the reconciler recover a dead worker's.
    mail_status: Mapped[str | None] = mapped_column(String(8))
    mail_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    to_address: Mapped[str | None] = mapped_column(String(254))
    message_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="notes")
    author: Mapped[User | None] = relationship()


class SlaPolicy(db.Model):
    """Hours to resolve a case, by the severity of its event (admin-editable)."""

    __tablename__ = "sla_policy"

    severity: Mapped[str] = mapped_column(String(8), primary_key=True)
    hours: Mapped[int] = mapped_column(Integer)


class SignoffThreshold(db.Model):
    """A proposal at or above this amount in this currency needs legal sign-off."""

    __tablename__ = "signoff_threshold"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Money())


class CannedReply(db.Model):
    """An admin-written reply to customers, in both languages, with the placeholders of
    ``portal.placeholders``; retired ones are kept (the audit trail names them)."""

    __tablename__ = "canned_reply"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    body_zh: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    def body_for(self, locale: str) -> str:
        """The text in the customer's language."""
        return self.body_en if locale == "en" else self.body_zh

    def audit_state(self) -> dict[str, object]:
        # Written by staff for every customer: no personal data, kept readable.
        return {"title": self.title, "body_zh": self.body_zh, "body_en": self.body_en,
                "retired": self.retired}


class Uploader(StrEnum):
    """Who added a piece of evidence: the customer on their page, or staff on the case page."""

    CUSTOMER = "customer"
    STAFF = "staff"


UPLOADER_LABELS = {Uploader.CUSTOMER: _l("the customer"), Uploader.STAFF: _l("staff")}
EVIDENCE_TYPES = {"application/pdf": _l("PDF document"), "image/jpeg": _l("JPEG image"),
                  "image/png": _l("PNG image")}


class Evidence(db.Model):
    """A file on a case (a receipt, a screenshot): checked by its content and stored once per
    SHA-256 outside ``static/`` (``portal.cases.evidence_files``); images as we re-encoded them,
    with a thumbnail. ``uploader_id`` is a customer's or a staff account's id, by kind."""

    __tablename__ = "case_evidence"
    __table_args__ = (
        CheckConstraint("uploader_kind IN ('customer', 'staff')", name="uploader_known"),
        CheckConstraint("content_type IN ('application/pdf', 'image/jpeg', 'image/png')",
                        name="content_type_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    uploader_kind: Mapped[str] = mapped_column(String(8))
    uploader_id: Mapped[int] = mapped_column(Integer)
    original_name: Mapped[str] = mapped_column(String(160))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    staff_uploader: Mapped[User | None] = relationship(
        primaryjoin="and_(Evidence.uploader_kind == 'staff', "
                    "foreign(Evidence.uploader_id) == User.id)", viewonly=True)
