"""Communication metrics per event and per severity: how long the public waited for the first
notice, how long legal reviews of notices took (requested → decided), how long until the first
mailing started, and whether the updates kept the cadence. The command centre's response
targets (``portal.events.services.target_minutes``) say which first notices and first mailings
met or missed their deadline.

Updates on time vs late: each publication of an incident's public notices after the first is
an update; it is on time when it came within the severity's cadence (``portal.comms.settings``,
as set now) of the publication before it. An update that is overdue now (the event's clock,
``portal.comms.services.clocks``) is late already: the dashboard says "overdue", and the
figures must not say "no update late" meanwhile. A severity whose cadence is off counts none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from flask_babel import gettext as _
from sqlalchemy import func, select

from portal import exports
from portal.comms.services import clocks
from portal.comms.settings import cadence
from portal.events.models import LABELS, SEVERITIES, Event, EventKind
from portal.events.services import target_minutes
from portal.extensions import db
from portal.mailings.models import Mailing
from portal.models import utcnow
from portal.notices.models import Notice, NoticeVersion, Publication
from portal.signoffs.models import SignoffRequest

NOTICE_SUBJECT = "notice_version"


def _minutes(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else max(0, int((end - start).total_seconds() // 60))


@dataclass
class Target:
    minutes: int
    state: str  # met, missed, pending (not reached, still in time)


@dataclass
class EventMetrics:
    event: Event
    first_notice_at: datetime | None = None
    first_mailing_at: datetime | None = None
    reviews: int = 0  # decided legal reviews of the event's notice versions
    review_minutes: int = 0  # their time from requested to decided, together
    on_time: int | None = None  # None: no cadence for the event
    late: int | None = None
    targets: dict[str, Target] = field(default_factory=dict)  # by metric

    @property
    def to_first_notice(self) -> int | None:
        return _minutes(self.event.created_at, self.first_notice_at)

    @property
    def to_first_mailing(self) -> int | None:
        return _minutes(self.event.created_at, self.first_mailing_at)

    @property
    def review_mean(self) -> int | None:
        return self.review_minutes // self.reviews if self.reviews else None


def _target(event: Event, metric: str, achieved: datetime | None,
            limits: dict[tuple[str, str], int], now: datetime) -> Target | None:
    limit = limits.get((event.severity, metric))
    if limit is None:
        return None
    minutes = _minutes(event.created_at, achieved)
    if minutes is not None:
        return Target(limit, "met" if minutes <= limit else "missed")
    return Target(limit, "missed" if _minutes(event.created_at, now) > limit else "pending")


def for_events(events: list[Event], now: datetime | None = None) -> list[EventMetrics]:
    """The figures of each event, in the order given."""
    now = now or utcnow()
    found = {e.id: EventMetrics(e) for e in events}
    if not found:
        return []
    ids = list(found)
    publications: dict[int, list[datetime]] = {}
    for event_id, at in db.session.execute(
            select(Notice.event_id, Publication.published_at)
            .join(Publication, Publication.notice_id == Notice.id)
            .where(Notice.event_id.in_(ids), Notice.audience == "public")
            .order_by(Publication.published_at)):
        publications.setdefault(event_id, []).append(at)
    for event_id, first in db.session.execute(
            select(Mailing.event_id, func.min(Mailing.started_at))
            .where(Mailing.event_id.in_(ids), Mailing.started_at.is_not(None))
            .group_by(Mailing.event_id)):
        found[event_id].first_mailing_at = first
    for event_id, requested, decided in db.session.execute(
            select(Notice.event_id, SignoffRequest.requested_at, SignoffRequest.decided_at)
            .join(NoticeVersion, NoticeVersion.notice_id == Notice.id)
            .join(SignoffRequest, (SignoffRequest.subject_type == NOTICE_SUBJECT)
                  & (SignoffRequest.subject_id == NoticeVersion.id))
            .where(Notice.event_id.in_(ids), SignoffRequest.decided_at.is_not(None))):
        found[event_id].reviews += 1
        found[event_id].review_minutes += _minutes(requested, decided) or 0
    minutes = cadence()
    limits = target_minutes()
    running = clocks(events, now)
    for metrics in found.values():
        event = metrics.event
        times = publications.get(event.id, [])
        metrics.first_notice_at = times[0] if times else None
        every = minutes.get(event.severity) if event.kind == EventKind.INCIDENT else None
        if every:
            gaps = [_minutes(a, b) for a, b in pairwise(times)]
            metrics.on_time = sum(1 for g in gaps if g is not None and g <= every)
            metrics.late = len(gaps) - metrics.on_time
            if event.id in running and running[event.id].overdue:
                metrics.late += 1  # the update due now, not published in time
        for metric, achieved in (("first_notice", metrics.first_notice_at),
                                 ("first_mailing", metrics.first_mailing_at)):
            target = _target(event, metric, achieved, limits, now)
            if target is not None:
                metrics.targets[metric] = target
    return [found[e.id] for e in events]


@dataclass
class SeverityMetrics:
    """The figures of every event of one severity: means over the events that have each."""

    severity: str
    events: int = 0
    to_first_notice: int | None = None
    review_mean: int | None = None  # over every decided review of the severity's events
    reviews: int = 0
    to_first_mailing: int | None = None
    on_time: int = 0
    late: int = 0
    met: int = 0
    missed: int = 0


def _mean(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known)) if known else None


def by_severity(rows: list[EventMetrics]) -> list[SeverityMetrics]:
    found = []
    for severity in SEVERITIES:
        mine = [r for r in rows if r.event.severity == severity]
        reviews = sum(r.reviews for r in mine)
        targets = [t for r in mine for t in r.targets.values()]
        found.append(SeverityMetrics(
            severity, len(mine), _mean([r.to_first_notice for r in mine]),
            sum(r.review_minutes for r in mine) // reviews if reviews else None, reviews,
            _mean([r.to_first_mailing for r in mine]),
            sum(r.on_time or 0 for r in mine), sum(r.late or 0 for r in mine),
            sum(1 for t in targets if t.state == "met"),
            sum(1 for t in targets if t.state == "missed")))
    return found


def all_events() -> list[Event]:
    return list(db.session.scalars(select(Event).order_by(Event.id.desc())))


def target_label(target: Target | None) -> str:
    if target is None:
        return ""
    return {"met": _("met"), "missed": _("missed"), "pending": _("due")}[target.state]


def export_csv(rows: list[EventMetrics]) -> Iterator[str]:
    """One line per event, headers and words in the reader's language (minutes as numbers)."""
    header = [_("Event"), _("Title"), _("Kind"), _("Severity"), _("Opened"),
              _("First public notice"), _("Minutes to first notice"),
              _("First notice target (min)"), _("First notice target"), _("Legal reviews"),
              _("Mean minutes in legal review"), _("First mailing"),
              _("Minutes to first mailing"), _("First mailing target (min)"),
              _("First mailing target"),
              _("Updates on time"), _("Updates late")]

    def line(r: EventMetrics) -> list[object]:
        notice, mailing = r.targets.get("first_notice"), r.targets.get("first_mailing")
        return [r.event.id, r.event.title, str(LABELS[r.event.kind]),
                str(LABELS[r.event.severity]), r.event.created_at, r.first_notice_at,
                r.to_first_notice, notice.minutes if notice else None, target_label(notice),
                r.reviews, r.review_mean, r.first_mailing_at, r.to_first_mailing,
                mailing.minutes if mailing else None, target_label(mailing), r.on_time, r.late]

    yield from exports.stream(header, map(line, rows))


def export_severity_csv(rows: list[SeverityMetrics]) -> Iterator[str]:
    """One line per severity (the page's "By severity" table), in the reader's language."""
    header = [_("Severity"), _("Events"), _("Mean minutes to first notice"),
              _("Legal reviews"), _("Mean minutes in legal review"),
              _("Mean minutes to first mailing"), _("Updates on time"), _("Updates late"),
              _("Targets met"), _("Targets missed")]
    yield from exports.stream(header, (
        [str(LABELS[s.severity]), s.events, s.to_first_notice, s.reviews, s.review_mean,
         s.to_first_mailing, s.on_time, s.late, s.met, s.missed] for s in rows))
