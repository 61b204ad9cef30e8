"""Post-mortem rules: one per event, blameless causes, optimistic locking, live facts from the
event, legal sign-off of exactly the six texts and the facts summary, PDF rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from portal import documents
from portal.accounts import User
from portal.audit import services as audit
from portal.audit.models import AuditEntry
from portal.cases.models import CLOSED_STATUSES, OPEN_STATUSES, Case, Payment
from portal.customers.models import Customer
from portal.errors import Conflict, RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, term
from portal.mailings.models import Mailing, MailingRecipient, RecipientStatus
from portal.markdown import check_renderable, render_markdown
from portal.models import text_digest, utcnow
from portal.names import first_mentioned
from portal.notices.models import Notice
from portal.postmortems.models import (
    MAX_STEP_LENGTH,
    STEP_HINTS,
    STEP_TERMS,
    STEP_TITLES,
    STEPS,
    Postmortem,
    PostmortemPdf,
)
from portal.signoffs import services as signoffs
from portal.signoffs.models import STANDING, SignoffRequest, SignoffStatus

SUBJECT = "postmortem"
TIMELINE_LIMIT = 500


def _scope(postmortem: Postmortem) -> str:
    return f"postmortem:{postmortem.id}"


def for_event(event: Event) -> Postmortem | None:
    return db.session.scalar(select(Postmortem).where(Postmortem.event_id == event.id))


def start(event: Event, *, actor: User) -> Postmortem:
    """The event's post-mortem, created empty if it has none yet."""
    existing = for_event(event)
    if existing is not None:
        return existing
    now = utcnow()
    postmortem = Postmortem(event_id=event.id, created_by_id=actor.id, created_at=now,
                            updated_by_id=actor.id, updated_at=now)
    try:
        with db.session.begin_nested():  # added inside it: see cases.services.open_case
            db.session.add(postmortem)
            db.session.flush()
    except IntegrityError:
        # Someone started it at the same moment; the unique event_id decided.
        found = for_event(event)
        if found is None:
            raise
        return found
    audit.record("postmortem.start", SUBJECT, postmortem.id,
                 N_("Post-mortem started for event “%(title)s”", title=event.title),
                 after=postmortem.audit_state(), actor=actor)
    return postmortem


# --- the steps -------------------------------------------------------------------------------


@dataclass
class Step:
    number: int
    key: str
    title: str
    term: str
    hint: str
    text: str
    html: str

    @property
    def heading(self) -> str:
        """"4 分析原因 · Analyse the causes"; just the term once the title is translated to it."""
        if self.title == self.term:
            return f"{self.number} {self.term}"
        return f"{self.number} {self.term} · {self.title}"


def steps(postmortem: Postmortem | None) -> list[Step]:
    """The six steps with their titles and sanitised HTML, for pages and the PDF."""
    texts = postmortem.texts() if postmortem else dict.fromkeys(STEPS, "")
    return [Step(n, key, str(STEP_TITLES[key]), STEP_TERMS[key], str(STEP_HINTS[key]),
                 texts[key], render_markdown(texts[key]) if texts[key] else "")
            for n, key in enumerate(STEPS, start=1)]


def _people(event_id: int) -> Iterator[str]:
    """Every staff name and e-mail address, then the names of the event's customers."""
    for name, email in db.session.execute(select(User.name, User.email)):
        yield name
        yield email
    yield from db.session.scalars(select(Customer.name).where(Customer.event_id == event_id)
                                  .execution_options(yield_per=2000))


def check_blameless(causes: str, event_id: int) -> None:
    """Causes are about systems and processes, never people: refuse any staff member's name or
    e-mail address and any customer name of the event."""
    if not causes.strip():
        return
    found = first_mentioned(causes, _people(event_id))
    if found:
        raise RuleViolation(_("Keep the causes blameless: they name a person (“%(name)s”). "
                              "Describe what happened and why our systems allowed it, "
                              "not who did it.", name=found), field="causes")


def check_no_customer_data(texts: dict[str, str], event_id: int) -> None:
    """No step may carry a customer's personal data: a post-mortem outlives the retention
    period, and its audit entries and PDFs cannot be erased later."""
    customers = db.session.execute(select(Customer.name, Customer.email, Customer.phone)
                                   .where(Customer.event_id == event_id,
                                          Customer.erased_at.is_(None))).all()
    values = [v for row in customers for v in row if v]
    for step, text in texts.items():
        found = first_mentioned(text, values) if text else None
        if found:
            raise RuleViolation(_("Leave customers' personal data out of the post-mortem "
                                  "(“%(value)s”): refer to them by case reference or as a "
                                  "group.", value=found), field=step)


def _check_version(postmortem: Postmortem, expected: int | None) -> None:
    if expected is not None and expected != postmortem.lock_version:
        raise Conflict(_("Someone else saved this post-mortem while you were editing. Copy "
                         "your text, reload the page to see their change, and save again; "
                         "yours has not been saved."))


def update(postmortem: Postmortem, texts: dict[str, str], *, expected_version: int | None,
           actor: User) -> bool:
    """Save the six steps. False when nothing changed. A change voids legal's open or granted
    sign-off: legal approved the old text, not this one."""
    _check_version(postmortem, expected_version)
    cleaned = {step: (texts.get(step) or "").strip() for step in STEPS}
    for step, text in cleaned.items():
        if len(text) > MAX_STEP_LENGTH:
            raise RuleViolation(_("At most %(n)d characters.", n=MAX_STEP_LENGTH), field=step)
        check_renderable(text, field=step)
    check_blameless(cleaned["causes"], postmortem.event_id)
    check_no_customer_data(cleaned, postmortem.event_id)
    before = postmortem.audit_state()
    if cleaned == postmortem.texts():
        return False
    actor_id = actor.id  # read first: loading an expired actor would flush half the change
    for step, text in cleaned.items():
        setattr(postmortem, step, text)
    postmortem.updated_by_id = actor_id
    postmortem.updated_at = utcnow()
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict(_("Someone else saved this post-mortem at the same moment. Reload the "
                         "page; your change has not been saved.")) from None
    signoffs.void_scope(_scope(postmortem), "post-mortem edited", actor=actor)
    changed = [s for s in STEPS if before[s] != cleaned[s]]
    audit.record("postmortem.edit", SUBJECT, postmortem.id,
                 N_("Post-mortem edited: %(steps)s",
                    steps=[term("postmortem_step", step) for step in changed]), before=before,
                 after=postmortem.audit_state(), actor=actor)
    return True


# --- facts from the event --------------------------------------------------------------------


@dataclass
class MoneyLine:
    currency: str
    proposed: Decimal = Decimal("0.00")
    approved: Decimal = Decimal("0.00")
    paid: Decimal = Decimal("0.00")


@dataclass
class Facts:
    opened_at: datetime
    timeline: list[AuditEntry]
    notices_published: int
    first_published_at: datetime | None
    first_public_at: datetime | None
    mailings: int
    recipients_sent: int
    recipients_failed: int
    cases_by_status: dict[str, int]
    money: list[MoneyLine] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.cases_by_status.values())

    @property
    def time_to_first_public_notice(self) -> timedelta | None:
        return self.first_public_at - self.opened_at if self.first_public_at else None

    def summary(self) -> dict[str, Any]:
        """The figures legal signs off with the text (not the timeline, which only grows)."""
        delay = self.time_to_first_public_notice
        return {
            "notices_published": self.notices_published,
            "first_published_at": _iso(self.first_published_at),
            "first_public_notice_after_minutes": (None if delay is None
                                                  else int(delay.total_seconds() // 60)),
            "mailings": self.mailings,
            "recipients_sent": self.recipients_sent,
            "recipients_failed": self.recipients_failed,
            "cases_by_status": dict(self.cases_by_status),
            "money": {line.currency: {"proposed": str(line.proposed),
                                      "approved": str(line.approved), "paid": str(line.paid)}
                      for line in self.money},
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _total(value: Decimal | None) -> Decimal:
    """A SQL sum of money (exact: the Money type keeps it a Decimal on every backend)."""
    return Decimal("0.00") if value is None else value


def facts(event: Event) -> Facts:
    """Everything the post-mortem may cite, computed now from the event's records."""
    published = db.session.execute(
        select(func.count(Notice.id), func.min(Notice.first_published_at))
        .where(Notice.event_id == event.id, Notice.first_published_at.is_not(None))).one()
    first_public = db.session.scalar(
        select(func.min(Notice.first_published_at))
        .where(Notice.event_id == event.id, Notice.audience == "public"))
    mailings = db.session.scalar(
        select(func.count(Mailing.id))
        .where(Mailing.event_id == event.id, Mailing.started_at.is_not(None))) or 0
    recipients = dict(db.session.execute(
        select(MailingRecipient.status, func.count(MailingRecipient.id))
        .join(Mailing, Mailing.id == MailingRecipient.mailing_id)
        .where(Mailing.event_id == event.id,
               MailingRecipient.status.in_([RecipientStatus.SENT, RecipientStatus.FAILED]))
        .group_by(MailingRecipient.status)).all())
    counts = dict(db.session.execute(
        select(Case.status, func.count(Case.id)).where(Case.event_id == event.id)
        .group_by(Case.status)).all())
    order = OPEN_STATUSES + CLOSED_STATUSES
    by_status = {s: counts[s] for s in sorted(counts, key=lambda s: (
        order.index(s) if s in order else len(order), s))}
    return Facts(
        opened_at=event.created_at,
        timeline=list(reversed(audit.history("event", event.id, limit=TIMELINE_LIMIT))),
        notices_published=published[0], first_published_at=published[1],
        first_public_at=first_public, mailings=mailings,
        recipients_sent=recipients.get(RecipientStatus.SENT, 0),
        recipients_failed=recipients.get(RecipientStatus.FAILED, 0),
        cases_by_status=by_status, money=_money(event),
    )


def _money(event: Event) -> list[MoneyLine]:
    lines: dict[str, MoneyLine] = {}

    def line(currency: str) -> MoneyLine:
        return lines.setdefault(currency, MoneyLine(currency))

    for currency, proposed, approved in db.session.execute(
            select(Case.currency, func.sum(Case.amount), func.sum(Case.approved_amount))
            .where(Case.event_id == event.id).group_by(Case.currency)):
        line(currency).proposed = _total(proposed)
        line(currency).approved = _total(approved)
    for currency, paid in db.session.execute(
            select(Payment.currency, func.sum(Payment.amount))
            .join(Case, Case.id == Payment.case_id)
            .where(Case.event_id == event.id).group_by(Payment.currency)):
        line(currency).paid = _total(paid)
    return [lines[c] for c in sorted(lines)]


# --- legal sign-off --------------------------------------------------------------------------


def snapshot(postmortem: Postmortem, found: Facts | None = None) -> dict[str, Any]:
    """Exactly what legal approves: the six texts and the facts summary."""
    found = found or facts(postmortem.event)
    return {"steps": postmortem.texts(), "facts": found.summary()}


@dataclass
class SignoffState:
    request: SignoffRequest | None
    # A pending or granted request still covers the current text and facts.
    binding: bool

    @property
    def granted(self) -> bool:
        return (self.binding and self.request is not None
                and self.request.status == SignoffStatus.APPROVED)

    @property
    def open(self) -> bool:
        return (self.binding and self.request is not None
                and self.request.status == SignoffStatus.PENDING)

    @property
    def outdated(self) -> bool:
        """Pending or granted, but for facts or text that have changed since."""
        return (not self.binding and self.request is not None
                and self.request.status in STANDING)


def signoff_state(postmortem: Postmortem, found: Facts | None = None) -> SignoffState:
    request = signoffs.latest(SUBJECT, postmortem.id)
    binding = (request is not None and request.status in STANDING
               and signoffs.check_binding(request, snapshot(postmortem, found)))
    return SignoffState(request, binding)


def request_signoff(postmortem: Postmortem, *, actor: User) -> SignoffRequest:
    """Ask legal to approve the current text and facts. A request the facts have moved away
    from (a payment since, say) is voided and replaced."""
    current = snapshot(postmortem)
    state = signoff_state(postmortem)
    if state.binding:
        raise RuleViolation(_("Legal already has exactly this post-mortem (pending or "
                              "approved)."))
    if state.request is not None and state.request.status in STANDING:
        signoffs.void_scope(_scope(postmortem), "facts changed", actor=actor)
    if not any(current["steps"].values()):
        raise RuleViolation(_("Write the post-mortem before asking legal to sign it off."))
    request = signoffs.open_request(
        subject_type=SUBJECT, subject_id=postmortem.id, scope=_scope(postmortem),
        title=N_("Post-mortem · %(event)s", event=postmortem.event.title), snapshot=current,
        author_id=postmortem.updated_by_id or postmortem.created_by_id, requested_by=actor)
    audit.record("postmortem.signoff_request", SUBJECT, postmortem.id,
                 N_("Legal sign-off requested for the post-mortem"),
                 after={"signoff_id": request.id, "snapshot_hash": request.snapshot_hash},
                 actor=actor)
    return request


def after_signoff_decision(request: SignoffRequest, actor: User) -> None:
    postmortem = db.session.get(Postmortem, request.subject_id)
    if postmortem is None:
        return
    if (request.status == SignoffStatus.APPROVED
            and not signoffs.check_binding(request, snapshot(postmortem))):
        raise RuleViolation(_("The post-mortem or its facts changed since the request; it "
                              "needs a new one."))
    audit.record(f"postmortem.signoff_{request.status}", SUBJECT, postmortem.id,
                 N_("Legal sign-off of the post-mortem: %(decision)s",
                    decision=term("signoff_status", request.status)),
                 after={"signoff_id": request.id,
                        "comment_sha256": text_digest(request.comment)}, actor=actor)


# --- PDF -------------------------------------------------------------------------------------


def request_pdf(postmortem: Postmortem, *, actor: User) -> PostmortemPdf:
    """The PDF row for the current text (and legal's grant, if it covers it); an existing row
    for the same content is reused and a failed one queued again. The caller queues it after
    the commit."""
    state = signoff_state(postmortem)
    signoff_id = state.request.id if state.granted and state.request else None
    row, created = documents.request(
        PostmortemPdf, {"postmortem_id": postmortem.id, "lock_version": postmortem.lock_version,
                        "signoff_id": signoff_id}, requested_by_id=actor.id)
    if created:
        audit.record("postmortem.pdf", SUBJECT, postmortem.id,
                     N_("PDF of the post-mortem requested (legal stamp)") if signoff_id
                     else N_("PDF of the post-mortem requested"),

                     after={"pdf_id": row.id, "lock_version": row.lock_version,
                            "signoff_id": signoff_id}, actor=actor)
    return row


def latest_pdf(postmortem: Postmortem) -> PostmortemPdf | None:
    return db.session.scalar(select(PostmortemPdf).where(
        PostmortemPdf.postmortem_id == postmortem.id).order_by(PostmortemPdf.id.desc()).limit(1))
