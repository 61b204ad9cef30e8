"""The case rules' refused attempts that the audit trail keeps (``portal.errors.Refusal``): a
second open case for the same customer, kind and order, a second payment of a case, and a
payment without the customer's acceptance where the event requires it."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.accounts import User
from portal.cases.models import Case
from portal.errors import Refusal
from portal.i18n import N_, term, term_label

# Why a second payment was refused (codes kept in the audit entry, read in any language).
PAYMENT_REFUSALS = {
    "already_paid": _l("already paid"),
    "paid_meanwhile": _l("paid meanwhile, or its payout reference was used before"),
    "no_acceptance": _l("the customer has not accepted the offer as it stands"),
}


class DuplicateCase(Refusal):
    """A second open case for the same customer, kind and order: refused, and kept in the
    audit trail on the open case (without the order reference, which the customer gave)."""

    def __init__(self, existing: Case, actor: User | None, *, by_customer: bool = False) -> None:
        # The customer's own claim (no staff actor) is told in their words, with the ref
        # (``existing_ref``) their page links to.
        text = _("You already have an open %(kind)s case for order %(order)s: %(ref)s.",
                 kind=term_label("case", existing.kind), order=existing.order_ref,
                 ref=existing.ref) if by_customer else \
            _("This customer already has an open %(kind)s case for order "
              "%(order)s: %(ref)s.", kind=existing.kind, order=existing.order_ref,
              ref=existing.ref)
        super().__init__(text, field="order_ref",
                         action="case.duplicate.refused", subject_type="case",
                         subject_id=existing.id,
                         summary=N_("Duplicate %(kind)s case refused: %(ref)s is still open "
                                    "for that customer and order",
                                    kind=term("case", existing.kind), ref=existing.ref),
                         details={"existing": existing.ref, "customer_id": existing.customer_id,
                                  "kind": existing.kind}, actor=actor)
        self.existing_id = existing.id
        self.existing_ref = existing.ref


def second_payment(case: Case, text: str, why: str, actor: User) -> Refusal:
    """A payment of a case that was paid already (``why``: a PAYMENT_REFUSALS code)."""
    return Refusal(text, action="case.payment.refused", subject_type="case", subject_id=case.id,
                   summary=N_("Second payment of case %(ref)s refused: %(why)s", ref=case.ref,
                              why=term("payment_refusal", why)),
                   details={"case": case.ref, "status": case.status, "why": why}, actor=actor)


def unaccepted_payment(case: Case, actor: User) -> Refusal:
    """A payment of a case whose event requires the customer's acceptance, without a valid
    one (none, declined, or voided by a change of the amount or the terms)."""
    return Refusal(_("Case %(ref)s cannot be paid yet: the customer must first accept the "
                     "offer as it stands (amount and approved terms).", ref=case.ref),
                   action="case.payment.refused", subject_type="case", subject_id=case.id,
                   summary=N_("Payment of case %(ref)s refused: %(why)s", ref=case.ref,
                              why=term("payment_refusal", "no_acceptance")),
                   details={"case": case.ref, "status": case.status, "why": "no_acceptance"},
                   actor=actor)
