"""Payout batches (prepared by one finance user, released by another), their lines (one per
case), the files given to the bank, and the bank's result files."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.documents import DocumentRow
from portal.extensions import db
from portal.jobs import Claimable
from portal.models import UTCDateTime, utcnow
from portal.money import Money

METHODS = ("bank", "original")


class BatchStatus(StrEnum):
    """prepared → released (files may be produced) → closed (every line paid or rejected);
    a prepared batch may be cancelled, which frees its cases."""

    PREPARED = "prepared"
    RELEASED = "released"
    CLOSED = "closed"
    CANCELLED = "cancelled"


BATCH_STATUS_LABELS = {
    BatchStatus.PREPARED: _l("prepared, awaiting release"),
    BatchStatus.RELEASED: _l("released"),
    BatchStatus.CLOSED: _l("closed"),
    BatchStatus.CANCELLED: _l("cancelled"),
}


class PayoutBatch(db.Model):
    __tablename__ = "payout_batch"
    __table_args__ = (
        CheckConstraint("method IN ('bank', 'original')", name="method_known"),
        CheckConstraint("released_by_id IS NULL OR released_by_id <> prepared_by_id",
                        name="four_eyes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("programme.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), default=BatchStatus.PREPARED)
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    control_sum: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    prepared_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}

    prepared_by: Mapped[User] = relationship(foreign_keys=[prepared_by_id])
    released_by: Mapped[User | None] = relationship(foreign_keys=[released_by_id])


class LineStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REJECTED = "rejected"


LINE_STATUS_LABELS = {
    LineStatus.PENDING: _l("no bank result yet"),
    LineStatus.PAID: _l("paid"),
    LineStatus.REJECTED: _l("rejected by the bank"),
}


class PayoutLine(db.Model):
    """One case in a batch, with the amount and the details it is paid with (copied, sealed,
    when the batch is prepared). A case is in at most one batch whose line is not rejected."""

    __tablename__ = "payout_line"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'paid', 'rejected')", name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batch.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    # The ISO 20022 end-to-end id, and what the bank's results are matched by.
    end_to_end_id: Mapped[str] = mapped_column(String(35), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    payout_sealed: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=LineStatus.PENDING)
    bank_ref: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("payout_result.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    batch: Mapped[PayoutBatch] = relationship()


LIVE_LINE_WHERE = text("status IN ('pending', 'paid')")
Index("uq_payout_line_live_case", PayoutLine.case_id, unique=True,
      postgresql_where=LIVE_LINE_WHERE, sqlite_where=LIVE_LINE_WHERE)


class PayoutFile(DocumentRow, db.Model):
    """A file for the bank, produced by a job through the shared document pipeline: its
    SHA-256 (``sha256``), row count and control sum are recorded and shown."""

    __tablename__ = "payout_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batch.id"), index=True)
    # "csv" with a bank profile, or "pain.001"
    format: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str] = mapped_column(String(32), default="")
    row_count: Mapped[int | None] = mapped_column(Integer)
    control_sum: Mapped[Decimal | None] = mapped_column(Money())
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    batch: Mapped[PayoutBatch] = relationship()


class PayoutResult(Claimable, db.Model):
    """A result file from the bank (CSV, camt.054 or pain.002), applied line by line."""

    __tablename__ = "payout_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batch.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12), default="uploaded")
    paid_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    # Lines that matched nothing, or were refused (amount differs, another batch): reported.
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    batch: Mapped[PayoutBatch] = relationship()
