"""Recording many case payments at once: the bank's result file of a payout batch pays
thousands of cases. The rules are ``services.record_payment``'s (who may pay, exactly the
approved amount, once, the offer accepted where the event requires it); the writes are one
INSERT of the payments, one conditional UPDATE of the cases and one audit entry per chunk
(concerning each of its cases), so 100,000 payments take seconds, not minutes. A chunk the
database refuses (a case paid at the same moment elsewhere) is paid case by case through
``record_payment``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from portal.accounts import User
from portal.audit import services as audit
from portal.cases import offers, rules, services, signals
from portal.cases.models import Case, CaseStatus, Payment
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, Message
from portal.models import among, utcnow

CHUNK = 500


@dataclass(frozen=True)
class PaymentSource:
    """What the payments answer, as their audit entry names it: a bank's result file."""

    subject_type: str
    subject_id: int
    batch_ref: str


@dataclass
class PaymentItem:
    case: Case
    amount: Decimal
    payout_ref: str


def _refused(item: PaymentItem, paid_ids: set[int],
             acceptance_needed: dict[int, bool]) -> Message | None:
    """Why this payment may not be recorded, or None (``record_payment``'s rules);
    ``acceptance_needed`` caches, per event, whether its offers need the customer's yes."""
    case = item.case
    if not services.PAYOUT_REF_RE.match(item.payout_ref):
        return N_("Enter the payout reference from the payment system.")
    if case.id in paid_ids or case.status == CaseStatus.PAID:
        return N_("This case has already been paid.")
    if case.status != CaseStatus.APPROVED or case.approved_amount is None:
        return N_("Only an approved case can be paid.")
    if item.amount != case.approved_amount:
        return N_("Pay exactly the approved amount: %(amount)s %(currency)s.",
                  amount=str(case.approved_amount), currency=case.currency)
    if case.programme_id is None and case.event_id not in acceptance_needed:
        acceptance_needed[case.event_id] = offers.needs_acceptance(case)
    if (case.programme_id is None and acceptance_needed[case.event_id]
            and offers.valid_acceptance(case) is None):
        return N_("Case %(ref)s cannot be paid yet: the customer must first accept the offer "
                  "as it stands (amount and approved terms).", ref=case.ref)
    return None


def _write(items: list[PaymentItem], actor: User, source: PaymentSource) -> bool:
    """One chunk in one go; False (nothing written) when the database refuses it."""
    now = utcnow()
    ids = [item.case.id for item in items]
    try:
        with db.session.begin_nested():
            db.session.execute(insert(Payment.__table__), [
                {"case_id": item.case.id, "amount": item.amount, "currency": item.case.currency,
                 "payout_ref": item.payout_ref, "paid_by_id": actor.id, "paid_at": now}
                for item in items])
            moved = db.session.execute(
                update(Case).where(among(Case.id, ids), Case.status == CaseStatus.APPROVED)
                .values(status=CaseStatus.PAID, updated_at=now,
                        lock_version=Case.lock_version + 1)
                .execution_options(synchronize_session=False)).rowcount
            if moved != len(ids):
                raise IntegrityError("cases changed meanwhile", None, Exception())
    except IntegrityError:
        return False
    for case in (item.case for item in items):  # as written, without loading them again
        set_committed_value(case, "status", CaseStatus.PAID)
        set_committed_value(case, "updated_at", now)
        set_committed_value(case, "lock_version", case.lock_version + 1)
    payment_ids = dict(db.session.execute(
        select(Payment.case_id, Payment.id).where(among(Payment.case_id, ids))).all())
    # One entry for the chunk, concerning each case (its history shows it), instead of one
    # hashed, keyed entry per case: those were 40 % of applying a bank file of 100,000 lines.
    audit.record(f"case.{CaseStatus.PAID}", source.subject_type, source.subject_id,
                 N_("Payout batch %(batch)s, result file %(result)s: %(count)d cases paid, "
                    "each at its approved amount", batch=source.batch_ref,
                    result=source.subject_id, count=len(items)),
                 before={"status": CaseStatus.APPROVED},
                 after={"status": CaseStatus.PAID, "payments": [
                     [item.case.id, item.case.ref, str(item.amount), item.case.currency,
                      item.payout_ref, payment_ids[item.case.id]] for item in items]},
                 actor=actor, concerns={"case": ids})
    signals.paid_many.send(actor, payments=[(item.case, payment_ids[item.case.id])
                                            for item in items])
    return True


def record_payments(items: list[PaymentItem], *, actor: User,
                    source: PaymentSource) -> dict[int, Message | str]:
    """Pay each item's case; the refusals by case id (the others are paid)."""
    if actor.role not in rules.PAYERS:
        raise RuleViolation(_("Your role cannot take this step."))
    refused: dict[int, Message | str] = {}
    acceptance_needed: dict[int, bool] = {}
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        paid_ids = set(db.session.scalars(select(Payment.case_id).where(
            among(Payment.case_id, [item.case.id for item in chunk]))))
        payable = []
        for item in chunk:
            reason = _refused(item, paid_ids, acceptance_needed)
            if reason is None:
                payable.append(item)
            else:
                refused[item.case.id] = reason
        if payable and not _write(payable, actor, source):
            for item in payable:  # one by one, each with its own answer
                try:
                    with db.session.begin_nested():
                        services.record_payment(item.case, amount=item.amount,
                                                payout_ref=item.payout_ref, actor=actor,
                                                through_batch=True)
                except RuleViolation as err:
                    db.session.refresh(item.case)
                    refused[item.case.id] = err.text
    return refused
