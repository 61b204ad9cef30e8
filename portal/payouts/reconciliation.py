"""Reconciliation to the cent, per currency: of a batch (expected = paid + rejected + pending,
the control sum recorded when it was prepared, the case payments behind its paid lines) and
of a programme (the same over its batches, and its members' amounts: paid, held as
unclaimed, written off, left, in a batch, awaiting). Every difference comes with the lines
behind it. Sums are SQL sums of ``Money`` columns: ``Decimal`` end to end."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select

from portal.cases.models import Case, Payment
from portal.extensions import db
from portal.payouts.models import BatchStatus, LineStatus, PayoutBatch, PayoutLine
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember

ZERO = Decimal("0.00")
MAX_SHOWN = 200  # lines listed behind a difference; the count says how many there are


@dataclass
class Totals:
    """One currency's figures. ``difference`` must be zero; ``payments_difference`` too."""

    currency: str
    expected: Decimal = ZERO
    paid: Decimal = ZERO
    rejected: Decimal = ZERO
    pending: Decimal = ZERO
    payments: Decimal = ZERO  # the case payments recorded for the paid lines
    control_sum: Decimal | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def difference(self) -> Decimal:
        return self.expected - (self.paid + self.rejected + self.pending)

    @property
    def payments_difference(self) -> Decimal:
        return self.paid - self.payments

    @property
    def control_difference(self) -> Decimal:
        return ZERO if self.control_sum is None else self.control_sum - self.expected

    @property
    def balanced(self) -> bool:
        return not (self.difference or self.payments_difference or self.control_difference)


@dataclass
class Finding:
    """A line behind a difference: what is wrong (a code the page names) and its figures."""

    kind: str
    line_id: int | None
    end_to_end_id: str | None
    case_id: int
    case_ref: str
    amount: Decimal | None
    other_amount: Decimal | None
    currency: str


@dataclass
class Reconciliation:
    totals: list[Totals]
    findings: list[Finding]
    finding_count: int

    @property
    def balanced(self) -> bool:
        return self.finding_count == 0 and all(t.balanced for t in self.totals)


def _line_totals(where: Any) -> dict[str, Totals]:
    totals: dict[str, Totals] = {}
    rows = db.session.execute(
        select(PayoutLine.currency, PayoutLine.status, func.count(PayoutLine.id),
               func.sum(PayoutLine.amount))
        .join(PayoutBatch, PayoutBatch.id == PayoutLine.batch_id).where(where)
        .group_by(PayoutLine.currency, PayoutLine.status))
    for currency, status, count, amount in rows:
        t = totals.setdefault(currency, Totals(currency))
        t.expected += amount or ZERO
        setattr(t, status, getattr(t, status) + (amount or ZERO))
        t.counts[status] = count
    payments = db.session.execute(
        select(PayoutLine.currency, func.sum(Payment.amount))
        .join(PayoutBatch, PayoutBatch.id == PayoutLine.batch_id)
        .join(Payment, Payment.case_id == PayoutLine.case_id)
        .where(where, PayoutLine.status == LineStatus.PAID).group_by(PayoutLine.currency))
    for currency, amount in payments:
        totals.setdefault(currency, Totals(currency)).payments = amount or ZERO
    return totals


def _line_findings(where: Any) -> tuple[list[Finding], int]:
    """Paid lines without a case payment or with one of another amount or currency; pending
    lines whose case was paid meanwhile; rejected lines that a payment names."""
    wrong = (
        (and_(PayoutLine.status == LineStatus.PAID, Payment.id.is_(None)), "paid_no_payment"),
        (and_(PayoutLine.status == LineStatus.PAID, Payment.id.is_not(None),
              (Payment.amount != PayoutLine.amount) | (Payment.currency != PayoutLine.currency)),
         "payment_differs"),
        (and_(PayoutLine.status == LineStatus.PENDING, Payment.id.is_not(None)),
         "pending_but_paid"),
        (and_(PayoutLine.status == LineStatus.REJECTED,
              Payment.payout_ref == PayoutLine.end_to_end_id), "rejected_but_paid"),
    )
    findings: list[Finding] = []
    total = 0
    for condition, kind in wrong:
        def joined(*columns: Any, condition: Any = condition) -> Any:
            return (select(*columns)
                    .join(PayoutBatch, PayoutBatch.id == PayoutLine.batch_id)
                    .join(Case, Case.id == PayoutLine.case_id)
                    .outerjoin(Payment, Payment.case_id == PayoutLine.case_id)
                    .where(where, condition))
        total += db.session.scalar(joined(func.count(PayoutLine.id))) or 0
        for line, case_ref, paid in db.session.execute(
                joined(PayoutLine, Case.ref, Payment.amount).order_by(PayoutLine.id)
                .limit(MAX_SHOWN)):
            findings.append(Finding(kind, line.id, line.end_to_end_id, line.case_id, case_ref,
                                    line.amount, paid, line.currency))
    return findings[:MAX_SHOWN], total


def for_batch(batch: PayoutBatch) -> Reconciliation:
    where = PayoutLine.batch_id == batch.id
    totals = _line_totals(where)
    totals.setdefault(batch.currency, Totals(batch.currency)).control_sum = batch.control_sum
    findings, count = _line_findings(where)
    return Reconciliation(sorted(totals.values(), key=lambda t: t.currency), findings, count)


# --- programmes -----------------------------------------------------------------------------


@dataclass
class MemberTotals:
    """A programme's members' amounts in one currency, split by where each amount is."""

    currency: str
    members: Decimal = ZERO
    buckets: dict[str, Decimal] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    payments: Decimal = ZERO  # what was paid to the members counted as paid

    @property
    def difference(self) -> Decimal:
        return self.members - sum(self.buckets.values(), ZERO)

    @property
    def payments_difference(self) -> Decimal:
        return self.payments - self.buckets.get("paid", ZERO)


BUCKETS = ("paid", "in_batch", "awaiting", "unclaimed", "written_off", "left")


def _bucket(status: str, paid: bool, in_batch: bool) -> str:
    if paid:
        return "paid"
    if status == MemberStatus.UNCLAIMED:
        return "unclaimed"
    if status == MemberStatus.WRITTEN_OFF:
        return "written_off"
    if status == MemberStatus.LEFT:
        return "left"
    return "in_batch" if in_batch else "awaiting"


@dataclass
class ProgrammeReconciliation:
    payouts: Reconciliation
    members: list[MemberTotals]
    member_findings: list[Finding]
    member_finding_count: int

    @property
    def balanced(self) -> bool:
        return (self.payouts.balanced and self.member_finding_count == 0
                and all(not (m.difference or m.payments_difference) for m in self.members))


def _member_totals(programme: Programme) -> tuple[list[MemberTotals], list[Finding], int]:
    in_batch = (select(PayoutLine.id).where(PayoutLine.case_id == ProgrammeMember.case_id,
                                            PayoutLine.status == LineStatus.PENDING)
                .exists())
    each = (select(ProgrammeMember.currency.label("currency"),
                   ProgrammeMember.status.label("status"),
                   ProgrammeMember.amount.label("amount"),
                   Payment.amount.label("paid_amount"),
                   Payment.id.is_not(None).label("paid"), in_batch.label("in_batch"))
            .outerjoin(Payment, Payment.case_id == ProgrammeMember.case_id)
            .where(ProgrammeMember.programme_id == programme.id).subquery())
    rows = db.session.execute(
        select(each.c.currency, each.c.status, each.c.paid, each.c.in_batch,
               func.count(), func.sum(each.c.amount), func.sum(each.c.paid_amount))
        .group_by(each.c.currency, each.c.status, each.c.paid, each.c.in_batch))
    totals: dict[str, MemberTotals] = {}
    for currency, status, paid, batched, count, amount, paid_amount in rows:
        t = totals.setdefault(currency, MemberTotals(currency))
        bucket = _bucket(status, bool(paid), bool(batched))
        t.members += amount or ZERO
        t.buckets[bucket] = t.buckets.get(bucket, ZERO) + (amount or ZERO)
        t.counts[bucket] = t.counts.get(bucket, 0) + count
        if paid:
            t.payments += paid_amount or ZERO
    base = (select(ProgrammeMember, Case.ref, Payment.amount)
            .join(Case, Case.id == ProgrammeMember.case_id)
            .join(Payment, Payment.case_id == ProgrammeMember.case_id)
            .where(ProgrammeMember.programme_id == programme.id,
                   (Payment.amount != ProgrammeMember.amount)
                   | (Payment.currency != ProgrammeMember.currency)))
    count = db.session.scalar(
        select(func.count(ProgrammeMember.id))
        .join(Payment, Payment.case_id == ProgrammeMember.case_id)
        .where(ProgrammeMember.programme_id == programme.id,
               (Payment.amount != ProgrammeMember.amount)
               | (Payment.currency != ProgrammeMember.currency))) or 0
    findings = [Finding("member_payment_differs", None, None, member.case_id, case_ref,
                        member.amount, paid, member.currency)
                for member, case_ref, paid in db.session.execute(
                    base.order_by(ProgrammeMember.id).limit(MAX_SHOWN))]
    return sorted(totals.values(), key=lambda t: t.currency), findings, count


def for_programme(programme: Programme) -> ProgrammeReconciliation:
    where = and_(PayoutBatch.programme_id == programme.id,
                 PayoutBatch.status != BatchStatus.CANCELLED)
    totals = _line_totals(where)
    findings, count = _line_findings(where)
    members, member_findings, member_count = _member_totals(programme)
    return ProgrammeReconciliation(
        Reconciliation(sorted(totals.values(), key=lambda t: t.currency), findings, count),
        members, member_findings, member_count)
