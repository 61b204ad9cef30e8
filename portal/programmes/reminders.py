"""Reminders before an opt-in programme's deadline, through the mailing machinery.

``PROGRAMME_REMINDER_DAYS`` (default "7,1") says how many days before the deadline a reminder
goes to the members who have not accepted yet. Each reminder is a row
(``ProgrammeReminder``, unique per programme and days) written before its mailing, so it goes
out once however often the periodic job runs. The reminder repeats the approved text and the
greeting of the programme's launch mailing (a mailing drafted by staff and started); without
one there is nothing approved to send, and the reminder waits. When the job was down and
several reminders fell due, only the nearest one goes out; the others are recorded as passed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import jobs
from portal.errors import RuleViolation
from portal.extensions import db
from portal.mailings import services as mailings
from portal.mailings import tasks as mailing_tasks
from portal.mailings.compose import sendable_grant
from portal.mailings.models import Mailing
from portal.models import utcnow
from portal.programmes import mailing as programme_mailing
from portal.programmes.models import Programme, ProgrammeReminder, ProgrammeStatus

log = logging.getLogger(__name__)


def reminder_days() -> list[int]:
    """The configured days before the deadline, largest first (bad entries are ignored)."""
    days = set()
    for part in str(current_app.config.get("PROGRAMME_REMINDER_DAYS", "7,1")).split(","):
        part = part.strip()
        if part.isdigit() and int(part) > 0:
            days.add(int(part))
    return sorted(days, reverse=True)


def _record(programme_id: int, days: int, now: datetime) -> ProgrammeReminder | None:
    """The reminder's row, or None when it exists already (another run wrote it)."""
    row = ProgrammeReminder(programme_id=programme_id, days=days, created_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:
        return None
    return row


def _send(programme: Programme, source: Mailing, days: int, row: ProgrammeReminder) -> None:
    audience = programme_mailing.audience_for(programme, programme_mailing.REMINDER, days=days)
    try:
        with db.session.begin_nested():
            mailing = mailings.create_follow_up(source, audience)
            chunks = mailings.start(mailing, actor=None, repeat_confirmed=True)
    except RuleViolation as err:  # nobody left to remind
        log.info("programme %s: reminder %s days before: %s", programme.id, days, err.message)
        return
    row.mailing_id = mailing.id
    jobs.enqueue_after_commit(mailing_tasks.queue_chunks, mailing.id, chunks)


def send_due_reminders(now: datetime | None = None) -> int:
    """Send each reminder that fell due and was not sent yet; returns how many went out."""
    now = now or utcnow()
    days = reminder_days()
    if not days:
        return 0
    sent = 0
    for programme in db.session.scalars(select(Programme).where(
            Programme.mode == "opt_in", Programme.status == ProgrammeStatus.RUNNING,
            Programme.deadline.is_not(None), Programme.deadline > now)).all():
        due = [d for d in days if now >= programme.deadline - timedelta(days=d)]
        source = programme_mailing.launch_mailing(programme) if due else None
        if source is None:
            continue
        try:
            sendable_grant(source.version)
        except RuleViolation as err:  # not approved any more: the reminder waits for a text
            log.warning("programme %s: no reminder sent: %s", programme.id, err.message)
            continue
        done = set(db.session.scalars(select(ProgrammeReminder.days).where(
            ProgrammeReminder.programme_id == programme.id)))
        nearest = min(due)
        for passed in (d for d in due if d != nearest and d not in done):
            _record(programme.id, passed, now)  # fell due while the job was down: passed
        if nearest in done:
            continue
        row = _record(programme.id, nearest, now)
        if row is None:
            continue
        _send(programme, source, nearest, row)
        if row.mailing_id is not None:
            sent += 1
    return sent
