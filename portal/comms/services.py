"""The communications lead of an event and the clock of its public updates.

An incident that is still being responded to or handled and has a published public notice owes
its readers the next update within its severity's cadence (``portal.comms.settings``), counted
from the last publication of any of its public notices: publishing an update resets the clock.
Nothing is stored for the clock; it is read from the publications, so it cannot drift.

The reminders: when the next update is due within ``REMINDER_LEAD_MINUTES`` and when it is
overdue, the lead gets an e-mail in their language. Each is a row (unique per event, kind and
due time) written before it is sent (``portal.comms.tasks``), so it goes out once per due time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, render_template
from flask_babel import force_locale, format_datetime
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal import uow
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.comms.models import CadenceReminder, ReminderKind, ReminderStatus
from portal.comms.settings import REMINDER_LEAD_MINUTES, cadence
from portal.errors import RuleViolation
from portal.events.models import Event, EventKind, EventStatus
from portal.extensions import db
from portal.i18n import N_
from portal.models import utcnow
from portal.notices.models import Notice, NoticeStatus, Publication

# The phases in which the readers are owed updates (afterwards the incident is over).
LIVE_STATUSES = (EventStatus.RESPONDING, EventStatus.HANDLING)
LEAD_ROLES = (Role.AGENT, Role.ADMIN)


# ---------------------------------------------------------------------------- the lead

def lead_choices() -> list[User]:
    """Who may be a communications lead: active agents and admins."""
    return list(db.session.scalars(select(User).where(
        User.active.is_(True), User.role.in_(LEAD_ROLES)).order_by(User.name)))


def set_lead(event: Event, lead_id: int | None, *, actor: User) -> bool:
    """Make ``lead_id`` (None: nobody) the event's communications lead; False when they
    already were. Audited with the user's id (their name is on their account)."""
    if lead_id is not None:
        lead = db.session.get(User, lead_id)
        if lead is None or not lead.active or lead.role not in LEAD_ROLES:
            raise RuleViolation(_("Choose an active agent or admin."), field="lead_id")
    if event.comms_lead_id == lead_id:
        return False
    before = event.comms_lead_id
    event.comms_lead_id = lead_id
    db.session.flush()
    audit.record("event.comms_lead", "event", event.id,
                 N_("Communications lead of “%(title)s” changed", title=event.title)
                 if lead_id else
                 N_("Communications lead of “%(title)s” removed", title=event.title),
                 before={"comms_lead_id": before}, after={"comms_lead_id": lead_id},
                 actor=actor)
    return True


# ---------------------------------------------------------------------------- the clock

@dataclass
class Clock:
    """When an event's next public update is due, seen at ``now``."""

    event: Event
    minutes: int
    last_update_at: datetime
    now: datetime

    @property
    def due_at(self) -> datetime:
        return self.last_update_at + timedelta(minutes=self.minutes)

    @property
    def overdue(self) -> bool:
        return self.now >= self.due_at

    @property
    def soon(self) -> bool:
        """Due within the reminder's lead time, not overdue yet."""
        return not self.overdue and self.now >= self.due_at - timedelta(
            minutes=REMINDER_LEAD_MINUTES)

    @property
    def delta_minutes(self) -> int:
        """Whole minutes until due, or (when overdue) since it was due."""
        return int(abs((self.due_at - self.now).total_seconds()) // 60)


def last_updates(event_ids: Iterable[int]) -> dict[int, datetime]:
    """The last publication of each event's public notices that are still published."""
    ids = list(event_ids)
    if not ids:
        return {}
    return dict(db.session.execute(
        select(Notice.event_id, func.max(Publication.published_at))
        .join(Publication, Publication.notice_id == Notice.id)
        .where(Notice.event_id.in_(ids), Notice.audience == "public",
               Notice.status == NoticeStatus.PUBLISHED)
        .group_by(Notice.event_id)).all())


def _owes_updates(event: Event) -> bool:
    return event.kind == EventKind.INCIDENT and event.status in LIVE_STATUSES


def clocks(events: Iterable[Event], now: datetime | None = None) -> dict[int, Clock]:
    """The running clocks of ``events`` by event id (an event without one is left out: not a
    live incident, no published public notice, or its severity's cadence is off)."""
    now = now or utcnow()
    minutes = cadence()
    live = [e for e in events if _owes_updates(e) and minutes.get(e.severity)]
    last = last_updates(e.id for e in live)
    return {e.id: Clock(e, minutes[e.severity], last[e.id], now) for e in live if e.id in last}


def clock(event: Event, now: datetime | None = None) -> Clock | None:
    return clocks([event], now).get(event.id)


def live_clocks(now: datetime | None = None) -> list[Clock]:
    """Every running clock, the most urgent first (for the dashboard and the reminders)."""
    events = db.session.scalars(select(Event).where(
        Event.kind == EventKind.INCIDENT, Event.status.in_(LIVE_STATUSES)))
    return sorted(clocks(events, now).values(), key=lambda c: c.due_at)


# ---------------------------------------------------------------------------- reminders

def _record(event: Event, kind: ReminderKind, due_at: datetime, now: datetime, *,
            passed: bool = False) -> CadenceReminder | None:
    """The reminder's row, or None when it exists already (an earlier run wrote it) or has
    nobody to go to yet (no active lead: it waits, and goes to the lead named later)."""
    lead = event.comms_lead
    if not passed and (lead is None or not lead.active):
        return None
    row = CadenceReminder(event_id=event.id, kind=kind, due_at=due_at,
                          lead_id=lead.id if lead else None, created_at=now,
                          status=ReminderStatus.SKIPPED if passed else ReminderStatus.PENDING)
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:
        return None
    return row


def record_due_reminders(now: datetime | None = None) -> list[CadenceReminder]:
    """Write the row of each reminder that fell due (once per event, kind and due time). When
    the update is overdue before "due soon" went out, that one is recorded as passed."""
    now = now or utcnow()
    written = []
    for running in live_clocks(now):
        due = running.due_at
        if running.overdue:
            _record(running.event, ReminderKind.DUE_SOON, due, now, passed=True)
            row = _record(running.event, ReminderKind.OVERDUE, due, now)
        elif running.soon:
            row = _record(running.event, ReminderKind.DUE_SOON, due, now)
        else:
            continue
        if row is not None:
            written.append(row)
    return written


def recent_reminders(event: Event, limit: int = 5) -> list[CadenceReminder]:
    """The event's latest reminder rows, newest first (what was sent to whom, and when)."""
    return list(db.session.scalars(select(CadenceReminder).where(
        CadenceReminder.event_id == event.id).order_by(CadenceReminder.id.desc()).limit(limit)))


def pending_ids() -> list[int]:
    return list(db.session.scalars(select(CadenceReminder.id).where(
        CadenceReminder.status == ReminderStatus.PENDING).order_by(CadenceReminder.id)))


def claim(row_id: int, now: datetime) -> CadenceReminder | None:
    """Take a waiting row (committed at once, so a second run finds it taken)."""
    taken = db.session.execute(
        update(CadenceReminder).where(CadenceReminder.id == row_id,
                                      CadenceReminder.status == ReminderStatus.PENDING)
        .values(status=ReminderStatus.SENDING, claimed_at=now,
                attempts=CadenceReminder.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount
    uow.commit()
    return db.session.get(CadenceReminder, row_id) if taken else None


def recover_stalled(now: datetime) -> int:
    """Rows a dead worker left ``sending`` past the lease wait again (sent again, in doubt,
    with the same Message-ID)."""
    lease = timedelta(seconds=float(current_app.config["MAILING_LEASE_SECONDS"]))
    return db.session.execute(
        update(CadenceReminder).where(CadenceReminder.status == ReminderStatus.SENDING,
                                      CadenceReminder.claimed_at < now - lease)
        .values(status=ReminderStatus.PENDING, claimed_at=None,
                error="in doubt: the worker stopped while sending; sent again")
        .execution_options(synchronize_session=False)).rowcount


def still_due(row: CadenceReminder, now: datetime) -> bool:
    """The row's due time is still the event's (no update reset the clock meanwhile)."""
    event = db.session.get(Event, row.event_id)
    running = clock(event, now) if event else None
    return running is not None and running.due_at == row.due_at


def _link(path: str) -> str:
    return current_app.config["PORTAL_BASE_URL"].rstrip("/") + path


def compose(row: CadenceReminder, lead: User) -> tuple[str, str]:
    """The subject and text of the reminder, in the lead's language."""
    event = db.session.get(Event, row.event_id)
    with force_locale(lead.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
        at = format_datetime(row.due_at, "short")
        if row.kind == ReminderKind.OVERDUE:
            subject = _("Public update overdue since %(at)s: %(event)s", at=at,
                        event=event.title)
        else:
            subject = _("Public update due at %(at)s: %(event)s", at=at, event=event.title)
        text = render_template("comms/reminder.txt", lead=lead, event=event, row=row, at=at,
                               overdue=row.kind == ReminderKind.OVERDUE,
                               url=_link(f"/events/{event.id}#communications"))
    return "Aftercare: " + subject, text
