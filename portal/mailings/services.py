"""Mailing rules: drafting a mailing, its state machine (start, pause, resume, cancel,
finish), its progress and report, and test sends.

The audience is in ``audience.py``, what a message holds in ``compose.py``, the unsubscribe
link in ``unsubscribe.py``. Jobs (``tasks.py``) call the claim/result helpers here; views call
the rest. Every state change writes its audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, insert, select, update

from portal import exports, verification
from portal.accounts import User
from portal.audit import services as audit
from portal.customers.models import CUSTOMER_LOCALES, Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, term
from portal.mailings import signals
from portal.mailings.audience import Audience, audience_members, skip_reason
from portal.mailings.compose import check_greeting, pdf_ready, sendable_grant
from portal.mailings.models import (
    OPEN_MAILING_STATUSES,
    OPEN_RECIPIENT_STATUSES,
    STATUS_LABELS,
    Mailing,
    MailingRecipient,
    MailingStatus,
    MailingTestSend,
    RecipientStatus,
)
from portal.mailings.repeats import CONFIRM_FIELD, RepeatCounter
from portal.models import utcnow
from portal.notices import services as notices
from portal.notices.models import Notice, NoticeVersion, Publication

INSERT_BATCH = 1000


# -------------------------------------------------------------------------------- drafting

def _unique_codes(rows: list[dict], mailing: Mailing) -> list[dict]:
    """``rows`` with verification codes no other message or publication holds: one indexed
    query per batch; the rare clash (about 1 in 2^50 per pair) gets the code of the next try."""
    codes = [row["verification_code"] for row in rows if row["verification_code"]]
    taken = set(db.session.scalars(select(MailingRecipient.verification_code).where(
        MailingRecipient.verification_code.in_(codes))))
    taken |= set(db.session.scalars(select(Publication.verification_code).where(
        Publication.verification_code.in_(codes))))
    for row in rows:
        attempt = 0
        while row["verification_code"] in taken:
            attempt += 1
            row["verification_code"] = verification.derive(
                "message", f"{mailing.id}:{row['customer_id']}:{attempt}",
                mailing.version.content_hash)
        if row["verification_code"]:
            taken.add(row["verification_code"])
    return rows


@dataclass
class MailingInput:
    version_id: int
    audience: Audience
    attach_pdf: bool
    greeting_zh: str
    greeting_en: str


def _check_input(event: Event, data: MailingInput) -> NoticeVersion:
    version = db.session.get(NoticeVersion, data.version_id)
    if version is None or version.notice.event_id != event.id:
        raise RuleViolation(_("Choose a notice of this event."), field="version_id")
    sendable_grant(version)
    unknown = set(data.audience.locales) - set(CUSTOMER_LOCALES)
    if unknown:
        raise RuleViolation(_("Unknown language."), field="locales")
    return version


def create_mailing(event: Event, data: MailingInput, *, actor: User) -> Mailing:
    version = _check_input(event, data)
    mailing = Mailing(
        event_id=event.id, notice_id=version.notice_id, version_id=version.id,
        status=MailingStatus.DRAFT,
        audience=data.audience.to_dict(), attach_pdf=data.attach_pdf,
        greeting_zh=check_greeting(data.greeting_zh, "greeting_zh"),
        greeting_en=check_greeting(data.greeting_en, "greeting_en"),
        created_by_id=actor.id, created_at=utcnow(),
    )
    db.session.add(mailing)
    db.session.flush()
    audit.record("mailing.create", "mailing", mailing.id,
                 N_("Mailing %(id)d of %(ref)s v%(n)d drafted", id=mailing.id,
                    ref=version.notice.ref, n=version.number),
                 after=mailing.audit_state(), actor=actor)
    _request_pdf(mailing)
    return mailing


def create_follow_up(source: Mailing, audience: Audience, *, actor: User | None = None
                     ) -> Mailing:
    """A draft of the same approved version and greetings as ``source``, for ``audience`` (a
    reminder a periodic job sends); the version must still be sendable."""
    sendable_grant(source.version)
    mailing = Mailing(
        event_id=source.event_id, notice_id=source.notice_id, version_id=source.version_id,
        status=MailingStatus.DRAFT, audience=audience.to_dict(), attach_pdf=False,
        greeting_zh=source.greeting_zh, greeting_en=source.greeting_en,
        created_by_id=actor.id if actor else None, created_at=utcnow())
    db.session.add(mailing)
    db.session.flush()
    audit.record("mailing.create", "mailing", mailing.id,
                 N_("Mailing %(id)d drafted as a follow-up of mailing %(source)d",
                    id=mailing.id, source=source.id),
                 after=mailing.audit_state(), actor=actor)
    return mailing


def update_mailing(mailing: Mailing, data: MailingInput, *, actor: User) -> None:
    if not mailing.editable:
        raise RuleViolation(_("Only a draft mailing can be changed."))
    version = _check_input(mailing.event, data)
    before = mailing.audit_state()
    mailing.notice_id, mailing.version_id = version.notice_id, version.id
    kept = Audience.from_dict(mailing.audience)
    if kept.kind and not data.audience.kind:  # the staff form does not show the kind: kept
        data.audience = replace(data.audience, kind=kept.kind, args=kept.args)
    mailing.audience = data.audience.to_dict()
    mailing.attach_pdf = data.attach_pdf
    mailing.greeting_zh = check_greeting(data.greeting_zh, "greeting_zh")
    mailing.greeting_en = check_greeting(data.greeting_en, "greeting_en")
    db.session.flush()
    db.session.refresh(mailing, ["version", "notice"])
    audit.record("mailing.edit", "mailing", mailing.id, N_("Mailing %(id)d changed", id=mailing.id),
                 before=before, after=mailing.audit_state(), actor=actor)
    _request_pdf(mailing)


def _request_pdf(mailing: Mailing) -> None:
    """Ask for the signed PDFs (one per language) as soon as a mailing wants them, so they are
    ready at sending time (queued by the view after the commit; the reconciler catches a
    missed queueing)."""
    if mailing.attach_pdf:
        notices.request_pdfs(mailing.version, "signed")


# ---------------------------------------------------------------------------------- sending

def chunk_size() -> int:
    return int(current_app.config["MAILING_CHUNK_SIZE"])


def start(mailing: Mailing, *, actor: User | None, repeat_confirmed: bool = False) -> list[int]:
    """Materialise the recipients and open the mailing for the jobs; returns the chunk numbers
    to queue (after the commit). The audience is read now, so late imports are included.
    Recipients who already received this version get it again only with ``repeat_confirmed``
    (the refusal says how many and when). ``actor`` None: a periodic job started it."""
    if mailing.status != MailingStatus.DRAFT:
        raise RuleViolation(_("This mailing has already been started."))
    grant = sendable_grant(mailing.version)
    if mailing.attach_pdf and not pdf_ready(mailing):
        raise RuleViolation(_("The PDF is not ready yet; wait until it is rendered, or send "
                              "without it."))
    # Saved before today's rules, a greeting may no longer pass them: edit it first.
    check_greeting(mailing.greeting_zh or "", "greeting_zh")
    check_greeting(mailing.greeting_en or "", "greeting_en")
    mandatory = grant.mandatory
    before = mailing.audit_state()
    # Take the mailing first: of two starts at once, the second finds it no longer a draft.
    taken = db.session.execute(
        update(Mailing).where(Mailing.id == mailing.id, Mailing.status == MailingStatus.DRAFT)
        .values(status=MailingStatus.SENDING)
        .execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        raise RuleViolation(_("This mailing has already been started."))
    size = chunk_size()
    repeats = RepeatCounter(mailing)
    rows, queued, skipped, no_address = [], 0, 0, []
    for customer in audience_members(mailing.event_id, Audience.from_dict(mailing.audience)):
        reason = skip_reason(customer, mandatory)
        row = {"mailing_id": mailing.id, "customer_id": customer.id, "email": customer.email,
               "locale": customer.locale, "attempts": 0}
        if reason:
            row.update(status=RecipientStatus.SKIPPED, last_error=reason, chunk=None,
                       verification_code=None)
            skipped += 1
            if not customer.email:
                no_address.append(customer.id)
        else:
            row.update(status=RecipientStatus.PENDING, last_error=None, chunk=queued // size,
                       verification_code=verification.message_code(
                           mailing.id, customer.id, mailing.version.content_hash))
            queued += 1
            repeats.add(customer.id)
        rows.append(row)
        if len(rows) >= INSERT_BATCH:
            db.session.execute(insert(MailingRecipient), _unique_codes(rows, mailing))
            rows = []
    if rows:
        db.session.execute(insert(MailingRecipient), _unique_codes(rows, mailing))
    if queued == 0:
        raise RuleViolation(_("Nobody in this audience can be e-mailed."))
    repeat = repeats.result()
    if repeat and not repeat_confirmed:
        raise RuleViolation(repeat.message, field=CONFIRM_FIELD)
    if no_address:
        signals.undeliverable.send(mailing.id, audience=dict(mailing.audience),
                                   customer_ids=no_address, reason=signals.NO_ADDRESS)
    mailing.status, mailing.mandatory = MailingStatus.SENDING, mandatory
    mailing.total, mailing.started_at = queued + skipped, utcnow()
    summary = (N_("Mailing %(id)d started: to send: %(queued)d, skipped: %(skipped)d "
                  "(mandatory notice)", id=mailing.id, queued=queued, skipped=skipped)
               if mandatory else
               N_("Mailing %(id)d started: to send: %(queued)d, skipped: %(skipped)d",
                  id=mailing.id, queued=queued, skipped=skipped))
    if repeat:
        summary = N_("%(summary)s; received this version before, sent again on purpose: %(n)d",
                     summary=summary, n=repeat.already)
    audit.record("mailing.start", "mailing", mailing.id,
                 summary,
                 before=before, after=mailing.audit_state(), actor=actor)
    return list(range((queued + size - 1) // size))


def _change_status(mailing: Mailing, allowed: tuple[str, ...], new: str, action: str, *,
                   actor: User, message: str) -> None:
    changed = db.session.execute(
        update(Mailing).where(Mailing.id == mailing.id, Mailing.status.in_(allowed))
        .values(status=new,
                finished_at=utcnow() if new in (MailingStatus.DONE, MailingStatus.CANCELLED)
                else None,
                pause_reason=None)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        raise RuleViolation(message)
    before = {"status": mailing.status}
    db.session.refresh(mailing)
    audit.record(f"mailing.{action}", "mailing", mailing.id,
                 N_("Mailing %(id)d %(change)s", id=mailing.id,
                    change=term("mailing_change", action)),
                 before=before, after={"status": new}, actor=actor)


def pause(mailing: Mailing, *, actor: User) -> None:
    """Stop after the message being sent; the rest stay waiting."""
    _change_status(mailing, (MailingStatus.SENDING,), MailingStatus.PAUSED, "pause",
                   actor=actor,
                   message=_("Only a mailing that is sending can be paused."))


def pause_for_server(mailing_id: int, reason: str) -> bool:
    """Pause a sending mailing because the mail server cannot be used (unreachable, our login
    or sender refused): every message would fail the same way. One caller wins."""
    paused = db.session.execute(
        update(Mailing).where(Mailing.id == mailing_id, Mailing.status == MailingStatus.SENDING)
        .values(status=MailingStatus.PAUSED, pause_reason=reason[:500])
        .execution_options(synchronize_session=False)).rowcount
    if paused == 1:
        audit.record("mailing.pause", "mailing", mailing_id,
                     N_("Mailing %(id)d paused by itself: the mail server cannot be used "
                        "(%(reason)s); resume once the SMTP settings are fixed",
                        id=mailing_id, reason=reason[:300]),
                     before={"status": MailingStatus.SENDING},
                     after={"status": MailingStatus.PAUSED, "reason": reason},
                     actor=None)
    return paused == 1


def resume(mailing: Mailing, *, actor: User) -> list[int]:
    sendable_grant(mailing.version)
    _change_status(mailing, (MailingStatus.PAUSED,), MailingStatus.SENDING, "resume",
                   actor=actor,
                   message=_("Only a paused mailing can be resumed."))
    return open_chunks(mailing.id)


def cancel(mailing: Mailing, *, actor: User) -> int:
    """Cancel: nobody still waiting gets the message. Returns how many were waiting."""
    dropped = _cancel(mailing, actor=actor, reason="mailing cancelled")
    return dropped


def _cancel(mailing: Mailing, *, actor: User | None, reason: str) -> int:
    _change_status(mailing, OPEN_MAILING_STATUSES, MailingStatus.CANCELLED, "cancel",
                   actor=actor,
                   message=_("This mailing has already finished."))
    return db.session.execute(
        update(MailingRecipient).where(MailingRecipient.mailing_id == mailing.id,
                                       MailingRecipient.status == RecipientStatus.PENDING)
        .values(status=RecipientStatus.CANCELLED, last_error=reason)).rowcount


def cancel_for_notice(notice: Notice, *, reason: str, actor: User | None) -> int:
    """Cancel the notice's unfinished mailings (when it is withdrawn), in the caller's
    transaction; returns how many."""
    open_mailings = db.session.scalars(select(Mailing).where(
        Mailing.notice_id == notice.id, Mailing.status.in_(OPEN_MAILING_STATUSES))).all()
    for mailing in open_mailings:
        _cancel(mailing, actor=actor, reason=reason)
    return len(open_mailings)


def open_chunks(mailing_id: int) -> list[int]:
    return list(db.session.scalars(
        select(MailingRecipient.chunk).where(
            MailingRecipient.mailing_id == mailing_id,
            MailingRecipient.status.in_(OPEN_RECIPIENT_STATUSES))
        .group_by(MailingRecipient.chunk).order_by(MailingRecipient.chunk)))


def finish_if_done(mailing_id: int) -> bool:
    """Close a sending mailing once no recipient is waiting or being sent (only one caller
    wins the conditional UPDATE, so the audit entry is written once)."""
    waiting = db.session.scalar(select(func.count(MailingRecipient.id)).where(
        MailingRecipient.mailing_id == mailing_id,
        MailingRecipient.status.in_(OPEN_RECIPIENT_STATUSES)))
    if waiting:
        return False
    closed = db.session.execute(
        update(Mailing).where(Mailing.id == mailing_id, Mailing.status == MailingStatus.SENDING)
        .values(status=MailingStatus.DONE, finished_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    if closed != 1:
        return False
    counts = progress_counts(mailing_id)
    audit.record("mailing.finish", "mailing", mailing_id,
                 N_("Mailing %(id)d finished: sent: %(sent)d, failed: %(failed)d, skipped: "
                    "%(skipped)d", id=mailing_id, sent=counts[RecipientStatus.SENT],
                    failed=counts[RecipientStatus.FAILED],
                    skipped=counts[RecipientStatus.SKIPPED]),
                 before={"status": MailingStatus.SENDING},
                 after={"status": MailingStatus.DONE, **counts}, actor=None)
    return True


def progress_counts(mailing_id: int) -> dict[str, int]:
    counts = dict.fromkeys(RecipientStatus, 0)
    for status, count in db.session.execute(
            select(MailingRecipient.status, func.count(MailingRecipient.id))
            .where(MailingRecipient.mailing_id == mailing_id)
            .group_by(MailingRecipient.status)):
        counts[status] = count
    return counts


@dataclass
class Progress:
    """What a mailing's page shows of it, derived in one place from its row and its
    recipients' counts, so that the status and the percentage never disagree: 100% only once
    it is finished; a cancelled mailing shows the share that was handled before it stopped."""

    status: str
    counts: dict[str, int]
    total: int

    @property
    def remaining(self) -> int:
        return self.counts[RecipientStatus.PENDING] + self.counts[RecipientStatus.SENDING]

    @property
    def handled(self) -> int:
        """Sent, failed for good or skipped: nothing more will happen to them."""
        c = self.counts
        return c[RecipientStatus.SENT] + c[RecipientStatus.FAILED] + c[RecipientStatus.SKIPPED]

    @property
    def percent(self) -> int:
        if self.status == MailingStatus.DONE:
            return 100
        if not self.total or self.status == MailingStatus.DRAFT:
            return 0
        return min(99, int(100 * self.handled / self.total))

    @property
    def label(self) -> str:
        if self.status == MailingStatus.SENDING and not self.remaining:
            return _("Closing: every message was handed to the mail server")
        return str(STATUS_LABELS[self.status])

    @property
    def polling(self) -> bool:
        """The page asks again while the mailing moves by itself."""
        return self.status == MailingStatus.SENDING


def progress(mailing: Mailing) -> Progress:
    return Progress(mailing.status, progress_counts(mailing.id), mailing.total)


def report_csv(mailing: Mailing) -> Iterator[str]:
    """The delivery report, one line per recipient, streamed."""
    stmt = (select(MailingRecipient, Customer.external_ref, Customer.name)
            .join(Customer, Customer.id == MailingRecipient.customer_id)
            .where(MailingRecipient.mailing_id == mailing.id).order_by(MailingRecipient.id)
            .execution_options(yield_per=1000))
    rows = ([ref, name, row.email, row.locale, row.status, row.attempts, row.sent_at,
             row.message_id, row.last_error] for row, ref, name in db.session.execute(stmt))
    yield from exports.stream(["customer_ref", "name", "email", "locale", "status", "attempts",
                               "sent_at", "message_id", "last_error"], rows)


# ------------------------------------------------------------------------------ test sends

def editable(_user: User, mailing: Mailing) -> bool:
    return mailing.editable


def testable(_user: User, mailing: Mailing) -> bool:
    return mailing.status != MailingStatus.CANCELLED


def request_test(mailing: Mailing, customer: Customer | None, *, actor: User) -> MailingTestSend:
    """A test message to the requester's own address, personalised as ``customer``."""
    if not testable(actor, mailing):
        raise RuleViolation(_("This mailing was cancelled."))
    if customer is not None and customer.event_id != mailing.event_id:
        raise RuleViolation(_("Choose a customer of this event."), field="customer")
    sendable_grant(mailing.version)
    test_locale = customer.locale if customer is not None else "zh_CN"
    if mailing.attach_pdf and not pdf_ready(mailing, [test_locale]):
        raise RuleViolation(_("The PDF is not ready yet; wait until it is rendered."))
    row = MailingTestSend(mailing_id=mailing.id, customer_id=customer.id if customer else None,
                          to_address=actor.email, requested_by_id=actor.id, created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    audit.record("mailing.test", "mailing", mailing.id,
                 N_("Test message of mailing %(id)d to %(email)s", id=mailing.id,
                    email=actor.email),

                 after={"customer_id": row.customer_id, "to": actor.email}, actor=actor)
    return row


def mailings_of(event_id: int) -> list[Mailing]:
    return list(db.session.scalars(select(Mailing).where(Mailing.event_id == event_id)
                                   .order_by(Mailing.id.desc())))
