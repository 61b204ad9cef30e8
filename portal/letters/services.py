"""The rules of letters: what may be lettered (only what legal approved, exactly), to whom
(the event's or programme's customers, never an erased one), starting a run, its audit
entries, and what a letter's verification code was issued for.

A letter carries the text of legal's grant word for word: a notice version's approved
snapshot (the same rule as a mailing, ``mailings.compose.sendable_grant``), or a programme's
signed-off terms while its sign-off still holds (``programmes.services.holding_preview``). The
rule is checked when a run is started and again when its job renders it, so a version or a
programme changed in between is not lettered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select

from portal import verification
from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import Case
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, reader_locale, term
from portal.letters.models import Letter, LetterRun, LetterSource
from portal.mailings import compose
from portal.models import PdfStatus, utcnow
from portal.notices.models import NoticeVersion
from portal.programmes import services as programmes
from portal.programmes.models import Programme, ProgrammeMember
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest

SUBJECT = "letter_run"
CHUNK = 100  # letters per WeasyPrint document (see pdf.py; bench/letters.py measures)


# --- what may be lettered ----------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """Legal's grant of what the letters carry, and the approved text per language: a notice's
    ``{"title", "body_html"}``, a programme's ``{"title", "terms"}`` (Markdown)."""

    kind: str
    grant: SignoffRequest
    texts: dict[str, dict[str, str]]


def notice_source(version: NoticeVersion) -> Source:
    """The version's grant, or RuleViolation (not approved, changed since, withdrawn)."""
    try:
        grant = compose.sendable_grant(version)
    except RuleViolation as err:
        raise RuleViolation(_("Legal has not approved exactly this version; it cannot be "
                              "lettered."), field="source") from err
    if signoffs.snapshot_hash(grant.snapshot) != grant.snapshot_hash:  # what is printed
        raise RuleViolation(_("Legal has not approved exactly this version; it cannot be "
                              "lettered."), field="source")
    return Source(LetterSource.NOTICE, grant, dict(grant.snapshot["locales"]))


def programme_source(programme: Programme) -> Source:
    """The programme's grant while it still holds, or RuleViolation."""
    grant = programmes.signoff_request(programme)
    if (grant is None or not programme.signed_off or not programmes.binding_holds(programme)
            or signoffs.snapshot_hash(grant.snapshot) != grant.snapshot_hash):
        raise RuleViolation(_("Legal's sign-off does not cover this programme as it is now; "
                              "it cannot be lettered."), field="source")
    snap = grant.snapshot
    return Source(LetterSource.PROGRAMME, grant, {
        locale: {"title": snap["name"][locale], "terms": snap["terms"][locale]}
        for locale in ("zh_CN", "en") if snap["terms"].get(locale)})


def source_of(run: LetterRun) -> Source:
    """The run's source as legal approves it now (RuleViolation when it no longer does), and
    bound to the grant the run was started under."""
    if run.source == LetterSource.NOTICE:
        found = notice_source(db.session.get(NoticeVersion, run.version_id))
    else:
        found = programme_source(db.session.get(Programme, run.programme_id))
    if found.grant.id != run.signoff_id or found.grant.snapshot_hash != run.content_hash:
        raise RuleViolation(_("Legal's approval changed since the run was started."),
                            field="source")
    return found


def choices(event: Event) -> list[tuple[str, str]]:
    """What an event can be lettered with: ``("notice:<version id>" | "programme:<id>",
    label)``, only sources legal approved."""
    found = [(f"notice:{version.id}", f"{notice.ref} · v{version.number} · "
              f"{version.in_locale(reader_locale())[1]['title']}")
             for notice, version in compose.sendable_versions(event)]
    found += [(f"programme:{p.id}", p.name) for p in programmes.for_event(event)
              if p.signed_off]
    return found


# --- starting ----------------------------------------------------------------------------------

def start(event: Event, choice: str, *, with_zip: bool, actor: User) -> LetterRun:
    """A new run (flushed, audited; the view queues its job after the commit)."""
    kind, _sep, raw_id = (choice or "").partition(":")
    subject_id = int(raw_id) if raw_id.isdigit() else 0
    version = programme = None
    if kind == LetterSource.NOTICE:
        version = db.session.get(NoticeVersion, subject_id)
        if version is None or version.notice.event_id != event.id:
            raise RuleViolation(_("Choose what the letters carry."), field="source")
        found = notice_source(version)
    elif kind == LetterSource.PROGRAMME:
        programme = db.session.get(Programme, subject_id)
        if programme is None or programme.event_id != event.id:
            raise RuleViolation(_("Choose what the letters carry."), field="source")
        found = programme_source(programme)
    else:
        raise RuleViolation(_("Choose what the letters carry."), field="source")
    run = LetterRun(event_id=event.id, source=found.kind,
                    version_id=version.id if version else None,
                    programme_id=programme.id if programme else None,
                    signoff_id=found.grant.id, content_hash=found.grant.snapshot_hash,
                    with_zip=with_zip, requested_by_id=actor.id, status=PdfStatus.QUEUED,
                    requested_at=utcnow())
    db.session.add(run)
    db.session.flush()
    run.total = count_recipients(run)
    audit.record("letters.started", SUBJECT, run.id,
                 N_("Letter run #%(run)d started: %(source)s, %(n)d letters",
                    run=run.id, source=term("letter_source", found.kind), n=run.total),
                 after={"source": found.kind, "signoff_id": found.grant.id,
                        "content_hash": found.grant.snapshot_hash, "total": run.total,
                        "zip": with_zip}, actor=actor)
    return run


# --- recipients --------------------------------------------------------------------------------

@dataclass
class Recipient:
    """What one letter says about its customer."""

    customer: Customer
    case_ref: str = ""
    amount: Decimal | None = None
    currency: str = ""
    case_status: str = ""


def _recipients_stmt(run: LetterRun) -> Any:
    if run.source == LetterSource.PROGRAMME:
        return (select(Customer, ProgrammeMember.case_id, ProgrammeMember.amount,
                       ProgrammeMember.currency)
                .join(ProgrammeMember, ProgrammeMember.customer_id == Customer.id)
                .where(ProgrammeMember.programme_id == run.programme_id,
                       Customer.erased_at.is_(None)).order_by(Customer.id))
    return (select(Customer).where(Customer.event_id == run.event_id,
                                   Customer.erased_at.is_(None)).order_by(Customer.id))


def count_recipients(run: LetterRun) -> int:
    return db.session.scalar(select(func.count()).select_from(
        _recipients_stmt(run).order_by(None).subquery())) or 0


def recipients(run: LetterRun) -> Iterator[list[Recipient]]:
    """The run's customers (erased ones never), ``CHUNK`` at a time, each with the case the
    letter is about: the programme member's case, else the customer's newest case."""
    rows = db.session.execute(_recipients_stmt(run)).all()
    for start_at in range(0, len(rows), CHUNK):
        part = rows[start_at:start_at + CHUNK]
        people = {row[0].id: Recipient(row[0]) for row in part}
        if run.source == LetterSource.PROGRAMME:
            case_ids = {row[1]: row[0].id for row in part if row[1]}
            for row in part:
                people[row[0].id].amount, people[row[0].id].currency = row[2], row[3]
            cases = db.session.execute(select(Case.id, Case.ref, Case.status)
                                       .where(Case.id.in_(list(case_ids)))) if case_ids else []
            for case_id, ref, status in cases:
                people[case_ids[case_id]].case_ref = ref
                people[case_ids[case_id]].case_status = status
        else:
            cases = db.session.execute(
                select(Case.customer_id, Case.ref, Case.amount, Case.approved_amount,
                       Case.currency, Case.status)
                .where(Case.customer_id.in_(list(people))).order_by(Case.id))
            for customer_id, ref, amount, approved, currency, status in cases:  # newest wins
                person = people[customer_id]
                person.case_ref, person.case_status = ref, status
                person.amount, person.currency = approved or amount, currency
        yield list(people.values())


def letter_code(run: LetterRun, customer_id: int) -> str:
    """The code of one letter: it names that letter alone, bound to the approved content."""
    return verification.derive("letter", f"{run.id}:{customer_id}", run.content_hash)


# --- finishing and downloading -----------------------------------------------------------------

def record_finished(run: LetterRun, letters: int) -> None:
    audit.record("letters.finished", SUBJECT, run.id,
                 N_("Letter run #%(run)d finished: letters: %(n)d", run=run.id, n=letters),
                 after={"sha256": run.sha256, "zip_sha256": run.zip_sha256, "letters": letters})


def record_download(run: LetterRun, what: str, *, actor: User) -> None:
    """Who took the letters (they hold personal data) is audited before the file leaves."""
    summary = (N_("Letter run #%(run)d downloaded: one PDF per customer (ZIP)", run=run.id)
               if what == "zip" else
               N_("Letter run #%(run)d downloaded: the print-ready PDF", run=run.id))
    audit.record("letters.downloaded", SUBJECT, run.id, summary, after={"file": what},
                 actor=actor)


def runs_of(event: Event) -> list[LetterRun]:
    return list(db.session.scalars(select(LetterRun).where(LetterRun.event_id == event.id)
                                   .order_by(LetterRun.id.desc())))


# --- /verify -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class IssuedLetter:
    """What ``/verify`` may say of a letter's code: when it was sent, and the notice version
    it carried (None for a programme's letter). Nothing personal."""

    sent_at: datetime | None
    version: NoticeVersion | None


def find_code(code: str) -> IssuedLetter | None:
    """The letter of a canonical code, when its run was finished (else nobody holds it)."""
    row = db.session.execute(
        select(LetterRun.finished_at, LetterRun.version_id, LetterRun.status)
        .join(Letter, Letter.run_id == LetterRun.id)
        .where(Letter.verification_code == code)).first()
    if row is None or row.status != PdfStatus.DONE:
        return None
    version = db.session.get(NoticeVersion, row.version_id) if row.version_id else None
    return IssuedLetter(row.finished_at, version)
