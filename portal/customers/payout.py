"""A customer's payout details: paid back by the original payment method, or to a bank account.

The bank account (holder, bank, account number or IBAN) is sealed with AES-256-GCM under
``PAYOUT_DETAILS_KEY``, a key kept outside the database (``portal.config``, like the audit
keys); the customer's id is the associated data, so a sealed value copied onto another
customer does not open. Nothing of it reaches the audit trail but a digest keyed with the
customer's salt (unlinkable once the customer is erased). Staff see the account masked to its
last four characters; the roles that pay see it in full (``customers.payout_details``).
Erasing the customer deletes the row.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import CheckConstraint, ForeignKey, String, Text, delete
from sqlalchemy.orm import Mapped, mapped_column

from portal.audit import services as audit
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import UTCDateTime, utcnow

ORIGINAL, BANK = "original", "bank"
METHOD_LABELS = {ORIGINAL: _l("original payment method"), BANK: _l("bank account")}
SEALED_PREFIX = "v1:"
# Two letters, two check digits, then letters and digits: an IBAN, checked with schwifty.
IBAN_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{8,30}$")
# Any other account number: digits, optionally grouped by spaces or hyphens.
ACCOUNT_SHAPE = re.compile(r"^[0-9][0-9 -]{4,38}[0-9]$")
MASK = "••••"


class PayoutDetails(db.Model):
    __tablename__ = "payout_details"
    __table_args__ = (CheckConstraint("method IN ('original', 'bank')", name="method_known"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    method: Mapped[str] = mapped_column(String(10))
    # The bank account, sealed (NULL for the original payment method).
    sealed: Mapped[str | None] = mapped_column(Text)
    # The client IP as a digest keyed with the customer's salt.
    ip_digest: Mapped[str | None] = mapped_column(String(80))
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True)
class BankAccount:
    holder: str
    bank: str
    account: str
    is_iban: bool

    @property
    def masked_account(self) -> str:
        return f"{MASK} {self.account[-4:]}"

    @property
    def masked_holder(self) -> str:
        return self.holder[:1] + "＊" * min(max(len(self.holder) - 1, 1), 3)

    def as_dict(self) -> dict[str, object]:
        return {"holder": self.holder, "bank": self.bank, "account": self.account,
                "is_iban": self.is_iban}


def _cipher() -> AESGCM:
    return AESGCM(bytes.fromhex(current_app.config["PAYOUT_DETAILS_KEY"]))


def _associated(customer_id: int) -> bytes:
    return f"payout_details:{customer_id}".encode()


def seal(customer_id: int, account: BankAccount) -> str:
    nonce = os.urandom(12)
    plain = json.dumps(account.as_dict(), ensure_ascii=False, sort_keys=True).encode()
    sealed = _cipher().encrypt(nonce, plain, _associated(customer_id))
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(customer_id: int, value: str) -> BankAccount:
    raw = base64.b64decode(value.removeprefix(SEALED_PREFIX))
    try:
        plain = _cipher().decrypt(raw[:12], raw[12:], _associated(customer_id))
    except InvalidTag:
        raise RuleViolation(_("The stored payout details cannot be read with this key.")) \
            from None
    data = json.loads(plain)
    return BankAccount(data["holder"], data["bank"], data["account"], bool(data["is_iban"]))


def parse_account(value: str) -> tuple[str, bool]:
    """An account number as stored, and whether it is an IBAN. IBAN-shaped input must be a
    valid IBAN (country, length, check digits); other input must look like an account
    number."""
    compact = re.sub(r"\s+", "", value or "").upper()
    if IBAN_SHAPE.match(compact):
        try:
            return IBAN(compact).compact, True
        except SchwiftyException:
            raise RuleViolation(_("This IBAN is not valid: check the country code, the check "
                                  "digits and the length."), field="account") from None
    spaced = (value or "").strip()
    if not ACCOUNT_SHAPE.match(spaced):
        raise RuleViolation(_("Enter the account number (digits) or an IBAN."), field="account")
    return re.sub(r"[ -]", "", spaced), False


def _bank_account(data: Mapping[str, str]) -> BankAccount:
    holder = (data.get("holder") or "").strip()
    bank = (data.get("bank") or "").strip()
    if not holder or len(holder) > 120:
        raise RuleViolation(_("Enter the account holder's name (at most 120 characters)."),
                            field="holder")
    if not bank or len(bank) > 120:
        raise RuleViolation(_("Enter the bank's name (at most 120 characters)."), field="bank")
    account, is_iban = parse_account(data.get("account", ""))
    return BankAccount(holder, bank, account, is_iban)


def details_for(customer: Customer) -> PayoutDetails | None:
    return db.session.get(PayoutDetails, customer.id)


def confirm(customer: Customer, data: Mapping[str, str],
            client_ip: str | None) -> PayoutDetails:
    """The customer confirms how to be paid (the caller commits). ``data``: ``method``
    (original | bank) and, for a bank account, ``holder``, ``bank`` and ``account``."""
    if customer.erased:
        raise RuleViolation(_("These details can no longer be changed."))
    method = data.get("method", "")
    if method not in METHOD_LABELS:
        raise RuleViolation(_("Choose how you want to be paid."), field="method")
    account = _bank_account(data) if method == BANK else None
    row = details_for(customer)
    if row is None:
        row = PayoutDetails(customer_id=customer.id)
        db.session.add(row)
    before_method = row.method
    row.method = method
    row.sealed = seal(customer.id, account) if account else None
    row.ip_digest = customer.audit_digest(client_ip) or None
    row.confirmed_at = utcnow()
    db.session.flush()
    audit.record("customer.payout_details", "customer", customer.id,
                 N_("Payout details of customer #%(id)d confirmed: %(method)s",
                    id=customer.id, method=term("payout_method", method)),
                 before={"method": before_method},
                 after={"method": method,
                        "details": customer.audit_digest(account.as_dict()) if account else ""})
    return row


@dataclass(frozen=True)
class PayoutView:
    """What a page shows: the method, and the account both masked and in full (the template
    asks ``can("customers.payout_details", customer)`` which to show)."""

    method: str
    account: BankAccount | None
    confirmed_at: datetime

    @property
    def method_label(self) -> str:
        return str(METHOD_LABELS[self.method])


def view_for(customer: Customer) -> PayoutView | None:
    row = details_for(customer)
    if row is None:
        return None
    account = unseal(customer.id, row.sealed) if row.sealed else None
    return PayoutView(row.method, account, row.confirmed_at)


def erase(customer_ids: Iterable[int]) -> int:
    """Delete the payout details of erased customers (the erasure's transaction)."""
    ids = list(customer_ids)
    if not ids:
        return 0
    return db.session.execute(delete(PayoutDetails).where(
        PayoutDetails.customer_id.in_(ids))).rowcount or 0
