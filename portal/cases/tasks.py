"""RQ jobs of the cases: e-mailing replies to customers."""

from __future__ import annotations

import smtplib
from datetime import timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, update

from portal import jobs
from portal.cases.models import CaseNote
from portal.extensions import db, rq
from portal.mail import services as mail
from portal.models import utcnow


def job_id(note_id: int) -> str:
    return f"case-reply-{note_id}"


def queue_reply(note_id: int) -> bool:
    return jobs.enqueue(send_reply_job, note_id, job_id=job_id(note_id), timeout=120)


@rq.job
def send_reply_job(note_id: int) -> str | None:
    """Send one reply. The row is claimed (queued → sending) before the SMTP call, so a second
    run of the job never sends it again."""
    claimed = db.session.execute(
        update(CaseNote).where(CaseNote.id == note_id, CaseNote.mail_status == "queued")
        .values(mail_status="sending")
    ).rowcount
    db.session.commit()
    if claimed != 1:
        return None
    note = db.session.get(CaseNote, note_id)
    case = note.case
    with force_locale(case.customer.locale):
        subject = _("About your case %(ref)s", ref=case.ref)
        text = "\n\n".join([_("Dear %(name)s,", name=case.customer.name), note.body,
                            _("Case reference: %(ref)s", ref=case.ref)])
    message = mail.build_message(note.to_address, subject, text,
                                 headers={"X-Aftercare-Case": case.ref})
    try:
        mail.send(message)
    except smtplib.SMTPResponseException as exc:
        temporary = 400 <= exc.smtp_code < 500
        note.mail_status = "queued" if temporary else "failed"
        note.error = f"{exc.smtp_code} {exc.smtp_error!r}"[:500]
        db.session.commit()
        if temporary:
            raise  # RQ records the failure; the reconciler queues it again
        return None
    except (OSError, smtplib.SMTPException) as exc:
        note.mail_status, note.error = "queued", str(exc)[:500]
        db.session.commit()
        raise
    note.mail_status, note.message_id, note.sent_at = "sent", message["Message-ID"], utcnow()
    note.error = None
    db.session.commit()
    return note.message_id


@jobs.reconciler
def requeue_lost_replies(min_age: timedelta) -> int:
    stmt = select(CaseNote.id).where(CaseNote.kind == "reply", CaseNote.mail_status == "queued",
                                     CaseNote.created_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, job_id, queue_reply)
