"""RQ jobs of the subscriptions: the confirmation / "already subscribed" e-mail, the one-time
code, the deliveries of a published version, and the hourly purge.

As every mail job here: a row is claimed (one conditional update, committed) before the SMTP
call, so two runs never send it twice; a temporary failure leaves it waiting for the
reconciler, up to ``MAILING_MAX_ATTEMPTS``.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from portal import jobs, uow
from portal.extensions import db, rq
from portal.mail import transport
from portal.models import utcnow
from portal.notices.models import NoticeVersion
from portal.subscriptions import delivery, services
from portal.subscriptions.models import (
    DeliveryStatus,
    MailKind,
    Subscription,
    SubscriptionCode,
    SubscriptionDelivery,
)

PURGE_INTERVAL_SECONDS = 3600
SENDING = MailKind.SENDING.value


def _max_attempts() -> int:
    return int(current_app.config["MAILING_MAX_ATTEMPTS"])


def _send(message: object, to: str) -> str | None:
    """None when the server took it; else why, and whether to try again is the caller's."""
    with transport.Client() as client:
        client.send(message, current_app.config["MAIL_FROM"], [to])  # type: ignore[arg-type]
    return None


# ----------------------------------------------------------------------------- confirmation

def mail_job_id(subscription_id: int) -> str:
    return f"subscription-mail-{subscription_id}"


def queue_mail(subscription_id: int) -> bool:
    return jobs.enqueue(send_subscription_mail_job, subscription_id,
                        job_id=mail_job_id(subscription_id), timeout=120)


def _confirm_text(row: Subscription, kind: str) -> tuple[str, str]:
    scope = (_("all our notices") if row.event is None else
             _("the notices about “%(event)s”", event=row.event.public_title_in(row.locale)
               or row.event.public_title_in("zh_CN") or row.event.public_title_in("en")))
    if kind == MailKind.CONFIRM:
        return _("Confirm your subscription"), "\n\n".join([
            _("You asked to receive %(scope)s by e-mail. To start, confirm your address by "
              "opening this link within %(hours)d hours:", scope=scope,
              hours=services.confirm_hours()),
            services.confirmation_url(row),
            _("If you did not ask for this, ignore this e-mail: without confirmation the "
              "request is deleted.")])
    return _("You are already subscribed"), "\n\n".join([
        _("Someone (perhaps you) asked to receive %(scope)s at this address. You already "
          "receive them; nothing has changed.", scope=scope),
        _("To change the language or to unsubscribe, open: %(url)s",
          url=services.manage_url(row))])


@rq.job
@jobs.unit_of_work
def send_subscription_mail_job(subscription_id: int) -> bool:
    row = db.session.get(Subscription, subscription_id)
    if row is None or row.mail not in (MailKind.CONFIRM, MailKind.ALREADY):
        return False
    kind = row.mail
    claimed = db.session.execute(
        update(Subscription).where(Subscription.id == subscription_id, Subscription.mail == kind)
        .values(mail=SENDING, mail_claimed_at=utcnow(),
                mail_attempts=Subscription.mail_attempts + 1)).rowcount
    uow.commit()  # the claim, before the message goes out
    if claimed != 1:
        return False
    row = db.session.get(Subscription, subscription_id)
    with force_locale(row.locale):
        subject, text = _confirm_text(row, kind)
    msg_id = f"<{mail_job_id(row.id)}-{row.mail_attempts}@{transport.message_domain()}>"
    try:
        _send(transport.build_message(row.email, subject, text, msg_id=msg_id), row.email)
    except Exception as exc:  # every failure is judged by the rulebook
        failure = transport.classify(exc)
        retry = failure.temporary or failure.scope == transport.CONNECTION
        row.mail = kind if retry and row.mail_attempts < _max_attempts() else None
        return False
    row.mail = None
    return True


# ----------------------------------------------------------------------------- one-time code

def code_job_id(code_id: int) -> str:
    return f"subscription-code-{code_id}"


def queue_code(code_id: int) -> bool:
    return jobs.enqueue(send_code_job, code_id, job_id=code_job_id(code_id), timeout=120)


@rq.job
@jobs.unit_of_work
def send_code_job(code_id: int) -> bool:
    """Make the code here (only its digest is kept) and e-mail it."""
    claimed = db.session.execute(
        update(SubscriptionCode).where(SubscriptionCode.id == code_id,
                                       SubscriptionCode.mail == "queued")
        .values(mail=SENDING, mail_claimed_at=utcnow(),
                mail_attempts=SubscriptionCode.mail_attempts + 1)).rowcount
    uow.commit()
    if claimed != 1:
        return False
    row = db.session.get(SubscriptionCode, code_id)
    code = services.issue_code(row)
    minutes = int(current_app.config["SUBSCRIPTION_CODE_MINUTES"])
    with force_locale(row.locale):
        subject = _("Your code: %(code)s", code=code)
        text = "\n\n".join([
            _("Your code to manage your subscriptions is %(code)s. It works once, within "
              "%(minutes)d minutes.", code=code, minutes=minutes),
            _("If you did not ask for it, ignore this e-mail; nothing changes.")])
    msg_id = f"<{code_job_id(code_id)}-{row.mail_attempts}@{transport.message_domain()}>"
    uow.commit()  # the digest before the code leaves: a code in a mailbox always works
    try:
        _send(transport.build_message(row.email, subject, text, msg_id=msg_id), row.email)
    except Exception as exc:
        failure = transport.classify(exc)
        retry = failure.temporary or failure.scope == transport.CONNECTION
        row.mail = "queued" if retry and row.mail_attempts < _max_attempts() else None
        return False
    row.mail = None
    return True


# ----------------------------------------------------------------------------- deliveries

def delivery_job_id(version_id: int) -> str:
    return f"subscription-deliveries-{version_id}"


def queue_deliveries(version_id: int) -> bool:
    return jobs.enqueue(send_deliveries_job, version_id, job_id=delivery_job_id(version_id),
                        timeout=int(current_app.config["MAILING_JOB_TIMEOUT"]))


@rq.job
@jobs.unit_of_work
def send_deliveries_job(version_id: int) -> int:
    """Send the version's waiting deliveries, one claim and one commit per message, over one
    SMTP connection. Returns how many the server took."""
    sent = 0
    pending = list(db.session.scalars(select(SubscriptionDelivery.id).where(
        SubscriptionDelivery.version_id == version_id,
        SubscriptionDelivery.status == DeliveryStatus.PENDING).order_by(SubscriptionDelivery.id)))
    with transport.Client() as client:
        for delivery_id in pending:
            claimed = db.session.execute(
                update(SubscriptionDelivery).where(
                    SubscriptionDelivery.id == delivery_id,
                    SubscriptionDelivery.status == DeliveryStatus.PENDING)
                .values(status=DeliveryStatus.SENDING, claimed_at=utcnow(),
                        attempts=SubscriptionDelivery.attempts + 1)).rowcount
            uow.commit()  # the claim, before the message goes out
            if claimed != 1:
                continue
            row = db.session.get(SubscriptionDelivery, delivery_id)
            if not delivery.approved(db.session.get(NoticeVersion, version_id)):
                # withdrawn meanwhile: it is no longer sent
                row.status, row.last_error = DeliveryStatus.SKIPPED, "no longer sendable"
                uow.commit()
                continue
            try:
                message = delivery.compose_message(row)
                client.send(message, current_app.config["MAIL_FROM"], [row.subscription.email])
            except Exception as exc:  # judged by the rulebook
                failure = transport.classify(exc)
                retry = (failure.temporary or failure.scope == transport.CONNECTION) \
                    and row.attempts < _max_attempts()
                row.status = DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED
                row.last_error = failure.reason[:500]
                uow.commit()
                if failure.scope == transport.CONNECTION:
                    break  # the reconciler queues the rest later
                continue
            row.status, row.sent_at, row.last_error = DeliveryStatus.SENT, utcnow(), None
            uow.commit()
            sent += 1
    return sent


# ----------------------------------------------------------------------------- reconciler, purge

def requeue_lost_subscription_mails(min_age: timedelta) -> int:
    """Queue again the e-mails and deliveries still waiting whose job Redis lost, and those a
    dead worker left sending past the lease (sent again: in doubt, same Message-ID)."""
    now = utcnow()
    lease = now - timedelta(seconds=float(current_app.config["MAILING_LEASE_SECONDS"]))
    db.session.execute(update(SubscriptionDelivery).where(
        SubscriptionDelivery.status == DeliveryStatus.SENDING,
        SubscriptionDelivery.claimed_at < lease).values(status=DeliveryStatus.PENDING)
        .execution_options(synchronize_session=False))
    db.session.execute(update(Subscription).where(
        Subscription.mail == SENDING, Subscription.mail_claimed_at < lease)
        .values(mail=MailKind.CONFIRM).execution_options(synchronize_session=False))
    db.session.execute(update(SubscriptionCode).where(
        SubscriptionCode.mail == SENDING, SubscriptionCode.mail_claimed_at < lease)
        .values(mail="queued").execution_options(synchronize_session=False))
    uow.commit()
    count = jobs.requeue_lost(
        select(SubscriptionDelivery.version_id).where(
            SubscriptionDelivery.status == DeliveryStatus.PENDING,
            SubscriptionDelivery.created_at < now - min_age).distinct(),
        delivery_job_id, queue_deliveries)
    count += jobs.requeue_lost(
        select(Subscription.id).where(or_(Subscription.mail == MailKind.CONFIRM,
                                          Subscription.mail == MailKind.ALREADY),
                                      Subscription.created_at < now - min_age),
        mail_job_id, queue_mail)
    count += jobs.requeue_lost(
        select(SubscriptionCode.id).where(SubscriptionCode.mail == "queued",
                                          SubscriptionCode.created_at < now - min_age),
        code_job_id, queue_code)
    return count


@rq.job
@jobs.unit_of_work
def purge_subscriptions_job() -> int:
    """Hourly (``rq cron``): expired unconfirmed and long-ended subscriptions deleted."""
    return services.purge()
