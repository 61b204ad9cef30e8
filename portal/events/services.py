"""Rules for events: valid kind, severity, cause and a status that fits the kind."""

from __future__ import annotations

from flask_babel import gettext as _

from portal.audit import services as audit
from portal.auth.models import User
from portal.errors import RuleViolation
from portal.events.models import CAUSES, SEVERITIES, STATUSES, Event, EventKind
from portal.extensions import db
from portal.models import utcnow


def create_event(
    *, title: str, kind: str, severity: str, cause: str, summary: str = "",
    actor: User | None = None,
) -> Event:
    title = title.strip()
    if not title:
        raise RuleViolation(_("A title is required."), field="title")
    try:
        event_kind = EventKind(kind)
    except ValueError:
        raise RuleViolation(_("Unknown kind of event."), field="kind") from None
    if severity not in SEVERITIES:
        raise RuleViolation(_("Unknown severity."), field="severity")
    if cause not in CAUSES:
        raise RuleViolation(_("Unknown cause."), field="cause")
    event = Event(
        title=title, kind=event_kind.value, severity=severity, cause=cause,
        status=STATUSES[event_kind][0], summary=summary.strip(),
        created_by_id=actor.id if actor else None,
    )
    db.session.add(event)
    db.session.flush()
    audit.record("event.create", "event", event.id, f"Event “{title}” opened",
                 after=event.audit_state(), actor=actor)
    db.session.commit()
    return event


def update_event(event: Event, *, title: str, severity: str, cause: str, summary: str,
                 actor: User) -> bool:
    """Change title, severity, cause or summary; returns whether anything changed."""
    title = title.strip()
    if not title:
        raise RuleViolation(_("A title is required."), field="title")
    if severity not in SEVERITIES:
        raise RuleViolation(_("Unknown severity."), field="severity")
    if cause not in CAUSES:
        raise RuleViolation(_("Unknown cause."), field="cause")
    before = event.audit_state()
    event.title, event.severity, event.cause = title, severity, cause
    event.summary = summary.strip()
    if event.audit_state() == before:
        return False
    audit.record("event.update", "event", event.id, f"Event “{title}” updated",
                 before=before, after=event.audit_state(), actor=actor)
    db.session.commit()
    return True


def next_statuses(event: Event) -> list[str]:
    """The phases an event may move to: one step forward or one step back."""
    order = STATUSES[EventKind(event.kind)]
    i = order.index(event.status)
    return [order[j] for j in (i + 1, i - 1) if 0 <= j < len(order)]


def change_status(event: Event, status: str, *, actor: User) -> None:
    if status not in next_statuses(event):
        raise RuleViolation(_("An event moves one phase at a time."), field="status")
    before = event.audit_state()
    event.status = status
    event.closed_at = utcnow() if status == "closed" else None
    audit.record("event.status", "event", event.id,
                 f"Event “{event.title}” moved from {before['status']} to {status}",
                 before=before, after=event.audit_state(), actor=actor)
    db.session.commit()

