"""The periodic job of the update cadence (scheduled in ``portal.wiring`` through ``rq
cron``): write the reminder rows that fell due, then e-mail each waiting one.

Each row is claimed (committed) before its SMTP call, so two runs never send it twice; a
temporary failure waits for the next run (up to ``MAILING_MAX_ATTEMPTS``), a permanent one
fails the row with the reason; a row a dead worker left "sending" goes again after the lease
(in doubt, same Message-ID). A row whose due time an update reset meanwhile is not sent.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import update

from portal import jobs, uow
from portal.comms import services
from portal.comms.models import CadenceReminder, ReminderStatus
from portal.extensions import db, rq
from portal.mail import transport
from portal.models import utcnow

INTERVAL_SECONDS = 60
JOB_ID = "comms-cadence"


def _finish(row_id: int, **values: object) -> None:
    db.session.execute(update(CadenceReminder).where(CadenceReminder.id == row_id)
                       .values(**values).execution_options(synchronize_session=False))


def deliver(row_id: int, now: datetime) -> str | None:
    """E-mail one waiting reminder; the Message-ID when the server accepted it."""
    row = services.claim(row_id, now)
    if row is None:
        return None
    lead = row.lead
    if lead is None or not lead.active or not services.still_due(row, now):
        _finish(row_id, status=ReminderStatus.SKIPPED, claimed_at=None)
        return None
    subject, text = services.compose(row, lead)
    msg_id = f"<cadence-{row.id}@{transport.message_domain()}>"
    try:
        message = transport.build_message(lead.email, subject, text, msg_id=msg_id)
        with transport.Client() as client:
            client.send(message, current_app.config["MAIL_FROM"], [lead.email])
    except Exception as exc:  # every failure is judged by the rulebook
        failure = transport.classify(exc)
        retry = (failure.temporary or failure.scope == transport.CONNECTION) and (
            row.attempts < int(current_app.config["MAILING_MAX_ATTEMPTS"]))
        _finish(row_id, status=ReminderStatus.PENDING if retry else ReminderStatus.FAILED,
                claimed_at=None, error=failure.reason[:500])
        return None
    _finish(row_id, status=ReminderStatus.SENT, sent_at=utcnow(), message_id=msg_id,
            claimed_at=None, error=None)
    return msg_id


@rq.job(queue="default")
@jobs.unit_of_work
def cadence_job() -> int:
    """Remind the leads whose next update fell due; returns how many e-mails went out. Safe to
    run again, or twice at once."""
    now = utcnow()
    services.recover_stalled(now)
    services.record_due_reminders(now)
    uow.commit()  # the rows first: a run that dies now leaves them waiting
    return sum(1 for row_id in services.pending_ids() if deliver(row_id, now))


def queue_cadence() -> bool:
    return jobs.enqueue(cadence_job, job_id=JOB_ID, timeout=300)
