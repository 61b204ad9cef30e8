"""Unreachable and unclaimed members (RG 277): the amount stays held for them, reported per
programme for a re-contact.

A member becomes ``unclaimed`` with one reason code (used by every part of the programme
work): ``no_address`` (no e-mail address: set at case generation, since the customer cannot
be told, although the case is created), ``bounced`` (the programme's mail bounced),
``not_accepted`` (opt-in, no acceptance by the deadline) or ``payout_failed`` (payouts
failed twice: :func:`record_failed_payouts`). Only a member still waiting under the programme
moves (a conditional update): a paid, left or written-off member is never touched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from portal import exports
from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import Case
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import among, utcnow
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember

UNCLAIMED_REASONS = {
    "no_address": _l("no address to write to"),
    "bounced": _l("the mail bounced"),
    "not_accepted": _l("not accepted by the deadline"),
    "payout_failed": _l("the payout failed twice"),
}
# From these a member may become unclaimed.
CLAIMABLE = (MemberStatus.CREATED, MemberStatus.ACCEPTED, MemberStatus.LATE)
FAILED_PAYOUTS_LIMIT = 2


def mark_unclaimed(member_ids: list[int], reason: str, actor: User | None = None) -> int:
    """Mark these members unclaimed for ``reason``, the amount held; how many moved. One audit
    entry per programme touched, with the count and the amounts held."""
    if reason not in UNCLAIMED_REASONS:
        raise RuleViolation(_("Choose why the customer is unclaimed."), field="reason")
    if not member_ids:
        return 0
    moved = db.session.execute(
        update(ProgrammeMember)
        .where(ProgrammeMember.id.in_(member_ids),
               ProgrammeMember.status.in_([str(s) for s in CLAIMABLE]))
        .values(status=MemberStatus.UNCLAIMED, unclaimed_reason=reason, updated_at=utcnow())
        .returning(ProgrammeMember.id, ProgrammeMember.programme_id, ProgrammeMember.amount,
                   ProgrammeMember.currency)
        .execution_options(synchronize_session=False)).all()
    by_programme: dict[int, list[tuple[int, Decimal, str]]] = defaultdict(list)
    for member_id, programme_id, amount, currency in moved:
        by_programme[programme_id].append((member_id, amount, currency))
    for programme_id, members in sorted(by_programme.items()):
        held: dict[str, Decimal] = defaultdict(Decimal)
        for _id, amount, currency in members:
            held[currency] += amount
        shown = ", ".join(f"{amount} {currency}" for currency, amount in sorted(held.items()))
        audit.record("programme.unclaimed", "programme", programme_id,
                     N_("Programme %(id)s: %(count)d members unclaimed (%(reason)s), "
                        "%(held)s held", id=programme_id, count=len(members),
                        reason=term("unclaimed_reason", reason), held=shown),
                     after={"reason": reason, "member_ids": sorted(m[0] for m in members),
                            "held": {c: str(a) for c, a in sorted(held.items())}},
                     actor=actor)
    return len(moved)


def record_failed_payout(case_id: int) -> bool:
    """A payout of this case failed: :func:`record_failed_payouts` for one case. True when its
    member became unclaimed."""
    return record_failed_payouts([case_id]) == 1


IN_CHUNK = 500


def record_failed_payouts(case_ids: list[int]) -> int:
    """Payouts of these cases failed (the payouts call it with a result file's rejected
    lines): count it on each member, in bulk; at the second failure the member is unclaimed
    (``payout_failed``). One audit entry per programme and chunk, concerning each member.
    How many became unclaimed."""
    table = ProgrammeMember.__table__
    limit_reached: list[int] = []
    for start in range(0, len(case_ids), IN_CHUNK):
        moved = db.session.execute(
            update(table)
            .where(among(table.c.case_id, case_ids[start:start + IN_CHUNK]),
                   table.c.status.in_([str(s) for s in CLAIMABLE]))
            .values(failed_payouts=table.c.failed_payouts + 1, updated_at=utcnow())
            .returning(table.c.id, table.c.programme_id, table.c.case_id,
                       table.c.failed_payouts)).all()
        by_programme: dict[int, list[list[int]]] = defaultdict(list)
        for member_id, programme_id, case_id, failures in sorted(moved):
            by_programme[programme_id].append([member_id, case_id, failures])
            if failures >= FAILED_PAYOUTS_LIMIT:
                limit_reached.append(member_id)
        for programme_id, members in sorted(by_programme.items()):
            audit.record("programme.payout_failed", "programme", programme_id,
                         N_("Programme %(programme)s: the payout of %(count)d member(s) "
                            "failed", programme=programme_id, count=len(members)),
                         after={"members": members},
                         concerns={"programme_member": [m[0] for m in members]})
    return mark_unclaimed(limit_reached, "payout_failed", None)


@dataclass
class ReasonLine:
    reason: str
    count: int = 0
    held: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class UnclaimedReport:
    programme_id: int
    lines: list[ReasonLine]
    count: int
    held: dict[str, Decimal]


def unclaimed_report(programme: Programme) -> UnclaimedReport:
    """Unclaimed members per reason: how many, and the amount held per currency."""
    rows = db.session.execute(
        select(ProgrammeMember.unclaimed_reason, ProgrammeMember.currency,
               func.count(ProgrammeMember.id), func.sum(ProgrammeMember.amount))
        .where(ProgrammeMember.programme_id == programme.id,
               ProgrammeMember.status == MemberStatus.UNCLAIMED)
        .group_by(ProgrammeMember.unclaimed_reason, ProgrammeMember.currency))
    lines = {reason: ReasonLine(reason) for reason in UNCLAIMED_REASONS}
    held: dict[str, Decimal] = defaultdict(Decimal)
    total = 0
    for reason, currency, count, amount in rows:
        line = lines.setdefault(reason or "", ReasonLine(reason or ""))
        line.count += count
        line.held[currency] = line.held.get(currency, Decimal(0)) + (amount or Decimal(0))
        held[currency] += amount or Decimal(0)
        total += count
    return UnclaimedReport(programme.id, list(lines.values()), total, dict(sorted(held.items())))


CSV_HEADER = ("customer_ref / 客户编号", "name / 姓名", "email / 电子邮箱", "case / 案件",
              "amount / 金额", "currency / 币种", "reason / 原因", "failed_payouts / 付款失败次数",
              "since / 起始时间")


def unclaimed_csv(programme: Programme, batch: int = 1000) -> Iterator[str]:
    """The unclaimed members as CSV (for a re-contact), headers in both languages."""
    stmt = (select(Customer.external_ref, Customer.name, Customer.email, Case.ref,
                   ProgrammeMember.amount, ProgrammeMember.currency,
                   ProgrammeMember.unclaimed_reason, ProgrammeMember.failed_payouts,
                   ProgrammeMember.updated_at)
            .join(Customer, Customer.id == ProgrammeMember.customer_id)
            .outerjoin(Case, Case.id == ProgrammeMember.case_id)
            .where(ProgrammeMember.programme_id == programme.id,
                   ProgrammeMember.status == MemberStatus.UNCLAIMED)
            .order_by(ProgrammeMember.id).execution_options(yield_per=batch))
    yield from exports.stream(CSV_HEADER, db.session.execute(stmt))
