"""Mailing rules: which versions may be sent, the audience, personalisation, the state machine.

Jobs (``tasks.py``) call :func:`compose_message` and the claim/result helpers here; views call
the rest. Every state change writes its audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from markupsafe import Markup, escape
from sqlalchemy import func, insert, select, update

from portal import documents, exports
from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import Case
from portal.customers.models import CUSTOMER_LOCALES, Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import html_lang
from portal.mail import transport
from portal.mailings import greeting as greetings
from portal.mailings.models import (
    OPEN_MAILING_STATUSES,
    OPEN_RECIPIENT_STATUSES,
    Mailing,
    MailingRecipient,
    MailingStatus,
    MailingTestSend,
    RecipientStatus,
)
from portal.markdown import plain_text, render_markdown
from portal.models import PdfStatus, utcnow
from portal.notices import services as notices
from portal.notices.models import (
    Notice,
    NoticePdf,
    NoticeStatus,
    NoticeVersion,
)
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest

NO_CASE = "none"
SAMPLE_SIZE = 10
INSERT_BATCH = 1000
DEFAULT_GREETINGS = {
    "zh_CN": "尊敬的{{ name }}{% if company %}（{{ company }}）{% endif %}：\n"
             "{% if case_ref %}\n您的个案 {{ case_ref }} 涉及金额 {{ case_amount }}。\n{% endif %}",
    "en": "Dear {{ name }}{% if company %} ({{ company }}){% endif %},\n"
          "{% if case_ref %}\nYour case {{ case_ref }} covers {{ case_amount }}.\n{% endif %}",
}


# ---------------------------------------------------------------------------------- audience

@dataclass(frozen=True)
class Audience:
    """Which of an event's customers a mailing is for; an empty list means "any"."""

    tags: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    case_statuses: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Audience:
        data = data or {}
        return cls(*(tuple(sorted(set(data.get(k) or ()))) for k in
                     ("tags", "locales", "case_statuses")))

    def to_dict(self) -> dict[str, list[str]]:
        return {"tags": list(self.tags), "locales": list(self.locales),
                "case_statuses": list(self.case_statuses)}

    def matches(self, customer: Customer, case_statuses: set[str]) -> bool:
        if self.tags and not set(self.tags) & set(customer.tags or ()):
            return False
        if self.locales and customer.locale not in self.locales:
            return False
        if self.case_statuses:
            wanted = set(self.case_statuses)
            if not (wanted & case_statuses or (NO_CASE in wanted and not case_statuses)):
                return False
        return True


def event_tags(event_id: int) -> list[str]:
    tags: set[str] = set()
    for row in db.session.scalars(select(Customer.tags).where(Customer.event_id == event_id)):
        tags.update(row or ())
    return sorted(tags)


def _case_statuses(event_id: int) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for customer_id, status in db.session.execute(
            select(Case.customer_id, Case.status).where(Case.event_id == event_id)):
        found.setdefault(customer_id, set()).add(status)
    return found


def audience_members(event_id: int, audience: Audience) -> Iterator[Customer]:
    """The event's customers in the audience, streamed in id order."""
    statuses = _case_statuses(event_id) if audience.case_statuses else {}
    stmt = (select(Customer).where(Customer.event_id == event_id).order_by(Customer.id)
            .execution_options(yield_per=1000))
    for customer in db.session.scalars(stmt):
        if audience.matches(customer, statuses.get(customer.id, set())):
            yield customer


def skip_reason(customer: Customer, mandatory: bool) -> str | None:
    """Why a customer in the audience gets no message, or None."""
    if not customer.email:
        return "no e-mail address"
    if customer.unsubscribed_at is not None and not mandatory:
        return "unsubscribed"
    return None


@dataclass
class AudienceSummary:
    matching: int = 0
    to_send: int = 0
    unsubscribed: int = 0
    no_email: int = 0
    sample: list[Customer] = field(default_factory=list)


def summarise(event_id: int, audience: Audience, mandatory: bool) -> AudienceSummary:
    summary = AudienceSummary()
    for customer in audience_members(event_id, audience):
        summary.matching += 1
        reason = skip_reason(customer, mandatory)
        if reason is None:
            summary.to_send += 1
            if len(summary.sample) < SAMPLE_SIZE:
                summary.sample.append(customer)
        elif reason == "unsubscribed":
            summary.unsubscribed += 1
        else:
            summary.no_email += 1
    return summary


# ---------------------------------------------------------------------------------- versions

def sendable_grant(version: NoticeVersion) -> SignoffRequest:
    """Legal's approval of exactly this version's text, or RuleViolation: never send anything
    legal has not approved (an emergency publication awaiting review included), nor a notice
    that was withdrawn."""
    if version.notice.status == NoticeStatus.WITHDRAWN:
        raise RuleViolation(_("This notice was withdrawn; it can no longer be mailed."),
                            field="version_id")
    grant = signoffs.granted(notices.SUBJECT, version.id)
    if grant is None:
        raise RuleViolation(_("Legal has not approved this version; it cannot be mailed."),
                            field="version_id")
    if not signoffs.check_binding(grant, notices.snapshot(version.notice, version)):
        raise RuleViolation(_("The approved text differs from this version; request a new "
                              "sign-off."), field="version_id")
    return grant


def is_mandatory(version_id: int | None) -> bool:
    """Whether legal marked this version mandatory (False for anything not sendable)."""
    version = db.session.get(NoticeVersion, version_id) if version_id else None
    try:
        return bool(version and sendable_grant(version).mandatory)
    except RuleViolation:
        return False


def sendable_versions(event: Event) -> list[tuple[Notice, NoticeVersion]]:
    """Per notice of the event, the newest version legal approved (published or not)."""
    found = []
    for notice in sorted(notices.event_notices(event), key=lambda n: n.id, reverse=True):
        if notice.status not in (NoticeStatus.APPROVED, NoticeStatus.PUBLISHED):
            continue
        for version in reversed(notice.versions):
            grant = signoffs.granted(notices.SUBJECT, version.id)
            if grant is not None:
                found.append((notice, version))
                break
    return found


# ---------------------------------------------------------------------------- personalisation

def check_greeting(source: str, fieldname: str) -> str:
    """The greeting as stored, or RuleViolation next to its field: checked in every branch
    and tried with sample values (see ``greeting.py``), so a mistake is caught when saved."""
    try:
        return greetings.check(source)
    except greetings.GreetingError as err:
        raise RuleViolation(err.message or "", field=fieldname) from None


@dataclass
class Personal:
    name: str
    company: str
    case_ref: str = ""
    case_amount: str = ""

    def values(self) -> dict[str, str]:
        return {"name": self.name, "company": self.company, "case_ref": self.case_ref,
                "case_amount": self.case_amount}


def format_amount(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


def personal_values(customers: Iterable[Customer]) -> dict[int, Personal]:
    """Name, company and the newest case of each customer, in two queries."""
    people = {c.id: Personal(c.name, c.company or "") for c in customers}
    if not people:
        return people
    rows = db.session.execute(
        select(Case.customer_id, Case.ref, Case.amount, Case.approved_amount, Case.currency)
        .where(Case.customer_id.in_(list(people))).order_by(Case.id))
    for customer_id, ref, amount, approved, currency in rows:  # the newest case wins
        people[customer_id].case_ref = ref
        people[customer_id].case_amount = format_amount(approved or amount, currency)
    return people


@dataclass
class MessageParts:
    """Everything a mailing's messages share, prepared once per job."""

    mailing_id: int
    shown: dict[str, str]  # the customer's locale → the locale of the text they get
    subject: dict[str, str]
    body_text: dict[str, str]
    body_html: dict[str, Markup]
    greeting: dict[str, greetings.Greeting | greetings.BrokenGreeting]
    notice_url: str | None
    pdf: tuple[str, bytes] | None
    domain: str

    @classmethod
    def for_mailing(cls, mailing: Mailing) -> MessageParts:
        version = mailing.version
        subject, text, html, greeting, shown = {}, {}, {}, {}, {}
        for locale in CUSTOMER_LOCALES:
            # A customer whose language the notice lacks gets the other one, greeting included.
            shown[locale], entry = version.in_locale(locale)
            subject[locale] = entry["title"]
            html[locale] = Markup(render_markdown(entry["body"]))
            # From the sanitised HTML legal approved, never the Markdown: the renderer may
            # drop what the source holds, and the text part must not say more.
            text[locale] = plain_text(html[locale])
            source = mailing.greeting_zh if locale == "zh_CN" else mailing.greeting_en
            greeting[locale] = greetings.compile_for_sending(source or "")
        base = current_app.config["PORTAL_BASE_URL"]
        notice = mailing.notice
        notice_url = (f"{base}/notices/{notice.slug}" if notice.publicly_visible else None)
        return cls(mailing.id, shown, subject, text, html, greeting, notice_url,
                   _pdf_attachment(mailing) if mailing.attach_pdf else None,
                   base.split("//")[-1].split(":")[0].split("/")[0] or "aftercare.local")


def _pdf_attachment(mailing: Mailing) -> tuple[str, bytes]:
    row = mailing_pdf(mailing)
    if row is None or row.status != PdfStatus.DONE or not row.sha256:
        raise RuntimeError(f"the PDF of mailing {mailing.id} is not ready")
    data = (documents.stored_path(row.sha256)).read_bytes()
    return f"{mailing.notice.ref}-v{mailing.version.number}.pdf", data


def mailing_pdf(mailing: Mailing) -> NoticePdf | None:
    return db.session.scalar(select(NoticePdf).where(NoticePdf.version_id == mailing.version_id,
                                                     NoticePdf.kind == "signed"))


# The unsubscribe token of previews and test sends: its page says so and records nothing.
# A real token is ``<payload>.<signature>`` and never equals it.
PREVIEW_TOKEN = "preview"


def _unsubscribe_signer() -> URLSafeSerializer:
    """Signs with SECRET_KEY and still accepts SECRET_KEY_FALLBACKS, so links already sent
    keep working after the key is rotated (itsdangerous verifies with every key, newest
    last, and signs with the newest)."""
    config = current_app.config
    keys = [*(config.get("SECRET_KEY_FALLBACKS") or ()), config["SECRET_KEY"]]
    return URLSafeSerializer(keys, salt="unsubscribe")


def unsubscribe_token(customer_id: int) -> str:
    return _unsubscribe_signer().dumps(customer_id)


def customer_for_token(token: str) -> Customer | None:
    try:
        customer_id = _unsubscribe_signer().loads(token)
    except BadSignature:
        return None
    return db.session.get(Customer, customer_id) if isinstance(customer_id, int) else None


def unsubscribe_url(customer_id: int | None) -> str:
    """The customer's own unsubscribe link, or (None) the inert one for staff previews and
    test sends: those must never unsubscribe the customer they are shown as."""
    token = PREVIEW_TOKEN if customer_id is None else unsubscribe_token(customer_id)
    return f"{current_app.config['PORTAL_BASE_URL']}/unsubscribe/{token}"


def message_id(mailing_id: int, recipient_id: int, domain: str) -> str:
    """Stable per recipient: a message sent again after a crash carries the same Message-ID,
    which lets mail clients that de-duplicate on it show one copy."""
    return f"<mailing-{mailing_id}-{recipient_id}@{domain}>"


@dataclass
class Rendered:
    subject: str
    text: str
    html: str
    fragment: Markup  # the HTML body, for the staff preview
    unsubscribe_url: str


def render_for(parts: MessageParts, locale: str, person: Personal,
               customer_id: int | None) -> Rendered:
    """Subject, plain text and HTML of one customer's message, in their locale.
    ``customer_id`` is the recipient whose unsubscribe link it carries; None for a preview or
    a test send (an inert link). A greeting that fails raises ``greeting.GreetingError``."""
    locale = parts.shown[locale if locale in CUSTOMER_LOCALES else "zh_CN"]
    greeting = parts.greeting[locale].render(person.values())
    link = unsubscribe_url(customer_id)
    context = {"subject": parts.subject[locale], "greeting": greeting,
               "body_text": parts.body_text[locale], "body_html": parts.body_html[locale],
               "notice_url": parts.notice_url, "unsubscribe_url": link,
               "company": current_app.config["PORTAL_COMPANY_NAME"],
               "greeting_html": Markup("<br>").join(escape(line) for line in
                                                    greeting.splitlines())}
    # The templates straight from the environment: render_template would run every context
    # processor (the signed-in user, CSRF…) for each of thousands of messages.
    env = current_app.jinja_env
    with force_locale(locale):
        text = env.get_template("mailings/email.txt").render(context)
        fragment = Markup(env.get_template("mailings/_email_body.html").render(context))
        html = env.get_template("mailings/email.html").render(
            subject=context["subject"], fragment=fragment, html_lang=html_lang)
    return Rendered(parts.subject[locale], text, html, fragment, link)


def compose_message(parts: MessageParts, *, to: str, name: str, locale: str, person: Personal,
                    customer_id: int | None, msg_id: str, subject_prefix: str = "") -> Message:
    """One customer's message: text and HTML alternatives, the PDF when asked, and the
    one-click unsubscribe headers (RFC 8058), inert for ``customer_id=None`` (test sends, see
    :func:`render_for`). Built with the classic MIME classes: several times
    cheaper than ``EmailMessage``'s header registry, which matters at hundreds a second."""
    rendered = render_for(parts, locale, person, customer_id)
    alternatives = MIMEMultipart("alternative")
    alternatives.attach(MIMEText(rendered.text, "plain", "utf-8"))
    alternatives.attach(MIMEText(rendered.html, "html", "utf-8"))
    if parts.pdf:
        message: Message = MIMEMultipart("mixed")
        message.attach(alternatives)
        filename, data = parts.pdf
        attachment = MIMEApplication(data, "pdf")
        attachment.add_header("Content-Disposition", "attachment", filename=filename)
        message.attach(attachment)
    else:
        message = alternatives
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = transport.address(name, to)
    message["Subject"] = Header(subject_prefix + rendered.subject, "utf-8")
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = msg_id
    message["List-Unsubscribe"] = f"<{rendered.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Aftercare-Mailing"] = str(parts.mailing_id)
    return message


# ------------------------------------------------------------------------------- composing

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
                 f"Mailing {mailing.id} of {version.notice.ref} v{version.number} drafted",
                 after=mailing.audit_state(), actor=actor)
    _request_pdf(mailing)
    return mailing


def update_mailing(mailing: Mailing, data: MailingInput, *, actor: User) -> None:
    if not mailing.editable:
        raise RuleViolation(_("Only a draft mailing can be changed."))
    version = _check_input(mailing.event, data)
    before = mailing.audit_state()
    mailing.notice_id, mailing.version_id = version.notice_id, version.id
    mailing.audience = data.audience.to_dict()
    mailing.attach_pdf = data.attach_pdf
    mailing.greeting_zh = check_greeting(data.greeting_zh, "greeting_zh")
    mailing.greeting_en = check_greeting(data.greeting_en, "greeting_en")
    db.session.flush()
    db.session.refresh(mailing, ["version", "notice"])
    audit.record("mailing.edit", "mailing", mailing.id, f"Mailing {mailing.id} changed",
                 before=before, after=mailing.audit_state(), actor=actor)
    _request_pdf(mailing)


def _request_pdf(mailing: Mailing) -> None:
    """Ask for the signed PDF as soon as a mailing wants it, so it is ready at sending time
    (queued by the view after the commit; the reconciler catches a missed queueing)."""
    if mailing.attach_pdf:
        notices.request_pdf(mailing.version, "signed")


def pdf_ready(mailing: Mailing) -> bool:
    row = mailing_pdf(mailing)
    return row is not None and row.status == PdfStatus.DONE


# ---------------------------------------------------------------------------------- sending

def chunk_size() -> int:
    return int(current_app.config["MAILING_CHUNK_SIZE"])


def start(mailing: Mailing, *, actor: User) -> list[int]:
    """Materialise the recipients and open the mailing for the jobs; returns the chunk numbers
    to queue (after the commit). The audience is read now, so late imports are included."""
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
    rows, queued, skipped = [], 0, 0
    for customer in audience_members(mailing.event_id, Audience.from_dict(mailing.audience)):
        reason = skip_reason(customer, mandatory)
        row = {"mailing_id": mailing.id, "customer_id": customer.id, "email": customer.email,
               "locale": customer.locale, "attempts": 0}
        if reason:
            row.update(status=RecipientStatus.SKIPPED, last_error=reason, chunk=None)
            skipped += 1
        else:
            row.update(status=RecipientStatus.PENDING, last_error=None, chunk=queued // size)
            queued += 1
        rows.append(row)
        if len(rows) >= INSERT_BATCH:
            db.session.execute(insert(MailingRecipient), rows)
            rows = []
    if rows:
        db.session.execute(insert(MailingRecipient), rows)
    if queued == 0:
        raise RuleViolation(_("Nobody in this audience can be e-mailed."))
    mailing.status, mailing.mandatory = MailingStatus.SENDING, mandatory
    mailing.total, mailing.started_at = queued + skipped, utcnow()
    audit.record("mailing.start", "mailing", mailing.id,
                 f"Mailing {mailing.id} started: {queued} to send, {skipped} skipped"
                 + (" (mandatory notice)" if mandatory else ""),
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
    audit.record(f"mailing.{action}", "mailing", mailing.id, f"Mailing {mailing.id} {action}d",
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
                     f"Mailing {mailing_id} paused by itself: the mail server cannot be used "
                     f"({reason[:300]}); resume once the SMTP settings are fixed",
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
                 f"Mailing {mailing_id} finished: {counts[RecipientStatus.SENT]} sent, "
                 f"{counts[RecipientStatus.FAILED]} failed, "
                 f"{counts[RecipientStatus.SKIPPED]} skipped",
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
    counts: dict[str, int]
    total: int

    @property
    def remaining(self) -> int:
        return self.counts[RecipientStatus.PENDING] + self.counts[RecipientStatus.SENDING]

    @property
    def percent(self) -> int:
        if not self.total:
            return 0
        return int(100 * (self.total - self.remaining) / self.total)


def progress(mailing: Mailing) -> Progress:
    return Progress(progress_counts(mailing.id), mailing.total)


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
    if mailing.attach_pdf and not pdf_ready(mailing):
        raise RuleViolation(_("The PDF is not ready yet; wait until it is rendered."))
    row = MailingTestSend(mailing_id=mailing.id, customer_id=customer.id if customer else None,
                          to_address=actor.email, requested_by_id=actor.id, created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    audit.record("mailing.test", "mailing", mailing.id,
                 f"Test message of mailing {mailing.id} to {actor.email}",
                 after={"customer_id": row.customer_id, "to": actor.email}, actor=actor)
    return row


# ----------------------------------------------------------------------------- unsubscribe

def unsubscribe(customer: Customer, *, via: str) -> bool:
    """Record the customer's wish; False when they had already unsubscribed."""
    if customer.unsubscribed_at is not None:
        return False
    customer.unsubscribed_at = utcnow()
    audit.record("customer.unsubscribe", "customer", customer.id,
                 f"Customer #{customer.id} unsubscribed ({via})",
                 after={"unsubscribed_at": customer.unsubscribed_at.isoformat()}, actor=None)
    return True


def mailings_of(event_id: int) -> list[Mailing]:
    return list(db.session.scalars(select(Mailing).where(Mailing.event_id == event_id)
                                   .order_by(Mailing.id.desc())))

