"""Audit entries: append-only rows, each carrying the hash of the one before it and an HMAC
of its own hash under a key kept outside the database; signed checkpoints of the chain."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import JSON, ForeignKey, Integer, String, Text, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship

from portal.accounts import User
from portal.extensions import db
from portal.i18n import Message
from portal.jobs import Claimable
from portal.models import UTCDateTime, utcnow

GENESIS_HASH = "0" * 64
# The actor label of an entry no one signed in wrote (a job, a customer's own link).
SYSTEM_ACTOR = "system"
# The actor label of what a customer did on their own page: "customer:<customer id>", never
# a name (the trail keeps no personal data).
CUSTOMER_ACTOR_PREFIX = "customer:"


def customer_actor(customer_id: int) -> str:
    return f"{CUSTOMER_ACTOR_PREFIX}{customer_id}"


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or remove an audit entry."""


class AuditEntry(db.Model):
    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    actor_label: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    # The summary in English, as written; the readers' languages come from the message key
    # (an English msgid) and its parameters, kept since they were introduced (NULL before).
    summary: Mapped[str] = mapped_column(Text)
    message_key: Mapped[str | None] = mapped_column(Text)
    message_params: Mapped[Any | None] = mapped_column(JSON)
    before: Mapped[Any | None] = mapped_column(JSON)
    after: Mapped[Any | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64))
    # Unique: two writers can never both extend the chain from the same entry.
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 of ``hash`` under AUDIT_HMAC_KEY; NULL only for entries written before
    # entries were keyed (they verify as they always did).
    mac: Mapped[str | None] = mapped_column(String(64))
    # The further subjects an entry about many things concerns (``{"case": ["12", "13"]}``):
    # one entry records a chunk of payments instead of one hashed entry per case. Hashed with
    # the entry (only when set, so older entries keep their hashes) and indexed row by row in
    # ``audit_entry_subject``, so each subject's history finds the entry.
    concerns: Mapped[Any | None] = mapped_column(JSON)

    actor: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (
        db.Index("ix_audit_entry_subject", "subject_type", "subject_id", "id"),
        # A customer's own actions, for the timeline of the staff customer page.
        db.Index("ix_audit_entry_actor_label", "actor_label", "id"),
    )

    @property
    def text(self) -> str:
        """The summary in the reader's language; an entry written before message keys, or
        whose translation does not fit its parameters, shows its stored summary."""
        if self.message_key is None:
            return self.summary
        try:
            return str(Message(self.message_key, **(self.message_params or {})))
        except (KeyError, ValueError, TypeError):
            return self.summary

    @property
    def html(self) -> Markup:
        """:attr:`text` for a page, with what people typed marked (``Message.html``)."""
        if self.message_key is None:
            return escape(self.summary)
        try:
            return Message(self.message_key, **(self.message_params or {})).html()
        except (KeyError, ValueError, TypeError):
            return escape(self.summary)

    @property
    def actor_display(self) -> str:
        """Who acted, for a reader: the account's name, or "system" in their language."""
        if self.actor is not None:
            return self.actor.name
        if self.actor_label.startswith(CUSTOMER_ACTOR_PREFIX):
            return _("customer #%(id)s", id=self.actor_label[len(CUSTOMER_ACTOR_PREFIX):])
        return _("system") if self.actor_label == SYSTEM_ACTOR else self.actor_label


class VerificationStatus(StrEnum):
    """queued → running → ok | broken | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    BROKEN = "broken"
    FAILED = "failed"


class AuditVerification(Claimable, db.Model):
    """A request to re-check the whole chain; an RQ job does the work and reports here."""

    __tablename__ = "audit_verification"

    id: Mapped[int] = mapped_column(primary_key=True)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=VerificationStatus.QUEUED)
    total: Mapped[int] = mapped_column(Integer, default=0)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    broken_entry_id: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    # What the check found, as {"code": …, and its details}, described in the reader's language.
    finding: Mapped[Any | None] = mapped_column(JSON)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    requested_by: Mapped[User | None] = relationship()

    @property
    def done(self) -> bool:
        return self.status in {VerificationStatus.OK, VerificationStatus.BROKEN,
                               VerificationStatus.FAILED}

    @property
    def percent(self) -> int:
        if self.done:
            return 100
        return int(self.checked * 100 / self.total) if self.total else 0


class AuditCheckpoint(db.Model):
    """The chain's length and head at one moment, signed with the Ed25519 key kept outside the
    database. ``payload`` is exactly the canonical JSON that was signed; the other columns
    repeat it for display. Each checkpoint is also appended to a file under instance/."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    entry_count: Mapped[int] = mapped_column(Integer)
    head_id: Mapped[int | None] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))


class AuditEntrySubject(db.Model):
    """One subject an entry concerns besides its own (``AuditEntry.concerns``, row by row):
    the index a subject's history reads; ``verify_chain`` holds it against the hashed list."""

    __tablename__ = "audit_entry_subject"

    subject_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("audit_entry.id"), primary_key=True,
                                          index=True)


APPEND_ONLY = (AuditEntry, AuditCheckpoint, AuditEntrySubject)


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditCheckpoint, "before_update")
@event.listens_for(AuditEntrySubject, "before_update")
def _refuse_update(*_: object) -> None:
    raise AppendOnlyError("audit entries are append-only; they cannot be changed")


@event.listens_for(AuditEntry, "before_delete")
@event.listens_for(AuditCheckpoint, "before_delete")
@event.listens_for(AuditEntrySubject, "before_delete")
def _refuse_delete(*_: object) -> None:
    raise AppendOnlyError("audit entries are append-only; they cannot be deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        m.class_ in APPEND_ONLY for m in state.all_mappers
    ):
        raise AppendOnlyError("audit entries are append-only; bulk update/delete refused")
