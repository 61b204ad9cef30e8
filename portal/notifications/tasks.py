"""RQ jobs of the staff e-mails: one message per recipient with every row waiting for them.

``deliver_job`` claims the recipient's waiting rows (committed) before the SMTP call, so two
runs never send them twice; the outcome follows the rulebook of :mod:`portal.mail.transport`
as for case replies: sent; a temporary failure waits again (up to ``MAILING_MAX_ATTEMPTS``);
a permanent one fails the rows with the reason. ``deliver_due_job`` runs every minute (``rq
cron``): it sends the digests whose window is over and recovers rows a dead worker left.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import update

from portal import jobs
from portal.accounts import User
from portal.extensions import db, rq
from portal.mail import transport
from portal.models import utcnow
from portal.notifications import services
from portal.notifications.models import Notification, NotificationStatus

DUE_INTERVAL_SECONDS = 60


def job_id(recipient_id: int) -> str:
    return f"notify-{recipient_id}"


def queue_delivery(recipient_id: int) -> bool:
    return jobs.enqueue(deliver_job, recipient_id, job_id=job_id(recipient_id), timeout=120)


def _finish(rows: list[Notification], **values: object) -> None:
    db.session.execute(update(Notification).where(Notification.id.in_([r.id for r in rows]))
                       .values(**values).execution_options(synchronize_session=False))


def deliver(recipient_id: int) -> str | None:
    """E-mail the recipient's waiting rows; the Message-ID when the server accepted it."""
    rows = services.claim(recipient_id)
    if not rows:
        return None
    user = db.session.get(User, recipient_id)
    if not (user.active and user.notify_by_email):
        _finish(rows, status=NotificationStatus.SKIPPED, claimed_at=None)
        return None
    subject, text = services.compose(user, rows)
    msg_id = f"<notify-{rows[0].id}-{len(rows)}@{transport.message_domain()}>"
    try:
        message = transport.build_message(user.email, subject, text, msg_id=msg_id)
        with transport.Client() as client:
            client.send(message, current_app.config["MAIL_FROM"], [user.email])
    except Exception as exc:  # every failure is judged by the rulebook
        failure = transport.classify(exc)
        retry = (failure.temporary or failure.scope == transport.CONNECTION) and max(
            r.attempts for r in rows) < int(current_app.config["MAILING_MAX_ATTEMPTS"])
        _finish(rows, status=NotificationStatus.PENDING if retry else NotificationStatus.FAILED,
                claimed_at=None, error=failure.reason[:500])
        return None
    _finish(rows, status=NotificationStatus.SENT, sent_at=utcnow(), message_id=msg_id,
            claimed_at=None, error=None)
    return msg_id


@rq.job
@jobs.unit_of_work
def deliver_job(recipient_id: int) -> str | None:
    return deliver(recipient_id)


@rq.job
@jobs.unit_of_work
def deliver_due_job() -> int:
    """Every recipient with something due gets their message; returns how many were sent."""
    services.recover_stalled()
    sent = 0
    for recipient_id in services.due_recipients():
        if deliver(recipient_id):
            sent += 1
    return sent
