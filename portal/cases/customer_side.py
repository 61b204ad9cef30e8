"""The cases as their customer sees them on their own page (``/my``), and what the customer
may do on a case: write to us.

Statuses are told in plain words, not the staff's (a case awaiting legal sign-off is simply
"being reviewed"). A customer's message is a ``CaseNote`` of kind ``customer``, apart from
internal notes and from staff replies; it is audited with the actor ``customer:<id>`` and a
digest of the text (never the text), and the assignee is told (``signals.customer_wrote``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.audit import services as audit
from portal.audit.models import customer_actor
from portal.cases import signals
from portal.cases.models import (
    CONVERSATION_KINDS,
    OPEN_STATUSES,
    Case,
    CaseNote,
    CaseStatus,
    NoteKind,
)
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_
from portal.models import text_digest, utcnow

MAX_MESSAGE = 5000

CUSTOMER_STATUS = {
    CaseStatus.NEW: _l("Received — we will look at it"),
    CaseStatus.IN_PROGRESS: _l("Being reviewed"),
    CaseStatus.PROPOSED: _l("Being reviewed"),
    CaseStatus.AWAITING_SIGNOFF: _l("Being reviewed"),
    CaseStatus.APPROVED: _l("Approved — payment is being prepared"),
    CaseStatus.PAID: _l("Paid"),
    CaseStatus.CLOSED: _l("Closed"),
    CaseStatus.REJECTED: _l("Not accepted"),
    CaseStatus.WITHDRAWN: _l("Withdrawn"),
}


def customer_status(case: Case) -> str:
    return str(CUSTOMER_STATUS.get(case.status, case.status))


def shown_amount(case: Case) -> Decimal:
    """What the customer is told the case is worth: paid, else approved, else its amount."""
    if case.payment is not None:
        return case.payment.amount
    return case.approved_amount if case.approved_amount is not None else case.amount


def committed_by(case: Case) -> datetime | None:
    """The date by which we committed to act (the SLA), while we still owe an action."""
    return case.due_at if case.status in OPEN_STATUSES and case.status != CaseStatus.PAID \
        else None


def cases_of(customer: Customer) -> list[Case]:
    """The customer's cases, newest first, with their payments and conversations loaded."""
    return list(db.session.scalars(
        select(Case).where(Case.customer_id == customer.id)
        .options(selectinload(Case.payment), selectinload(Case.notes))
        .order_by(Case.id.desc())))


def case_of(customer: Customer, case_id: int) -> Case | None:
    """One of the customer's own cases; another customer's (or none) is None."""
    case = db.session.get(Case, case_id)
    return case if case is not None and case.customer_id == customer.id else None


def conversation(case: Case) -> list[CaseNote]:
    """The customer's messages and the staff replies to them, oldest first; internal notes
    never."""
    return [note for note in sorted(case.notes, key=lambda n: (n.created_at, n.id))
            if note.kind in CONVERSATION_KINDS]


def add_customer_message(case: Case, customer: Customer, body: str) -> CaseNote:
    """Record the customer's message on their case (flushed; the caller commits)."""
    if case.customer_id != customer.id:
        raise RuleViolation(_("This case is not on your page."))
    body = (body or "").strip()
    if not body:
        raise RuleViolation(_("Write your message."), field="body")
    if len(body) > MAX_MESSAGE:
        raise RuleViolation(_("At most %(n)d characters.", n=MAX_MESSAGE), field="body")
    note = CaseNote(case_id=case.id, kind=NoteKind.CUSTOMER, body=body, author_id=None,
                    created_at=utcnow())
    db.session.add(note)
    db.session.flush()
    audit.record("case.customer_message", "case", case.id,
                 N_("Customer message on %(ref)s", ref=case.ref),
                 after={"note_id": note.id, "body_sha256": text_digest(body)},
                 actor_label=customer_actor(customer.id))
    signals.customer_wrote.send(case, note=note)
    return note
