"""Payout batches, maker–checker: a finance user prepares a batch of approved cases (one
currency, one programme or none, one payout method); another finance user or an admin
releases it; a prepared batch may be cancelled, which frees its cases.

A case is in at most one live batch: the partial unique index ``uq_payout_line_live_case``
refuses a second pending or paid line, so two people preparing at the same moment cannot put
the same case in two batches. Bank details are never typed in here: a line carries the
customer's confirmed details (``portal.customers.payout``) or, when the customer confirmed
none, the details sealed in the entitlement import — copied, still sealed, when the batch is
prepared. State changes are conditional updates; every one is audited in its transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from portal import refs
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.cases import offers
from portal.cases.models import Case, CaseStatus
from portal.customers.models import Customer
from portal.customers.payout import BANK, ORIGINAL, PayoutDetails
from portal.errors import Conflict, Refusal, RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import utcnow
from portal.payouts.models import (
    BATCH_STATUS_LABELS,
    METHODS,
    BatchStatus,
    LineStatus,
    PayoutBatch,
    PayoutLine,
)
from portal.programmes.models import Entitlement, Programme
from portal.programmes.payable import payable_clause

PREPARERS = frozenset({Role.FINANCE})
# Who may release (never the batch's own preparer) or cancel a prepared batch.
CHECKERS = frozenset({Role.FINANCE, Role.ADMIN})
LIVE_LINE_STATUSES = (LineStatus.PENDING, LineStatus.PAID)
INSERT_CHUNK = 5000


@dataclass(frozen=True)
class Candidate:
    """An approved case ready to be paid, with the sealed details it would be paid with."""

    case_id: int
    case_ref: str
    amount: Decimal
    sealed: str | None


@dataclass(frozen=True)
class Selection:
    """What a batch of this programme, currency and method would hold now."""

    programme: Programme | None
    currency: str
    method: str
    candidates: list[Candidate]

    @property
    def count(self) -> int:
        return len(self.candidates)

    @property
    def total(self) -> Decimal:
        return sum((c.amount for c in self.candidates), Decimal("0.00"))


# --- who may do what (the views' ``access(..., when=…)`` asks these too) ---------------------

def may_release(user: User, batch: PayoutBatch) -> bool:
    return batch.status == BatchStatus.PREPARED and batch.prepared_by_id != user.id


def awaits_another_checker(user: User, batch: PayoutBatch) -> bool:
    """The user prepared this batch, which waits for someone else's release."""
    return batch.status == BatchStatus.PREPARED and batch.prepared_by_id == user.id


def may_cancel(_user: User, batch: PayoutBatch) -> bool:
    return batch.status == BatchStatus.PREPARED


def _require_role(actor: User, roles: frozenset[Role]) -> None:
    if actor.role not in roles:
        raise RuleViolation(_("Your role cannot take this step."))


# --- choosing the cases ----------------------------------------------------------------------

def _entitlement_sealed() -> Any:
    """The bank details sealed in the case's entitlement import (the case's own order first,
    else the customer's latest in the event)."""
    def latest(*where: Any) -> Any:
        return (select(Entitlement.payout_sealed)
                .where(Entitlement.event_id == Case.event_id,
                       Entitlement.customer_id == Case.customer_id,
                       Entitlement.payout_sealed.is_not(None), *where)
                .order_by(Entitlement.updated_at.desc(), Entitlement.id.desc())
                .limit(1).correlate(Case).scalar_subquery())

    return func.coalesce(latest(Entitlement.order_ref == Case.order_ref), latest())


def paid_with(confirmed_method: str | None, confirmed_sealed: str | None,
              entitlement_sealed: str | None) -> tuple[str, str | None]:
    """How a case is paid and with which sealed bank details: the customer's confirmed choice
    first; when they confirmed none, the entitlement's bank details; else the original
    payment method."""
    if confirmed_method == BANK and confirmed_sealed:
        return BANK, confirmed_sealed
    if confirmed_method == ORIGINAL:
        return ORIGINAL, None
    if entitlement_sealed:
        return BANK, entitlement_sealed
    return ORIGINAL, None


def _check_choice(programme_id: int | None, currency: str, method: str) -> Programme | None:
    if method not in METHODS:
        raise RuleViolation(_("Choose the payout method."), field="method")
    if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
        raise RuleViolation(_("Enter a three-letter ISO currency code, such as CNY."),
                            field="currency")
    if programme_id is None:
        return None
    programme = db.session.get(Programme, programme_id)
    if programme is None:
        raise RuleViolation(_("There is no such programme."), field="programme_id")
    if programme.currency != currency:
        raise RuleViolation(_("This programme pays in %(currency)s.",
                              currency=programme.currency), field="currency")
    return programme


def select_cases(*, programme_id: int | None, currency: str, method: str) -> Selection:
    """The approved cases a batch of this choice would hold now (nothing is changed)."""
    currency = (currency or "").strip().upper()
    programme = _check_choice(programme_id, currency, method)
    live = exists().where(PayoutLine.case_id == Case.id,
                          PayoutLine.status.in_(LIVE_LINE_STATUSES))
    stmt = (select(Case.id, Case.ref, Case.approved_amount, Case.event_id, Case.programme_id,
                   PayoutDetails.method, PayoutDetails.sealed, _entitlement_sealed())
            .join(Customer, Customer.id == Case.customer_id)
            .outerjoin(PayoutDetails, PayoutDetails.customer_id == Case.customer_id)
            .where(Case.status == CaseStatus.APPROVED, Case.approved_amount > 0,
                   Case.currency == currency, payable_clause(), ~live,
                   Case.programme_id == programme_id if programme_id is not None
                   else Case.programme_id.is_(None))
            .order_by(Case.id))
    if method == BANK:  # an erased customer's bank details are gone with them
        stmt = stmt.where(Customer.erased_at.is_(None))
    chosen: list[Candidate] = []
    unaccepted_events: dict[int, bool] = {}
    for (case_id, ref, amount, event_id, in_programme, confirmed_method, confirmed_sealed,
         entitlement_sealed) in db.session.execute(stmt):
        paid_by, sealed = paid_with(confirmed_method, confirmed_sealed, entitlement_sealed)
        if paid_by != method:
            continue
        if in_programme is None and _awaits_acceptance(case_id, event_id, unaccepted_events):
            continue
        chosen.append(Candidate(case_id, ref, amount, sealed))
    return Selection(programme, currency, method, chosen)


def _awaits_acceptance(case_id: int, event_id: int, needs: dict[int, bool]) -> bool:
    """A normal case whose event's offer terms must be accepted, and are not yet (a
    programme's own acceptance is ``payable_clause``'s)."""
    if event_id not in needs:
        terms = offers.terms_for(event_id)
        needs[event_id] = terms is not None and terms.required
    if not needs[event_id]:
        return False
    return offers.valid_acceptance(db.session.get(Case, case_id)) is None


def lines_digest(pairs: Iterable[tuple[int, Decimal]]) -> str:
    """SHA-256 of the batch's (case id, amount) pairs in case order: what the audit keeps."""
    digest = hashlib.sha256()
    for case_id, amount in sorted(pairs):
        digest.update(f"{case_id}:{amount}\n".encode())
    return digest.hexdigest()


# --- preparing, releasing, cancelling --------------------------------------------------------

def prepare_batch(*, programme_id: int | None, currency: str, method: str,
                  actor: User) -> PayoutBatch:
    """Put every case of :func:`select_cases` in a new prepared batch, with its details."""
    _require_role(actor, PREPARERS)
    selection = select_cases(programme_id=programme_id, currency=currency, method=method)
    if not selection.count:
        raise RuleViolation(_("No approved case is ready to be paid for this choice."))
    ref = refs.next_ref("PB", 5, failure=_("The next batch reference could not be read."))
    batch = PayoutBatch(ref=ref, programme_id=programme_id, currency=selection.currency,
                        method=method, status=BatchStatus.PREPARED,
                        line_count=selection.count, control_sum=selection.total,
                        prepared_by_id=actor.id, prepared_at=utcnow())
    db.session.add(batch)
    db.session.flush()
    now = utcnow()
    rows = [{"batch_id": batch.id, "case_id": c.case_id, "end_to_end_id": f"{ref}-{c.case_ref}",
             "amount": c.amount, "currency": selection.currency, "payout_sealed": c.sealed,
             "status": LineStatus.PENDING, "updated_at": now} for c in selection.candidates]
    try:
        with db.session.begin_nested():
            for start in range(0, len(rows), INSERT_CHUNK):
                db.session.execute(insert(PayoutLine), rows[start:start + INSERT_CHUNK])
    except IntegrityError:
        raise RuleViolation(_("Some of these cases were put in another batch at the same "
                              "moment. Nothing was created; prepare the batch again.")) from None
    audit.record("payout_batch.prepare", "payout_batch", batch.id,
                 N_("Payout batch %(ref)s prepared: %(count)d cases, %(total)s %(currency)s, "
                    "%(method)s", ref=ref, count=selection.count, total=str(selection.total),
                    currency=selection.currency, method=term("payout_method", method)),
                 after={"ref": ref, "programme_id": programme_id,
                        "currency": selection.currency, "method": method,
                        "line_count": selection.count, "control_sum": str(selection.total),
                        "lines_sha256": lines_digest((c.case_id, c.amount)
                                                     for c in selection.candidates)},
                 actor=actor)
    return batch


def _move(batch: PayoutBatch, expected_version: int | None, target: BatchStatus,
          **values: Any) -> None:
    """prepared → ``target`` as one conditional update: of two at the same moment exactly one
    matches the prepared row; the other is told."""
    if expected_version is not None and expected_version != batch.lock_version:
        raise Conflict(_("Someone else changed this batch meanwhile. Reload the page."))
    moved = db.session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch.id, PayoutBatch.status == BatchStatus.PREPARED,
               PayoutBatch.lock_version == batch.lock_version)
        .values(status=target, lock_version=PayoutBatch.lock_version + 1, **values)
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        db.session.expire(batch)
        raise Conflict(_("Batch %(ref)s was released or cancelled by someone else at the "
                         "same moment. Reload the page.", ref=batch.ref))
    db.session.refresh(batch)


def release_batch(batch: PayoutBatch, *, actor: User,
                  expected_version: int | None = None) -> None:
    """The checker's release: files may be made for the batch from now on."""
    _require_role(actor, CHECKERS)
    if batch.prepared_by_id == actor.id:
        raise Refusal(
            _("You prepared this batch; another finance user or an admin must release it."),
            action="payout_batch.release.refused", subject_type="payout_batch",
            subject_id=batch.id,
            summary=N_("Release of payout batch %(ref)s by the user who prepared it refused",
                       ref=batch.ref),
            details={"reason": "own_batch", "batch": batch.ref}, status=403, actor=actor)
    if batch.status != BatchStatus.PREPARED:
        raise RuleViolation(_("Only a prepared batch can be released; batch %(ref)s is "
                              "“%(status)s”.", ref=batch.ref, status=_status_label(batch)))
    _move(batch, expected_version, BatchStatus.RELEASED, released_by_id=actor.id,
          released_at=utcnow())
    audit.record("payout_batch.release", "payout_batch", batch.id,
                 N_("Payout batch %(ref)s released: %(count)d cases, %(total)s %(currency)s",
                    ref=batch.ref, count=batch.line_count, total=str(batch.control_sum),
                    currency=batch.currency),
                 before={"status": BatchStatus.PREPARED},
                 after={"status": BatchStatus.RELEASED, "released_by_id": actor.id},
                 actor=actor)


def cancel_batch(batch: PayoutBatch, *, actor: User,
                 expected_version: int | None = None) -> int:
    """Cancel a prepared batch: its lines are removed, so its cases may be batched again.
    The batch keeps its count and control sum; the audit entry the digest of its lines."""
    _require_role(actor, CHECKERS)
    if batch.status != BatchStatus.PREPARED:
        raise RuleViolation(_("Only a prepared batch can be cancelled; batch %(ref)s is "
                              "“%(status)s”.", ref=batch.ref, status=_status_label(batch)))
    _move(batch, expected_version, BatchStatus.CANCELLED)
    pairs = db.session.execute(select(PayoutLine.case_id, PayoutLine.amount)
                               .where(PayoutLine.batch_id == batch.id)).all()
    db.session.execute(delete(PayoutLine).where(PayoutLine.batch_id == batch.id)
                       .execution_options(synchronize_session=False))
    audit.record("payout_batch.cancel", "payout_batch", batch.id,
                 N_("Payout batch %(ref)s cancelled; its %(count)d cases may be batched again",
                    ref=batch.ref, count=len(pairs)),
                 before={"status": BatchStatus.PREPARED, "line_count": len(pairs),
                         "lines_sha256": lines_digest((c, a) for c, a in pairs)},
                 after={"status": BatchStatus.CANCELLED}, actor=actor)
    return len(pairs)


def _status_label(batch: PayoutBatch) -> str:
    return str(BATCH_STATUS_LABELS.get(batch.status, batch.status))


# --- reading ---------------------------------------------------------------------------------

def line_totals(batch: PayoutBatch) -> dict[str, tuple[int, Decimal]]:
    """Per line status: how many lines and their sum."""
    rows = db.session.execute(
        select(PayoutLine.status, func.count(), func.coalesce(func.sum(PayoutLine.amount), 0))
        .where(PayoutLine.batch_id == batch.id).group_by(PayoutLine.status))
    return {status: (count, Decimal(total)) for status, count, total in rows}
