"""RQ jobs of the customer page: e-mailing a one-time link asked for with "Check my case".

The request wrote the link's row (no token yet); the job claims it, gives it its token (so the
token is never in Redis, and only its hash in the database) and sends it. A second run finds
it claimed; a temporary failure leaves it queued for the reconciler while the link is valid.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from portal import jobs, uow
from portal.customers import links
from portal.customers.links import CustomerLink, LinkMail
from portal.extensions import db, rq
from portal.mail import transport
from portal.models import utcnow


def job_id(link_id: int) -> str:
    return f"customer-link-{link_id}"


def queue_link_mail(link_id: int) -> bool:
    return jobs.enqueue(send_link_job, link_id, job_id=job_id(link_id), timeout=120)


def _lease() -> timedelta:
    return timedelta(seconds=float(current_app.config["MAILING_LEASE_SECONDS"]))


@rq.job
@jobs.unit_of_work
def send_link_job(link_id: int) -> str | None:
    """Send one one-time link; returns the Message-ID when the server accepted it."""
    token = links.claim_one_time(link_id, _lease())
    uow.commit()  # the claim and the token's hash, before the message goes out
    if token is None:
        return None
    link = db.session.get(CustomerLink, link_id)
    customer = link.customer
    msg_id = f"<{job_id(link.id)}-{link.attempts}@{transport.message_domain()}>"
    try:
        with force_locale(customer.locale):
            subject = _("Your link to your case page")
            text = current_app.jinja_env.get_template("my/link_email.txt").render(
                name=customer.name, url=links.link_url(token), minutes=links.ONE_TIME_MINUTES,
                company=current_app.config["PORTAL_COMPANY_NAME"])
        message = transport.build_message(customer.email, subject, text, msg_id=msg_id)
        with transport.Client() as client:
            client.send(message, current_app.config["MAIL_FROM"], [customer.email])
    except Exception as exc:  # every failure is judged by the rulebook
        failure = transport.classify(exc)
        retry = failure.temporary or failure.scope == transport.CONNECTION
        link.mail_status = LinkMail.QUEUED if retry else LinkMail.FAILED
        link.token_hash = None  # that token was never delivered
        return None
    link.mail_status = LinkMail.SENT
    return msg_id


def requeue_lost_link_mails(min_age: timedelta) -> int:
    """One-time links still valid whose e-mail job vanished (or failed for a while)."""
    now = utcnow()
    stmt = select(CustomerLink.id).where(
        CustomerLink.kind == links.LinkKind.ONE_TIME, CustomerLink.expires_at > now,
        CustomerLink.created_at < now - min_age,
        (CustomerLink.mail_status == LinkMail.QUEUED)
        | ((CustomerLink.mail_status == LinkMail.SENDING)
           & (CustomerLink.claimed_at < now - _lease())))
    return jobs.requeue_lost(stmt, job_id, queue_link_mail)
