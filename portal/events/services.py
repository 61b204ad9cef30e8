"""Rules for events: valid kind, severity, cause and a status that fits the kind."""

from __future__ import annotations

from flask_babel import gettext as _

from portal.audit import services as audit
from portal.auth.models import User
from portal.errors import RuleViolation
from portal.events.models import CAUSES, SEVERITIES, STATUSES, Event, EventKind
from portal.extensions import db


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
