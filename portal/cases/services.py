"""Case rules: opening and editing, the transition table, four-eyes, legal sign-off above
the threshold, exactly-once payment, notes and replies, bulk actions, optimistic locking.
The settings (currencies, SLA, thresholds) are in ``settings.py``, the searchable list in
``search.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from portal import refs
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.cases import offers, rules, signals
from portal.cases.models import (
    CLOSED_STATUSES,
    KINDS,
    REASONS,
    Case,
    CaseNote,
    CaseStatus,
    Payment,
    ReplyStatus,
    order_ref_key,
)
from portal.cases.refusals import DuplicateCase, second_payment, unaccepted_payment
from portal.cases.settings import needs_signoff, parse_currency, sla_hours
from portal.customers.models import Customer
from portal.errors import Conflict, RuleViolation
from portal.extensions import db
from portal.i18n import N_, Message, term
from portal.models import utcnow
from portal.money import parse_amount
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus

SUBJECT = "case_decision"
PAYOUT_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")


# --- opening and editing ---------------------------------------------------------------------


@dataclass
class CaseInput:
    kind: str
    order_ref: str
    amount: str | Decimal
    currency: str
    reason: str
    description: str
    assignee_id: int | None


def _clean(data: CaseInput) -> dict[str, Any]:
    if data.kind not in KINDS:
        raise RuleViolation(_("Choose refund or compensation."), field="kind")
    order_ref = (data.order_ref or "").strip()
    if not order_ref or len(order_ref) > 64:
        raise RuleViolation(_("Enter the order reference (at most 64 characters)."),
                            field="order_ref")
    if data.reason not in REASONS:
        raise RuleViolation(_("Choose a reason."), field="reason")
    if data.assignee_id is not None:
        assignee = db.session.get(User, data.assignee_id)
        if assignee is None or not assignee.active or assignee.role == Role.LEGAL:
            raise RuleViolation(_("Assign the case to an active agent or admin."),
                                field="assignee_id")
    return {"kind": data.kind, "order_ref": order_ref, "amount": parse_amount(data.amount),
            "currency": parse_currency(data.currency), "reason": data.reason,
            "description": (data.description or "").strip()[:10000],
            "assignee_id": data.assignee_id}


def open_case_for(customer_id: int, kind: str, order_ref: str) -> Case | None:
    """The open case the unique index would count as the same one, by the same expression."""
    return db.session.scalar(select(Case).where(
        Case.customer_id == customer_id, Case.kind == kind,
        order_ref_key(Case.order_ref) == order_ref_key(order_ref),
        Case.status.not_in(CLOSED_STATUSES)))


def open_case(customer: Customer, data: CaseInput, *, actor: User | None,
              source: str = "staff") -> Case:
    """Open a ``new`` case; ``source`` says who asked (``SOURCES``): staff, the customer on
    their page (``actor`` None) or an agent's triage of a claim."""
    values = _clean(data)
    existing = open_case_for(customer.id, values["kind"], values["order_ref"])
    if existing:
        raise DuplicateCase(existing, actor, by_customer=actor is None)
    now = utcnow()
    case = Case(event_id=customer.event_id, customer_id=customer.id, status=CaseStatus.NEW,
                ref=refs.next_ref("C", 5, failure=_("Could not number the case; try again.")),
                due_at=now + timedelta(hours=sla_hours(customer.event.severity)),
                created_by_id=actor.id if actor else None, source=source, created_at=now,
                updated_at=now, **values)
    try:
        # Added inside the savepoint: begin_nested() flushes what is pending first, outside
        # it, and a refused insert there would break the whole transaction (a 500).
        with db.session.begin_nested():
            db.session.add(case)
            db.session.flush()
    except IntegrityError:
        # The partial unique index decides when two agents open the same case at once.
        existing = open_case_for(customer.id, values["kind"], values["order_ref"])
        if existing:
            raise DuplicateCase(existing, actor, by_customer=actor is None) from None
        raise
    audit.record("case.open", "case", case.id,
                 N_("Case %(ref)s opened: %(kind)s of %(amount)s %(currency)s for order "
                    "%(order)s", ref=case.ref, kind=term("case", case.kind),
                    amount=str(case.amount), currency=case.currency, order=case.order_ref)
                 if source == "staff" else
                 N_("Case %(ref)s opened from a claim (%(source)s): %(kind)s of %(amount)s "
                    "%(currency)s", ref=case.ref, source=term("case", source),
                    kind=term("case", case.kind), amount=str(case.amount),
                    currency=case.currency),
                 after={**case.audit_state(), "source": source}, actor=actor)
    if case.assignee_id is not None:
        signals.assigned.send(case, actor=actor)
    return case


def _check_version(case: Case, expected: int | None) -> None:
    if expected is not None and expected != case.lock_version:
        raise Conflict(_("Someone else changed this case while you were editing. Reload the "
                         "page to see their change; yours has not been saved."))


def _flush() -> None:
    """Write the pending change now; a stale version (someone saved in between) matches no
    row, and the whole change is refused."""
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict(_("Someone else changed this case at the same moment. Reload the page; "
                         "your change has not been saved.")) from None


def _edit_state(case: Case) -> dict[str, Any]:
    """Everything an edit can change; the free-text description as a keyed digest, since it
    may name people and the trail is append-only."""
    return {**case.audit_state(), "description": case.customer.audit_digest(case.description)}


def update_case(case: Case, data: CaseInput, *, expected_version: int | None,
                actor: User) -> bool:
    """Edit while the case is being worked or approved and unpaid. A change to what was
    proposed or approved (anything in the sign-off snapshot: money, kind, order, reason,
    description) sends it back to in progress and voids its sign-off: legal or the second
    agent approved the old content, not this one. A change of the amount or currency voids
    the customer's answer to the offer."""
    _check_version(case, expected_version)
    if not rules.editable(actor, case):
        raise RuleViolation(_("A paid or closed case can no longer be edited."))
    values = _clean(data)
    if (values["kind"], values["order_ref"]) != (case.kind, case.order_ref):
        existing = open_case_for(case.customer_id, values["kind"], values["order_ref"])
        if existing and existing.id != case.id:
            raise DuplicateCase(existing, actor)
    if all(getattr(case, key) == value for key, value in values.items()):
        return False
    before, proposed = _edit_state(case), snapshot(case)
    offered = (case.amount, case.currency)
    reassigned = values["assignee_id"] not in (None, case.assignee_id)
    for key, value in values.items():
        setattr(case, key, value)
    if (case.under_proposal or case.status == CaseStatus.APPROVED) and snapshot(case) != proposed:
        case.status = CaseStatus.IN_PROGRESS
        case.proposed_by_id = case.approved_by_id = case.approved_amount = None
        signoffs.void_scope(_scope(case), "case edited", actor=actor)
        signals.approval_changed.send(case, actor=actor)
    case.updated_at = utcnow()
    _flush()
    if (case.amount, case.currency) != offered:  # after the flush: a stale copy is refused
        offers.void_decisions([case.id], "case edited", actor=actor)
    audit.record("case.edit", "case", case.id, N_("Case %(ref)s edited", ref=case.ref),
                 before=before, after=_edit_state(case), actor=actor)
    _flush()
    if reassigned:
        signals.assigned.send(case, actor=actor)
    return True


# --- the flow --------------------------------------------------------------------------------


def _scope(case: Case) -> str:
    return f"case:{case.id}"


def _move(case: Case, target: str, actor: User | None, message: Message,
          comment: str | None = None) -> None:
    before = case.audit_state()
    case.status = target
    case.updated_at = utcnow()
    _flush()
    # The comment is kept as an internal note (which erasure scrubs); the trail holds the
    # note's id and a digest keyed with the customer's salt, never the text.
    note_ref = None
    if comment:
        note = CaseNote(case_id=case.id, kind="internal", body=comment,
                        author_id=actor.id if actor else None)
        db.session.add(note)
        db.session.flush()
        note_ref = {"note_id": note.id, "digest": case.customer.audit_digest(comment)}
    audit.record(f"case.{target}", "case", case.id, message, before=before,
                 after={**case.audit_state(), "comment": note_ref}, actor=actor)


def change_status(case: Case, action: str, *, comment: str = "", actor: User,
                  expected_version: int | None = None) -> None:
    """A move from the transition table that needs no dedicated service."""
    _check_version(case, expected_version)
    transition = rules.find(case.status, action)
    if transition is None or transition.via_service:
        raise RuleViolation(_("That step is not possible from the case's current status."))
    if actor.role not in transition.roles:
        raise RuleViolation(_("Your role cannot take this step."))
    comment = comment.strip()
    if transition.comment_required and not comment:
        raise RuleViolation(_("Say why: a comment is required for this step."), field="comment")
    if transition.target in CLOSED_STATUSES:
        signoffs.void_scope(_scope(case), f"case {transition.target}", actor=actor)
    _move(case, transition.target, actor,
          N_("Case %(ref)s: %(action)s → %(status)s", ref=case.ref,
             action=term("case_action", action), status=term("case", transition.target)),
          comment or None)
    _flush()


def snapshot(case: Case) -> dict[str, Any]:
    """What legal approves for a case: who, what, how much and why."""
    return {
        "case": case.ref, "customer": {"external_ref": case.customer.external_ref,
                                       "name": case.customer.name},
        "kind": case.kind, "order_ref": case.order_ref, "amount": str(case.amount),
        "currency": case.currency, "reason": case.reason, "description": case.description,
    }


def propose(case: Case, *, actor: User, expected_version: int | None = None) -> None:
    """Propose the amount. At or above the threshold legal must sign off; below it a second
    agent approves."""
    _check_version(case, expected_version)
    if case.status != CaseStatus.IN_PROGRESS:
        raise RuleViolation(_("Only a case in progress can be proposed."))
    if actor.role not in rules.AGENTS:
        raise RuleViolation(_("Your role cannot take this step."))
    case.proposed_by_id = actor.id
    if needs_signoff(case.amount, case.currency):
        request = signoffs.open_request(
            subject_type=SUBJECT, subject_id=case.id, scope=_scope(case),
            title=N_("%(ref)s — %(kind)s %(amount)s %(currency)s", ref=case.ref,
                     kind=term("case", case.kind), amount=str(case.amount),
                     currency=case.currency),
            snapshot=snapshot(case), author_id=actor.id, requested_by=actor)
        case.signoff_id = request.id
        _move(case, CaseStatus.AWAITING_SIGNOFF, actor,
              N_("Case %(ref)s proposed at %(amount)s %(currency)s; legal sign-off needed",
                 ref=case.ref, amount=str(case.amount), currency=case.currency))
    else:
        _move(case, CaseStatus.PROPOSED, actor,
              N_("Case %(ref)s proposed at %(amount)s %(currency)s; a second agent approves",
                 ref=case.ref, amount=str(case.amount), currency=case.currency))
    _flush()


def approve(case: Case, *, actor: User, expected_version: int | None = None) -> None:
    """The second agent's approval of a proposal below the threshold (four eyes)."""
    _check_version(case, expected_version)
    if case.status != CaseStatus.PROPOSED:
        raise RuleViolation(_("Only a proposed case can be approved here."))
    if actor.role not in rules.AGENTS:
        raise RuleViolation(_("Your role cannot take this step."))
    if rules.own_proposal(case, actor):
        raise RuleViolation(_("You proposed this amount; another agent must approve it."))
    if needs_signoff(case.amount, case.currency):  # the threshold may have dropped meanwhile
        raise RuleViolation(_("This amount now needs legal sign-off; send it back and propose "
                              "again."))
    case.approved_by_id = actor.id
    case.approved_amount = case.amount
    _move(case, CaseStatus.APPROVED, actor,
          N_("Case %(ref)s approved at %(amount)s %(currency)s", ref=case.ref,
             amount=str(case.amount), currency=case.currency))
    _flush()


def after_signoff_decision(request: SignoffRequest, actor: User) -> None:
    case = db.session.get(Case, request.subject_id)
    if case is None or case.status != CaseStatus.AWAITING_SIGNOFF:
        return
    if request.status == SignoffStatus.APPROVED:
        if not signoffs.check_binding(request, snapshot(case)):
            raise RuleViolation(_("The case changed since the request; it needs a new one."))
        case.approved_by_id = actor.id
        case.approved_amount = case.amount
        _move(case, CaseStatus.APPROVED, actor,
              N_("Case %(ref)s approved by legal at %(amount)s %(currency)s", ref=case.ref,
                 amount=str(case.amount), currency=case.currency))
    else:
        case.proposed_by_id = None
        _move(case, CaseStatus.IN_PROGRESS, actor,
              N_("Case %(ref)s returned by legal", ref=case.ref), request.comment)


def record_payment(case: Case, *, amount: str | Decimal, payout_ref: str, actor: User,
                   through_batch: bool = False) -> Payment:
    """Pay once, exactly the approved amount. The unique case_id in case_payment makes a
    second payment impossible even if two clerks press the button at the same moment.
    Finance records it too, from the bank's result file (``rules.PAYERS``). A case under a
    programme is paid only through a payout batch (``through_batch``): its programme's own
    acceptance (opt-in, or none in a proactive programme) was checked when it was put in the
    batch, so the event's offer acceptance is not asked, and paying it by hand is refused."""
    if actor.role not in rules.PAYERS:
        raise RuleViolation(_("Your role cannot take this step."))
    if case.programme_id is not None and not through_batch:
        raise RuleViolation(_("A case under a programme is paid through a payout batch, "
                              "not by hand."))
    value = parse_amount(amount)
    payout_ref = (payout_ref or "").strip()
    if not PAYOUT_REF_RE.match(payout_ref):
        raise RuleViolation(_("Enter the payout reference from the payment system."),
                            field="payout_ref")
    if case.payment is not None or case.status == CaseStatus.PAID:
        raise second_payment(case, _("This case has already been paid."), "already_paid", actor)
    if case.status != CaseStatus.APPROVED or case.approved_amount is None:
        raise RuleViolation(_("Only an approved case can be paid."))
    if value != case.approved_amount:
        raise RuleViolation(_("Pay exactly the approved amount: %(amount)s %(currency)s.",
                              amount=case.approved_amount, currency=case.currency),
                            field="amount")
    if (case.programme_id is None and offers.needs_acceptance(case)
            and offers.valid_acceptance(case) is None):
        raise unaccepted_payment(case, actor)
    payment = Payment(case_id=case.id, amount=value, currency=case.currency,
                      payout_ref=payout_ref, paid_by_id=actor.id)
    try:
        # Added inside the savepoint: begin_nested() flushes what is pending first, outside
        # it, and a refused payment there would break the whole transaction (a 500).
        with db.session.begin_nested():
            db.session.add(payment)
            db.session.flush()
    except IntegrityError:
        raise second_payment(case, _("This case has already been paid, or the payout "
                                      "reference was used before."),
                              "paid_meanwhile",
                              actor) from None
    _move(case, CaseStatus.PAID, actor,
          N_("Case %(ref)s paid: %(amount)s %(currency)s, payout %(payout)s", ref=case.ref,
             amount=str(value), currency=case.currency, payout=payout_ref))
    _flush()
    signals.paid.send(case, payment=payment)
    return payment


# --- notes and replies ------------------------------------------------------------------------


def add_note(case: Case, body: str, *, actor: User) -> CaseNote:
    body = (body or "").strip()
    if not body:
        raise RuleViolation(_("Write something first."), field="body")
    note = CaseNote(case_id=case.id, kind="internal", body=body[:20000], author_id=actor.id)
    db.session.add(note)
    db.session.flush()
    audit.record("case.note", "case", case.id, N_("Internal note on %(ref)s", ref=case.ref),
                 actor=actor)
    return note


def add_reply(case: Case, body: str, *, actor: User) -> CaseNote:
    """A reply to the customer: recorded first, e-mailed by a job."""
    body = (body or "").strip()
    if not body:
        raise RuleViolation(_("Write something first."), field="body")
    if not case.customer.email:
        raise RuleViolation(_("The customer has no e-mail address."), field="body")
    note = CaseNote(case_id=case.id, kind="reply", body=body[:20000], author_id=actor.id,
                    mail_status=ReplyStatus.QUEUED, to_address=case.customer.email)
    db.session.add(note)
    db.session.flush()
    audit.record("case.reply", "case", case.id,
                 N_("Reply to the customer on %(ref)s queued", ref=case.ref),
                 after={"note_id": note.id, "to": case.customer.audit_digest(note.to_address)},
                 actor=actor)
    return note


# --- bulk actions -----------------------------------------------------------------------------


@dataclass
class ItemResult:
    ref: str
    ok: bool
    message: str


def bulk_assign(case_ids: list[int], assignee_id: int, *, actor: User) -> list[ItemResult]:
    assignee = db.session.get(User, assignee_id)
    if assignee is None or not assignee.active or assignee.role == Role.LEGAL:
        raise RuleViolation(_("Assign the cases to an active agent or admin."), field="assignee")
    results = []
    for case in db.session.scalars(select(Case).where(Case.id.in_(case_ids)).order_by(Case.id)):
        if case.status in CLOSED_STATUSES:
            results.append(ItemResult(case.ref, False, _("closed cases are not reassigned")))
            continue
        before = case.audit_state()
        reassigned = case.assignee_id != assignee.id
        case.assignee_id = assignee.id
        case.updated_at = utcnow()
        _flush()
        audit.record("case.assign", "case", case.id,
                     N_("Case %(ref)s assigned to %(email)s", ref=case.ref,
                        email=assignee.email),
                     before=before, after=case.audit_state(), actor=actor)
        if reassigned:
            signals.assigned.send(case, actor=actor)
        results.append(ItemResult(case.ref, True, _("assigned")))
    _flush()
    return results


def bulk_close(case_ids: list[int], *, actor: User) -> list[ItemResult]:
    results = []
    for case in db.session.scalars(select(Case).where(Case.id.in_(case_ids)).order_by(Case.id)):
        if rules.find(case.status, "close") is None:
            results.append(ItemResult(case.ref, False, _("only paid cases can be closed")))
            continue
        _move(case, CaseStatus.CLOSED, actor,
              N_("Case %(ref)s: %(action)s → %(status)s (bulk)", ref=case.ref,
                 action=term("case_action", "close"), status=term("case", CaseStatus.CLOSED)))

        results.append(ItemResult(case.ref, True, _("closed")))
    _flush()
    return results

