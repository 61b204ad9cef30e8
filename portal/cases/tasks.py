"""RQ jobs of the cases: e-mailing replies to customers.

A reply is claimed (queued → sending, committed) before the SMTP call, so two runs never send
it twice. The outcome follows the rulebook of :mod:`portal.mail.transport`: sent; a permanent
refusal fails it with the reason (shown on the case); anything that may pass later (a 4xx, a
server that cannot be reached) queues it again after a back-off, up to ``MAILING_MAX_ATTEMPTS``.
A reply a dead worker left ``sending`` is sent again by the reconciler (the same Message-ID),
up to the same cap.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, update

from portal import jobs, uow
from portal.audit import services as audit
from portal.cases.models import CaseNote, ReplyStatus
from portal.customers import links
from portal.extensions import db, rq
from portal.i18n import N_
from portal.mail import transport
from portal.models import utcnow


def job_id(note_id: int) -> str:
    return f"case-reply-{note_id}"


def queue_reply(note_id: int) -> bool:
    return jobs.enqueue(send_reply_job, note_id, job_id=job_id(note_id), timeout=120)


def _max_attempts() -> int:
    return int(current_app.config["MAILING_MAX_ATTEMPTS"])


@rq.job
@jobs.unit_of_work
def send_reply_job(note_id: int) -> str | None:
    """Send one reply once it is due; returns its Message-ID when the server accepted it."""
    now = utcnow()
    claimed = db.session.execute(
        update(CaseNote).where(CaseNote.id == note_id, CaseNote.mail_status == ReplyStatus.QUEUED,
                               CaseNote.next_attempt_at.is_(None)
                               | (CaseNote.next_attempt_at <= now))
        .values(mail_status=ReplyStatus.SENDING, claimed_at=now,
                mail_attempts=CaseNote.mail_attempts + 1)
    ).rowcount
    token = None
    if claimed == 1:  # the reply's personal link, committed with the claim
        note = db.session.get(CaseNote, note_id)
        token = links.issue_personal(note.case.customer, sent_with=f"reply:{note_id}")[1]
    uow.commit()  # the claim, before the message goes out: a second run finds it taken
    if token is None:
        return None
    note = db.session.get(CaseNote, note_id)
    case = note.case
    msg_id = f"<{job_id(note.id)}@{transport.message_domain()}>"  # the same when sent again
    try:
        with force_locale(case.customer.locale):
            subject = _("About your case %(ref)s", ref=case.ref)
            # The reply as the agent wrote it, then the case ref and, apart, the link to the
            # customer's page (a new personal link per reply).
            text = "\n\n".join([
                _("Dear %(name)s,", name=case.customer.name), note.body,
                _("Case reference: %(ref)s", ref=case.ref),
                "--\n" + _("See your case and answer us on your page: %(url)s (your personal "
                           "link; do not forward it)", url=links.link_url(token))])
        message = transport.build_message(note.to_address, subject, text, msg_id=msg_id,
                                          headers={"X-Aftercare-Case": case.ref})
        with transport.Client() as client:
            client.send(message, current_app.config["MAIL_FROM"], [note.to_address])
    except Exception as exc:  # every failure is judged by the rulebook
        failure = transport.classify(exc)
        retry = (failure.temporary or failure.scope == transport.CONNECTION) \
            and note.mail_attempts < _max_attempts()
        note.error = failure.reason[:500]
        note.mail_status = ReplyStatus.QUEUED if retry else ReplyStatus.FAILED
        note.next_attempt_at = utcnow() + transport.backoff(note.mail_attempts) if retry \
            else None
        return None  # the reconciler queues a retry when it is due
    note.mail_status, note.message_id, note.sent_at = ReplyStatus.SENT, msg_id, utcnow()
    note.error, note.next_attempt_at = None, None
    return msg_id


def _recover_stalled(now: datetime) -> list[int]:
    """Replies a dead worker left ``sending`` past the lease: queued again (in doubt), or
    failed once they reached the attempt cap. Returns the ids to send again."""
    lease = timedelta(seconds=float(current_app.config["MAILING_LEASE_SECONDS"]))
    stalled = db.session.scalars(select(CaseNote).where(
        CaseNote.kind == "reply", CaseNote.mail_status == ReplyStatus.SENDING,
        CaseNote.claimed_at < now - lease)).all()
    again = []
    for note in stalled:
        give_up = note.mail_attempts >= _max_attempts()
        changed = db.session.execute(
            update(CaseNote).where(CaseNote.id == note.id,
                                   CaseNote.mail_status == ReplyStatus.SENDING,
                                   CaseNote.claimed_at == note.claimed_at)
            .values(mail_status=ReplyStatus.FAILED if give_up else ReplyStatus.QUEUED,
                    next_attempt_at=None,
                    error=(f"the worker stopped while sending, {note.mail_attempts} times; "
                           "not sent again") if give_up
                    else "in doubt: the worker stopped while sending; sent again")
            .execution_options(synchronize_session=False)).rowcount
        if changed:
            audit.record("case.reply_recover", "case", note.case_id,
                         N_("Reply #%(note)d on case #%(case)d recovered from a stopped "
                            "worker: failed", note=note.id, case=note.case_id) if give_up
                         else N_("Reply #%(note)d on case #%(case)d recovered from a stopped "
                                 "worker: sent again", note=note.id, case=note.case_id),

                         after={"note_id": note.id, "attempts": note.mail_attempts,
                                "status": ReplyStatus.FAILED if give_up
                                else ReplyStatus.QUEUED}, actor=None)
            if not give_up:
                again.append(note.id)
    uow.commit()  # before the replies are queued again: their jobs read these rows
    return again


def requeue_lost_replies(min_age: timedelta) -> int:
    now = utcnow()
    # A dead worker's job may still look "started" in Redis: queue these whatever it says.
    recovered = sum(1 for note_id in _recover_stalled(now) if queue_reply(note_id))
    stmt = select(CaseNote.id).where(
        CaseNote.kind == "reply", CaseNote.mail_status == ReplyStatus.QUEUED,
        CaseNote.created_at < now - min_age,
        CaseNote.next_attempt_at.is_(None) | (CaseNote.next_attempt_at <= now))
    return recovered + jobs.requeue_lost(stmt, job_id, queue_reply)
