"""The command centre's read model: what one event's page shows, gathered from every domain
that works on the event (its notices, mailings, cases, post-mortem and sign-offs), and the
response targets those domains' first actions meet or miss."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select

from portal.audit.models import AuditEntry
from portal.cases.models import OPEN_STATUSES, Case, CaseStatus
from portal.events.models import (
    DEPARTMENTS,
    LABELS,
    Event,
    EventStatus,
    EventTask,
    Stakeholder,
    TimelineEntry,
)
from portal.events.services import target_minutes
from portal.extensions import db
from portal.i18n import reader_locale
from portal.mailings.models import Mailing
from portal.models import utcnow
from portal.notices import services as notice_services
from portal.notices.models import Notice, NoticeVersion, Publication
from portal.postmortems.models import Postmortem
from portal.signoffs.models import SignoffRequest, SignoffStatus

# ---------------------------------------------------------------------------- targets

@dataclass
class TargetStatus:
    metric: str
    minutes: int
    deadline: datetime
    achieved_at: datetime | None

    @property
    def state(self) -> str:
        """met, missed, or pending (not reached yet, still in time)."""
        if self.achieved_at is not None:
            return "met" if self.achieved_at <= self.deadline else "missed"
        return "missed" if utcnow() > self.deadline else "pending"


def _first_achievements(event_ids: list[int]) -> dict[tuple[int, str], datetime]:
    found: dict[tuple[int, str], datetime] = {}
    if not event_ids:
        return found
    for event_id, first in db.session.execute(
            select(Notice.event_id, func.min(Publication.published_at))
            .join(Publication, Publication.notice_id == Notice.id)
            .where(Notice.event_id.in_(event_ids), Notice.audience == "public")
            .group_by(Notice.event_id)):
        found[(event_id, "first_notice")] = first
    for event_id, first in db.session.execute(
            select(Mailing.event_id, func.min(Mailing.started_at))
            .where(Mailing.event_id.in_(event_ids), Mailing.started_at.is_not(None))
            .group_by(Mailing.event_id)):
        found[(event_id, "first_mailing")] = first
    return found


def target_statuses(events: list[Event]) -> dict[int, list[TargetStatus]]:
    minutes = target_minutes()
    achieved = _first_achievements([e.id for e in events])
    return {event.id: [
        TargetStatus(metric, limit, event.created_at + timedelta(minutes=limit),
                     achieved.get((event.id, metric)))
        for (severity, metric), limit in sorted(minutes.items()) if severity == event.severity
    ] for event in events}


def missed_targets() -> list[tuple[Event, TargetStatus]]:
    """Open events' missed targets, for the dashboard."""
    events = list(db.session.scalars(select(Event).where(Event.status != EventStatus.CLOSED)))
    statuses = target_statuses(events)
    return [(event, status) for event in events for status in statuses[event.id]
            if status.state == "missed"]


# ---------------------------------------------------------------------------- timeline

@dataclass
class TimelineItem:
    at: datetime
    kind: str  # status, notice, mailing, entry (its text typed by staff), created
    text: str
    by: str | None = None
    # The page it links to, as url_for(endpoint, **args) (built by the template).
    endpoint: str | None = None
    args: dict[str, object] | None = None
    title: str = ""  # what staff typed that follows the text (a notice's title)


def timeline(event: Event) -> list[TimelineItem]:
    """Status changes, publications, mailings and staff entries, oldest first."""
    items = [TimelineItem(event.created_at, "created", _("Event opened"),
                          event.created_by.name if event.created_by else None)]
    for entry in db.session.scalars(select(AuditEntry).where(
            AuditEntry.subject_type == "event", AuditEntry.subject_id == str(event.id),
            AuditEntry.action == "event.status").order_by(AuditEntry.id)):
        status = (entry.after or {}).get("status", "")
        items.append(TimelineItem(entry.created_at, "status",
                                  _("Moved to %(status)s", status=LABELS.get(status, status)),
                                  entry.actor_display))
    for publication, notice in db.session.execute(
            select(Publication, Notice).join(Notice, Notice.id == Publication.notice_id)
            .where(Notice.event_id == event.id)):
        title = publication.version.in_locale(reader_locale())[1]["title"]
        text = (_("Emergency publication: %(ref)s", ref=notice.ref) if publication.emergency
                else _("Notice published: %(ref)s", ref=notice.ref))
        items.append(TimelineItem(publication.published_at, "notice", text,
                                  publication.published_by.name
                                  if publication.published_by else None,
                                  "notices.detail", {"notice_id": notice.id}, title))
    for mailing in db.session.scalars(select(Mailing).where(Mailing.event_id == event.id,
                                                            Mailing.started_at.is_not(None))):
        items.append(TimelineItem(mailing.started_at, "mailing",
                                  ngettext("Mailing %(id)d started to %(num)d customer",
                                           "Mailing %(id)d started to %(num)d customers",
                                           mailing.total, id=mailing.id), None,
                                  "mailings.detail", {"mailing_id": mailing.id}))
    for entry in db.session.scalars(select(TimelineEntry).where(
            TimelineEntry.event_id == event.id)):
        items.append(TimelineItem(entry.occurred_at, "entry", entry.text,
                                  entry.author.name if entry.author else None))
    return sorted(items, key=lambda item: item.at)


# ---------------------------------------------------------------------------- the page

@dataclass
class CommandCentre:
    timeline: list[TimelineItem]
    tasks: dict[str, list[EventTask]]  # by department, in template order
    tasks_done: int
    tasks_total: int
    targets: list[TargetStatus]
    stakeholders: list[Stakeholder]
    open_cases: int
    open_totals: dict[str, Decimal]  # currency → sum of the open cases' amounts
    pending_signoffs: list[SignoffRequest]
    notices: list[Notice]
    mailings: int  # how many the event has had (the in-page navigation counts them)


def event_signoffs(event: Event, status: str = SignoffStatus.PENDING) -> list[SignoffRequest]:
    """The event's sign-off requests (notice versions, case decisions, its post-mortem) in a
    status."""
    versions = select(NoticeVersion.id).join(Notice, Notice.id == NoticeVersion.notice_id).where(
        Notice.event_id == event.id)
    cases = select(Case.id).where(Case.event_id == event.id)
    postmortems = select(Postmortem.id).where(Postmortem.event_id == event.id)
    return list(db.session.scalars(select(SignoffRequest).where(
        SignoffRequest.status == status,
        ((SignoffRequest.subject_type == "notice_version")
         & SignoffRequest.subject_id.in_(versions))
        | ((SignoffRequest.subject_type == "case_decision")
           & SignoffRequest.subject_id.in_(cases))
        | ((SignoffRequest.subject_type == "postmortem")
           & SignoffRequest.subject_id.in_(postmortems))).order_by(SignoffRequest.requested_at)))


def command_centre(event: Event) -> CommandCentre:
    tasks: dict[str, list[EventTask]] = {}
    all_tasks = list(db.session.scalars(select(EventTask).where(EventTask.event_id == event.id)
                                        .order_by(EventTask.position, EventTask.id)))
    for task in all_tasks:
        tasks.setdefault(task.department, []).append(task)
    ordered = {d: tasks[d] for d in DEPARTMENTS if d in tasks}
    open_cases = db.session.execute(
        select(Case.currency, func.count(Case.id), func.sum(Case.amount))
        .where(Case.event_id == event.id, Case.status.in_(OPEN_STATUSES),
               Case.status != CaseStatus.PAID).group_by(Case.currency)).all()
    return CommandCentre(
        timeline=timeline(event), tasks=ordered,
        tasks_done=sum(1 for t in all_tasks if t.done_at is not None),
        tasks_total=len(all_tasks), targets=target_statuses([event])[event.id],
        stakeholders=list(db.session.scalars(select(Stakeholder).where(
            Stakeholder.event_id == event.id).order_by(Stakeholder.kind, Stakeholder.name))),
        open_cases=sum(count for _c, count, _s in open_cases),
        open_totals={currency: total for currency, _n, total in open_cases},  # exact sums
        pending_signoffs=event_signoffs(event),
        notices=notice_services.event_notices(event),
        mailings=db.session.scalar(select(func.count(Mailing.id))
                                   .where(Mailing.event_id == event.id)) or 0,
    )
