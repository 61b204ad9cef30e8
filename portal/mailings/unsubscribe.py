"""Unsubscribing: the signed token of each customer's link, and recording their wish."""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from portal.audit import services as audit
from portal.customers.models import Customer
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import utcnow

# The unsubscribe token of previews and test sends: its page says so and records nothing.
# A real token is ``<payload>.<signature>`` and never equals it.
PREVIEW_TOKEN = "preview"


def _unsubscribe_signer() -> URLSafeSerializer:
    """Signs with SECRET_KEY and still accepts SECRET_KEY_FALLBACKS, so links already sent
    keep working after the key is rotated (itsdangerous verifies with every key, newest
    last, and signs with the newest)."""
    config = current_app.config
    keys = [*(config.get("SECRET_KEY_FALLBACKS") or ()), config["SECRET_KEY"]]
    return URLSafeSerializer(keys, salt="unsubscribe")


def unsubscribe_token(customer_id: int) -> str:
    return _unsubscribe_signer().dumps(customer_id)


def customer_for_token(token: str) -> Customer | None:
    try:
        customer_id = _unsubscribe_signer().loads(token)
    except BadSignature:
        return None
    return db.session.get(Customer, customer_id) if isinstance(customer_id, int) else None


def unsubscribe_url(customer_id: int | None) -> str:
    """The customer's own unsubscribe link, or (None) the inert one for staff previews and
    test sends: those must never unsubscribe the customer they are shown as."""
    token = PREVIEW_TOKEN if customer_id is None else unsubscribe_token(customer_id)
    return f"{current_app.config['PORTAL_BASE_URL']}/unsubscribe/{token}"


def unsubscribe(customer: Customer, *, via: str) -> bool:
    """Record the customer's wish; False when they had already unsubscribed."""
    if customer.unsubscribed_at is not None:
        return False
    customer.unsubscribed_at = utcnow()
    audit.record("customer.unsubscribe", "customer", customer.id,
                 N_("Customer #%(id)d unsubscribed (%(via)s)", id=customer.id,
                    via=term("unsubscribe_via", via)),

                 after={"unsubscribed_at": customer.unsubscribed_at.isoformat()}, actor=None)
    return True
