"""Case settings: the currency codes, the response time (SLA) of each severity, and the amount
above which legal signs a case off, each with its default until an admin changes it."""

from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import list_currencies
from flask_babel import gettext as _

from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import SignoffThreshold, SlaPolicy
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.money import parse_amount

CURRENCIES = frozenset(list_currencies())
DEFAULT_SLA_HOURS = {"sev1": 24, "sev2": 48, "sev3": 72, "sev4": 120}
DEFAULT_THRESHOLDS = {"CNY": Decimal("5000.00"), "USD": Decimal("1000.00"),
                      "EUR": Decimal("1000.00"), "HKD": Decimal("5000.00")}


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
    audit.record("settings.sla", audit.SETTING, f"sla:{severity}",
                 N_("SLA for %(severity)s set (hours: %(hours)d)",
                    severity=term("event", severity), hours=hours),
                 before={"hours": before}, after={"hours": hours}, actor=actor)
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
                 N_("Sign-off threshold for %(currency)s set to %(amount)s",
                    currency=currency, amount=str(value)),

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

