"""Writing, reading and verifying the audit trail.

``record`` is called by every domain service inside the transaction of the change it
records; it never commits. What happened is given as a ``portal.i18n.Message`` (``N_``): the
entry keeps its key and parameters, read in each reader's language, and its English text as
``summary``. The chain is extended under a lock (an advisory lock on
PostgreSQL; SQLite serialises writers itself) and the unique ``prev_hash`` refuses a fork.
Each entry also carries an HMAC of its hash under a key kept outside the database, and
``verify_chain`` checks the chain against every signed checkpoint (``checkpoints``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import Select, func, insert, select, union

from portal import exports, jobs, uow
from portal.accounts import User
from portal.audit import checkpoints
from portal.audit.chain import canonical_json, compute_hash, entry_mac, lock_chain, mac_matches
from portal.audit.findings import describe
from portal.audit.models import (
    GENESIS_HASH,
    SYSTEM_ACTOR,
    AuditEntry,
    AuditEntrySubject,
    AuditVerification,
    VerificationStatus,
)
from portal.errors import Refusal
from portal.extensions import db
from portal.i18n import N_, Message, local_to_utc
from portal.models import utcnow


def normalise(value: Any) -> Any:
    """What is stored must be exactly what is hashed: round-trip through canonical JSON."""
    return None if value is None else json.loads(canonical_json(value))

# The subject of an admin setting (SLA, thresholds, targets, checklists, retention).
SETTING = "setting"
# Subject types written under another name before: those entries are chained and stay as they
# are, so the readers (filter, history, subject list) take both names as one.
FORMER_SUBJECT_TYPES = {"settings": SETTING}


def subject_type_names(subject_type: str) -> list[str]:
    """``subject_type`` and the names it was written under before."""
    return [subject_type, *(old for old, new in FORMER_SUBJECT_TYPES.items()
                            if new == subject_type)]


def client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def record(
    action: str,
    subject_type: str,
    subject_id: object,
    message: Message,
    *,
    before: Any = None,
    after: Any = None,
    actor: User | None = None,
    actor_label: str | None = None,
    concerns: dict[str, Iterable[object]] | None = None,
) -> AuditEntry:
    """Append an entry to the chain in the current transaction (the caller commits).
    ``message`` says what happened, as ``N_("…%(name)s…", name=…)``: ids, refs, digests and
    codes (``term``) only, never a customer's personal data. ``actor_label`` names an actor
    without a staff account (a customer on their own page: ``customer_actor(id)``).
    ``concerns`` names further subjects by type (``{"case": [12, 13]}``) for one entry that
    records the same fact about many: each of their histories shows it."""
    _require_message(message)
    if actor is None and actor_label is None and has_request_context():
        if current_user.is_authenticated:
            actor = current_user._get_current_object()  # type: ignore[attr-defined]
        else:  # a customer on their page (``customers.session`` names them for the request)
            actor_label = g.get("audit_actor_label")
    # The caller's pending changes go out first, outside the lock: the lock (held until the
    # transaction ends) then covers only reading the head and appending this entry.
    db.session.flush()
    lock_chain()
    entry = _chained_entry(action, subject_type, subject_id, message, before, after, actor,
                           _head_hash(), actor_label, _concerns(concerns))
    db.session.add(entry)
    db.session.flush()
    if entry.concerns:  # one compiled INSERT, executed for every row
        db.session.execute(insert(AuditEntrySubject.__table__), [
            {"entry_id": entry.id, "subject_type": kind, "subject_id": subject}
            for kind, subjects in entry.concerns.items() for subject in subjects])
    return entry


def _concerns(concerns: dict[str, Iterable[object]] | None) -> dict[str, list[str]] | None:
    """``concerns`` as stored and hashed: ids as text, each once, in order."""
    if not concerns:
        return None
    return {kind: sorted({str(subject) for subject in subjects},
                         key=lambda s: (len(s), s))
            for kind, subjects in sorted(concerns.items())}


def _head_hash() -> str:
    return db.session.scalar(
        select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS_HASH


def _require_message(message: object) -> None:
    if not isinstance(message, Message):
        raise TypeError("an audit entry says what happened as a portal.i18n.Message "
                        "(N_(key, **params)), not as finished text")


def _chained_entry(action: str, subject_type: str, subject_id: object, message: Message,
                   before: Any, after: Any, actor: User | None, prev_hash: str,
                   actor_label: str | None = None,
                   concerns: dict[str, list[str]] | None = None) -> AuditEntry:
    """A new entry following ``prev_hash``, with its hash and keyed MAC."""
    entry = AuditEntry(
        created_at=utcnow(),
        actor_id=actor.id if actor else None,
        actor_label=actor.email if actor else (actor_label or SYSTEM_ACTOR),
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        summary=message.in_english(),
        message_key=message.key,
        message_params=normalise(message.params),
        before=normalise(before),
        after=normalise(after),
        ip=client_ip(),
        prev_hash=prev_hash,
        concerns=concerns,
    )
    entry.hash = compute_hash(entry)
    entry.mac = entry_mac(entry.hash)
    return entry


def record_many(action: str, subject_type: str,
                items: Iterable[tuple[object, Message, Any]], *,
                actor: User | None = None) -> int:
    """Append one entry per ``(subject_id, message, after)`` like :func:`record`, with one
    head read and one INSERT: for bulk work (a batch of erasures), so that the chain's lock
    is held for milliseconds, not for one ORM round trip per entry."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()  # type: ignore[attr-defined]
    db.session.flush()
    lock_chain()
    prev = _head_hash()
    rows = []
    for subject_id, message, after in items:
        _require_message(message)
        entry = _chained_entry(action, subject_type, subject_id, message, None, after, actor,
                               prev)
        prev = entry.hash
        rows.append({c.key: getattr(entry, c.key) for c in AuditEntry.__mapper__.column_attrs
                     if c.key != "id"})
    if rows:
        db.session.execute(insert(AuditEntry), rows)  # one executemany
    return len(rows)


# The audit page's choice for every refused attempt (``access.refused``, ``case.payment.refused``…).
REFUSED_ACTIONS = "*.refused"


def record_refusal(refusal: Refusal) -> AuditEntry:
    """Keep a refused attempt: its request's work is rolled back (``portal.web.refuse``), so
    the entry is written and committed on its own, after that rollback (connected to
    ``portal.errors.attempt_refused`` in ``portal.wiring``)."""
    uow.rollback()  # nothing of the refused request may ride along with this commit
    entry = record(refusal.action, refusal.subject_type, refusal.subject_id, refusal.summary,
                   after=refusal.details, actor=refusal.actor)
    uow.commit()  # a refused attempt is kept although its request is answered with an error
    return entry


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    broken_entry_id: int | None = None
    finding: dict[str, Any] | None = None
    # The newest checkpoint the chain was checked against.
    checkpoint: checkpoints.Checkpoint | None = None
    legacy: int = 0  # entries from before keying, checked by their plain hash only

    @property
    def reason(self) -> str | None:
        return describe(self.finding) if self.finding else None


@dataclass
class _Anchors:
    """What the signed checkpoints say the chain must hold."""

    by_position: dict[int, checkpoints.Checkpoint] = field(default_factory=dict)
    longest: checkpoints.Checkpoint | None = None
    keyed_from: int | None = None

    @classmethod
    def of(cls, found: list[checkpoints.Checkpoint]) -> _Anchors:
        anchors = cls()
        for checkpoint in found:
            anchors.by_position.setdefault(checkpoint.entries, checkpoint)
            if anchors.longest is None or checkpoint.entries >= anchors.longest.entries:
                anchors.longest = checkpoint
            if checkpoint.keyed_from is not None:
                anchors.keyed_from = min(anchors.keyed_from or checkpoint.keyed_from,
                                         checkpoint.keyed_from)
        return anchors


def _check_entry(entry: AuditEntry, expected_prev: str,
                 keyed_from: int | None) -> dict[str, Any] | None:
    if entry.prev_hash != expected_prev:
        return {"code": "prev_mismatch", "entry": entry.id}
    if compute_hash(entry) != entry.hash:
        return {"code": "hash_mismatch", "entry": entry.id}
    if entry.mac is None:
        if keyed_from is not None and entry.id >= keyed_from:
            return {"code": "mac_missing", "entry": entry.id, "keyed_from": keyed_from}
    elif not mac_matches(entry.hash, entry.mac):
        return {"code": "mac_mismatch", "entry": entry.id}
    return None


def _concerns_finding(rows: list[AuditEntry]) -> dict[str, Any] | None:
    """The first of ``rows`` whose index rows (``audit_entry_subject``) are not exactly the
    subjects its hashed ``concerns`` names: a subject's history would miss or gain it."""
    indexed: dict[int, set[tuple[str, str]]] = {}
    for entry_id, kind, subject in db.session.execute(
            select(AuditEntrySubject.entry_id, AuditEntrySubject.subject_type,
                   AuditEntrySubject.subject_id)
            .where(AuditEntrySubject.entry_id.between(rows[0].id, rows[-1].id))):
        indexed.setdefault(entry_id, set()).add((kind, subject))
    for entry in rows:
        named = {(kind, subject) for kind, subjects in (entry.concerns or {}).items()
                 for subject in subjects}
        if indexed.get(entry.id, set()) != named:
            return {"code": "concerns_mismatch", "entry": entry.id}
    return None


def verify_chain(
    progress: Callable[[int], None] | None = None, batch: int = 1000
) -> VerifyResult:
    """Recompute every hash and HMAC in order, and hold the chain against every signed
    checkpoint; report the first entry that does not match, or a truncated tail.

    Reads in id-ordered batches (keyset), so ``progress`` may commit between them and
    memory stays flat however long the chain is.
    """
    found, problem = checkpoints.load_checkpoints()
    anchors = _Anchors.of(found)
    if problem:
        return VerifyResult(False, 0, None, problem, anchors.longest)
    expected_prev = GENESIS_HASH
    keyed_from = anchors.keyed_from
    checked = legacy = 0
    last_id = 0
    while True:
        stmt = (
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        )
        rows = list(db.session.scalars(stmt))
        if not rows:
            break
        for entry in rows:
            finding = _check_entry(entry, expected_prev, keyed_from)
            if finding:
                return VerifyResult(False, checked, entry.id, finding, anchors.longest, legacy)
            if entry.mac is None:
                legacy += 1
            elif keyed_from is None or entry.id < keyed_from:
                keyed_from = entry.id  # from here on every entry must be keyed
            expected_prev = entry.hash
            checked += 1
            anchor = anchors.by_position.get(checked)
            if anchor and (entry.id != anchor.head_id or entry.hash != anchor.head_hash):
                # This entry's HMAC is genuine, so the portal wrote it: the signed tail was
                # cut off and the chain extended again from the cut.
                replaced = entry.mac is not None
                finding = {"code": "tail_replaced" if replaced else "checkpoint_mismatch",
                           "entry": entry.id, "head_id": anchor.head_id,
                           "at": anchor.created_at, "entries": anchor.entries}
                return VerifyResult(False, checked, entry.id, finding, anchors.longest, legacy)
        finding = _concerns_finding(rows)
        if finding:
            return VerifyResult(False, checked, finding["entry"], finding, anchors.longest,
                                legacy)
        last_id = rows[-1].id
        for entry in rows:
            db.session.expunge(entry)
        if progress:
            progress(checked)
    longest = anchors.longest
    if longest and checked < longest.entries:
        finding = {"code": "truncated", "checked": checked, "entries": longest.entries,
                   "missing": longest.entries - checked, "at": longest.created_at,
                   "head_id": longest.head_id}
        return VerifyResult(False, checked, None, finding, longest, legacy)
    return VerifyResult(True, checked, None, None, longest, legacy)


@dataclass
class AuditFilter:
    actor_id: int | None = None
    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def _local_midnight(self, day: date) -> datetime:
        return local_to_utc(datetime.combine(day, time.min))

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        if self.actor_id:
            stmt = stmt.where(AuditEntry.actor_id == self.actor_id)
        if self.action and self.action.startswith("*."):  # every action ending so
            stmt = stmt.where(AuditEntry.action.endswith(self.action[1:], autoescape=True))
        elif self.action:
            stmt = stmt.where(AuditEntry.action == self.action)
        if self.subject_type and self.subject_id:  # its own entries and those concerning it
            names = subject_type_names(self.subject_type)
            stmt = stmt.where(AuditEntry.id.in_(union(
                select(AuditEntry.id).where(AuditEntry.subject_type.in_(names),
                                            AuditEntry.subject_id == self.subject_id),
                select(AuditEntrySubject.entry_id).where(
                    AuditEntrySubject.subject_type.in_(names),
                    AuditEntrySubject.subject_id == self.subject_id))))
        elif self.subject_type:
            stmt = stmt.where(AuditEntry.subject_type.in_(subject_type_names(self.subject_type)))
        elif self.subject_id:
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
    stmt = select(AuditEntry.subject_type).distinct()
    return sorted({FORMER_SUBJECT_TYPES.get(name, name) for name in db.session.scalars(stmt)})


CSV_COLUMNS = [
    "id", "created_at", "actor", "action", "subject_type", "subject_id", "summary",
    "before", "after", "ip", "prev_hash", "hash", "message_key", "message_params",
]


def _json_cell(value: Any) -> str:
    return "" if value is None else canonical_json(value)


def export_csv(flt: AuditFilter, batch: int = 1000) -> Iterator[str]:
    """Stream the filtered entries as CSV: the stored English summary, and the message key
    and parameters it was written from (every field the hash covers)."""
    rows = ([e.id, e.created_at, e.actor_label, e.action, e.subject_type, e.subject_id,
             e.summary, _json_cell(e.before), _json_cell(e.after), e.ip or "", e.prev_hash,
             e.hash, e.message_key or "", _json_cell(e.message_params)]
            for e in db.session.scalars(entries(flt).execution_options(yield_per=batch)))
    yield from exports.stream(CSV_COLUMNS, rows)


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
        N_("Chain verification requested"), actor=requested_by,
    )
    return verification


def run_verification(verification_id: int,
                     checkpoint: Callable[[], None] | None = None) -> None:
    """Do the work of one verification row; safe to run twice (a finished row is left alone).
    ``checkpoint`` is called after each progress count (the job commits it, for the page)."""
    verification = db.session.get(AuditVerification, verification_id)
    if verification is None or verification.done:
        return
    verification.status = VerificationStatus.RUNNING
    verification.checked = 0

    def progress(checked: int) -> None:
        db.session.execute(
            AuditVerification.__table__.update()
            .where(AuditVerification.id == verification_id)
            .values(checked=checked)
        )
        if checkpoint:
            checkpoint()

    with jobs.failure_recorded(AuditVerification, verification_id, error_column="message"):
        result = verify_chain(progress)
    verification = db.session.get(AuditVerification, verification_id)
    verification.status = VerificationStatus.OK if result.ok else VerificationStatus.BROKEN
    verification.checked = result.checked
    verification.total = max(verification.total, result.checked)
    verification.broken_entry_id = result.broken_entry_id
    verification.finding = result.finding
    verification.finished_at = utcnow()
