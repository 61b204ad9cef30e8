"""The dashboard's figures: each one a query the chart draws and a link to the list behind it.

Charts are drawn on the server as SVG (``templates/main/_charts.html``): no script, no CDN,
the labels are ordinary translated text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from portal.accounts import User
from portal.audit.models import AuditEntry, AuditVerification
from portal.cases import rules, search
from portal.cases.models import LABELS as CASE_LABELS
from portal.cases.models import OPEN_STATUSES, Case, CaseStatus, Payment
from portal.events.models import Event, EventStatus
from portal.extensions import db
from portal.mailings.models import Mailing, RecipientStatus
from portal.mailings.services import progress_counts
from portal.models import utcnow
from portal.signoffs.models import SignoffRequest, SignoffStatus

# Sign-off queue age buckets: (upper bound, label); the last has no bound.
AGE_BUCKETS = (
    (timedelta(hours=4), _l("under 4 hours")),
    (timedelta(hours=24), _l("4–24 hours")),
    (timedelta(days=3), _l("1–3 days")),
    (None, _l("over 3 days")),
)


@dataclass
class Bar:
    """One bar; the template links it with ``url_for(endpoint, **args)``."""

    label: str
    value: int | Decimal
    endpoint: str
    args: dict[str, object] = field(default_factory=dict)
    css: str = ""
    typed: bool = False  # the label is what people typed (an event's title)


@dataclass
class Chart:
    title: str
    bars: list[Bar] = field(default_factory=list)

    @property
    def maximum(self) -> int | Decimal:
        return max((b.value for b in self.bars), default=0) or 1


def figures() -> dict[str, int]:
    """The counts at the top of the dashboard."""
    overdue = search.CaseFilter(overdue=True).statement()
    return {
        "open_events": db.session.scalar(
            select(func.count(Event.id)).where(Event.status != EventStatus.CLOSED)),
        "open_cases": db.session.scalar(
            select(func.count(Case.id)).where(Case.status.in_(rules.OPEN_BEFORE_PAYMENT))),
        "overdue_cases": db.session.scalar(
            overdue.with_only_columns(func.count(Case.id)).order_by(None)),
        "active_staff": db.session.scalar(select(func.count(User.id)).where(User.active.is_(True))),
        "audit_entries": db.session.scalar(select(func.count(AuditEntry.id))),
    }


def open_events() -> list[Event]:
    """Events not closed yet, most severe first."""
    return list(db.session.scalars(
        select(Event).where(Event.status != EventStatus.CLOSED)
        .order_by(Event.severity, Event.id.desc())))


def latest_verification() -> AuditVerification | None:
    return db.session.scalar(select(AuditVerification).order_by(AuditVerification.id.desc()))


def open_cases_by_status() -> Chart:
    # "Paid" waits only to be closed: not open work, as on the event page and the SLA chart.
    statuses = [s for s in OPEN_STATUSES if s != CaseStatus.PAID]
    counts = dict(db.session.execute(select(Case.status, func.count(Case.id))
                                     .where(Case.status.in_(statuses))
                                     .group_by(Case.status)).all())
    return Chart(str(_l("Open cases by status")), [
        Bar(str(CASE_LABELS[status]), counts.get(status, 0), "cases.index",
            {"status": status}, f"status-{status}")
        for status in statuses])


@dataclass
class MoneyRow:
    """Proposed (a proposal was made), approved (the approved amount) and paid (payments),
    for one event in one currency."""

    event: Event
    currency: str
    proposed: Decimal = Decimal("0")
    approved: Decimal = Decimal("0")
    paid: Decimal = Decimal("0")

    def bars(self) -> list[Bar]:
        return [
            Bar(str(_l("proposed")), self.proposed, "cases.index", {"event": self.event.id},
                "proposed"),
            Bar(str(_l("approved")), self.approved, "cases.index",
                {"event": self.event.id, "status": CaseStatus.APPROVED}, "approved"),
            Bar(str(_l("paid")), self.paid, "cases.index",
                {"event": self.event.id, "status": CaseStatus.PAID}, "paid"),
        ]


def amounts_by_event() -> list[MoneyRow]:
    rows: dict[tuple[int, str], MoneyRow] = {}
    events = {e.id: e for e in db.session.scalars(select(Event))}

    def row(event_id: int, currency: str) -> MoneyRow:
        return rows.setdefault((event_id, currency),
                               MoneyRow(events[event_id], currency))

    for event_id, currency, proposed, approved in db.session.execute(
            select(Case.event_id, Case.currency,
                   func.sum(Case.amount).filter(Case.proposed_by_id.is_not(None)),
                   func.sum(Case.approved_amount))
            .group_by(Case.event_id, Case.currency)):
        entry = row(event_id, currency)
        # SQL sums of Money columns: exact Decimals on every backend, None when nothing
        entry.proposed = proposed or entry.proposed
        entry.approved = approved or entry.approved
    for event_id, currency, paid in db.session.execute(
            select(Case.event_id, Case.currency, func.sum(Payment.amount))
            .join(Payment, Payment.case_id == Case.id).group_by(Case.event_id, Case.currency)):
        row(event_id, currency).paid = paid or Decimal("0")
    return sorted((r for r in rows.values() if r.proposed or r.approved or r.paid),
                  key=lambda r: (r.event.id, r.currency))


def sla_breaches() -> Chart:
    """Open cases past their due date, per event."""
    now = utcnow()
    rows = db.session.execute(
        select(Case.event_id, func.count(Case.id))
        .where(Case.status.in_(OPEN_STATUSES), Case.status != CaseStatus.PAID,
               Case.due_at < now)
        .group_by(Case.event_id)).all()
    events = {e.id: e for e in db.session.scalars(select(Event).where(
        Event.id.in_([r[0] for r in rows])))}
    return Chart(str(_l("SLA breaches: overdue open cases")), [
        Bar(events[event_id].title, count, "cases.index", {"event": event_id, "overdue": 1},
            "breach", typed=True)
        for event_id, count in sorted(rows)])


def signoff_ages() -> Chart:
    now = utcnow()
    counts = [0] * len(AGE_BUCKETS)
    for requested_at in db.session.scalars(select(SignoffRequest.requested_at).where(
            SignoffRequest.status == SignoffStatus.PENDING)):
        age = now - requested_at
        index = next(i for i, (bound, _label) in enumerate(AGE_BUCKETS)
                     if bound is None or age < bound)
        counts[index] += 1
    return Chart(str(_l("Sign-off queue by age")), [
        Bar(str(label), counts[i], "signoffs.queue", {}, f"age-{i}") for i, (_b, label) in
        enumerate(AGE_BUCKETS)])


@dataclass
class Delivery:
    mailing: Mailing
    counts: dict[str, int]

    @property
    def delivered_percent(self) -> int:
        attempted = self.counts[RecipientStatus.SENT] + self.counts[RecipientStatus.FAILED]
        return round(100 * self.counts[RecipientStatus.SENT] / attempted) if attempted else 0

    def segments(self) -> list[tuple[str, int]]:
        """(css class, count) in drawing order."""
        counts, s = self.counts, RecipientStatus
        return [("sent", counts[s.SENT]), ("failed", counts[s.FAILED]),
                ("skipped", counts[s.SKIPPED] + counts[s.CANCELLED]),
                ("waiting", counts[s.PENDING] + counts[s.SENDING])]


def mailing_delivery(limit: int = 8) -> list[Delivery]:
    """The latest started mailings and how their recipients fared."""
    mailings = db.session.scalars(select(Mailing).where(Mailing.started_at.is_not(None))
                                  .order_by(Mailing.started_at.desc()).limit(limit))
    found: list[Delivery] = []
    for mailing in mailings:
        found.append(Delivery(mailing, progress_counts(mailing.id)))
    return found


def amounts_scale(rows: list[MoneyRow]) -> dict[str, Decimal]:
    """The longest bar per currency (amounts in different currencies are never compared)."""
    scale: dict[str, Decimal] = {}
    for r in rows:
        scale[r.currency] = max(scale.get(r.currency, Decimal("0")), r.proposed, r.approved,
                                r.paid)
    return {currency: top or Decimal("1") for currency, top in scale.items()}
