"""Case rules: money, references, SLA, the transition table, four-eyes, legal sign-off above
the threshold, exactly-once payment, notes and replies, optimistic locking."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from babel.numbers import list_currencies
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from portal import exports, refs
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.cases import rules
from portal.cases.models import (
    CLOSED_STATUSES,
    KINDS,
    REASONS,
    Case,
    CaseNote,
    CaseStatus,
    Payment,
    ReplyStatus,
    SignoffThreshold,
    SlaPolicy,
    order_ref_key,
)
from portal.customers.models import Customer
from portal.errors import Conflict, RuleViolation
from portal.extensions import db
from portal.models import utcnow
from portal.money import parse_amount
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus

SUBJECT = "case_decision"
CURRENCIES = frozenset(list_currencies())
DEFAULT_SLA_HOURS = {"sev1": 24, "sev2": 48, "sev3": 72, "sev4": 120}
DEFAULT_THRESHOLDS = {"CNY": Decimal("5000.00"), "USD": Decimal("1000.00"),
                      "EUR": Decimal("1000.00"), "HKD": Decimal("5000.00")}
PAYOUT_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,63}$")


# --- money -----------------------------------------------------------------------------------


def parse_currency(code: str) -> str:
    code = (code or "CNY").strip().upper()
    if code not in CURRENCIES:
        raise RuleViolation(_("%(code)s is not an ISO 4217 currency.", code=code),
                            field="currency")
    return code


# --- references, SLA, thresholds ---------------------------------------------------------------


def sla_hours(severity: str) -> int:
    policy = db.session.get(SlaPolicy, severity)
    return policy.hours if policy else DEFAULT_SLA_HOURS.get(severity, 72)


def threshold(currency: str) -> Decimal | None:
    row = db.session.get(SignoffThreshold, currency)
    return row.amount if row else DEFAULT_THRESHOLDS.get(currency)


def needs_signoff(amount: Decimal, currency: str) -> bool:
    """At or above the threshold; a currency without a threshold always goes to legal."""
    limit = threshold(currency)
    return limit is None or amount >= limit


def set_sla(severity: str, hours: int, *, actor: User) -> bool:
    """Set one severity's SLA (flushed, not committed); False when it already was that."""
    if severity not in DEFAULT_SLA_HOURS:
        raise RuleViolation(_("Unknown severity."), field=f"sla_{severity}")
    if hours < 1 or hours > 24 * 90:
        raise RuleViolation(_("Between 1 hour and 90 days."), field=f"sla_{severity}")
    policy = db.session.get(SlaPolicy, severity)
    before = policy.hours if policy else DEFAULT_SLA_HOURS[severity]
    if before == hours:
        return False
    if policy is None:
        db.session.add(SlaPolicy(severity=severity, hours=hours))
    else:
        policy.hours = hours
    audit.record("settings.sla", audit.SETTING, f"sla:{severity}", f"SLA for {severity} set to "
                 f"{hours} hours", before={"hours": before}, after={"hours": hours}, actor=actor)
    return True


def set_threshold(currency: str, amount: str | Decimal, *, actor: User) -> bool:
    """Set one currency's sign-off threshold (flushed, not committed); False when it
    already was that amount."""
    currency = parse_currency(currency)
    value = parse_amount(amount, field=f"threshold_{currency}")
    row = db.session.get(SignoffThreshold, currency)
    if row is not None and row.amount == value:
        return False
    before = str(row.amount) if row else None
    if row is None:
        db.session.add(SignoffThreshold(currency=currency, amount=value))
    else:
        row.amount = value
    audit.record("settings.threshold", audit.SETTING, f"threshold:{currency}",
                 f"Sign-off threshold for {currency} set to {value}",
                 before={"amount": before}, after={"amount": str(value)}, actor=actor)
    return True


class InvalidSettings(RuleViolation):
    """Every bad field of the case settings form, each with its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = errors


WHOLE_HOURS = re.compile(r"[0-9]{1,5}")


def save_settings(sla: dict[str, str], thresholds: dict[str, str], *, new_currency: str = "",
                  new_amount: str = "", actor: User) -> int:
    """The case settings form, all or nothing: every field is checked before anything is
    written, and a bad one (each is named in InvalidSettings) leaves every setting as it was.
    An empty threshold keeps its value. Returns how many settings changed; the caller
    commits."""
    errors: dict[str, str] = {}
    hours: dict[str, int] = {}
    for severity, raw in sla.items():
        raw = raw.strip()
        if not WHOLE_HOURS.fullmatch(raw):
            errors[f"sla_{severity}"] = _("Enter whole hours.")
        elif not 1 <= int(raw) <= 24 * 90:
            errors[f"sla_{severity}"] = _("Between 1 hour and 90 days.")
        else:
            hours[severity] = int(raw)
    amounts: dict[str, Decimal] = {}
    for currency, raw in thresholds.items():
        if raw.strip():
            try:
                amounts[currency] = parse_amount(raw, field=f"threshold_{currency}")
            except RuleViolation as err:
                errors[err.field or f"threshold_{currency}"] = err.message
    if new_currency.strip() or new_amount.strip():
        code = amount = None
        try:
            if not new_currency.strip():
                raise RuleViolation(_("Enter an ISO 4217 currency code, such as JPY."))
            code = parse_currency(new_currency)
        except RuleViolation as err:
            errors["new_currency"] = err.message
        try:
            amount = parse_amount(new_amount, field="new_amount")
        except RuleViolation as err:
            errors["new_amount"] = err.message
        if code and amount:
            amounts[code] = amount
    if errors:
        raise InvalidSettings(errors)
    changed = sum(set_sla(severity, value, actor=actor) for severity, value in hours.items())
    changed += sum(set_threshold(currency, value, actor=actor)
                   for currency, value in amounts.items())
    db.session.flush()
    return changed


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


class DuplicateCase(RuleViolation):
    def __init__(self, existing: Case) -> None:
        super().__init__(_("This customer already has an open %(kind)s case for order "
                           "%(order)s: %(ref)s.", kind=existing.kind, order=existing.order_ref,
                           ref=existing.ref), field="order_ref")
        self.existing_id = existing.id


def open_case(customer: Customer, data: CaseInput, *, actor: User) -> Case:
    values = _clean(data)
    existing = open_case_for(customer.id, values["kind"], values["order_ref"])
    if existing:
        raise DuplicateCase(existing)
    now = utcnow()
    case = Case(event_id=customer.event_id, customer_id=customer.id, status=CaseStatus.NEW,
                ref=refs.next_ref("C", 5, failure=_("Could not number the case; try again.")),
                due_at=now + timedelta(hours=sla_hours(customer.event.severity)),
                created_by_id=actor.id, created_at=now, updated_at=now, **values)
    db.session.add(case)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        # The partial unique index decides when two agents open the same case at once.
        existing = open_case_for(customer.id, values["kind"], values["order_ref"])
        if existing:
            raise DuplicateCase(existing) from None
        raise
    audit.record("case.open", "case", case.id, f"Case {case.ref} opened: {case.kind} of "
                 f"{case.amount} {case.currency} for order {case.order_ref}",
                 after=case.audit_state(), actor=actor)
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
    """Edit while the case is being worked. A change to what was proposed (anything in the
    sign-off snapshot: money, kind, order, reason, description) sends a proposal back to in
    progress and voids its sign-off: legal approved the old content, not this one."""
    _check_version(case, expected_version)
    if not rules.editable(actor, case):
        raise RuleViolation(_("An approved, paid or closed case can no longer be edited."))
    values = _clean(data)
    if (values["kind"], values["order_ref"]) != (case.kind, case.order_ref):
        existing = open_case_for(case.customer_id, values["kind"], values["order_ref"])
        if existing and existing.id != case.id:
            raise DuplicateCase(existing)
    if all(getattr(case, key) == value for key, value in values.items()):
        return False
    before, proposed = _edit_state(case), snapshot(case)
    for key, value in values.items():
        setattr(case, key, value)
    if case.under_proposal and snapshot(case) != proposed:
        case.status = CaseStatus.IN_PROGRESS
        case.proposed_by_id = None
        signoffs.void_scope(_scope(case), "case edited", actor=actor)
    case.updated_at = utcnow()
    _flush()
    audit.record("case.edit", "case", case.id, f"Case {case.ref} edited", before=before,
                 after=_edit_state(case), actor=actor)
    _flush()
    return True


# --- the flow --------------------------------------------------------------------------------


def _scope(case: Case) -> str:
    return f"case:{case.id}"


def _move(case: Case, target: str, actor: User | None, summary: str,
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
    audit.record(f"case.{target}", "case", case.id, summary, before=before,
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
    _move(case, transition.target, actor, f"Case {case.ref}: {action} → {transition.target}",
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
            title=f"{case.ref} — {case.kind} {case.amount} {case.currency}",
            snapshot=snapshot(case), author_id=actor.id, requested_by=actor)
        case.signoff_id = request.id
        _move(case, CaseStatus.AWAITING_SIGNOFF, actor,
              f"Case {case.ref} proposed at {case.amount} {case.currency}; legal sign-off needed")
    else:
        _move(case, CaseStatus.PROPOSED, actor,
              f"Case {case.ref} proposed at {case.amount} {case.currency}; a second agent approves")
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
          f"Case {case.ref} approved at {case.amount} {case.currency}")
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
              f"Case {case.ref} approved by legal at {case.amount} {case.currency}")
    else:
        case.proposed_by_id = None
        _move(case, CaseStatus.IN_PROGRESS, actor, f"Case {case.ref} returned by legal",
              request.comment)


def record_payment(case: Case, *, amount: str | Decimal, payout_ref: str, actor: User) -> Payment:
    """Pay once, exactly the approved amount. The unique case_id in case_payment makes a
    second payment impossible even if two clerks press the button at the same moment."""
    if actor.role not in rules.AGENTS:
        raise RuleViolation(_("Your role cannot take this step."))
    value = parse_amount(amount)
    payout_ref = (payout_ref or "").strip()
    if not PAYOUT_REF_RE.match(payout_ref):
        raise RuleViolation(_("Enter the payout reference from the payment system."),
                            field="payout_ref")
    if case.payment is not None or case.status == CaseStatus.PAID:
        raise RuleViolation(_("This case has already been paid."))
    if case.status != CaseStatus.APPROVED or case.approved_amount is None:
        raise RuleViolation(_("Only an approved case can be paid."))
    if value != case.approved_amount:
        raise RuleViolation(_("Pay exactly the approved amount: %(amount)s %(currency)s.",
                              amount=case.approved_amount, currency=case.currency),
                            field="amount")
    payment = Payment(case_id=case.id, amount=value, currency=case.currency,
                      payout_ref=payout_ref, paid_by_id=actor.id)
    db.session.add(payment)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise RuleViolation(_("This case has already been paid, or the payout reference was "
                              "used before.")) from None
    _move(case, CaseStatus.PAID, actor, f"Case {case.ref} paid: {value} {case.currency}, payout "
          f"{payout_ref}")
    _flush()
    return payment


# --- notes and replies ------------------------------------------------------------------------


def add_note(case: Case, body: str, *, actor: User) -> CaseNote:
    body = (body or "").strip()
    if not body:
        raise RuleViolation(_("Write something first."), field="body")
    note = CaseNote(case_id=case.id, kind="internal", body=body[:20000], author_id=actor.id)
    db.session.add(note)
    db.session.flush()
    audit.record("case.note", "case", case.id, f"Internal note on {case.ref}", actor=actor)
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
    audit.record("case.reply", "case", case.id, f"Reply to the customer on {case.ref} queued",
                 after={"note_id": note.id, "to": case.customer.audit_digest(note.to_address)},
                 actor=actor)
    return note


# --- lists and bulk actions --------------------------------------------------------------------


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
        case.assignee_id = assignee.id
        case.updated_at = utcnow()
        _flush()
        audit.record("case.assign", "case", case.id, f"Case {case.ref} assigned to "
                     f"{assignee.email}", before=before, after=case.audit_state(), actor=actor)
        results.append(ItemResult(case.ref, True, _("assigned")))
    _flush()
    return results


def bulk_close(case_ids: list[int], *, actor: User) -> list[ItemResult]:
    results = []
    for case in db.session.scalars(select(Case).where(Case.id.in_(case_ids)).order_by(Case.id)):
        if rules.find(case.status, "close") is None:
            results.append(ItemResult(case.ref, False, _("only paid cases can be closed")))
            continue
        _move(case, CaseStatus.CLOSED, actor, f"Case {case.ref}: close → closed (bulk)")
        results.append(ItemResult(case.ref, True, _("closed")))
    _flush()
    return results


# --- the searchable list --------------------------------------------------------------------

SORTS = {
    "newest": (Case.created_at.desc(), Case.id.desc()),
    "oldest": (Case.created_at.asc(), Case.id.asc()),
    "due": (Case.due_at.asc(), Case.id.asc()),
    "amount": (Case.amount.desc(), Case.id.desc()),
    "ref": (Case.ref.asc(),),
}


SEARCH_ID_LIMIT = 5000  # above this the subquery runs twice instead of a long IN list


@dataclass
class CaseFilter:
    q: str = ""
    status: str = ""
    kind: str = ""
    event_id: int | None = None
    assignee_id: int | None = None
    overdue: bool = False
    sort: str = "newest"

    def statement(self) -> Any:
        """The filtered, sorted query; the search covers ref, order ref and the customer's
        name, e-mail and company."""
        stmt = select(Case)
        if self.q:
            # A union of ids instead of one OR across tables, so each part uses its own index
            # (ref, order_ref, customer_id); LIKE wildcards typed by the user are escaped.
            q = self.q.strip()
            low = q.lower()
            matching_customers = select(Customer.id).where(or_(
                func.lower(Customer.name).contains(low, autoescape=True),
                func.lower(Customer.email).contains(low, autoescape=True),
                func.lower(Customer.company).contains(low, autoescape=True)))
            matches = union(
                select(Case.id).where(Case.ref == q.upper()),
                select(Case.id).where(Case.order_ref.startswith(q, autoescape=True)),
                select(Case.id).where(Case.customer_id.in_(matching_customers)))
            # Run the search once: the page and its COUNT then look ids up by primary key.
            ids = db.session.scalars(matches.limit(SEARCH_ID_LIMIT + 1)).all()
            stmt = stmt.where(Case.id.in_(ids if len(ids) <= SEARCH_ID_LIMIT else matches))
        if self.status:
            stmt = stmt.where(Case.status == self.status)
        if self.kind:
            stmt = stmt.where(Case.kind == self.kind)
        if self.event_id:
            stmt = stmt.where(Case.event_id == self.event_id)
        if self.assignee_id:
            stmt = stmt.where(Case.assignee_id == self.assignee_id)
        if self.overdue:
            stmt = stmt.where(Case.status.in_(rules.OPEN_BEFORE_PAYMENT),
                              Case.due_at < utcnow())
        return stmt.order_by(*SORTS.get(self.sort, SORTS["newest"]))


CSV_COLUMNS = ["ref", "status", "kind", "event", "customer_ref", "customer", "company", "email",
               "order_ref", "amount", "currency", "approved_amount", "reason", "assignee",
               "due_at", "created_at", "payout_ref"]


def export_csv(flt: CaseFilter, batch: int = 1000) -> Iterator[str]:
    """Stream the filtered cases as CSV."""
    from sqlalchemy.orm import joinedload

    stmt = flt.statement().options(joinedload(Case.customer), joinedload(Case.event),
                                   joinedload(Case.assignee), joinedload(Case.payment))
    rows = ([c.ref, c.status, c.kind, c.event.title, c.customer.external_ref, c.customer.name,
             c.customer.company, c.customer.email, c.order_ref, c.amount, c.currency,
             c.approved_amount, c.reason, c.assignee.email if c.assignee else "", c.due_at,
             c.created_at, c.payment.payout_ref if c.payment else ""]
            for c in db.session.scalars(stmt.execution_options(yield_per=batch)))
    yield from exports.stream(CSV_COLUMNS, rows)
