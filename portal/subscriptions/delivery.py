"""A published notice version to its subscribers: the delivery rows, written in the
publication's transaction (``notices.signals.published``, connected in ``portal.wiring``),
and one subscriber's message.

Only what legal approved goes out: the mailings' own gate (``compose.sendable_grant``)
decides, so an emergency publication reaches subscribers only once legal approved it after
the fact (``on_signoff_decided``). The text is the
version's in the subscriber's language, else the other one; every message carries the
signed link to manage the subscription and the one-click unsubscribe headers (RFC 8058).
"""

from __future__ import annotations

from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate
from typing import Any

from flask import current_app
from flask_babel import force_locale
from markupsafe import Markup
from sqlalchemy import select

from portal import jobs
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import html_lang
from portal.mail import transport
from portal.mailings import compose
from portal.markdown import plain_text, render_markdown
from portal.notices import services as notices
from portal.notices.models import Notice, NoticeVersion
from portal.signoffs.models import SignoffRequest, SignoffStatus
from portal.subscriptions import services
from portal.subscriptions.models import (
    ALL,
    Subscription,
    SubscriptionDelivery,
    SubscriptionStatus,
)


def approved(version: NoticeVersion) -> bool:
    """Whether legal approved exactly this text (and the notice was not withdrawn)."""
    try:
        compose.sendable_grant(version)
    except RuleViolation:
        return False
    return True


def on_published(notice: Notice, *, version_id: int, **_: Any) -> int:
    """Write one delivery per subscriber of the notice's event or of all notices (one per
    address: an address with both gets one message), in the publication's transaction, and
    queue the job once it is committed. Returns how many."""
    version = db.session.get(NoticeVersion, version_id)
    if version is None or not notice.publicly_visible or not approved(version):
        return 0
    chosen: dict[str, int] = {}
    rows = db.session.execute(select(Subscription.email, Subscription.id, Subscription.scope)
                              .where(Subscription.status == SubscriptionStatus.ACTIVE,
                                     Subscription.scope.in_([services.scope_for(
                                         notice.event_id), ALL]))
                              .order_by(Subscription.id))
    for email, subscription_id, scope in rows:
        if email not in chosen or scope != ALL:  # the event's own subscription first
            chosen[email] = subscription_id
    already = set(db.session.scalars(select(SubscriptionDelivery.subscription_id).where(
        SubscriptionDelivery.version_id == version_id)))
    todo = sorted(set(chosen.values()) - already)
    db.session.add_all(SubscriptionDelivery(subscription_id=i, notice_id=notice.id,
                                            version_id=version_id) for i in todo)
    db.session.flush()
    if todo:
        from portal.subscriptions import tasks

        jobs.enqueue_after_commit(tasks.queue_deliveries, version_id)
    return len(todo)


def on_signoff_decided(request: SignoffRequest, **_: Any) -> int:
    """Legal approved, after the fact, a version published in an emergency: now it is
    sendable, and its subscribers get it (in the decision's transaction)."""
    if (request.subject_type != notices.SUBJECT or request.status != SignoffStatus.APPROVED
            or not request.retroactive):
        return 0
    version = db.session.get(NoticeVersion, request.subject_id)
    if version is None or version.notice.published_version_id != version.id:
        return 0
    return on_published(version.notice, version_id=version.id)


def message_id(delivery_id: int) -> str:
    return f"<subscription-{delivery_id}@{transport.message_domain()}>"


def compose_message(delivery: SubscriptionDelivery) -> Message:
    """One subscriber's message: text and HTML, in their language (else the other one)."""
    row, version = delivery.subscription, db.session.get(NoticeVersion, delivery.version_id)
    notice = version.notice
    shown, entry = version.in_locale(row.locale)
    body_html = Markup(render_markdown(entry["body"]))
    base = current_app.config["PORTAL_BASE_URL"]
    event = notice.event
    context = {
        "subject": entry["title"], "body_html": body_html, "body_text": plain_text(body_html),
        "notice_url": f"{base}/notices/{notice.slug}?lang={shown}",
        "manage_url": services.manage_url(row), "unsubscribe_url": services.manage_url(row),
        "company": current_app.config["PORTAL_COMPANY_NAME"], "everything": row.scope == ALL,
        "event_title": event.public_title_in(row.locale) or event.public_title_in(shown) or "",
        "fallback": shown != row.locale, "locale": row.locale,
    }
    env = current_app.jinja_env
    with force_locale(row.locale):
        text = env.get_template("subscriptions/email.txt").render(context)
        fragment = Markup(env.get_template("subscriptions/_email_body.html").render(context))
        html = env.get_template("mailings/email.html").render(
            subject=entry["title"], fragment=fragment, html_lang=html_lang)
    message = MIMEMultipart("alternative")
    message.attach(MIMEText(text, "plain", "utf-8"))
    message.attach(MIMEText(html, "html", "utf-8"))
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = transport.address("", row.email)
    message["Subject"] = Header(entry["title"], "utf-8")
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(delivery.id)
    message["List-Unsubscribe"] = f"<{services.unsubscribe_url(row)}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = shown.replace("_", "-")
    return message
