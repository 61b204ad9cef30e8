"""Column types and helpers shared by every domain's models."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, DateTime, Integer, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeDecorator

from portal.extensions import db


class PdfStatus(StrEnum):
    """A document rendered by a job: queued → running → done | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


PDF_STATUS_LABELS = {
    PdfStatus.QUEUED: _l("Queued"),
    PdfStatus.RUNNING: _l("Rendering"),
    PdfStatus.DONE: _l("Done"),
    PdfStatus.FAILED: _l("Failed"),
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def among(column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column IN ids`` for the long lists of integer ids of bulk work. On PostgreSQL one
    array parameter (``= ANY(:ids)``): the statement's text is the same whatever the count,
    where an IN list of 500 is rendered, sent and parsed anew for every chunk (a tenth of
    applying a bank file of 100,000 lines). Elsewhere a plain IN."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    return column.in_(list(ids))


def text_digest(text: str | None) -> str | None:
    """What the audit trail keeps of a free text that may name a person: its SHA-256. The text
    itself stays on its own row, where erasure can scrub it; the trail cannot be changed."""
    return hashlib.sha256(text.encode()).hexdigest() if text else None


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use portal.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
