"""Erasure of customers' personal data, on a person's request or by a retention run.

Erasure pseudonymises; the only rows it deletes are evidence files' and payout details (below).
Cases, amounts and payments stay as they were; the customer keeps its id and event and gets a
pseudonym; e-mail, phone, company and tags are emptied; the mail logs (recipient rows, reply
addresses and bodies) read "[erased]"; the customer's name, e-mail, phone, company and external
ref are replaced by "[erased]" (whole words, see ``portal.names``) in case descriptions, notes,
case sign-off snapshots (whose ``snapshot_hash`` stays as the proof of what was approved then)
and comments, the erasure reason, and the event's summary, timeline, withdrawal and emergency
reasons and sign-off comments; the reasons customers gave for declining an offer read
"[erased]". Their payout details (the sealed bank account, also an entitlement's) are deleted,
and so is the evidence the customer or staff added to the customer's cases (receipts,
screenshots), rows and files (``portal.cases.evidence``).
Public subscriptions with the customer's e-mail address are deleted (``portal.subscriptions``).
The audit trail is not touched: it never held the plain values. Personal fields are keyed
digests (see ``portal.customers.models``), and deleting the customer's ``audit_salt`` makes
them unlinkable; free texts (comments, reasons, summaries) are there only as digests or as
references to the rows above, which erasure scrubs. Archives of the event and uploaded CSVs of
its imports still hold the plain data, so their files are deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from portal import uow
from portal.accounts import User
from portal.audit import services as audit
from portal.cases import claims, evidence
from portal.cases.models import Case, CaseNote, Evidence, ReplyStatus
from portal.cases.offer_models import OfferDecision
from portal.customers import links, payout
from portal.customers import services as customer_services
from portal.customers.models import ERASED, Customer, ImportBatch
from portal.errors import RuleViolation
from portal.events.models import Event, TimelineEntry
from portal.extensions import db
from portal.i18n import N_
from portal.lifecycle.models import ArchiveStatus, EventArchive
from portal.mailings.models import (
    OPEN_RECIPIENT_STATUSES,
    Mailing,
    MailingRecipient,
    MailingTestSend,
    RecipientStatus,
)
from portal.models import text_digest, utcnow
from portal.names import Scrubber
from portal.notices.models import Notice, Publication
from portal.postmortems.models import Postmortem
from portal.programmes import entitlements
from portal.signoffs.models import SignoffRequest
from portal.subscriptions import services as subscriptions

CASE_SUBJECT = "case_decision"


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
    return files + entitlements.event_files(event_id)


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


def unlink_after_commit(files: list[Path]) -> None:
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
    other one took are left to it (their audit entries are its; what was scrubbed here of
    their data is pseudonymised the same way there)."""
    now = utcnow()
    # Read and change in memory first, claim last: on SQLite the claim takes the write lock,
    # which is then held only for the claim, the flush, the audit entries and the commit.
    with db.session.no_autoflush:
        people = list(db.session.scalars(select(Customer).where(
            Customer.id.in_(customer_ids), Customer.erased_at.is_(None)).order_by(Customer.id)))
        if not people:
            return [], []
        emails = {c.id: c.email for c in people}  # before scrubbing empties them
        entries, files = _scrub_customers(people, reason, now)
        claimed = _claim([c.id for c in people], now)
    taken = set(claimed)
    people = [c for c in people if c.id in taken]
    entries = [(customer_id, after) for customer_id, after in entries if customer_id in taken]
    if not people:
        return [], []
    for customer in people:
        customer.erased_at = now
    payout.erase(c.id for c in people)
    entitlements.erase_bank_details(c.id for c in people)
    evidence.delete_for_customers(claimed)  # its files go once this is committed
    links.erase_links([c.id for c in people])
    # A public subscription of the same address is the same person's: it goes too.
    subscriptions.erase_addresses([emails[c.id] for c in people])
    audit.record_many("customer.erase", "customer", [
        (customer_id, N_("Personal data of customer #%(id)d erased", id=customer_id), after)

        for customer_id, after in entries], actor=actor)
    return claimed, files


def _scrub_customers(people: list[Customer], reason: str,
                     now: datetime) -> tuple[list[tuple[int, dict[str, Any]]], list[Path]]:
    """The in-memory changes of an erasure: each customer's audit entry data, and the files
    to delete."""
    ids = [c.id for c in people]
    scrubbers = {c.id: Scrubber(_needles(c), ERASED) for c in people}
    counts = {c.id: {"mailing_recipients": 0, "test_sends": 0, "case_notes": 0, "signoffs": 0,
                     "evidence_deleted": 0} for c in people}
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
        for case_id, files in db.session.execute(select(Evidence.case_id, func.count()).where(
                Evidence.case_id.in_(owner)).group_by(Evidence.case_id)):
            counts[owner[case_id]]["evidence_deleted"] += files
        for case in db.session.scalars(select(Case).where(Case.id.in_(owner))):
            _scrub_attr(case, "description", scrubbers[case.customer_id])
        for note in db.session.scalars(select(CaseNote).where(CaseNote.case_id.in_(owner))):
            scrub = scrubbers[owner[note.case_id]]
            if note.kind in ("reply", "customer"):  # to or from the customer: wholly theirs
                note.body, note.to_address = ERASED, ERASED if note.to_address else None
                if note.mail_status == ReplyStatus.QUEUED:  # not sent yet: it never will be
                    note.mail_status, note.error = ReplyStatus.FAILED, "customer erased"
            else:
                _scrub_attr(note, "body", scrub)
            _scrub_attr(note, "error", scrub)
            counts[owner[note.case_id]]["case_notes"] += 1
        for decision in db.session.scalars(select(OfferDecision).where(
                OfferDecision.case_id.in_(owner), OfferDecision.reason.is_not(None))):
            decision.reason = ERASED  # typed by the customer: anything may be in it
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
    claims.erase_for_customers(ids)  # the claims matched to them, or sent from their page
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
    unlink_after_commit(files)

