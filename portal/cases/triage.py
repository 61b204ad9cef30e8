"""The triage queue: an agent's decision on a waiting claim.

A claim never becomes a case by itself: an agent or admin matches it to a customer of its
event, creates the customer from it, or rejects it with a reason that is e-mailed to the
claimant in their language. The decision names the agent, is audited, and an accepted claim
becomes a ``new`` case (source "triage", or "customer" for a listed customer's claim) under
the duplicate-case rule.
"""

from __future__ import annotations

from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from portal.accounts import User
from portal.audit import services as audit
from portal.cases import services
from portal.cases.claim_models import Claim, ClaimMail, ClaimStatus
from portal.cases.claims import reason_for
from portal.cases.models import Case
from portal.customers import services as customer_services
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import utcnow
from portal.money import parse_amount

CANDIDATES = 20


def waiting() -> object:
    """The claims that wait for a decision, oldest first."""
    return (select(Claim).where(Claim.status == ClaimStatus.WAITING)
            .order_by(Claim.confirmed_at, Claim.id))


def waiting_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Claim)
                             .where(Claim.status == ClaimStatus.WAITING)) or 0


def candidates(claim: Claim, q: str) -> list[Customer]:
    """Customers of the claim's event (not erased) whose name, e-mail, phone or external
    ref contains ``q`` (by default the claimant's e-mail); at most CANDIDATES."""
    q = (q or claim.email or "").strip()[:100]
    if len(q) < 2:
        return []
    return list(db.session.scalars(
        select(Customer).where(Customer.event_id == claim.event_id, Customer.erased_at.is_(None),
                               or_(Customer.name.icontains(q, autoescape=True),
                                   Customer.email.icontains(q, autoescape=True),
                                   Customer.phone.icontains(q, autoescape=True),
                                   Customer.external_ref.icontains(q, autoescape=True)))
        .order_by(Customer.name, Customer.id).limit(CANDIDATES)))


def _waiting(claim: Claim) -> None:
    if claim.status != ClaimStatus.WAITING:
        raise RuleViolation(_("This claim was decided already; reload the queue."))


def _amount(claim: Claim, amount: str | None) -> Decimal:
    """The claimed amount, or the one the agent states when the claimant gave none."""
    if amount is not None and amount.strip():
        return parse_amount(amount)
    if claim.amount is not None:
        return claim.amount
    raise RuleViolation(_("The claimant stated no amount: enter the amount of the case."),
                        field="amount")


def _accept(claim: Claim, customer: Customer, amount: Decimal, decision: str,
            actor: User) -> Case:
    before = claim.audit_state()
    source = "customer" if claim.from_listed_customer else "triage"
    case = services.open_case(customer, services.CaseInput(
        kind=claim.kind, order_ref=claim.order_ref, amount=amount, currency=claim.currency,
        reason=reason_for(claim.event), description=claim.description,
        assignee_id=actor.id), actor=actor, source=source)
    claim.status, claim.decision, claim.case_id = ClaimStatus.ACCEPTED, decision, case.id
    claim.customer_id, claim.decided_by_id, claim.decided_at = customer.id, actor.id, utcnow()
    audit.record(f"claim.{decision}", "claim", claim.id,
                 N_("Claim #%(id)d %(decision)s by a named agent: case %(ref)s", id=claim.id,
                    decision=term("claim", decision), ref=case.ref),
                 before=before, after=claim.audit_state(), actor=actor)
    return case


def match(claim: Claim, customer: Customer, amount: str | None, *, actor: User) -> Case:
    """The claimant is this customer of the event: the claim becomes their case."""
    _waiting(claim)
    if customer.event_id != claim.event_id or customer.erased:
        raise RuleViolation(_("Choose a customer of this claim's event."), field="customer_id")
    return _accept(claim, customer, _amount(claim, amount), "matched", actor)


def create_customer(claim: Claim, amount: str | None, *, actor: User) -> Case:
    """The claimant is not on the list: add them as a customer (by hand, from the claim's
    details, external ref ``CLAIM-<id>``) and open their case."""
    _waiting(claim)
    if claim.from_listed_customer:
        raise RuleViolation(_("This claim comes from a listed customer: match it."))
    value = _amount(claim, amount)
    customer = customer_services.create_customer(claim.event, {
        "external_ref": f"CLAIM-{claim.id}", "name": claim.name, "email": claim.email,
        "phone": claim.phone, "locale": claim.locale}, actor=actor)
    return _accept(claim, customer, value, "created", actor)


def reject(claim: Claim, reason: str, *, actor: User) -> None:
    """Reject with a reason, which is e-mailed to the claimant (the view queues it)."""
    _waiting(claim)
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation(_("Say why, in words the claimant understands: it is e-mailed to "
                              "them."), field="reason")
    if len(reason) > 2000:
        raise RuleViolation(_("At most %(n)d characters.", n=2000), field="reason")
    before = claim.audit_state()
    claim.status, claim.decision, claim.reason = ClaimStatus.REJECTED, "rejected", reason
    claim.decided_by_id, claim.decided_at = actor.id, utcnow()
    if claim.email or claim.customer is not None:
        claim.mail_kind, claim.mail_status, claim.mail_attempts = "rejection", ClaimMail.QUEUED, 0
    audit.record("claim.rejected", "claim", claim.id,
                 N_("Claim #%(id)d rejected by a named agent", id=claim.id), before=before,
                 after={**claim.audit_state(), "reason": claim.audit_digest(reason)},
                 actor=actor)


def may_decide(_user: User, claim: Claim) -> bool:
    """The object rule of the decision buttons: only a claim that waits."""
    return claim.status == ClaimStatus.WAITING
