"""Offer terms and the customer's acceptance of an offer.

An event may require that customers accept the offer of an approved case before it is paid.
Its offer terms (a text per language) go to legal like any subject of ``portal.signoffs``;
editing them voids that sign-off and every standing decision of the event's customers. The
customer is shown the offer (amount, currency, the approved terms in their language) and
accepts or declines; the decision row holds the SHA-256 of exactly that, so any later change
of the case's amount or of the terms no longer matches it, and ``record_payment`` refuses.

The customer-facing functions take the case, the customer, the posted form data and the
client's IP (the integrator's ``/my`` views call them); staff functions take the actor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from portal.accounts import User
from portal.audit import services as audit
from portal.audit.services import canonical_json
from portal.cases.models import Case, CaseStatus
from portal.cases.offer_models import (
    OFFER_LOCALES,
    Decision,
    OfferDecision,
    OfferStatus,
    OfferTerms,
)
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import text_digest, utcnow
from portal.signoffs import services as signoffs
from portal.signoffs.models import STANDING, SignoffRequest, SignoffStatus

SUBJECT = "offer_terms"
MAX_TERMS = 20000
MAX_REASON = 2000


# --- the terms (staff) ---------------------------------------------------------------------


def terms_for(event_id: int) -> OfferTerms | None:
    return db.session.get(OfferTerms, event_id)


def _scope(event_id: int) -> str:
    return f"{SUBJECT}:{event_id}"


def terms_snapshot(terms: OfferTerms) -> dict[str, Any]:
    """What legal approves: the terms text in each language."""
    return {"event": terms.event_id, "terms": {"zh_CN": terms.text_zh, "en": terms.text_en}}


def save_terms(event: Event, *, required: bool, text_zh: str, text_en: str,
               actor: User) -> bool:
    """Set whether the event's customers must accept offers, and the terms. A change of the
    text voids legal's sign-off of the old text and every standing customer decision on
    offers made with it. False when nothing changed."""
    text_zh, text_en = (text_zh or "").strip(), (text_en or "").strip()
    for name, value in (("text_zh", text_zh), ("text_en", text_en)):
        if len(value) > MAX_TERMS:
            raise RuleViolation(_("At most %(n)d characters.", n=MAX_TERMS), field=name)
        if required and not value:
            raise RuleViolation(_("Write the offer terms in both languages before customers "
                                  "must accept them."), field=name)
    terms = terms_for(event.id)
    if terms is None:
        terms = OfferTerms(event_id=event.id, required=False, text_zh="", text_en="")
        db.session.add(terms)
    before = terms.audit_state()
    if (terms.required, terms.text_zh, terms.text_en) == (required, text_zh, text_en):
        return False
    text_changed = (terms.text_zh, terms.text_en) != (text_zh, text_en)
    terms.required, terms.text_zh, terms.text_en = required, text_zh, text_en
    terms.updated_by_id, terms.updated_at = actor.id, utcnow()
    db.session.flush()
    if text_changed:
        signoffs.void_scope(_scope(event.id), "offer terms edited", actor=actor)
        void_decisions(select(Case.id).where(Case.event_id == event.id), "terms changed",
                       actor=actor)
    audit.record("offer_terms.edit", "event", event.id,
                 N_("Offer terms of event #%(id)d saved (acceptance required: %(required)s)",
                    id=event.id, required=term("offer_required", str(required).lower())),
                 before=before, after=terms.audit_state(), actor=actor)
    return True


def request_terms_signoff(event: Event, *, actor: User) -> SignoffRequest:
    terms = terms_for(event.id)
    if terms is None or not (terms.text_zh and terms.text_en):
        raise RuleViolation(_("Write the offer terms in both languages first."))
    return signoffs.open_request(
        subject_type=SUBJECT, subject_id=event.id, scope=_scope(event.id),
        title=N_("Offer terms of event #%(id)d", id=event.id), snapshot=terms_snapshot(terms),
        author_id=terms.updated_by_id, requested_by=actor)


def may_request_signoff(_user: User, event: Event) -> bool:
    """The terms are written in both languages, and no request is open or granted for them."""
    terms = terms_for(event.id)
    latest = terms_signoff(event.id)
    return (terms is not None and bool(terms.text_zh and terms.text_en)
            and (latest is None or latest.status not in STANDING))


def terms_signoff(event_id: int) -> SignoffRequest | None:
    """The latest sign-off request of the event's terms (any status)."""
    return signoffs.latest(SUBJECT, event_id)


def approved_terms(event_id: int) -> OfferTerms | None:
    """The terms, when legal's standing approval covers exactly their current text."""
    terms = terms_for(event_id)
    grant = signoffs.granted(SUBJECT, event_id)
    if terms is None or grant is None or not signoffs.check_binding(grant,
                                                                    terms_snapshot(terms)):
        return None
    return terms


def after_terms_decision(request: SignoffRequest, _actor: User) -> None:
    """Legal approved: the grant must cover the terms as they are now."""
    terms = terms_for(request.subject_id)
    if (request.status == SignoffStatus.APPROVED
            and (terms is None or not signoffs.check_binding(request, terms_snapshot(terms)))):
        raise RuleViolation(_("The offer terms changed since the request; they need a new one."))


# --- the offer a customer sees -------------------------------------------------------------


def offer_hash(*, terms: str, amount: str, currency: str, case_ref: str, locale: str) -> str:
    """SHA-256 of exactly what the customer is shown."""
    shown = {"terms": terms, "amount": amount, "currency": currency, "case": case_ref,
             "locale": locale}
    return hashlib.sha256(canonical_json(shown).encode()).hexdigest()


@dataclass(frozen=True)
class Offer:
    case_ref: str
    amount: str
    currency: str
    locale: str
    terms: str

    @property
    def hash(self) -> str:
        return offer_hash(terms=self.terms, amount=self.amount, currency=self.currency,
                          case_ref=self.case_ref, locale=self.locale)


def needs_acceptance(case: Case) -> bool:
    terms = terms_for(case.event_id)
    return terms is not None and terms.required


def offer_language(locale: str | None) -> str:
    return locale if locale in OFFER_LOCALES else "zh_CN"


def current_offer(case: Case, locale: str | None) -> Offer | None:
    """The offer to show on an approved case that needs acceptance, in ``locale``; None when
    there is none (not approved, no acceptance needed, or terms not approved as they are)."""
    if case.status != CaseStatus.APPROVED or case.approved_amount is None:
        return None
    terms = approved_terms(case.event_id)
    if terms is None or not terms.required:
        return None
    language = offer_language(locale)
    return Offer(case.ref, str(case.approved_amount), case.currency, language,
                 terms.text_in(language))


def standing_decision(case: Case) -> OfferDecision | None:
    return db.session.scalar(select(OfferDecision).where(
        OfferDecision.case_id == case.id, OfferDecision.voided_at.is_(None)))


def valid_acceptance(case: Case) -> OfferDecision | None:
    """The customer's acceptance that still covers the offer as it is now, or None."""
    decision = standing_decision(case)
    if decision is None or decision.decision != Decision.ACCEPTED:
        return None
    offer = current_offer(case, decision.locale)
    return decision if offer is not None and offer.hash == decision.offer_hash else None


# --- the customer's answer ------------------------------------------------------------------


def respond(case: Case, customer: Customer, data: Mapping[str, str],
            client_ip: str | None) -> OfferDecision:
    """The customer's answer to the offer of ``case`` (the caller commits). ``data``:
    ``decision`` (accepted | declined), ``offer_hash`` (the hash of the offer on the page
    they answered, from ``_offer.html``), ``locale`` and, to decline, ``reason``."""
    if case.customer_id != customer.id or customer.erased:
        raise RuleViolation(_("This offer is not yours."))
    decision = data.get("decision", "")
    if decision not in (Decision.ACCEPTED, Decision.DECLINED):
        raise RuleViolation(_("Accept or decline the offer."), field="decision")
    offer = current_offer(case, data.get("locale") or customer.locale)
    if offer is None:
        raise RuleViolation(_("There is no offer to answer on this case now."))
    if data.get("offer_hash") != offer.hash:
        raise RuleViolation(_("The offer changed while you were reading it. Read it again "
                              "below before you answer."), field="decision")
    if standing_decision(case) is not None:
        raise RuleViolation(_("You have already answered this offer. To change your answer, "
                              "write to us on this case."))
    reason = (data.get("reason") or "").strip()
    if decision == Decision.DECLINED and not reason:
        raise RuleViolation(_("Tell us why you decline the offer."), field="reason")
    if len(reason) > MAX_REASON:
        raise RuleViolation(_("At most %(n)d characters.", n=MAX_REASON), field="reason")
    row = OfferDecision(case_id=case.id, decision=decision, locale=offer.locale,
                        amount=offer.amount, currency=offer.currency, offer_hash=offer.hash,
                        reason=reason if decision == Decision.DECLINED else None,
                        ip_digest=customer.audit_digest(client_ip) or None,
                        decided_at=utcnow())
    db.session.add(row)
    db.session.flush()
    audit.record(f"offer.{decision}", "case", case.id,
                 N_("Offer on case %(ref)s: %(decision)s by the customer", ref=case.ref,
                    decision=term("offer_status", decision)),
                 after={"decision_id": row.id, "offer_hash": row.offer_hash,
                        "amount": row.amount, "currency": row.currency, "locale": row.locale,
                        "reason_sha256": text_digest(row.reason)})
    return row


def for_customer(case: Case, locale: str | None) -> dict[str, Any]:
    """What ``templates/cases/_offer.html`` needs besides the URL it posts to: the offer to
    show now (or None) and the customer's standing answer (or None)."""
    return {"offer": current_offer(case, locale), "decision": standing_decision(case)}


def void_decisions(case_ids: Any, reason: str, *, actor: User | None) -> int:
    """Void the standing decisions of these cases (a list of ids or a select); ``reason`` is
    a code of ``OFFER_VOID_REASONS``."""
    rows = db.session.scalars(select(OfferDecision).where(
        OfferDecision.case_id.in_(case_ids), OfferDecision.voided_at.is_(None))).all()
    now = utcnow()
    for row in rows:
        row.voided_at, row.void_reason = now, reason
        case = db.session.get(Case, row.case_id)
        audit.record("offer.void", "case", row.case_id,
                     N_("Customer's answer to the offer on case %(ref)s voided (%(reason)s)",
                        ref=case.ref, reason=term("offer_void", reason)),
                     before={"decision": row.decision, "offer_hash": row.offer_hash},
                     after={"decision_id": row.id, "void_reason": reason}, actor=actor)
    db.session.flush()
    return len(rows)


# --- what staff see -------------------------------------------------------------------------


@dataclass
class OfferState:
    status: OfferStatus
    offer: Offer | None
    decision: OfferDecision | None
    voided: OfferDecision | None

    @property
    def tone(self) -> str:
        """The badge's class: good news, bad news, or neither."""
        if self.status == OfferStatus.ACCEPTED:
            return "ok"
        return "bad" if self.status in (OfferStatus.DECLINED, OfferStatus.VOIDED) else ""


def offer_state(case: Case) -> OfferState | None:
    """The offer of a case needing acceptance as staff see it; None when none is needed."""
    if not needs_acceptance(case):
        return None
    standing = standing_decision(case)
    voided = db.session.scalar(select(OfferDecision).where(
        OfferDecision.case_id == case.id, OfferDecision.voided_at.is_not(None))
        .order_by(OfferDecision.id.desc()).limit(1))
    offer = current_offer(case, standing.locale if standing else case.customer.locale)
    if standing is not None:
        status = OfferStatus(standing.decision)
    elif case.status != CaseStatus.APPROVED:
        status = OfferStatus.NOT_OFFERED
    elif offer is None:
        status = OfferStatus.NOT_READY
    else:
        status = OfferStatus.VOIDED if voided is not None else OfferStatus.WAITING
    return OfferState(status, offer, standing, voided)
