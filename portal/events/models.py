"""The event: an incident or a business shutdown, with severity, cause and phase."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.models import User
from portal.extensions import db
from portal.models import UTCDateTime, utcnow


class EventKind(StrEnum):
    INCIDENT = "incident"
    SHUTDOWN = "shutdown"


SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
CAUSES = ("platform", "human", "system", "business")
# Phases in order, per kind (DESIGN.md: incident response order; shutdown wind-down).
STATUSES = {
    EventKind.INCIDENT: ("responding", "handling", "reviewing", "closed"),
    EventKind.SHUTDOWN: ("planning", "announced", "winding_down", "aftercare", "closed"),
}

LABELS = {
    "incident": _l("Incident"),
    "shutdown": _l("Business shutdown"),
    "sev1": _l("Sev 1 (critical)"),
    "sev2": _l("Sev 2 (major)"),
    "sev3": _l("Sev 3 (minor)"),
    "sev4": _l("Sev 4 (low)"),
    "platform": _l("Platform"),
    "human": _l("Human error"),
    "system": _l("System"),
    "business": _l("Business decision"),
    "responding": _l("Responding"),
    "handling": _l("Handling"),
    "reviewing": _l("Reviewing"),
    "closed": _l("Closed"),
    "planning": _l("Planning"),
    "announced": _l("Announced"),
    "winding_down": _l("Winding down"),
    "aftercare": lazy_pgettext("event status", "Aftercare"),
}


class Event(db.Model):
    __tablename__ = "event"
    __table_args__ = (
        CheckConstraint("kind IN ('incident', 'shutdown')", name="kind_known"),
        CheckConstraint("severity IN ('sev1', 'sev2', 'sev3', 'sev4')", name="severity_known"),
        CheckConstraint("cause IN ('platform', 'human', 'system', 'business')", name="cause_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(8))
    cause: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # When the event reached "closed": the retention period counts from here.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    created_by: Mapped[User | None] = relationship()

    @property
    def urgent(self) -> bool:
        return self.severity in ("sev1", "sev2")

    def audit_state(self) -> dict[str, object]:
        return {
            "title": self.title, "kind": self.kind, "severity": self.severity,
            "cause": self.cause, "status": self.status, "summary": self.summary,
        }
