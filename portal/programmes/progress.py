"""A programme's progress: how many members (and how much, per currency) are eligible,
notified, accepted, paid, failed, unclaimed, written off and left; each figure is a bar on
the progress page that links to the members behind it (``members_query``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, select

from portal.extensions import db
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember, ProgrammeStatus

M = ProgrammeMember
# The bars, in order: (code, label, the condition on a member).
STAGES: tuple[tuple[str, Any, Any], ...] = (
    ("eligible", _l("eligible (a case created)"), M.case_id.is_not(None)),
    ("notified", _l("notified"), M.notified_at.is_not(None)),
    ("accepted", _l("accepted"), M.accepted_at.is_not(None)),
    ("paid", _l("paid"), M.status == MemberStatus.PAID),
    ("failed", _l("a payout failed"), M.failed_payouts > 0),
    ("unclaimed", _l("unclaimed (amount held)"), M.status == MemberStatus.UNCLAIMED),
    ("late", _l("accepted late (awaiting review)"), M.status == MemberStatus.LATE),
    ("left", _l("left the programme (case adjusted)"), M.status == MemberStatus.LEFT),
    ("written_off", _l("written off (below the low-value threshold)"),
     M.status == MemberStatus.WRITTEN_OFF),
)
STAGE_LABELS = {code: label for code, label, _cond in STAGES}
CONDITIONS = {code: cond for code, _label, cond in STAGES}


@dataclass
class Bar:
    """One stage in one currency; ``percent`` of the eligible count, for the bar's width."""

    stage: str
    count: int = 0
    amount: Decimal = Decimal("0.00")
    percent: int = 0

    @property
    def label(self) -> Any:
        return STAGE_LABELS[self.stage]


@dataclass
class CurrencyProgress:
    currency: str
    bars: list[Bar] = field(default_factory=list)

    def bar(self, stage: str) -> Bar:
        return next(b for b in self.bars if b.stage == stage)


def programme_progress(programme: Programme) -> list[CurrencyProgress]:
    """Counts and amounts per stage, per currency (one query)."""
    columns = []
    for code, _label, cond in STAGES:
        columns += [func.count(M.id).filter(cond).label(f"{code}_n"),
                    func.sum(M.amount).filter(cond).label(f"{code}_a")]
    rows = db.session.execute(select(M.currency, *columns)
                              .where(M.programme_id == programme.id)
                              .group_by(M.currency).order_by(M.currency))
    found = []
    for row in rows:
        eligible = row._mapping["eligible_n"] or 0
        bars = []
        for code, _label, _cond in STAGES:
            count = row._mapping[f"{code}_n"] or 0
            base = eligible if code not in ("written_off",) else max(eligible, count)
            bars.append(Bar(code, count, row._mapping[f"{code}_a"] or Decimal("0.00"),
                            count * 100 // base if base else 0))
        found.append(CurrencyProgress(row.currency, bars))
    return found


def members_query(programme: Programme, stage: str | None) -> Select[Any]:
    """The members behind one bar (all of them when ``stage`` is None), in customer order."""
    stmt = select(M).where(M.programme_id == programme.id)
    if stage:
        stmt = stmt.where(CONDITIONS[stage])
    return stmt.order_by(M.customer_id, M.id)


MEMBER_STATUS_LABELS = {
    MemberStatus.CREATED: _l("case created"),
    MemberStatus.ACCEPTED: _l("accepted"),
    MemberStatus.PAID: _l("paid"),
    MemberStatus.LEFT: _l("left the programme"),
    MemberStatus.UNCLAIMED: _l("unclaimed"),
    MemberStatus.LATE: _l("accepted late"),
    MemberStatus.WRITTEN_OFF: _l("written off"),
}


def event_programmes(event_id: int, locale: str) -> list[tuple[int, str, str]]:
    """The event's programmes that legal has signed off, as (id, name in ``locale``, status),
    for the links to their progress on the command centre."""
    shown = (ProgrammeStatus.APPROVED, ProgrammeStatus.GENERATING, ProgrammeStatus.RUNNING,
             ProgrammeStatus.CLOSED)
    return [(p.id, p.name_in(locale), p.status) for p in db.session.scalars(
        select(Programme).where(Programme.event_id == event_id,
                                Programme.status.in_([str(s) for s in shown]))
        .order_by(Programme.id))]
