"""Claims from a notice: a listed customer's (from their page) and anyone's (from the public
notice page, confirmed by e-mail), their confirmation link, and how long they are kept.

What an agent decides about a waiting claim is in ``triage.py``; the e-mails in
``claim_tasks.py``. Retention (chosen here): an unconfirmed claim is deleted once its link
expires (24 hours); a rejected claim's personal data is erased ``REJECTED_RETENTION_DAYS``
(30) days after the decision; an accepted claim's data goes with its customer's erasure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, select

from portal.audit import services as audit
from portal.cases import services
from portal.cases.claim_models import Claim, ClaimMail, ClaimStatus
from portal.cases.models import KINDS, Case
from portal.cases.refusals import DuplicateCase
from portal.customers.models import CUSTOMER_LOCALES, ERASED, Customer
from portal.customers.services import EMAIL_RE, PHONE_RE
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_
from portal.imports import control_character
from portal.models import utcnow
from portal.money import parse_amount

CONFIRM_HOURS = 24
REJECTED_RETENTION_DAYS = 30
MAX_DESCRIPTION = 5000
DEFAULT_CURRENCY = "CNY"


@dataclass
class ClaimInput:
    """What every claimant gives: the kind, the order, the amount (optional) and what
    happened."""

    kind: str
    order_ref: str
    amount: str | Decimal | None
    description: str


@dataclass
class Claimant:
    """Who sends a public claim (not on the import list)."""

    name: str
    email: str
    phone: str
    locale: str


@dataclass
class ClaimOutcome:
    """A listed customer's claim: a case at once, or (no amount given) a claim that waits
    for an agent to state the amount."""

    case: Case | None = None
    claim: Claim | None = None


def _text(value: str | None, field: str, limit: int, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise RuleViolation(_("This field is required."), field=field)
    if len(value) > limit:
        raise RuleViolation(_("At most %(n)d characters.", n=limit), field=field)
    if control_character(value.replace("\n", "").replace("\r", "").replace("\t", "")):
        raise RuleViolation(_("Remove the control characters from this text."), field=field)
    return value


def clean_claim(data: ClaimInput) -> dict[str, object]:
    """The claim's fields, or RuleViolation naming the first bad one."""
    if data.kind not in KINDS:
        raise RuleViolation(_("Choose refund or compensation."), field="kind")
    order_ref = _text(data.order_ref, "order_ref", 64, required=True)
    amount = None
    if data.amount is not None and str(data.amount).strip():
        amount = parse_amount(data.amount)
    return {"kind": data.kind, "order_ref": order_ref, "amount": amount,
            "description": _text(data.description, "description", MAX_DESCRIPTION,
                                 required=True)}


def clean_claimant(person: Claimant) -> dict[str, str]:
    name = _text(person.name, "name", 200, required=True)
    email = _text(person.email, "email", 254, required=True).lower()
    if not EMAIL_RE.match(email):
        raise RuleViolation(_("Enter an e-mail address such as name@example.com."),
                            field="email")
    phone = _text(person.phone, "phone", 40, required=False)
    if phone and not PHONE_RE.match(phone):
        raise RuleViolation(_("Enter a phone number in digits, such as +86 138 0000 0000."),
                            field="phone")
    locale = person.locale if person.locale in CUSTOMER_LOCALES else "zh_CN"
    return {"name": name, "email": email, "phone": phone, "locale": locale}


def reason_for(event: Event) -> str:
    """The case reason a claim starts with (staff may change it): the event's nature."""
    return "business_shutdown" if event.kind == "shutdown" else "service_outage"


def _accepting(event: Event) -> None:
    if not event.accepts_claims:
        raise RuleViolation(_("This event does not accept claims."))


# --- a listed customer's claim ---------------------------------------------------------------


def open_from_customer(customer: Customer, data: ClaimInput) -> ClaimOutcome:
    """A customer of the import list (signed in on their page) claims: with an amount it is
    a ``new`` case with source "customer" at once; without one it waits in triage for an
    agent to state the amount. A second open case for the same kind and order is refused
    with ``DuplicateCase`` (its ``existing_ref`` and ``existing_id`` name the open case;
    the refusal is audited by ``portal.web.refuse``)."""
    _accepting(customer.event)
    if customer.erased:
        raise RuleViolation(_("This customer's personal data was erased; it cannot be edited."))
    values = clean_claim(data)
    existing = services.open_case_for(customer.id, str(values["kind"]), str(values["order_ref"]))
    if existing:
        raise DuplicateCase(existing, None, by_customer=True)
    if values["amount"] is not None:
        case = services.open_case(customer, services.CaseInput(
            kind=str(values["kind"]), order_ref=str(values["order_ref"]),
            amount=values["amount"], currency=DEFAULT_CURRENCY,
            reason=reason_for(customer.event), description=str(values["description"]),
            assignee_id=None), actor=None, source="customer")
        return ClaimOutcome(case=case)
    now = utcnow()
    claim = Claim(event_id=customer.event_id, customer_id=customer.id,
                  status=ClaimStatus.WAITING, locale=customer.locale, currency=DEFAULT_CURRENCY,
                  created_at=now, confirmed_at=now, **values)
    db.session.add(claim)
    db.session.flush()
    audit.record("claim.submit", "claim", claim.id,
                 N_("Claim #%(id)d sent by customer #%(customer)d from their page, without an "
                    "amount: waiting for triage", id=claim.id, customer=customer.id),
                 after=claim.audit_state(), actor=None)
    return ClaimOutcome(claim=claim)


# --- a public claim and its confirmation -------------------------------------------------------


def submit_public(event: Event, person: Claimant, data: ClaimInput) -> Claim:
    """Keep an unconfirmed claim and queue the e-mail with its confirmation link (the view
    queues the job after the commit). Nothing here depends on whether the address is
    known, so the answer cannot tell."""
    _accepting(event)
    who = clean_claimant(person)  # first: the form asks who they are first
    values = clean_claim(data)
    now = utcnow()
    claim = Claim(event_id=event.id, status=ClaimStatus.UNCONFIRMED, currency=DEFAULT_CURRENCY,
                  created_at=now, expires_at=now + timedelta(hours=CONFIRM_HOURS),
                  mail_kind="confirm", mail_status=ClaimMail.QUEUED, **who, **values)
    db.session.add(claim)
    db.session.flush()
    audit.record("claim.submit", "claim", claim.id,
                 N_("Claim #%(id)d sent from the public notice page: waiting for its address "
                    "to be confirmed", id=claim.id), after=claim.audit_state(), actor=None)
    return claim


def _signer() -> URLSafeTimedSerializer:
    """Signs with SECRET_KEY and still accepts SECRET_KEY_FALLBACKS (key rotation)."""
    config = current_app.config
    keys = [*(config.get("SECRET_KEY_FALLBACKS") or ()), config["SECRET_KEY"]]
    return URLSafeTimedSerializer(keys, salt="claim-confirm")


def confirmation_token(claim: Claim) -> str:
    return _signer().dumps(claim.id)


def confirmation_url(claim: Claim) -> str:
    lang = "en" if claim.locale == "en" else "zh_CN"
    return (f"{current_app.config['PORTAL_BASE_URL']}/claims/confirm/"
            f"{confirmation_token(claim)}?lang={lang}")


def claim_for_token(token: str) -> tuple[Claim | None, str]:
    """The claim a link names, with what is wrong: "" (fine), "expired" or "invalid" (forged,
    mangled, or its claim purged)."""
    try:
        claim_id = _signer().loads(token, max_age=CONFIRM_HOURS * 3600)
    except SignatureExpired:
        return None, "expired"
    except BadSignature:
        return None, "invalid"
    claim = db.session.get(Claim, claim_id) if isinstance(claim_id, int) else None
    if claim is None or claim.erased_at is not None:
        return None, "invalid"
    if claim.status == ClaimStatus.UNCONFIRMED and claim.expires_at <= utcnow():
        return None, "expired"
    return claim, ""


def confirm(claim: Claim) -> bool:
    """The claimant followed the link: the claim waits for triage. False when it was
    confirmed before (a second click changes nothing)."""
    if claim.status != ClaimStatus.UNCONFIRMED:
        return False
    before = claim.audit_state()
    claim.status, claim.confirmed_at, claim.expires_at = ClaimStatus.WAITING, utcnow(), None
    audit.record("claim.confirm", "claim", claim.id,
                 N_("Claim #%(id)d: address confirmed, waiting for triage", id=claim.id),
                 before=before, after=claim.audit_state(), actor=None)
    return True


# --- retention and erasure --------------------------------------------------------------------


def _scrub(claim: Claim) -> None:
    claim.name, claim.email, claim.phone = ERASED, "", ""
    claim.order_ref, claim.description = ERASED, ERASED
    if claim.reason:
        claim.reason = ERASED
    claim.audit_salt, claim.erased_at = None, utcnow()


def purge_claims() -> tuple[int, int]:
    """Delete the unconfirmed claims whose link expired, and erase the personal data of
    claims rejected more than REJECTED_RETENTION_DAYS ago. Returns (deleted, erased)."""
    now = utcnow()
    expired = list(db.session.scalars(select(Claim.id).where(
        Claim.status == ClaimStatus.UNCONFIRMED, Claim.expires_at <= now)))
    if expired:
        db.session.execute(delete(Claim).where(Claim.id.in_(expired)))
    rejected = list(db.session.scalars(select(Claim).where(
        Claim.status == ClaimStatus.REJECTED, Claim.erased_at.is_(None),
        Claim.decided_at <= now - timedelta(days=REJECTED_RETENTION_DAYS))))
    for claim in rejected:
        _scrub(claim)
    if expired or rejected:
        audit.record("claim.purge", "claim", None,
                     N_("Claims purged: %(deleted)d unconfirmed deleted, %(erased)d rejected "
                        "erased", deleted=len(expired), erased=len(rejected)),
                     after={"deleted": expired, "erased": [c.id for c in rejected],
                            "rejected_after_days": REJECTED_RETENTION_DAYS}, actor=None)
    return len(expired), len(rejected)


def erase_for_customers(customer_ids: list[int]) -> int:
    """Erase the claims of these customers (called by their erasure); returns how many."""
    claims = list(db.session.scalars(select(Claim).where(
        Claim.customer_id.in_(customer_ids), Claim.erased_at.is_(None))))
    for claim in claims:
        _scrub(claim)
    return len(claims)
