"""The event: an incident or a business shutdown, with severity, cause and phase."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.extensions import db
from portal.models import UTCDateTime, text_digest, utcnow


class EventKind(StrEnum):
    INCIDENT = "incident"
    SHUTDOWN = "shutdown"


SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
CAUSES = ("platform", "human", "system", "business")


class EventStatus(StrEnum):
    """The event's phase; which ones apply depends on its kind (see ``STATUSES``)."""

    RESPONDING = "responding"
    HANDLING = "handling"
    REVIEWING = "reviewing"
    PLANNING = "planning"
    ANNOUNCED = "announced"
    WINDING_DOWN = "winding_down"
    AFTERCARE = "aftercare"
    CLOSED = "closed"


# Phases in order, per kind (DESIGN.md: incident response order; shutdown wind-down).
STATUSES = {
    EventKind.INCIDENT: (EventStatus.RESPONDING, EventStatus.HANDLING, EventStatus.REVIEWING,
                         EventStatus.CLOSED),
    EventKind.SHUTDOWN: (EventStatus.PLANNING, EventStatus.ANNOUNCED, EventStatus.WINDING_DOWN,
                         EventStatus.AFTERCARE, EventStatus.CLOSED),
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


# The public site's badge of an urgent event: a word per severity (sev1 and sev2 were both
# "Urgent"), as the staff pages' levels say it (一级（特别重大）, 二级（重大）).
URGENCY_LABELS = {"sev1": _l("Critical (level 1)"), "sev2": _l("Major (level 2)")}


class Event(db.Model):
    __tablename__ = "event"
    __table_args__ = (
        CheckConstraint("kind IN ('incident', 'shutdown')", name="kind_known"),
        CheckConstraint("severity IN ('sev1', 'sev2', 'sev3', 'sev4')", name="severity_known"),
        CheckConstraint("cause IN ('platform', 'human', 'system', 'business')", name="cause_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The internal title staff know it by; the titles per language go into notices; the
    # public titles (optional) name it on the public pages, which list no event without one.
    title: Mapped[str] = mapped_column(String(200))
    title_zh: Mapped[str | None] = mapped_column(String(200))
    title_en: Mapped[str | None] = mapped_column(String(200))
    public_title_zh: Mapped[str | None] = mapped_column(String(200))
    public_title_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(8))
    cause: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # When the event reached "closed": the retention period counts from here.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Its public notices offer a claim form (and listed customers a claim on their page).
    accepts_claims: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Its public notice pages offer "Check my case": a customer asks for a one-time link to
    # their page (/my) with their e-mail address and an order or case ref.
    self_service: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The communications lead: keeps the public updates coming (reminded by e-mail when the
    # next one is due, ``portal.comms``); an active agent or admin, set on the event's page.
    comms_lead_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # When what its public pages show of it last changed (public titles, claim form, "Check
    # my case"): part of those pages' Last-Modified, hence of their ETag.
    public_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    comms_lead: Mapped[User | None] = relationship(foreign_keys=[comms_lead_id])

    @property
    def closed(self) -> bool:
        """Closed, with the moment it was (retention counts from there)."""
        return self.status == EventStatus.CLOSED and self.closed_at is not None

    @property
    def urgent(self) -> bool:
        return self.severity in URGENCY_LABELS

    @property
    def urgency_label(self) -> str:
        """What public readers see of an urgent event's severity (one word per severity)."""
        return str(URGENCY_LABELS.get(self.severity, ""))

    def title_in(self, locale: str) -> str:
        """The title for a text in ``locale`` (zh_CN or en): its own, else the internal one."""
        own = self.title_zh if locale.startswith("zh") else self.title_en
        return own or self.title

    def public_title_in(self, locale: str) -> str | None:
        """The public title in ``locale``, else in the other language; None when it has none
        (then the public pages do not name it)."""
        zh, en = self.public_title_zh, self.public_title_en
        return (zh or en) if locale.startswith("zh") else (en or zh)

    def audit_state(self) -> dict[str, object]:
        return {
            "title": self.title, "title_zh": self.title_zh, "title_en": self.title_en,
            "public_title_zh": self.public_title_zh, "public_title_en": self.public_title_en,
            "kind": self.kind, "severity": self.severity,
            "cause": self.cause, "status": self.status, "accepts_claims": self.accepts_claims,
            "self_service": self.self_service,
            "summary_sha256": text_digest(self.summary),  # the text may name a customer
        }


# ---------------------------------------------------------------------------- command centre

DEPARTMENTS = ("customer_service", "legal", "operations", "tech", "finance", "product")
DEPARTMENT_LABELS = {
    "customer_service": _l("Customer service"),
    "legal": _l("Legal"),
    "operations": _l("Operations"),
    "tech": _l("Tech"),
    "finance": _l("Finance"),
    "product": _l("Product"),
}
# Response targets: minutes from the event opening until the first …
TARGET_METRICS = {
    "first_notice": _l("public notice published"),
    "first_mailing": _l("mailing started"),
}
STAKEHOLDER_KINDS = {
    "department": _l("Internal department"),
    "supplier": _l("Supplier"),
    "channel": _l("Channel"),
    "partner": _l("Partner"),
}


class ChecklistTemplateItem(db.Model):
    """One task of the checklist a new event of this kind starts with (admin-editable)."""

    __tablename__ = "checklist_template_item"
    __table_args__ = (CheckConstraint("kind IN ('incident', 'shutdown')", name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    department: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    # Due this many hours after the event opens.
    due_hours: Mapped[int] = mapped_column(Integer, default=24)

    def audit_state(self) -> dict[str, object]:
        return {"kind": self.kind, "position": self.position, "department": self.department,
                "title": self.title, "due_hours": self.due_hours}


class EventTask(db.Model):
    __tablename__ = "event_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    department: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    done_by: Mapped[User | None] = relationship(foreign_keys=[done_by_id])

    @property
    def overdue(self) -> bool:
        return self.done_at is None and self.due_at is not None and self.due_at < utcnow()

    def audit_state(self) -> dict[str, object]:
        return {"department": self.department, "title": self.title, "owner_id": self.owner_id,
                "due_at": self.due_at.isoformat() if self.due_at else None,
                "done": self.done_at is not None}


class ResponseTarget(db.Model):
    """E.g. a sev1 public notice within 30 minutes of the event opening (admin-set)."""

    __tablename__ = "response_target"
    __table_args__ = (UniqueConstraint("severity", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    severity: Mapped[str] = mapped_column(String(8))
    metric: Mapped[str] = mapped_column(String(20))
    minutes: Mapped[int] = mapped_column(Integer)


class TimelineEntry(db.Model):
    """What staff add to an event's timeline by hand (calls, decisions, observations)."""

    __tablename__ = "event_timeline_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    author: Mapped[User | None] = relationship()


class Stakeholder(db.Model):
    """An internal department or an external partner to keep informed."""

    __tablename__ = "event_stakeholder"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(300), default="")
    informed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    informed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    informed_by: Mapped[User | None] = relationship()

    def audit_state(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "contact": self.contact,
                "informed_at": self.informed_at.isoformat() if self.informed_at else None}
