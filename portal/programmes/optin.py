"""A member's answer to their programme's offer, the review of late answers, and the
deadline.

In an opt-in programme a member accepts on their page (``/my``) by the deadline: created →
accepted, one conditional update, with the offer they saw (its hash binds amount, currency,
the terms in their language and the programme's sign-off). An answer after the deadline is
still recorded, as ``late``, and waits for staff: accepted, or refused (unclaimed,
"not_accepted"). Once the deadline has passed, the members who did not answer become unclaimed
("not_accepted", :func:`close_deadlines`); one who answers afterwards is late all the same.
Members below the low-value threshold are paid without asking and are never asked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, update

from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import Case, CaseStatus
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_
from portal.models import utcnow
from portal.programmes.mailing import format_amount, format_deadline
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember, ProgrammeStatus
from portal.programmes.unclaimed import mark_unclaimed

# Members who may still answer: not answered yet, or unclaimed only for not answering.
NOT_ACCEPTED = "not_accepted"
LIVE_PROGRAMMES = (ProgrammeStatus.RUNNING,)


def asks(programme: Programme, member: ProgrammeMember) -> bool:
    """Whether this member must accept to be paid (opt-in, above the low-value threshold)."""
    if programme.mode != "opt_in":
        return False
    threshold = programme.low_value_threshold
    return threshold is None or member.amount >= threshold


def offer_hash(programme: Programme, member: ProgrammeMember, locale: str) -> str:
    """What the member accepts: amount, currency, the terms they read, the sign-off."""
    text = "\n".join([str(programme.id), str(programme.signoff_id or ""), str(member.amount),
                      member.currency, locale, programme.terms_in(locale)])
    return hashlib.sha256(text.encode()).hexdigest()


def deadline_passed(programme: Programme, now: datetime | None = None) -> bool:
    return programme.deadline is not None and (now or utcnow()) >= programme.deadline


@dataclass
class MemberOffer:
    """What the customer's page shows of their programme on one case."""

    member_id: int
    programme_name: str
    opt_in: bool  # they must accept
    amount: str  # formatted in their language
    amount_value: Decimal
    currency: str
    terms: str
    locale: str
    deadline: str
    late: bool  # the deadline has passed
    status: str
    accepted_at: datetime | None
    paid: bool
    hash: str

    @property
    def held(self) -> bool:
        """The amount is held (unreachable, payouts failed): the customer must act."""
        return self.status not in (MemberStatus.CREATED, MemberStatus.ACCEPTED)

    @property
    def can_accept(self) -> bool:
        return self.opt_in and not self.paid and self.status in (
            MemberStatus.CREATED, MemberStatus.UNCLAIMED) and (
            self.status == MemberStatus.CREATED or self.late)


def member_of_case(case: Case, customer: Customer) -> ProgrammeMember | None:
    return db.session.scalar(select(ProgrammeMember).where(
        ProgrammeMember.case_id == case.id, ProgrammeMember.customer_id == customer.id))


def offer_for(case: Case, customer: Customer, locale: str) -> MemberOffer | None:
    """The programme's offer on this case, or None (no programme, or the member left it or
    was written off)."""
    member = member_of_case(case, customer)
    if member is None or member.status in (MemberStatus.LEFT, MemberStatus.WRITTEN_OFF):
        return None
    programme = member.programme
    if programme.status not in (*LIVE_PROGRAMMES, ProgrammeStatus.CLOSED):
        return None
    paid = (member.status == MemberStatus.PAID or case.status == CaseStatus.PAID
            or (case.status == CaseStatus.CLOSED and case.payment is not None))
    locale = locale if locale == "en" else "zh_CN"
    return MemberOffer(
        member_id=member.id, programme_name=programme.name_in(locale),
        opt_in=asks(programme, member),
        amount=format_amount(member.amount, member.currency, locale),
        amount_value=member.amount, currency=member.currency,
        terms=programme.terms_in(locale), locale=locale,
        deadline=format_deadline(programme.deadline, locale) if asks(programme, member) else "",
        late=deadline_passed(programme), status=member.status, accepted_at=member.accepted_at,
        paid=paid, hash=offer_hash(programme, member, locale))


def accept(member_id: int, customer: Customer, *, hash_seen: str, locale: str,
           confirmed: bool, now: datetime | None = None) -> str:
    """The customer accepts their offer: ``accepted`` by the deadline, ``late`` after it
    (staff review it). Returns the new status, or RuleViolation and nothing changed."""
    member = db.session.get(ProgrammeMember, member_id)
    if member is None or member.customer_id != customer.id:
        raise RuleViolation(_("There is no offer to accept here."))
    programme = member.programme
    locale = locale if locale == "en" else "zh_CN"
    if not asks(programme, member) or programme.status not in LIVE_PROGRAMMES:
        raise RuleViolation(_("This offer does not need to be accepted."))
    if not confirmed:
        raise RuleViolation(_("Tick the box to confirm that you accept the offer."),
                            field="confirm")
    if hash_seen != offer_hash(programme, member, locale):
        raise RuleViolation(_("The offer changed since you opened the page; read it again "
                              "before you accept."))
    now = now or utcnow()
    late = deadline_passed(programme, now)
    answerable = (ProgrammeMember.status == MemberStatus.CREATED) if not late else or_(
        ProgrammeMember.status == MemberStatus.CREATED,
        and_(ProgrammeMember.status == MemberStatus.UNCLAIMED,
             ProgrammeMember.unclaimed_reason == NOT_ACCEPTED))
    new = MemberStatus.LATE if late else MemberStatus.ACCEPTED
    before = {"status": member.status, "reason": member.unclaimed_reason}
    changed = db.session.execute(
        update(ProgrammeMember).where(ProgrammeMember.id == member.id, answerable)
        .values(status=new, accepted_at=now, unclaimed_reason=None, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        raise RuleViolation(_("This offer was already answered."))
    message = (N_("Programme member %(id)d accepted after the deadline; awaits review",
                  id=member.id) if late else
               N_("Programme member %(id)d accepted the offer", id=member.id))
    audit.record(f"programme.member_{new}", "programme_member", member.id, message,
                 before=before, after={"status": new, "offer_hash": hash_seen,
                                       "amount": str(member.amount),
                                       "currency": member.currency, "locale": locale})
    db.session.refresh(member)
    return new


def late_members(programme: Programme) -> list[ProgrammeMember]:
    return list(db.session.scalars(
        select(ProgrammeMember).where(ProgrammeMember.programme_id == programme.id,
                                      ProgrammeMember.status == MemberStatus.LATE)
        .order_by(ProgrammeMember.accepted_at, ProgrammeMember.id)))


def review_late(programme: Programme, member_id: int, decision: str, *, actor: User) -> str:
    """Staff decide on a late acceptance: ``accept`` (→ accepted, to be paid) or ``refuse``
    (→ unclaimed, "not_accepted"). Of two decisions at once, one wins."""
    if decision not in ("accept", "refuse"):
        raise RuleViolation(_("Choose accept or refuse."), field="decision")
    member = db.session.get(ProgrammeMember, member_id)
    if member is None or member.programme_id != programme.id:
        raise RuleViolation(_("This member is not in the programme."))
    new = MemberStatus.ACCEPTED if decision == "accept" else MemberStatus.UNCLAIMED
    changed = db.session.execute(
        update(ProgrammeMember).where(ProgrammeMember.id == member.id,
                                      ProgrammeMember.status == MemberStatus.LATE)
        .values(status=new, updated_at=utcnow(),
                unclaimed_reason=NOT_ACCEPTED if decision == "refuse" else None)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        raise RuleViolation(_("This late acceptance was already reviewed."))
    message = (N_("Late acceptance of programme member %(id)d accepted", id=member.id)
               if decision == "accept" else
               N_("Late acceptance of programme member %(id)d refused; unclaimed "
                  "(not accepted in time)", id=member.id))
    audit.record(f"programme.late_{decision}", "programme_member", member.id, message,
                 before={"status": MemberStatus.LATE},
                 after={"status": new, "reason": NOT_ACCEPTED if decision == "refuse" else None},
                 actor=actor)
    db.session.refresh(member)
    return new


def close_deadlines(now: datetime | None = None) -> int:
    """Members of opt-in programmes whose deadline has passed and who did not accept become
    unclaimed ("not_accepted"); returns how many. Safe to run again."""
    now = now or utcnow()
    count = 0
    for programme in db.session.scalars(select(Programme).where(
            Programme.mode == "opt_in", Programme.status.in_(LIVE_PROGRAMMES),
            Programme.deadline.is_not(None), Programme.deadline <= now)).all():
        threshold = programme.low_value_threshold
        above = ProgrammeMember.amount >= threshold if threshold is not None else True
        ids = db.session.scalars(select(ProgrammeMember.id).where(
            ProgrammeMember.programme_id == programme.id,
            ProgrammeMember.status == MemberStatus.CREATED, above)).all()
        count += mark_unclaimed(ids, NOT_ACCEPTED)
    return count
