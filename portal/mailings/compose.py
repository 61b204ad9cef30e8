"""What a mailing sends: the notice versions legal approved for mailing, the greeting and
personal values, the parts every message shares (the signed PDFs, one per language, included),
and one customer's rendered message as MIME with the PDF of their language.

Jobs (``tasks.py``) prepare :class:`MessageParts` once and call :func:`compose_message` per
recipient; the staff preview calls :func:`render_for`.

A message is, in this order: the greeting (the mailing's, with the personal values), the
subject and the body exactly as legal approved them, the link to the notice online, and a
footer that is not part of the approved text: the company, the message's **verification
code** (see ``portal.verification``; previews and test sends show the published version's),
the customer's **personal link** to their page (``/my/<token>``, a new one per message, see
``portal.customers.links``) and the unsubscribe link. Previews and test sends carry inert
links in the footer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import select

from portal import documents, verification
from portal import placeholders as greetings
from portal.cases.models import Case
from portal.customers import links
from portal.customers.models import CUSTOMER_LOCALES, Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import html_lang
from portal.mail import transport
from portal.mailings.audience import Audience
from portal.mailings.models import Mailing
from portal.mailings.unsubscribe import unsubscribe_url
from portal.markdown import plain_text, render_markdown
from portal.models import PdfStatus
from portal.notices import services as notices
from portal.notices.models import Notice, NoticePdf, NoticeStatus, NoticeVersion
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest

DEFAULT_GREETINGS = {
    "zh_CN": "尊敬的{{ name }}{% if company %}（{{ company }}）{% endif %}：\n"
             "{% if case_ref %}\n您的个案 {{ case_ref }} 涉及金额 {{ case_amount }}。\n{% endif %}",
    "en": "Dear {{ name }}{% if company %} ({{ company }}){% endif %},\n"
          "{% if case_ref %}\nYour case {{ case_ref }} covers {{ case_amount }}.\n{% endif %}",
}


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
    and tried with sample values (see ``portal/placeholders.py``), so a mistake is caught when
    saved."""
    try:
        return greetings.check(source)
    except greetings.PlaceholderError as err:
        raise RuleViolation(err.message or "", field=fieldname) from None


@dataclass
class Personal:
    name: str
    company: str
    case_ref: str = ""
    case_amount: str = ""
    # What the audience's kind adds (a programme's amount and deadline).
    extra: dict[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        return {**self.extra, "name": self.name, "company": self.company,
                "case_ref": self.case_ref, "case_amount": self.case_amount}


def personal_values(customers: Iterable[Customer],
                    audience: Audience | None = None) -> dict[int, Personal]:
    """Name, company and the newest case of each customer, in two queries; plus the values
    of the audience's kind, if it has one."""
    customers = list(customers)
    people = {c.id: Personal(c.name, c.company or "") for c in customers}
    if not people:
        return people
    if audience is not None and audience.kind:
        for customer_id, values in audience.personal(customers).items():
            if customer_id in people:
                people[customer_id].extra = values
    rows = db.session.execute(
        select(Case.customer_id, Case.ref, Case.amount, Case.approved_amount, Case.currency)
        .where(Case.customer_id.in_(list(people))).order_by(Case.id))
    for customer_id, ref, amount, approved, currency in rows:  # the newest case wins
        people[customer_id].case_ref = ref
        people[customer_id].case_amount = greetings.format_amount(approved or amount, currency)
    return people


@dataclass
class MessageParts:
    """Everything a mailing's messages share, prepared once per job."""

    mailing_id: int
    shown: dict[str, str]  # the customer's locale → the locale of the text they get
    subject: dict[str, str]
    body_text: dict[str, str]
    body_html: dict[str, Markup]
    greeting: dict[str, greetings.Template | greetings.BrokenTemplate]
    notice_url: str | None
    pdf: dict[str, tuple[str, bytes]] | None  # the customer's locale → (file name, bytes)
    domain: str
    # The published version's code: what previews and test sends show (a customer's message
    # carries its own, see MailingRecipient.verification_code).
    version_code: str | None = None

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
                   _pdf_attachments(mailing) if mailing.attach_pdf else None,
                   base.split("//")[-1].split(":")[0].split("/")[0] or "aftercare.local",
                   notices.publication_code(version.id))


# -------------------------------------------------------------------------- the signed PDF

def _pdf_attachments(mailing: Mailing) -> dict[str, tuple[str, bytes]]:
    """The finished signed PDFs by language; a recipient whose language's PDF is missing is
    refused by :func:`compose_message` (sending starts only when :func:`pdf_ready`)."""
    ref, number = mailing.notice.ref, mailing.version.number
    return {locale: (f"{ref}-v{number}-{locale}.pdf",
                     documents.stored_path(row.sha256).read_bytes())
            for locale, row in mailing_pdfs(mailing).items()
            if row.status == PdfStatus.DONE and row.sha256}


def mailing_pdfs(mailing: Mailing) -> dict[str, NoticePdf]:
    """The signed PDFs of the mailing's version, by language."""
    return notices.signed_pdfs(mailing.version_id)


def pdf_locales(mailing: Mailing) -> tuple[str, ...]:
    """The languages whose PDF the mailing's recipients get: its audience's, else all."""
    chosen = mailing.audience.get("locales") or CUSTOMER_LOCALES
    return tuple(locale for locale in CUSTOMER_LOCALES if locale in chosen)


def pdf_ready(mailing: Mailing, locales: Iterable[str] | None = None) -> bool:
    """Whether the PDF of each of ``locales`` (default :func:`pdf_locales`) is rendered."""
    rows = mailing_pdfs(mailing)
    return all(locale in rows and rows[locale].status == PdfStatus.DONE
               for locale in (locales or pdf_locales(mailing)))


# ---------------------------------------------------------------------------------- messages

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
    verification_code: str = ""  # as shown (XXXXX-XXXXX), for the staff preview to mark


def render_for(parts: MessageParts, locale: str, person: Personal,
               customer_id: int | None, personal_url: str | None = None,
               verification_code: str | None = None) -> Rendered:
    """Subject, plain text and HTML of one customer's message, in their locale.
    ``customer_id`` is the recipient whose unsubscribe link it carries and ``personal_url``
    the link to their page; None for a preview or a test send (inert links).
    ``verification_code`` is the message's own (else the published version's goes in the
    footer). A greeting that fails raises ``placeholders.PlaceholderError``."""
    locale = parts.shown[locale if locale in CUSTOMER_LOCALES else "zh_CN"]
    my_url = personal_url or links.preview_url()
    greeting = parts.greeting[locale].render({**person.values(), "my_url": my_url})
    link = unsubscribe_url(customer_id)
    code = verification_code or parts.version_code
    context = {"subject": parts.subject[locale], "greeting": greeting,
               "body_text": parts.body_text[locale], "body_html": parts.body_html[locale],
               "notice_url": parts.notice_url, "unsubscribe_url": link,
               "my_url": my_url,
               "verification_code": verification.grouped(code),
               "verify_url": verification.verify_url(code) if code else None,
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
    return Rendered(parts.subject[locale], text, html, fragment, link, context["verification_code"])


def compose_message(parts: MessageParts, *, to: str, name: str, locale: str, person: Personal,
                    customer_id: int | None, msg_id: str, subject_prefix: str = "",
                    personal_url: str | None = None,
                    verification_code: str | None = None) -> Message:
    """One customer's message: text and HTML alternatives, the PDF when asked, and the
    one-click unsubscribe headers (RFC 8058), inert for ``customer_id=None`` (test sends, see
    :func:`render_for`). Built with the classic MIME classes: several times
    cheaper than ``EmailMessage``'s header registry, which matters at hundreds a second."""
    rendered = render_for(parts, locale, person, customer_id, personal_url, verification_code)
    alternatives = MIMEMultipart("alternative")
    alternatives.attach(MIMEText(rendered.text, "plain", "utf-8"))
    alternatives.attach(MIMEText(rendered.html, "html", "utf-8"))
    if parts.pdf is not None:
        pdf_locale = locale if locale in CUSTOMER_LOCALES else "zh_CN"
        if pdf_locale not in parts.pdf:
            raise RuntimeError(f"the {pdf_locale} PDF of mailing {parts.mailing_id} is not ready")
        message: Message = MIMEMultipart("mixed")
        message.attach(alternatives)
        filename, data = parts.pdf[pdf_locale]
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

