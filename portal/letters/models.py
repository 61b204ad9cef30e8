"""A letter run (one job: one print-ready PDF of letters, and optionally a ZIP of one PDF per
customer) and its letters (one row per customer lettered, holding the letter's verification
code and nothing personal but the customer's id)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.documents import DocumentRow
from portal.events.models import Event
from portal.extensions import db
from portal.models import PdfStatus, UTCDateTime


class LetterSource(StrEnum):
    """What the letters carry: a notice version legal approved, or a signed-off programme's
    terms."""

    NOTICE = "notice"
    PROGRAMME = "programme"


SOURCE_LABELS = {LetterSource.NOTICE: _l("notice"), LetterSource.PROGRAMME: _l("programme")}


class LetterRun(DocumentRow, db.Model):
    """One run: the row comes first (queued), the shared document job renders it. ``progress``
    counts the letters rendered so far; ``total`` the customers lettered. The PDF is the
    row's file (``sha256``); the ZIP, when asked for, is ``zip_sha256``. ``content_hash`` is
    the hash of the snapshot legal approved, which the letters carry word for word."""

    __tablename__ = "letter_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    source: Mapped[str] = mapped_column(String(10))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("notice_version.id"))
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("programme.id"))
    signoff_id: Mapped[int] = mapped_column(ForeignKey("signoff_request.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    with_zip: Mapped[bool] = mapped_column(Boolean, default=False)
    total: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    zip_sha256: Mapped[str | None] = mapped_column(String(64))
    zip_size: Mapped[int | None] = mapped_column(Integer)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    event: Mapped[Event] = relationship()
    requested_by: Mapped[User | None] = relationship()

    @property
    def percent(self) -> int:
        if self.status == PdfStatus.DONE:
            return 100
        return int(100 * self.progress / self.total) if self.total else 0


class Letter(db.Model):
    """One customer's letter of a run: its verification code (``/verify`` says "a letter we
    sent on <date>", never to whom). Unique per run and customer, so a run rendered twice
    letters nobody twice."""

    __tablename__ = "letter"
    __table_args__ = (UniqueConstraint("run_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("letter_run.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    locale: Mapped[str] = mapped_column(String(8))
    verification_code: Mapped[str] = mapped_column(String(10), unique=True)

    run: Mapped[LetterRun] = relationship()
