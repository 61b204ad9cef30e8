"""Writing, reading and verifying the audit trail.

``record`` is called by every domain service inside the transaction of the change it
records; it never commits. The chain is extended under a lock (an advisory lock on
PostgreSQL; SQLite serialises writers itself) and the unique ``prev_hash`` refuses a fork.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import has_request_context, request
from flask_babel import get_timezone
from flask_login import current_user
from sqlalchemy import Select, func, insert, select, text

from portal.audit.models import GENESIS_HASH, AuditEntry, AuditVerification
from portal.auth.models import User
from portal.extensions import db
from portal.models import utcnow

CHAIN_LOCK_KEY = 7_411_002  # arbitrary, constant advisory-lock key for the audit chain


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def normalise(value: Any) -> Any:
    """What is stored must be exactly what is hashed: round-trip through canonical JSON."""
    return None if value is None else json.loads(canonical_json(value))


def compute_hash(entry: AuditEntry) -> str:
    payload = {
        "created_at": entry.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": entry.actor_id,
        "actor_label": entry.actor_label,
        "action": entry.action,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "summary": entry.summary,
        "before": entry.before,
        "after": entry.after,
        "ip": entry.ip,
        "prev_hash": entry.prev_hash,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def _lock_chain() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})


def record(
    action: str,
    subject_type: str,
    subject_id: object,
    summary: str,
    *,
    before: Any = None,
    after: Any = None,
    actor: User | None = None,
) -> AuditEntry:
    """Append an entry to the chain in the current transaction (the caller commits)."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()  # type: ignore[attr-defined]
    # The caller's pending changes go out first, outside the lock: the lock (held until the
    # transaction ends) then covers only reading the head and appending this entry.
    db.session.flush()
    _lock_chain()
    prev = db.session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    entry = AuditEntry(
        created_at=utcnow(),
        actor_id=actor.id if actor else None,
        actor_label=actor.email if actor else "system",
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        summary=summary,
        before=normalise(before),
        after=normalise(after),
        ip=client_ip(),
        prev_hash=prev or GENESIS_HASH,
    )
    entry.hash = compute_hash(entry)
    db.session.add(entry)
    db.session.flush()
    return entry


def record_many(action: str, subject_type: str, items: Iterable[tuple[object, str, Any]], *,
                actor: User | None = None) -> int:
    """Append one entry per ``(subject_id, summary, after)`` like :func:`record`, with one
    head read and one INSERT: for bulk work (a batch of erasures), so that the chain's lock
    is held for milliseconds, not for one ORM round trip per entry."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()  # type: ignore[attr-defined]
    db.session.flush()
    _lock_chain()
    prev = db.session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    rows = []
    for subject_id, summary, after in items:
        entry = AuditEntry(
            created_at=utcnow(), actor_id=actor.id if actor else None,
            actor_label=actor.email if actor else "system", action=action,
            subject_type=subject_type, subject_id=str(subject_id), summary=summary,
            before=None, after=normalise(after), ip=client_ip(), prev_hash=prev or GENESIS_HASH,
        )
        entry.hash = prev = compute_hash(entry)
        rows.append({c.key: getattr(entry, c.key) for c in AuditEntry.__mapper__.column_attrs
                     if c.key != "id"})
    if rows:
        db.session.execute(insert(AuditEntry), rows)  # one executemany
    return len(rows)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    broken_entry_id: int | None = None
    reason: str | None = None


def verify_chain(
    progress: Callable[[int], None] | None = None, batch: int = 1000
) -> VerifyResult:
    """Recompute every hash in order; report the first entry that does not match.

    Reads in id-ordered batches (keyset), so ``progress`` may commit between them and
    memory stays flat however long the chain is.
    """
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        stmt = (
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        )
        rows = list(db.session.scalars(stmt))
        if not rows:
            return VerifyResult(True, checked)
        for entry in rows:
            if entry.prev_hash != expected_prev:
                return VerifyResult(False, checked, entry.id, "previous hash does not match")
            if compute_hash(entry) != entry.hash:
                return VerifyResult(False, checked, entry.id, "content does not match its hash")
            expected_prev = entry.hash
            checked += 1
        last_id = rows[-1].id
        for entry in rows:
            db.session.expunge(entry)
        if progress:
            progress(checked)


@dataclass
class AuditFilter:
    actor_id: int | None = None
    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def _local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=get_timezone()).astimezone(UTC)

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        if self.actor_id:
            stmt = stmt.where(AuditEntry.actor_id == self.actor_id)
        if self.action:
            stmt = stmt.where(AuditEntry.action == self.action)
        if self.subject_type:
            stmt = stmt.where(AuditEntry.subject_type == self.subject_type)
        if self.subject_id:
            stmt = stmt.where(AuditEntry.subject_id == self.subject_id)
        if self.date_from:
            stmt = stmt.where(AuditEntry.created_at >= self._local_midnight(self.date_from))
        if self.date_to:
            end = self._local_midnight(self.date_to + timedelta(days=1))
            stmt = stmt.where(AuditEntry.created_at < end)
        return stmt


def entries(flt: AuditFilter) -> Select[tuple[AuditEntry]]:
    return flt.apply(select(AuditEntry)).order_by(AuditEntry.id.desc())


def history(subject_type: str, subject_id: object, limit: int = 50) -> list[AuditEntry]:
    """The newest entries about one subject, for its history partial."""
    stmt = entries(AuditFilter(subject_type=subject_type, subject_id=str(subject_id)))
    return list(db.session.scalars(stmt.limit(limit)))


def known_actions() -> list[str]:
    stmt = select(AuditEntry.action).distinct().order_by(AuditEntry.action)
    return list(db.session.scalars(stmt))


def known_subject_types() -> list[str]:
    stmt = select(AuditEntry.subject_type).distinct().order_by(AuditEntry.subject_type)
    return list(db.session.scalars(stmt))


CSV_COLUMNS = [
    "id", "created_at", "actor", "action", "subject_type", "subject_id", "summary",
    "before", "after", "ip", "prev_hash", "hash",
]


def export_csv(flt: AuditFilter, batch: int = 1000) -> Iterator[str]:
    """Stream the filtered entries as CSV (UTF-8 with BOM so spreadsheet tools read Chinese)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    yield "\ufeff"
    writer.writerow(CSV_COLUMNS)
    stmt = entries(flt).execution_options(yield_per=batch)
    for n, e in enumerate(db.session.scalars(stmt), start=1):
        writer.writerow(
            [
                e.id, e.created_at.isoformat(), e.actor_label, e.action, e.subject_type,
                e.subject_id, e.summary,
                "" if e.before is None else canonical_json(e.before),
                "" if e.after is None else canonical_json(e.after),
                e.ip or "", e.prev_hash, e.hash,
            ]
        )
        if n % 200 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def request_verification(requested_by: User | None) -> AuditVerification:
    """The verification row comes first; the job that does the work is queued after commit."""
    verification = AuditVerification(
        requested_by_id=requested_by.id if requested_by else None,
        total=db.session.scalar(select(func.count(AuditEntry.id))) or 0,
    )
    db.session.add(verification)
    db.session.flush()
    record(
        "audit.verify_requested", "audit_verification", verification.id,
        "Chain verification requested", actor=requested_by,
    )
    return verification


def run_verification(verification_id: int) -> None:
    """Do the work of one verification row; safe to run twice (a finished row is left alone)."""
    verification = db.session.get(AuditVerification, verification_id)
    if verification is None or verification.done:
        return
    verification.status = "running"
    verification.checked = 0
    db.session.commit()

    def progress(checked: int) -> None:
        db.session.execute(
            AuditVerification.__table__.update()
            .where(AuditVerification.id == verification_id)
            .values(checked=checked)
        )
        db.session.commit()

    try:
        result = verify_chain(progress)
    except Exception as exc:
        db.session.rollback()
        verification = db.session.get(AuditVerification, verification_id)
        verification.status = "failed"
        verification.message = str(exc)[:500]
        verification.finished_at = utcnow()
        db.session.commit()
        raise
    verification = db.session.get(AuditVerification, verification_id)
    verification.status = "ok" if result.ok else "broken"
    verification.checked = result.checked
    verification.total = max(verification.total, result.checked)
    verification.broken_entry_id = result.broken_entry_id
    verification.message = result.reason
    verification.finished_at = utcnow()
    db.session.commit()
