"""RQ jobs of the claims: the e-mail to a claimant (the confirmation link of a public claim,
then, if it is rejected, the reason), in the claimant's language.

As the replies' (``tasks.py``): the e-mail is claimed (queued → sending, committed) before
the SMTP call, so two runs never send it twice; a temporary failure queues it again up to
``MAILING_MAX_ATTEMPTS``, and the reconciler queues what Redis lost.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, update

from portal import jobs, uow
from portal.cases import claims
from portal.cases.claim_models import Claim, ClaimMail
from portal.extensions import db, rq
from portal.mail import transport
from portal.models import utcnow

PURGE_INTERVAL_SECONDS = 3600


def job_id(claim_id: int) -> str:
    return f"claim-mail-{claim_id}"


def queue_mail(claim_id: int) -> bool:
    return jobs.enqueue(send_claim_mail_job, claim_id, job_id=job_id(claim_id), timeout=120)


def _compose(claim: Claim) -> tuple[str, str]:
    """Subject and text in the claimant's language."""
    name = claim.name or (claim.customer.name if claim.customer else "")
    event = claim.event.public_title_in(claim.locale) or claim.event.title_in(claim.locale)
    with force_locale(claim.locale):
        if claim.mail_kind == "confirm":
            return (_("Confirm your claim"), "\n\n".join([
                _("Dear %(name)s,", name=name),
                _("we received your claim about “%(event)s” (order %(order)s). To send it to "
                  "our staff, confirm your e-mail address by opening this link within "
                  "%(hours)d hours:", event=event, order=claim.order_ref,
                  hours=claims.CONFIRM_HOURS),
                claims.confirmation_url(claim),
                _("If you did not send this claim, ignore this e-mail: without confirmation "
                  "it is deleted.")]))
        return (_("Your claim about order %(order)s", order=claim.order_ref), "\n\n".join([
            _("Dear %(name)s,", name=name),
            _("we have looked at your claim about “%(event)s” (order %(order)s) and cannot "
              "accept it, for this reason:", event=event, order=claim.order_ref),
            claim.reason or "",
            _("If you think this is a mistake, reply to this e-mail with what we should "
              "know.")]))


@rq.job
@jobs.unit_of_work
def send_claim_mail_job(claim_id: int) -> str | None:
    """Send the claim's outstanding e-mail; returns its Message-ID when accepted."""
    now = utcnow()
    claimed = db.session.execute(
        update(Claim).where(Claim.id == claim_id, Claim.mail_status == ClaimMail.QUEUED)
        .values(mail_status=ClaimMail.SENDING, mail_claimed_at=now,
                mail_attempts=Claim.mail_attempts + 1)).rowcount
    uow.commit()  # the claim, before the message goes out: a second run finds it taken
    if claimed != 1:
        return None
    claim = db.session.get(Claim, claim_id)
    to = claim.email or (claim.customer.email if claim.customer else "")
    msg_id = f"<{job_id(claim.id)}-{claim.mail_kind}@{transport.message_domain()}>"
    try:
        subject, text = _compose(claim)
        message = transport.build_message(to, subject, text, msg_id=msg_id,
                                          headers={"X-Aftercare-Claim": str(claim.id)})
        with transport.Client() as client:
            client.send(message, current_app.config["MAIL_FROM"], [to])
    except Exception as exc:  # every failure is judged by the rulebook
        failure = transport.classify(exc)
        retry = (failure.temporary or failure.scope == transport.CONNECTION) \
            and claim.mail_attempts < int(current_app.config["MAILING_MAX_ATTEMPTS"])
        claim.mail_error = failure.reason[:500]
        claim.mail_status = ClaimMail.QUEUED if retry else ClaimMail.FAILED
        return None  # the reconciler queues a retry
    claim.mail_status, claim.mail_error = ClaimMail.SENT, None
    return msg_id


def requeue_lost_claim_mails(min_age: timedelta) -> int:
    """Queue again the claim e-mails still waiting whose job Redis lost, and those a dead
    worker left ``sending`` past the lease (sent again: in doubt)."""
    now = utcnow()
    lease = timedelta(seconds=float(current_app.config["MAILING_LEASE_SECONDS"]))
    db.session.execute(update(Claim).where(
        Claim.mail_status == ClaimMail.SENDING, Claim.mail_claimed_at < now - lease)
        .values(mail_status=ClaimMail.QUEUED).execution_options(synchronize_session=False))
    uow.commit()  # before the e-mails are queued again: their jobs read these rows
    stmt = select(Claim.id).where(Claim.mail_status == ClaimMail.QUEUED,
                                  Claim.created_at < now - min_age)
    return jobs.requeue_lost(stmt, job_id, queue_mail)


@rq.job
@jobs.unit_of_work
def purge_claims_job() -> tuple[int, int]:
    """Hourly (``rq cron``): expired unconfirmed claims deleted, old rejected ones erased."""
    return claims.purge_claims()
