"""One row of an entitlements file, checked: the customer of the event it names, the order,
a positive amount with no more decimals than its ISO 4217 currency allows, the date, the free
attribute columns, and optional bank details (checked here, sealed when applied). Reasons are
message keys (``portal.i18n.N_``), read later in the reader's language; a typed value is the
``value`` parameter (``portal.i18n.with_typed_values`` marks it); bank details are never
repeated in a reason."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision, is_currency
from schwifty import BIC
from schwifty.exceptions import SchwiftyException

from portal.customers import payout
from portal.errors import RuleViolation
from portal.i18n import N_
from portal.imports import control_character
from portal.money import FULL_WIDTH, MAX_AMOUNT, MAX_LENGTH, PLAIN_DECIMAL, SCALE
from portal.programmes.rules import minor_unit

COLUMNS = ("external_ref", "order_ref", "basis_amount", "currency", "basis_date")
PAYOUT_COLUMNS = ("account_holder", "bank", "account", "iban", "bic")
MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE, MAX_ORDER_REF = 64, 200, 64
# ISO 4217 codes that name no money one can pay out.
NOT_PAYABLE = {"XXX", "XTS"}
DATE_SHAPE = re.compile(r"^([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})$")


def amount_text(amount: Decimal, currency: str) -> str:
    """An amount as its currency writes it: 3000 JPY, 120.50 CNY."""
    return str(amount.quantize(minor_unit(currency)))


def parse_basis_amount(text: str, currency: str) -> Decimal:
    """A positive amount in plain decimal notation with no more decimals than the currency
    allows (and at most two, as amounts are stored); RuleViolation with the reason."""
    raw = text.strip().translate(FULL_WIDTH)
    if not raw or len(raw) > MAX_LENGTH or not PLAIN_DECIMAL.fullmatch(raw):
        raise RuleViolation(N_("basis_amount %(value)s is not a decimal amount such as "
                               "1280.50.", value=text.strip()), field="basis_amount")
    amount = Decimal(raw.replace(",", ""))
    if amount <= 0:
        raise RuleViolation(N_("basis_amount must be more than zero (%(value)s).", value=raw),
                            field="basis_amount")
    if amount > MAX_AMOUNT:
        raise RuleViolation(N_("basis_amount %(value)s is above the limit of %(max)s.",
                               value=raw, max=str(MAX_AMOUNT)), field="basis_amount")
    places = min(get_currency_precision(currency), SCALE)
    if amount != amount.quantize(minor_unit(currency)):
        raise RuleViolation(N_("basis_amount %(value)s has more decimals than %(currency)s "
                               "allows (%(places)d).", value=raw, currency=currency,
                               places=places), field="basis_amount")
    return amount.quantize(Decimal(1).scaleb(-SCALE))


def parse_currency(text: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code) or code in NOT_PAYABLE or not is_currency(code):
        raise RuleViolation(N_("Unknown currency %(value)s (use an ISO 4217 code such as "
                               "CNY).", value=text.strip()), field="currency")
    return code


def parse_basis_date(text: str) -> date:
    """YYYY-MM-DD (or YYYY/MM/DD, as spreadsheets save it)."""
    found = DATE_SHAPE.match(text.strip())
    try:
        if found is None:
            raise ValueError
        return date(*(int(part) for part in found.groups()))
    except ValueError:
        raise RuleViolation(N_("basis_date %(value)s is not a date (use YYYY-MM-DD).",
                               value=text.strip()), field="basis_date") from None


def parse_bank_account(values: Mapping[str, str]) -> payout.BankAccount | None:
    """The bank account of a row's payout columns, or None when they are all empty. The BIC,
    when given, is kept with the bank's name. Messages never repeat the account."""
    if not any(values.get(c) for c in PAYOUT_COLUMNS):
        return None
    holder = values.get("account_holder", "")
    if not holder or len(holder) > 120:
        raise RuleViolation(N_("account_holder is required with bank details (at most 120 "
                               "characters)."), field="account_holder")
    given = {values.get("account", ""), values.get("iban", "")} - {""}
    if len(given) != 1:
        raise RuleViolation(N_("Give the bank account once, in account or iban."),
                            field="account")
    try:
        account, is_iban = payout.parse_account(given.pop())
    except RuleViolation:
        raise RuleViolation(N_("The bank account is not valid: digits, or an IBAN with the "
                               "right country, check digits and length."),
                            field="account") from None
    bank, bic = values.get("bank", ""), values.get("bic", "").upper()
    if bic:
        try:
            bic = str(BIC(bic))
        except SchwiftyException:
            raise RuleViolation(N_("bic %(value)s is not a valid BIC.", value=bic),
                                field="bic") from None
    bank = " ".join(part for part in (bank, f"BIC {bic}" if bic else "") if part)
    if len(bank) > 120:
        raise RuleViolation(N_("bank is too long (at most %(n)d characters).", n=120),
                            field="bank")
    return payout.BankAccount(holder, bank, account, is_iban)


def row_cleaner(customers: Mapping[str, int]) -> Callable[[dict[str, str]], dict[str, Any]]:
    """The check of one row against the event's customers (external_ref → customer id)."""

    def clean(raw: dict[str, str]) -> dict[str, Any]:
        values = {key.strip(): (value or "").strip() for key, value in raw.items()
                  if key.strip()}
        for key, value in values.items():
            if code := control_character(value):
                raise RuleViolation(N_("%(field)s contains a control character (%(code)s), "
                                       "such as a line break or a NUL byte; remove it.",
                                       field=key, code=code), field=key)
        for key in COLUMNS:
            if not values.get(key):
                raise RuleViolation(N_("%(field)s is required.", field=key), field=key)
        ref = values["external_ref"]
        customer_id = customers.get(ref)
        if customer_id is None:
            raise RuleViolation(N_("No customer with external_ref %(value)s in this event; "
                                   "import the customer first.", value=ref),
                                field="external_ref")
        if len(values["order_ref"]) > MAX_ORDER_REF:
            raise RuleViolation(N_("%(field)s is too long (at most %(n)d characters).",
                                   field="order_ref", n=MAX_ORDER_REF), field="order_ref")
        currency = parse_currency(values["currency"])
        attributes = {}
        for key, value in values.items():
            if key in COLUMNS or key in PAYOUT_COLUMNS:
                continue
            if len(key) > MAX_ATTRIBUTE_NAME or len(value) > MAX_ATTRIBUTE_VALUE:
                raise RuleViolation(N_("%(field)s is too long (at most %(n)d characters).",
                                       field=key[:MAX_ATTRIBUTE_NAME], n=MAX_ATTRIBUTE_VALUE),
                                    field=key)
            attributes[key] = value
        return {"customer_id": customer_id, "order_ref": values["order_ref"],
                "basis_amount": parse_basis_amount(values["basis_amount"], currency),
                "currency": currency, "basis_date": parse_basis_date(values["basis_date"]),
                "attributes": attributes, "account": parse_bank_account(values)}

    return clean
