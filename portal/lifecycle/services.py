"""The data lifecycle of a closed event: export archive, retention and erasure.

Erasure pseudonymises; it never deletes rows. Cases, amounts and payments stay as they were;
the customer keeps its id and event and gets a pseudonym; e-mail, phone, company and tags are
emptied; the mail logs (recipient rows, reply addresses and bodies) read "[erased]"; the
customer's name, e-mail, phone, company and external ref are replaced by "[erased]" (whole
words, see ``portal.names``) in case descriptions, notes, case sign-off snapshots (whose
``snapshot_hash`` stays as the proof of what was approved then) and comments, the erasure
reason, and the event's summary, timeline, withdrawal and emergency reasons and sign-off
comments.
The audit trail is not touched: it never held the plain values. Personal fields are keyed
digests (see ``portal.customers.models``), and deleting the customer's ``audit_salt`` makes
them unlinkable; free texts (comments, reasons, summaries) are there only as digests or as
references to the rows above, which erasure scrubs. Archives of the event and uploaded CSVs of
its imports still hold the plain data, so their files are deleted.

Humans stay in control of retention: nothing is erased without an admin confirming a dry-run
report that names the events. The daily job only prepares such a report; a confirmed run
re-checks, when it runs, that each event is still closed and past retention under the current
policy, and skips it otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update

from portal import documents, exports, jobs, uow
from portal.accounts import User
from portal.audit import services as audit
from portal.audit.models import AuditEntry
from portal.cases.models import Case, CaseNote, Payment, ReplyStatus
from portal.customers import services as customer_services
from portal.customers.models import ERASED, Customer, ImportBatch
from portal.errors import RuleViolation
from portal.events.models import Event, EventStatus, EventTask, Stakeholder, TimelineEntry
from portal.extensions import db
from portal.lifecycle import archive as fmt
from portal.lifecycle.models import (
    DEFAULT_RETENTION_DAYS,
    ArchiveStatus,
    EventArchive,
    RetentionPolicy,
    RetentionRun,
    RetentionRunStatus,
)
from portal.mailings.models import (
    OPEN_RECIPIENT_STATUSES,
    Mailing,
    MailingRecipient,
    MailingTestSend,
    RecipientStatus,
)
from portal.models import PdfStatus, text_digest, utcnow
from portal.names import Scrubber
from portal.notices.models import Notice, NoticePdf, NoticeVersion, Publication
from portal.postmortems.models import Postmortem
from portal.signoffs.models import SignoffRequest

CASE_SUBJECT = "case_decision"
NOTICE_SUBJECT = "notice_version"
IN_BATCH = 500  # ids per IN (...) list
ERASE_BATCH = 200  # customers erased per transaction in a retention run
# What erasure changes, for the dry-run report (labels in the templates).
ERASED_FIELDS = ("customer_identity", "customer_contact", "mail_logs", "case_replies",
                 "case_texts", "signoff_snapshots", "files")


# --------------------------------------------------------------------------- retention policy


def policy() -> RetentionPolicy:
    """The single settings row; the default, not yet stored, until it is first changed."""
    row = db.session.get(RetentionPolicy, 1)
    if row is None:
        row = RetentionPolicy(id=1, days=DEFAULT_RETENTION_DAYS, updated_at=utcnow())
    return row


def set_retention_days(days: int, *, actor: User) -> bool:
    if not 1 <= days <= 36500:
        raise RuleViolation(_("Between 1 and 36500 days."), field="days")
    row = policy()
    if row.days == days:
        return False
    before = row.days
    row.days, row.updated_at, row.updated_by_id = days, utcnow(), actor.id
    db.session.add(row)
    audit.record("settings.retention", audit.SETTING, "retention",
                 f"Retention set to {days} days after an event closed",
                 before={"days": before}, after={"days": days}, actor=actor)
    return True


def retention_due_at(event: Event, days: int | None = None) -> datetime | None:
    if not event.closed:
        return None
    return event.closed_at + timedelta(days=policy().days if days is None else days)


def _past_retention(event: Event, days: int, now: datetime) -> bool:
    due = retention_due_at(event, days)
    return due is not None and due <= now


def _live_customers(event_id: int) -> Any:
    return select(func.count(Customer.id)).where(Customer.event_id == event_id,
                                                 Customer.erased_at.is_(None))


@dataclass
class EventRetention:
    days: int
    due_at: datetime | None
    customers: int
    erased: int

    @property
    def due(self) -> bool:
        return self.due_at is not None and self.due_at <= utcnow()


def event_retention(event: Event) -> EventRetention:
    days = policy().days
    total = db.session.scalar(select(func.count(Customer.id)).where(
        Customer.event_id == event.id)) or 0
    live = db.session.scalar(_live_customers(event.id)) or 0
    return EventRetention(days, retention_due_at(event, days), live, total - live)


# ------------------------------------------------------------------------- dry run and runs


def due_events(days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Closed events past retention that still have customers with personal data."""
    now = now or utcnow()
    stmt = (select(Event).where(Event.status == EventStatus.CLOSED, Event.closed_at.is_not(None),
                                Event.closed_at <= now - timedelta(days=days))
            .order_by(Event.closed_at, Event.id))
    found = []
    for event in db.session.scalars(stmt):
        live = db.session.scalar(_live_customers(event.id)) or 0
        if live:
            found.append({"event_id": event.id, "title": event.title,
                          "closed_at": event.closed_at.isoformat(),
                          "due_at": (event.closed_at + timedelta(days=days)).isoformat(),
                          "customers": live})
    return found


def dry_run(*, actor: User | None) -> RetentionRun:
    """Write the report of what an erasure would do now; nothing is erased."""
    days = policy().days
    run = RetentionRun(days=days, status=RetentionRunStatus.PROPOSED, created_at=utcnow(),
                       created_by_id=actor.id if actor else None,
                       report={"events": due_events(days), "fields": list(ERASED_FIELDS)})
    db.session.add(run)
    db.session.flush()
    audit.record("retention.dry_run", "retention_run", run.id,
                 f"Retention dry run: {len(run.report['events'])} events, "
                 f"{run.customer_total} customers past {days} days",
                 after={"events": [e["event_id"] for e in run.report["events"]],
                        "customers": run.customer_total, "days": days}, actor=actor)
    return run


def prepare_daily_report() -> RetentionRun | None:
    """The daily job's part: a dry-run report when events are due and none awaits review."""
    if db.session.scalar(select(RetentionRun.id).where(
            RetentionRun.status.in_([RetentionRunStatus.PROPOSED, RetentionRunStatus.CONFIRMED,
                                     RetentionRunStatus.RUNNING])).limit(1)):
        return None
    if not due_events(policy().days):
        return None
    return dry_run(actor=None)


def awaiting_confirmation(_user: User, run: RetentionRun) -> bool:
    """A dry run an admin may still confirm or cancel."""
    return run.status == RetentionRunStatus.PROPOSED


def confirm_run(run: RetentionRun, *, actor: User) -> None:
    if not awaiting_confirmation(actor, run):
        raise RuleViolation(_("Only a dry run awaiting confirmation can be confirmed."))
    if not run.report.get("events"):
        raise RuleViolation(_("This dry run found nothing to erase."))
    # Only one of two admins confirming at once wins (one audit entry, one job).
    confirmed = db.session.execute(
        update(RetentionRun).where(RetentionRun.id == run.id,
                                   RetentionRun.status == RetentionRunStatus.PROPOSED)
        .values(status=RetentionRunStatus.CONFIRMED, confirmed_at=utcnow(),
                confirmed_by_id=actor.id)
        .execution_options(synchronize_session=False)).rowcount
    if confirmed != 1:
        raise RuleViolation(_("Only a dry run awaiting confirmation can be confirmed."))
    db.session.refresh(run)
    audit.record("retention.confirm", "retention_run", run.id,
                 f"Retention run {run.id} confirmed: erase {run.customer_total} customers of "
                 f"{len(run.report['events'])} events",
                 after={"events": [e["event_id"] for e in run.report["events"]]}, actor=actor)


def cancel_run(run: RetentionRun, *, actor: User) -> None:
    if not awaiting_confirmation(actor, run):
        raise RuleViolation(_("Only a dry run awaiting confirmation can be cancelled."))
    run.status, run.finished_at = RetentionRunStatus.CANCELLED, utcnow()
    audit.record("retention.cancel", "retention_run", run.id,
                 f"Retention run {run.id} cancelled", actor=actor)


def run_retention(run_id: int, *, batch_done: Callable[[], None] | None = None) -> None:
    """Erase the customers of a confirmed run's events; safe to run twice (erased customers
    are skipped, a finished run is left alone). ``batch_done`` is called after each batch of
    customers (the job commits there, so a long run keeps what it erased)."""
    run = db.session.get(RetentionRun, run_id)
    if run is None or run.status not in (RetentionRunStatus.CONFIRMED, RetentionRunStatus.RUNNING):
        return
    run.status = RetentionRunStatus.RUNNING
    actor = db.session.get(User, run.confirmed_by_id) if run.confirmed_by_id else None
    days, now = policy().days, utcnow()
    with jobs.failure_recorded(RetentionRun, run_id):
        erased, skipped = run.erased_count, []
        for item in run.report.get("events", []):
            event = db.session.get(Event, item["event_id"])
            if event is None or not _past_retention(event, days, now):
                skipped.append(item["event_id"])
                continue
            last_id = 0
            while ids := db.session.scalars(
                    select(Customer.id).where(Customer.event_id == event.id,
                                              Customer.erased_at.is_(None),
                                              Customer.id > last_id)
                    .order_by(Customer.id).limit(ERASE_BATCH)).all():
                last_id = ids[-1]
                # Those another erasure got to first are not in ``done``.
                done, files = erase_customers(list(ids), reason=f"retention run {run_id}",
                                              actor=actor)
                erased += len(done)
                db.session.get(RetentionRun, run_id).erased_count = erased
                _unlink_after_commit(files)
                if batch_done:
                    batch_done()
        run = db.session.get(RetentionRun, run_id)
        run.status, run.finished_at = RetentionRunStatus.DONE, utcnow()
        audit.record("retention.done", "retention_run", run.id,
                     f"Retention run {run.id} finished: {erased} customers erased",
                     after={"erased": erased, "skipped_events": skipped}, actor=actor)


# ----------------------------------------------------------------------------------- erasure


def pseudonym_ref(external_ref: str) -> str:
    """Stable: the same old reference always gives the same pseudonym, which cannot be
    reversed or recomputed without ERASURE_KEY (a key of its own, so rotating SECRET_KEY
    changes no pseudonym)."""
    key = current_app.config["ERASURE_KEY"].encode()
    mac = hmac.new(key, external_ref.encode(), hashlib.sha256).hexdigest()
    return f"erased-{mac[:12]}"


def _needles(customer: Customer) -> list[str]:
    return [customer.name, customer.email, customer.phone, customer.company,
            customer.external_ref]


def _purge_event_files(event_id: int) -> list[Path]:
    """Mark the event's archives purged; return the files (archives, finished import CSVs)
    to delete once the transaction is committed."""
    files = []
    # Archives being built are purged too: they would finish with the old data.
    for row in db.session.scalars(select(EventArchive).where(
            EventArchive.event_id == event_id, EventArchive.status != ArchiveStatus.PURGED)):
        if row.path:
            files.append(Path(current_app.instance_path) / row.path)
        row.status = ArchiveStatus.PURGED
    # Every upload of the event, whatever its state: the files and the error previews hold
    # the rows as they were typed.
    for batch in db.session.scalars(select(ImportBatch).where(ImportBatch.event_id == event_id)):
        files += [customer_services.upload_path(batch), customer_services.rejected_path(batch)]
        if batch.first_errors:
            batch.first_errors = []
    return files


def _scrub_attr(row: Any, attr: str, scrub: Scrubber) -> None:
    """Assign only a changed value: an unchanged row costs no UPDATE."""
    value = getattr(row, attr)
    cleaned = scrub(value)
    if cleaned != value:
        setattr(row, attr, cleaned)


def _scrub_event(event_id: int, scrub: Scrubber) -> list[Path]:
    """The event-wide texts that may name any of its customers: done once per batch of
    erased customers, with one scrubber for all of them."""
    event = db.session.get(Event, event_id)
    _scrub_attr(event, "summary", scrub)
    for entry in db.session.scalars(select(TimelineEntry).where(
            TimelineEntry.event_id == event_id)):
        _scrub_attr(entry, "text", scrub)
    notices = list(db.session.scalars(select(Notice).where(Notice.event_id == event_id)))
    for notice in notices:
        _scrub_attr(notice, "withdrawn_reason", scrub)
    for publication in db.session.scalars(select(Publication).where(
            Publication.notice_id.in_([n.id for n in notices] or [0]))):
        _scrub_attr(publication, "emergency_reason", scrub)
    scopes = [f"notice:{n.id}" for n in notices] + [
        f"postmortem:{pid}" for pid in db.session.scalars(
            select(Postmortem.id).where(Postmortem.event_id == event_id))]
    for request in db.session.scalars(select(SignoffRequest).where(
            SignoffRequest.scope.in_(scopes or [""]))):
        _scrub_attr(request, "comment", scrub)
    return _purge_event_files(event_id)


def _unlink(files: Iterable[Path]) -> None:
    for path in files:
        path.unlink(missing_ok=True)


def _unlink_after_commit(files: list[Path]) -> None:
    """Delete an erasure's files once it is committed (never while it may still roll back)."""
    uow.after_commit(lambda: _unlink(files))


def _claim(customer_ids: list[int], now: datetime) -> list[int]:
    """Compare-and-set: of two erasures at once, only one goes on with each customer (and
    holds its row)."""
    table = Customer.__table__
    return sorted(db.session.execute(
        table.update().where(table.c.id.in_(customer_ids), table.c.erased_at.is_(None))
        .values(erased_at=now).returning(table.c.id)).scalars())


def erase_customers(customer_ids: list[int], *, reason: str,
                    actor: User | None) -> tuple[list[int], list[Path]]:
    """Pseudonymise these customers everywhere, with one audit entry each, in the current
    transaction; the caller commits, then deletes the returned files. Returns the ids erased
    now (not those already erased) and the files.

    The texts of each customer's own rows are scrubbed with that customer's values; the
    event-wide texts (timeline, summary, sign-off comments) and files once per call for all of
    them. The audit entries come last, in one INSERT, just before the caller commits: the
    chain's lock is then held only for writing them, not for the scrubbing (sign-ins append
    to the chain too). On a race with another erasure the claim decides: the customers the
    other one took are left to it."""
    now = utcnow()
    with db.session.no_autoflush:
        people = list(db.session.scalars(select(Customer).where(
            Customer.id.in_(customer_ids), Customer.erased_at.is_(None)).order_by(Customer.id)))
        claimed = _claim([c.id for c in people], now) if people else []
        people = [c for c in people if c.id in set(claimed)]
        if not people:
            return [], []
        entries, files = _scrub_customers(people, reason, now)
    for customer in people:
        customer.erased_at = now
    audit.record_many("customer.erase", "customer", [
        (customer_id, f"Personal data of customer #{customer_id} erased", after)
        for customer_id, after in entries], actor=actor)
    return claimed, files


def _scrub_customers(people: list[Customer], reason: str,
                     now: datetime) -> tuple[list[tuple[int, dict[str, Any]]], list[Path]]:
    """The in-memory changes of an erasure: each customer's audit entry data, and the files
    to delete."""
    ids = [c.id for c in people]
    scrubbers = {c.id: Scrubber(_needles(c), ERASED) for c in people}
    counts = {c.id: {"mailing_recipients": 0, "test_sends": 0, "case_notes": 0, "signoffs": 0}
              for c in people}
    event_ids = sorted({c.event_id for c in people})
    for row in db.session.scalars(select(MailingRecipient).where(
            MailingRecipient.mailing_id.in_(select(Mailing.id).where(
                Mailing.event_id.in_(event_ids))),
            MailingRecipient.customer_id.in_(ids))):
        row.email = ERASED
        _scrub_attr(row, "last_error", scrubbers[row.customer_id])
        if row.status in OPEN_RECIPIENT_STATUSES:  # not (surely) mailed yet: it never will be
            row.status, row.chunk, row.last_error = RecipientStatus.SKIPPED, None, "customer erased"
        counts[row.customer_id]["mailing_recipients"] += 1
    for row in db.session.scalars(select(MailingTestSend).where(
            MailingTestSend.customer_id.in_(ids))):
        _scrub_attr(row, "error", scrubbers[row.customer_id])
        counts[row.customer_id]["test_sends"] += 1
        row.customer_id = None  # sent to staff; the link to the customer is what goes
    owner = dict(db.session.execute(select(Case.id, Case.customer_id).where(
        Case.customer_id.in_(ids))).all())
    if owner:
        for case in db.session.scalars(select(Case).where(Case.id.in_(owner))):
            _scrub_attr(case, "description", scrubbers[case.customer_id])
        for note in db.session.scalars(select(CaseNote).where(CaseNote.case_id.in_(owner))):
            scrub = scrubbers[owner[note.case_id]]
            if note.kind == "reply":
                note.body, note.to_address = ERASED, ERASED
                if note.mail_status == ReplyStatus.QUEUED:  # not sent yet: it never will be
                    note.mail_status, note.error = ReplyStatus.FAILED, "customer erased"
            else:
                _scrub_attr(note, "body", scrub)
            _scrub_attr(note, "error", scrub)
            counts[owner[note.case_id]]["case_notes"] += 1
        pseudonyms = {c.id: pseudonym_ref(c.external_ref) for c in people}
        for request in db.session.scalars(select(SignoffRequest).where(
                SignoffRequest.subject_type == CASE_SUBJECT,
                SignoffRequest.subject_id.in_(owner))):
            customer_id = owner[request.subject_id]
            snapshot = json.loads(json.dumps(scrubbers[customer_id](request.snapshot)))
            if isinstance(snapshot, dict) and isinstance(snapshot.get("customer"), dict):
                snapshot["customer"] = {**snapshot["customer"], "name": ERASED,
                                        "external_ref": pseudonyms[customer_id]}
            request.snapshot = snapshot  # a new object; snapshot_hash stays as the proof
            _scrub_attr(request, "comment", scrubbers[customer_id])
            counts[customer_id]["signoffs"] += 1
    files: list[Path] = []
    purged: dict[int, int] = {}
    for event_id in event_ids:
        batch = Scrubber([v for c in people if c.event_id == event_id for v in _needles(c)],
                         ERASED)
        found = _scrub_event(event_id, batch)
        purged[event_id] = len(found)
        files += found
    entries = []
    for customer in people:
        stored_reason = scrubbers[customer.id](reason)
        new_ref = pseudonym_ref(customer.external_ref)
        # Stored data, not interface text: the same in every language.
        customer.name = f"Erased customer #{customer.id}"
        customer.external_ref = new_ref
        customer.email = customer.phone = customer.company = ""
        customer.tags = []
        customer.audit_salt = None
        customer.erasure_reason = stored_reason
        customer.updated_at = now  # erased_at: set by the claim
        entries.append((customer.id, {
            "reason_sha256": text_digest(stored_reason),
            "pseudonym": new_ref, **counts[customer.id],
            # the event's files, counted on the first of its customers erased here
            "files_deleted": purged.pop(customer.event_id, 0)}))
    return entries, files


def erase_on_request(customer: Customer, reason: str, *, actor: User) -> None:
    """Erase one customer now, on the person's request (an admin gives the reason)."""
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation(_("Say why: a reason is required."), field="reason")
    if customer.erased:
        raise RuleViolation(_("This customer's personal data was already erased."))
    erased, files = erase_customers([customer.id], reason=reason[:500], actor=actor)
    if not erased:
        raise RuleViolation(_("This customer's personal data was already erased."))
    _unlink_after_commit(files)


# ---------------------------------------------------------------------------- export archive


def archives_dir() -> Path:
    path = Path(current_app.instance_path) / "archives"
    path.mkdir(parents=True, exist_ok=True)
    return path


def archive_path(row: EventArchive) -> Path | None:
    return Path(current_app.instance_path) / row.path if row.path else None


def request_export(event: Event, *, actor: User) -> EventArchive:
    """The archive row first (the caller commits, then queues the job)."""
    if not event.closed:
        raise RuleViolation(_("Only a closed event can be exported."))
    row = EventArchive(event_id=event.id, requested_by_id=actor.id, status=ArchiveStatus.QUEUED,
                       requested_at=utcnow())
    db.session.add(row)
    db.session.flush()
    audit.record("event.export", "event", event.id,
                 f"Export archive {row.id} of event {event.id} requested",
                 after={"archive_id": row.id}, actor=actor)
    return row


def record_download(row: EventArchive, *, actor: User) -> None:
    audit.record("event.export_download", "event", row.event_id,
                 f"Export archive {row.id} of event {row.event_id} downloaded",
                 after={"archive_id": row.id, "sha256": row.sha256}, actor=actor)


def build_archive(archive_id: int) -> str | None:
    """Write the archive of one row; a finished row whose file is intact is left alone."""
    row = db.session.get(EventArchive, archive_id)
    if row is None or row.status in (ArchiveStatus.FAILED, ArchiveStatus.PURGED):
        return None
    path = archive_path(row)
    if row.status == ArchiveStatus.DONE and path and path.exists() and _sha256(path) == row.sha256:
        return row.sha256
    final = archives_dir() / f"event-{row.event_id}-archive-{row.id}.zip"
    partial = final.with_suffix(".part")
    with jobs.failure_recorded(EventArchive, archive_id):
        try:
            with partial.open("wb") as out:
                write_archive(db.session.get(Event, row.event_id), out)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
    digest, size = _sha256(final), final.stat().st_size
    # Only if still running: an erasure meanwhile purged the row, and its data with it.
    finished = db.session.execute(
        update(EventArchive).where(EventArchive.id == archive_id,
                                   EventArchive.status == ArchiveStatus.RUNNING)
        .values(status=ArchiveStatus.DONE, finished_at=utcnow(), sha256=digest, size=size,
                path=str(final.relative_to(current_app.instance_path)))).rowcount
    if finished != 1:
        final.unlink(missing_ok=True)
        return None
    return digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """For event.json: money as a decimal string, times in ISO 8601."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def row_dict(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every column of a row, as stored (event.json writes it through ``_plain``, the CSVs
    through the portal's CSV writer)."""
    return {attr.key: getattr(obj, attr.key) for attr in obj.__mapper__.column_attrs
            if attr.key not in skip}


def _in_batches(ids: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(ids), IN_BATCH):
        yield ids[start:start + IN_BATCH]


def _all(model: Any, column: Any, ids: list[Any], order: Any) -> list[Any]:
    found: list[Any] = []
    for chunk in _in_batches(ids):
        found += db.session.scalars(select(model).where(column.in_(chunk)).order_by(order))
    return sorted(found, key=lambda r: r.id)


# The audit subject types an event's record covers, with how to find their ids.
def _audit_subjects(event: Event, record: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "event": [str(event.id)],
        "notice": [str(n["id"]) for n in record["notices"]],
        "signoff": [str(s["id"]) for s in record["signoffs"]],
        "customer": [str(c["id"]) for c in record["customers"]],
        "case": [str(c["id"]) for c in record["cases"]],
        "mailing": [str(m["id"]) for m in record["mailings"]],
        "customer_import": [str(b["id"]) for b in record["imports"]],
        "postmortem": [str(record["postmortem"]["id"])] if record["postmortem"] else [],
    }


def _audit_lines(subjects: dict[str, list[str]]) -> Iterator[dict[str, Any]]:
    entry_ids: set[int] = set()
    for subject_type, ids in subjects.items():
        for chunk in _in_batches(ids):
            entry_ids.update(db.session.scalars(select(AuditEntry.id).where(
                AuditEntry.subject_type == subject_type, AuditEntry.subject_id.in_(chunk))))
    for chunk in _in_batches(sorted(entry_ids)):
        entries = list(db.session.scalars(select(AuditEntry).where(AuditEntry.id.in_(chunk))
                                          .order_by(AuditEntry.id)))
        prev_ids = dict(db.session.execute(select(AuditEntry.hash, AuditEntry.id).where(
            AuditEntry.hash.in_([e.prev_hash for e in entries]))).all())
        for e in entries:
            yield {
                "id": e.id,
                "created_at": e.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "actor_id": e.actor_id, "actor_label": e.actor_label, "action": e.action,
                "subject_type": e.subject_type, "subject_id": e.subject_id,
                "summary": e.summary, "before": e.before, "after": e.after, "ip": e.ip,
                "prev_hash": e.prev_hash, "hash": e.hash,
                "chain_prev_id": prev_ids.get(e.prev_hash),
            }
        for e in entries:
            db.session.expunge(e)


def event_record(event: Event) -> dict[str, Any]:
    """The event's full record as plain data (the body of event.json)."""
    notices = list(db.session.scalars(select(Notice).where(Notice.event_id == event.id)
                                      .order_by(Notice.id)))
    notice_ids = [n.id for n in notices]
    versions = _all(NoticeVersion, NoticeVersion.notice_id, notice_ids, NoticeVersion.id)
    version_ids = [v.id for v in versions]
    publications = _all(Publication, Publication.notice_id, notice_ids, Publication.id)
    pdfs = _all(NoticePdf, NoticePdf.version_id, version_ids, NoticePdf.id)
    customers = list(db.session.scalars(select(Customer).where(Customer.event_id == event.id)
                                        .order_by(Customer.id)))
    cases = list(db.session.scalars(select(Case).where(Case.event_id == event.id)
                                    .order_by(Case.id)))
    case_ids = [c.id for c in cases]
    payments = {p.case_id: p for p in _all(Payment, Payment.case_id, case_ids, Payment.id)}
    notes: dict[int, list[CaseNote]] = {}
    for note in _all(CaseNote, CaseNote.case_id, case_ids, CaseNote.id):
        notes.setdefault(note.case_id, []).append(note)
    signoffs = [s for s in db.session.scalars(select(SignoffRequest).where(or_(
        SignoffRequest.scope.in_([f"notice:{i}" for i in notice_ids] or [""]),
        SignoffRequest.scope.in_([f"case:{i}" for i in case_ids] or [""]))
    ).order_by(SignoffRequest.id))]
    mailings = list(db.session.scalars(select(Mailing).where(Mailing.event_id == event.id)
                                       .order_by(Mailing.id)))
    recipients: dict[int, list[MailingRecipient]] = {}
    for r in _all(MailingRecipient, MailingRecipient.mailing_id, [m.id for m in mailings],
                  MailingRecipient.id):
        recipients.setdefault(r.mailing_id, []).append(r)
    imports = db.session.scalars(select(ImportBatch).where(ImportBatch.event_id == event.id)
                                 .order_by(ImportBatch.id))
    postmortem = db.session.scalar(select(Postmortem).where(Postmortem.event_id == event.id))
    if postmortem is not None:
        signoffs += list(db.session.scalars(select(SignoffRequest).where(
            SignoffRequest.scope == f"postmortem:{postmortem.id}").order_by(SignoffRequest.id)))

    def of_event(model: Any) -> list[dict[str, Any]]:
        return [row_dict(row) for row in db.session.scalars(
            select(model).where(model.event_id == event.id).order_by(model.id))]

    return {
        "event": row_dict(event),
        "notices": [{**row_dict(n),
                     "versions": [row_dict(v) for v in versions if v.notice_id == n.id],
                     "publications": [row_dict(p) for p in publications if p.notice_id == n.id],
                     "pdfs": [{**row_dict(p), "file": f"pdfs/{p.sha256}.pdf"
                               if p.status == PdfStatus.DONE and p.sha256 else None}
                              for p in pdfs if p.version_id in
                              {v.id for v in versions if v.notice_id == n.id}]}
                    for n in notices],
        "signoffs": [row_dict(s) for s in signoffs],
        "customers": [row_dict(c, skip=("audit_salt",)) for c in customers],
        "cases": [{**row_dict(c),
                   "payment": row_dict(payments[c.id]) if c.id in payments else None,
                   "notes": [row_dict(n) for n in notes.get(c.id, [])]} for c in cases],
        "mailings": [{**row_dict(m),
                      "recipients": [row_dict(r) for r in recipients.get(m.id, [])]}
                     for m in mailings],
        "imports": [row_dict(b) for b in imports],
        "checklist": of_event(EventTask),
        "timeline": of_event(TimelineEntry),
        "stakeholders": of_event(Stakeholder),
        "postmortem": row_dict(postmortem) if postmortem else None,
    }


def _columns(model: Any, skip: tuple[str, ...] = ()) -> list[str]:
    return [a.key for a in model.__mapper__.column_attrs if a.key not in skip]


def write_archive(event: Event, out: Any) -> None:
    """Write the ZIP of ``event`` to the binary stream ``out``."""
    record = event_record(event)
    exported_at = utcnow().isoformat()
    writer = fmt.ArchiveWriter(out)
    writer.add("event.json", json.dumps({"format": fmt.FORMAT, "exported_at": exported_at,
                                         **record}, ensure_ascii=False, indent=2,
                                        default=_plain).encode())
    customer_cols = _columns(Customer, skip=("audit_salt",))
    writer.add("customers.csv", exports.to_bytes(customer_cols, (
        [c[k] for k in customer_cols] for c in record["customers"])))
    case_cols = _columns(Case)
    writer.add("cases.csv", exports.to_bytes(case_cols, ([c[k] for k in case_cols]
                                                     for c in record["cases"])))
    payment_cols = _columns(Payment)
    writer.add("payments.csv", exports.to_bytes(payment_cols, (
        [c["payment"][k] for k in payment_cols] for c in record["cases"] if c["payment"])))
    recipient_cols = _columns(MailingRecipient)
    writer.add("mailing_recipients.csv", exports.to_bytes(recipient_cols, (
        [r[k] for k in recipient_cols] for m in record["mailings"] for r in m["recipients"])))
    seen: set[str] = set()
    for notice in record["notices"]:
        for item in notice["pdfs"]:
            source = documents.storage_dir() / f"{item['sha256']}.pdf" if item["file"] else None
            if source and item["file"] not in seen and source.exists():
                seen.add(item["file"])
                writer.add_file(item["file"], source)
    audit_buf = io.BytesIO()
    count, head = 0, None
    for line in _audit_lines(_audit_subjects(event, record)):
        audit_buf.write(fmt.canonical_json(line).encode() + b"\n")
        count, head = count + 1, line["hash"]
    writer.add(fmt.AUDIT, audit_buf.getvalue())
    writer.close({"event_id": record["event"]["id"], "exported_at": exported_at,
                  "audit": {"entries": count, "last_hash": head}})
