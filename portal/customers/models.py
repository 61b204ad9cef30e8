"""Customers and their CSV import batches.

Personal data stays out of the audit trail (crypto-shredding): the trail is append-only and
hash-chained, so nothing written there can ever be removed. ``Customer.audit_state`` therefore
records each personal field (external ref, name, company, e-mail, phone, tags) only as a keyed
digest, HMAC-SHA256 under ``audit_salt``, a random key of the customer's own. While the salt
exists, a digest shows that a field changed and can be checked against a known value; erasing
the customer deletes the salt, and from then on no digest in the trail can be linked to the
person again. The external ref is a business identifier but often names a person (an account
number), so it counts as personal. The locale is kept readable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from portal.accounts import User
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import Message
from portal.jobs import Claimable
from portal.models import UTCDateTime, utcnow

CUSTOMER_LOCALES = ("zh_CN", "en")
# Recorded in the audit trail only as keyed digests (see the module docstring).
PERSONAL_FIELDS = ("external_ref", "name", "company", "email", "phone", "tags")
ERASED = "[erased]"


def new_audit_salt() -> str:
    return secrets.token_hex(32)


def keyed_digest(salt: str | None, value: object) -> str:
    """A keyed digest (HMAC-SHA256 under ``salt``) of one personal value; "" stays "" (nothing
    given), and once the salt is deleted (erasure) every value reads "[erased]"."""
    if value in ("", None, []):
        return ""
    if salt is None:
        return ERASED
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)
    return "hmac-sha256:" + hmac.new(bytes.fromhex(salt), text.encode(),
                                     hashlib.sha256).hexdigest()


class Customer(db.Model):
    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("event_id", "external_ref"),
        Index("ix_customer_event_name", "event_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    external_ref: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="", index=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Set from the public unsubscribe page or a List-Unsubscribe one-click POST.
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The key of the audit digests; NULL once the customer is erased (crypto-shredding).
    # The column default covers the bulk CSV import, which inserts without the ORM.
    audit_salt: Mapped[str | None] = mapped_column(String(64), default=new_audit_salt)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Why it was erased, here and not in the audit trail (which holds its SHA-256): the reason
    # may name the person, and erasure scrubs it like every other text.
    erasure_reason: Mapped[str | None] = mapped_column(Text)
    # The CSV import that added this customer, and the last one that wrote it (the customer
    # page shows both); NULL for customers added by hand.
    created_by_import_id: Mapped[int | None] = mapped_column(ForeignKey("customer_import.id"))
    last_import_id: Mapped[int | None] = mapped_column(ForeignKey("customer_import.id"))

    event: Mapped[Event] = relationship()
    created_by_import: Mapped[ImportBatch | None] = relationship(
        foreign_keys=[created_by_import_id])
    last_import: Mapped[ImportBatch | None] = relationship(foreign_keys=[last_import_id])
    # Read-only, and named rather than imported: the cases domain sits above customers.
    cases = relationship("Case", viewonly=True, order_by="Case.id.desc()")

    def __init__(self, **kwargs: Any) -> None:
        # Set at once (not at flush), so audit_state works on a customer not yet flushed.
        kwargs.setdefault("audit_salt", new_audit_salt())
        super().__init__(**kwargs)

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    def audit_digest(self, value: object) -> str:
        """A keyed digest of one personal value (:func:`keyed_digest` under its salt)."""
        return keyed_digest(self.audit_salt, value)

    def audit_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"locale": self.locale}
        for name in PERSONAL_FIELDS:
            value = getattr(self, name)
            state[name] = self.audit_digest(sorted(value or []) if name == "tags" else value)
        return state


class ImportStatus(StrEnum):
    """uploaded → validating → validated → importing → imported | discarded | failed."""

    UPLOADED = "uploaded"
    VALIDATING = "validating"
    VALIDATED = "validated"
    IMPORTING = "importing"
    IMPORTED = "imported"
    DISCARDED = "discarded"
    FAILED = "failed"


IMPORT_LABELS = {
    ImportStatus.UPLOADED: _l("uploaded"),
    ImportStatus.VALIDATING: _l("being checked"),
    ImportStatus.VALIDATED: _l("checked, awaiting confirmation"),
    ImportStatus.IMPORTING: _l("importing"),
    ImportStatus.IMPORTED: _l("imported"),
    ImportStatus.DISCARDED: _l("discarded"),
    ImportStatus.FAILED: _l("failed"),
}


# A job works on the file (or is about to).
BUSY_IMPORT_STATUSES = (ImportStatus.UPLOADED, ImportStatus.VALIDATING, ImportStatus.IMPORTING)


class ImportProgress:
    """An uploaded CSV's row (customers' and entitlements' alike): the file, the counts the job
    keeps, and what the pages read of it — whether a job works on it, and its failure and
    first errors as messages."""

    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    encoding: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12), default=ImportStatus.UPLOADED)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    valid_rows: Mapped[int] = mapped_column(Integer, default=0)
    error_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    first_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @declared_attr
    def event_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("event.id"), index=True)

    @declared_attr
    def uploaded_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("user_account.id"))

    @declared_attr
    def event(cls) -> Mapped[Event]:
        return relationship(Event)

    @declared_attr
    def uploaded_by(cls) -> Mapped[User | None]:
        return relationship(User)

    @property
    def busy(self) -> bool:
        return self.status in BUSY_IMPORT_STATUSES

    @property
    def validating(self) -> bool:
        """Uploaded and not checked yet: the validation job has it (or will)."""
        return self.status in (ImportStatus.UPLOADED, ImportStatus.VALIDATING)

    @property
    def failure(self) -> Message | None:
        """Why the file could not be processed: ``message`` holds a Message as JSON (or,
        from before reasons were kept as keys, plain text)."""
        if not self.message:
            return None
        try:
            return Message.from_json(json.loads(self.message))
        except (ValueError, TypeError, KeyError):
            return Message(self.message)

    @property
    def errors_preview(self) -> list[tuple[int, Message]]:
        """The first rejected rows: their line and reason, to be read in any language."""
        return [(e.get("line", e.get("row")), Message.from_json(e.get("reason", e.get("error"))))
                for e in self.first_errors or []]


class ImportBatch(ImportProgress, Claimable, db.Model):
    """One uploaded CSV: validated by a job (preview), then imported whole or discarded."""

    __tablename__ = "customer_import"

    id: Mapped[int] = mapped_column(primary_key=True)
