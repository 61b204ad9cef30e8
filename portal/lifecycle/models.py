"""Export archives of closed events, the retention setting and retention runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.events.models import Event
from portal.extensions import db
from portal.jobs import Claimable
from portal.models import UTCDateTime, utcnow

DEFAULT_RETENTION_DAYS = 365



class ArchiveStatus(StrEnum):
    """queued → running → done | failed; a done archive is purged (file deleted) when personal
    data of its event is erased, since the file still holds that data."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PURGED = "purged"


class RetentionRunStatus(StrEnum):
    """proposed (the dry-run report) → confirmed → running → done | failed; proposed →
    cancelled."""

    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUS_LABELS = {
    ArchiveStatus.QUEUED: _l("Queued"),
    ArchiveStatus.RUNNING: _l("Running"),
    ArchiveStatus.DONE: _l("Done"),
    ArchiveStatus.FAILED: _l("Failed"),
    ArchiveStatus.PURGED: _l("Deleted after erasure"),
    RetentionRunStatus.PROPOSED: _l("Dry run, awaiting confirmation"),
    RetentionRunStatus.CONFIRMED: _l("Confirmed, waiting for the worker"),
    RetentionRunStatus.CANCELLED: _l("Cancelled"),
}


class EventArchive(Claimable, db.Model):
    """One export of a closed event: the row comes first, an RQ job writes the ZIP."""

    __tablename__ = "event_archive"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default=ArchiveStatus.QUEUED)
    # Relative to the instance folder.
    path: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    event: Mapped[Event] = relationship()
    requested_by: Mapped[User | None] = relationship()

    @property
    def busy(self) -> bool:
        return self.status in (ArchiveStatus.QUEUED, ArchiveStatus.RUNNING)


class RetentionPolicy(db.Model):
    """A single row: how many days after an event closed its customers' data is erased."""

    __tablename__ = "retention_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    days: Mapped[int] = mapped_column(Integer, default=DEFAULT_RETENTION_DAYS)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    updated_by: Mapped[User | None] = relationship()


class RetentionRun(Claimable, db.Model):
    """A dry-run report an admin reviewed; once confirmed, the erasure of exactly its events.

    ``report`` is ``{"events": [{"event_id", "title", "closed_at", "due_at", "customers"}],
    "fields": [...]}``, frozen when the dry run was made.
    """

    __tablename__ = "retention_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=RetentionRunStatus.PROPOSED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erased_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    confirmed_by: Mapped[User | None] = relationship(foreign_keys=[confirmed_by_id])

    @property
    def busy(self) -> bool:
        return self.status in (RetentionRunStatus.CONFIRMED, RetentionRunStatus.RUNNING)

    @property
    def erasure_started(self) -> bool:
        """The worker erases or has erased: ``erased_count`` says how far it got."""
        return self.status in (RetentionRunStatus.RUNNING, RetentionRunStatus.DONE)

    @property
    def customer_total(self) -> int:
        return sum(e["customers"] for e in (self.report or {}).get("events", []))
