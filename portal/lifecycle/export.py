"""The export archive of a closed event: requesting it, building it (a job), and what it holds
(``event.json``, CSVs, the PDFs, the event's audit entries); its format and verifier are in
``archive.py``."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from portal import config, documents, exports, jobs
from portal.accounts import User
from portal.audit import services as audit
from portal.audit.models import AuditEntry
from portal.cases.models import Case, CaseNote, Payment
from portal.customers.models import Customer, ImportBatch
from portal.errors import RuleViolation
from portal.events.models import Event, EventTask, Stakeholder, TimelineEntry
from portal.extensions import db
from portal.i18n import N_
from portal.lifecycle import archive as fmt
from portal.lifecycle.models import ArchiveStatus, EventArchive
from portal.mailings.models import Mailing, MailingRecipient
from portal.models import PdfStatus, utcnow
from portal.notices.models import Notice, NoticePdf, NoticeVersion, Publication
from portal.payouts.models import PayoutBatch, PayoutFile, PayoutLine, PayoutResult
from portal.postmortems.models import Postmortem
from portal.programmes.models import Programme, ProgrammeMember
from portal.signoffs.models import SignoffRequest

IN_BATCH = 500  # ids per IN (...) list


def archives_dir() -> Path:
    return config.instance_folder("archives")


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
                 N_("Export archive %(archive)d of event %(event)d requested", archive=row.id,
                    event=event.id),
                 after={"archive_id": row.id}, actor=actor)
    return row


def record_download(row: EventArchive, *, actor: User) -> None:
    audit.record("event.export_download", "event", row.event_id,
                 N_("Export archive %(archive)d of event %(event)d downloaded", archive=row.id,
                    event=row.event_id),

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
        "programme": [str(p["id"]) for p in record["programmes"]],
        "payout_batch": [str(b["id"]) for b in record["payout_batches"]],
        "payout_result": [str(r["id"]) for b in record["payout_batches"]
                          for r in b["results"]],
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
                "message_key": e.message_key, "message_params": e.message_params,
                "concerns": e.concerns,
                "prev_hash": e.prev_hash, "hash": e.hash,
                "chain_prev_id": prev_ids.get(e.prev_hash),
            }
        for e in entries:
            db.session.expunge(e)


# Internal columns of a job's claim: not part of the record.
CLAIM_COLUMNS = ("claimed_at", "attempts")
# Sealed bank details never leave the portal, not even sealed.
LINE_SKIP = ("payout_sealed",)


def _programmes(event: Event) -> tuple[list[dict[str, Any]], list[ProgrammeMember]]:
    """The event's programmes (rules, terms, the digests and sign-off the snapshot bound, and
    their members counted per status and currency), and their members for the CSV."""
    programmes = list(db.session.scalars(select(Programme).where(Programme.event_id == event.id)
                                         .order_by(Programme.id)))
    members = _all(ProgrammeMember, ProgrammeMember.programme_id, [p.id for p in programmes],
                   ProgrammeMember.id)
    counts: dict[int, dict[str, dict[str, Any]]] = {}
    for m in members:
        per = counts.setdefault(m.programme_id, {}).setdefault(
            f"{m.status}/{m.currency}", {"count": 0, "amount": Decimal("0.00")})
        per["count"] += 1
        per["amount"] += m.amount
    return [{**row_dict(p, skip=CLAIM_COLUMNS), "members": counts.get(p.id, {})}
            for p in programmes], members


def _payout_batches(programme_ids: list[int], case_ids: list[int]
                    ) -> tuple[list[dict[str, Any]], list[PayoutLine]]:
    """The batches of the event's programmes or paying its cases: maker and checker, control
    sum, their files (format, SHA-256, rows, control sum) and the bank's results (SHA-256,
    counts, problems); and their lines for the CSV (without the sealed bank details)."""
    batch_ids: set[int] = set()
    for chunk in _in_batches(programme_ids):
        batch_ids.update(db.session.scalars(select(PayoutBatch.id).where(
            PayoutBatch.programme_id.in_(chunk))))
    for chunk in _in_batches(case_ids):
        batch_ids.update(db.session.scalars(select(PayoutLine.batch_id).where(
            PayoutLine.case_id.in_(chunk))))
    ids = sorted(batch_ids)
    batches = _all(PayoutBatch, PayoutBatch.id, ids, PayoutBatch.id)
    lines = _all(PayoutLine, PayoutLine.batch_id, ids, PayoutLine.id)
    files = _all(PayoutFile, PayoutFile.batch_id, ids, PayoutFile.id)
    results = _all(PayoutResult, PayoutResult.batch_id, ids, PayoutResult.id)
    line_counts: dict[int, dict[str, int]] = {}
    for line in lines:
        per = line_counts.setdefault(line.batch_id, {})
        per[line.status] = per.get(line.status, 0) + 1
    return [{**row_dict(b), "line_counts": line_counts.get(b.id, {}),
             "files": [row_dict(f, skip=CLAIM_COLUMNS) for f in files if f.batch_id == b.id],
             "results": [row_dict(r, skip=CLAIM_COLUMNS) for r in results
                         if r.batch_id == b.id]}
            for b in batches], lines


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
    programmes, members = _programmes(event)
    signoff_ids = [p["signoff_id"] for p in programmes if p["signoff_id"]]
    signoffs += [s for s in _all(SignoffRequest, SignoffRequest.id, signoff_ids,
                                 SignoffRequest.id) if s.id not in {x.id for x in signoffs}]
    payout_batches, payout_lines = _payout_batches([p["id"] for p in programmes], case_ids)
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
        "programmes": programmes,
        "programme_members": [row_dict(m) for m in members],
        "payout_batches": payout_batches,
        "payout_lines": [row_dict(line, skip=LINE_SKIP) for line in payout_lines],
    }


def _columns(model: Any, skip: tuple[str, ...] = ()) -> list[str]:
    return [a.key for a in model.__mapper__.column_attrs if a.key not in skip]


def write_archive(event: Event, out: Any) -> None:
    """Write the ZIP of ``event`` to the binary stream ``out``."""
    record = event_record(event)
    # Members and payout lines go to their CSVs only; event.json keeps their counts.
    members, payout_lines = record.pop("programme_members"), record.pop("payout_lines")
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
    member_cols = _columns(ProgrammeMember)
    writer.add("programme_members.csv", exports.to_bytes(member_cols, (
        [m[k] for k in member_cols] for m in members)))
    line_cols = _columns(PayoutLine, skip=LINE_SKIP)
    writer.add("payout_lines.csv", exports.to_bytes(line_cols, (
        [line[k] for k in line_cols] for line in payout_lines)))
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
