"""A programme's rules, and what they compute for each customer of the event.

Stated rules of the computation (shown to legal with the preview):

- Each entitlement (one order) gives a base: a **fixed** amount, a **percentage** of its basis
  amount, or the amount / percentage of the highest **tier** whose lower bound the basis reaches.
- Optional **simple interest** on that base, at ``rate`` % a year, Actual/365 Fixed: base × rate
  ÷ 100 × days ÷ 365, the days counted from the entitlement's basis date to the programme's
  calculation date (none when the basis date is later).
- A customer's amount is the sum over their eligible entitlements, limited by the **cap**, then
  rounded once, **half-up**, to the currency's minor unit (ISO 4217, through Babel; at most two
  decimals, as amounts are stored). Every step before is kept exact in ``Decimal``.
- Below the programme's **low-value threshold** the amount is either paid without asking or
  written off (excluded, with the written-off total shown), as the programme chooses.

Everything is ``Decimal``; nothing passes through a float. Rules are stored as JSON with the
amounts as decimal strings; :meth:`Rules.parse` refuses rules that could make a negative amount
or that cannot be computed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from babel.numbers import get_currency_precision
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, false, func, null, select

from portal.cases.models import CLOSED_STATUSES, Case, order_ref_key
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, Message
from portal.money import MAX_AMOUNT
from portal.programmes.models import Entitlement, Programme, ProgrammeMember

METHODS = ("fixed", "percentage", "tiers")
METHOD_LABELS = {"fixed": _l("a fixed amount per order"),
                 "percentage": _l("a percentage of the basis amount"),
                 "tiers": _l("tiers by basis amount")}
DAYS_IN_YEAR = Decimal(365)
HUNDRED = Decimal(100)
MAX_PERCENTAGE = Decimal(1000)
MAX_RATE = Decimal(100)

# Why an entitlement or a whole customer is left out (codes kept in the preview and shown).
EXCLUSION_LABELS = {
    "currency": _l("the entitlement is in another currency"),
    "tags": _l("the customer has none of the required tags"),
    "locale": _l("the customer's language is not included"),
    "attributes": _l("an entitlement attribute does not match"),
    "open_case": _l("the customer already has an open case for this order"),
    "no_tier": _l("the basis amount reaches no tier"),
    "erased": _l("the customer's personal data was erased"),
    "nothing_owed": _l("the amount comes to nothing"),
    "written_off": _l("below the low-value threshold: written off"),
}


def _decimal(value: Any, field_name: str, *, allow_zero: bool = True) -> Decimal:
    """A non-negative decimal from the rules' JSON (a string such as "12.5")."""
    if isinstance(value, float):
        raise RuleViolation(_("Amounts are never floats."), field=field_name)
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise RuleViolation(_("Enter a number such as 12.5."), field=field_name) from None
    if not number.is_finite():
        raise RuleViolation(_("Enter a number such as 12.5."), field=field_name)
    if number < 0 or (number == 0 and not allow_zero):
        raise RuleViolation(_("The number must be more than zero."), field=field_name)
    if number > MAX_AMOUNT:
        raise RuleViolation(_("The number is above the limit of %(max)s.", max=MAX_AMOUNT),
                            field=field_name)
    return number


@dataclass(frozen=True)
class Tier:
    """From ``minimum`` (inclusive) up to the next tier: a fixed amount or a percentage."""

    minimum: Decimal
    amount: Decimal | None = None
    percentage: Decimal | None = None

    def base(self, basis: Decimal) -> Decimal:
        if self.amount is not None:
            return self.amount
        assert self.percentage is not None
        return basis * self.percentage / HUNDRED

    def to_json(self) -> dict[str, str]:
        data = {"min": str(self.minimum)}
        if self.amount is not None:
            data["amount"] = str(self.amount)
        else:
            data["percentage"] = str(self.percentage)
        return data


@dataclass(frozen=True)
class Rules:
    method: str = "fixed"
    fixed: Decimal | None = None
    percentage: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    interest_rate: Decimal | None = None
    cap: Decimal | None = None
    tags_any: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    no_open_case: bool = True

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Rules:
        """Rules from their JSON, checked: a ``RuleViolation`` names the field at fault."""
        amount = data.get("amount") or {}
        method = amount.get("method", "fixed")
        if method not in METHODS:
            raise RuleViolation(_("Choose how the amount is computed."), field="method")
        fixed = percentage = None
        tiers: list[Tier] = []
        if method == "fixed":
            fixed = _decimal(amount.get("fixed", ""), "fixed", allow_zero=False)
        elif method == "percentage":
            percentage = _decimal(amount.get("percentage", ""), "percentage", allow_zero=False)
            if percentage > MAX_PERCENTAGE:
                raise RuleViolation(_("A percentage above %(max)s is refused.",
                                      max=MAX_PERCENTAGE), field="percentage")
        else:
            tiers = cls._tiers(amount.get("tiers") or [])
        rate = amount.get("interest_rate")
        interest_rate = None if rate in (None, "") else _decimal(rate, "interest_rate")
        if interest_rate is not None and interest_rate > MAX_RATE:
            raise RuleViolation(_("An interest rate above %(max)s%% a year is refused.",
                                  max=MAX_RATE), field="interest_rate")
        cap_value = amount.get("cap")
        cap = None if cap_value in (None, "") else _decimal(cap_value, "cap", allow_zero=False)
        eligibility = data.get("eligibility") or {}
        attributes = {str(k).strip(): tuple(str(v).strip() for v in values)
                      for k, values in (eligibility.get("attributes") or {}).items()
                      if str(k).strip()}
        return cls(method=method, fixed=fixed, percentage=percentage, tiers=tuple(tiers),
                   interest_rate=interest_rate or None, cap=cap,
                   tags_any=tuple(sorted({str(t).strip() for t in
                                          eligibility.get("tags_any") or [] if str(t).strip()})),
                   locales=tuple(sorted(set(eligibility.get("locales") or []))),
                   attributes=attributes,
                   no_open_case=bool(eligibility.get("no_open_case", True)))

    @staticmethod
    def _tiers(raw: Iterable[Mapping[str, Any]]) -> list[Tier]:
        tiers = []
        for number, item in enumerate(raw, start=1):
            name = f"tier_{number}"
            minimum = _decimal(item.get("min", ""), name)
            has_amount = item.get("amount") not in (None, "")
            has_percentage = item.get("percentage") not in (None, "")
            if has_amount == has_percentage:
                raise RuleViolation(_("Give each tier either an amount or a percentage."),
                                    field=name)
            tiers.append(Tier(minimum,
                              _decimal(item["amount"], name) if has_amount else None,
                              _decimal(item["percentage"], name) if has_percentage else None))
        if not tiers:
            raise RuleViolation(_("Add at least one tier."), field="tier_1")
        tiers.sort(key=lambda t: t.minimum)
        if len({t.minimum for t in tiers}) != len(tiers):
            raise RuleViolation(_("Two tiers start at the same amount."), field="tier_1")
        return tiers

    def to_json(self) -> dict[str, Any]:
        amount: dict[str, Any] = {"method": self.method}
        if self.fixed is not None:
            amount["fixed"] = str(self.fixed)
        if self.percentage is not None:
            amount["percentage"] = str(self.percentage)
        if self.tiers:
            amount["tiers"] = [t.to_json() for t in self.tiers]
        if self.interest_rate is not None:
            amount["interest_rate"] = str(self.interest_rate)
        if self.cap is not None:
            amount["cap"] = str(self.cap)
        return {"amount": amount, "eligibility": {
            "tags_any": list(self.tags_any), "locales": list(self.locales),
            "attributes": {k: list(v) for k, v in sorted(self.attributes.items())},
            "no_open_case": self.no_open_case}}

    def base(self, basis: Decimal) -> Decimal | None:
        """The entitlement's amount before interest; None when no tier applies."""
        if self.method == "fixed":
            return self.fixed
        if self.method == "percentage":
            assert self.percentage is not None
            return basis * self.percentage / HUNDRED
        reached = [t for t in self.tiers if basis >= t.minimum]
        return reached[-1].base(basis) if reached else None

    def interest(self, base: Decimal, days: int) -> Decimal:
        if not self.interest_rate or days <= 0:
            return Decimal(0)
        return base * self.interest_rate / HUNDRED * Decimal(days) / DAYS_IN_YEAR


@lru_cache(maxsize=64)
def minor_unit(currency: str) -> Decimal:
    """The currency's smallest unit as a quantum (0.01 for CNY, 1 for JPY), at most 0.01."""
    return Decimal(1).scaleb(-min(get_currency_precision(currency), 2))


def round_half_up(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP).quantize(Decimal("0.01"))


@dataclass
class Part:
    """One entitlement of a customer, as computed."""

    entitlement_id: int
    order_ref: str
    basis: Decimal
    basis_date: date
    currency: str
    excluded: str | None = None
    base: Decimal = Decimal(0)
    days: int = 0
    interest: Decimal = Decimal(0)

    @property
    def owed(self) -> Decimal:
        return self.base + self.interest


@dataclass
class Row:
    """One customer's outcome. ``amount`` is the rounded amount (also for a written-off one);
    ``excluded`` the reason the customer gets nothing under the programme."""

    customer_id: int
    currency: str
    parts: list[Part]
    subtotal: Decimal = Decimal(0)
    capped: bool = False
    amount: Decimal = Decimal(0)
    excluded: str | None = None
    low_value: bool = False

    @property
    def eligible(self) -> bool:
        return self.excluded is None

    def steps(self, rules: Rules) -> list[Message]:
        """The computation step by step, to be read in any language."""
        steps: list[Message] = []
        for part in self.parts:
            if part.excluded:
                steps.append(N_("Order %(order)s: left out (%(reason)s).", order=part.order_ref,
                                reason=EXCLUSION_LABELS[part.excluded]))
                continue
            steps.append(N_("Order %(order)s: basis %(basis)s %(currency)s → %(base)s.",
                            order=part.order_ref, basis=part.basis, currency=part.currency,
                            base=_shown(part.base)))
            if part.interest:
                steps.append(N_("Interest %(rate)s%% a year for %(days)s days: + %(interest)s.",
                                rate=rules.interest_rate, days=part.days,
                                interest=_shown(part.interest)))
        if any(not p.excluded for p in self.parts):
            steps.append(N_("Sum: %(sum)s.", sum=_shown(self.subtotal)))
        if self.capped:
            steps.append(N_("Capped at %(cap)s.", cap=rules.cap))
        if self.excluded and self.excluded != "written_off":
            steps.append(N_("Left out: %(reason)s.", reason=EXCLUSION_LABELS[self.excluded]))
        else:
            steps.append(N_("Rounded half-up to %(amount)s %(currency)s.", amount=self.amount,
                            currency=self.currency))
            if self.excluded == "written_off":
                steps.append(N_("Below the low-value threshold: written off."))
            elif self.low_value:
                steps.append(N_("Below the low-value threshold: paid without asking."))
        return steps


def _shown(value: Decimal) -> str:
    """An exact intermediate value, without trailing zeros beyond the cents."""
    shown = value.quantize(Decimal("0.0001")) if value.as_tuple().exponent < -4 else value
    text = format(shown.normalize(), "f")
    return text if "." in text and len(text.split(".")[1]) >= 2 else format(
        shown.quantize(Decimal("0.01")), "f")


def _customer_reason(rules: Rules, tags: list[str] | None, locale: str,
                     erased: bool) -> str | None:
    if erased:
        return "erased"
    if rules.tags_any and not set(rules.tags_any) & set(tags or []):
        return "tags"
    if rules.locales and locale not in rules.locales:
        return "locale"
    return None


def _entitlement_reason(rules: Rules, programme: Programme, currency: str,
                        attributes: Mapping[str, str] | None, open_case: bool) -> str | None:
    if currency != programme.currency:
        return "currency"
    for name, allowed in rules.attributes.items():
        if str((attributes or {}).get(name, "")).strip() not in allowed:
            return "attributes"
    if rules.no_open_case and open_case:
        return "open_case"
    return None


def compute_customer(programme: Programme, rules: Rules, customer_id: int,
                     records: Iterable[Any]) -> Row:
    """One customer's row from their entitlement records (the columns of :func:`_query`)."""
    currency, calculation_date = programme.currency, programme.calculation_date
    parts: list[Part] = []
    customer_reason: str | None = None
    for record in records:
        customer_reason = _customer_reason(rules, record.tags, record.locale, record.erased)
        part = Part(record.id, record.order_ref, record.basis_amount, record.basis_date,
                    record.currency)
        part.excluded = _entitlement_reason(rules, programme, record.currency,
                                            record.attributes, bool(record.open_case))
        if part.excluded is None:
            base = rules.base(record.basis_amount)
            if base is None:
                part.excluded = "no_tier"
            else:
                part.base = base
                part.days = max((calculation_date - record.basis_date).days, 0)
                part.interest = rules.interest(base, part.days)
        parts.append(part)
    row = Row(customer_id, currency, parts)
    included = [p for p in parts if p.excluded is None]
    row.subtotal = sum((p.owed for p in included), Decimal(0))
    total = row.subtotal
    if rules.cap is not None and total > rules.cap:
        total, row.capped = rules.cap, True
    row.amount = round_half_up(total, currency)
    if customer_reason:
        row.excluded = customer_reason
    elif not included:
        row.excluded = next((p.excluded for p in parts if p.excluded), "nothing_owed")
    elif row.amount <= 0:
        row.excluded = "nothing_owed"
    else:
        threshold = programme.low_value_threshold
        if threshold is not None and row.amount < threshold:
            row.low_value = True
            if programme.low_value_action == "write_off":
                row.excluded = "written_off"
    return row


def _query(programme: Programme, rules: Rules) -> Any:
    """The event's entitlements with what eligibility reads of their customer, by customer.
    An open case of the same customer and order counts, unless it is this programme's own."""
    entitlement = Entitlement
    if rules.no_open_case:
        own_case = exists().where(ProgrammeMember.case_id == Case.id,
                                  ProgrammeMember.programme_id == programme.id)
        open_case = exists().where(and_(
            Case.customer_id == entitlement.customer_id,
            order_ref_key(Case.order_ref) == order_ref_key(entitlement.order_ref),
            Case.status.not_in([str(s) for s in CLOSED_STATUSES]), ~own_case))
    else:
        open_case = false()
    # JSON columns the rules do not read are not fetched (decoding them is most of the cost).
    attributes = entitlement.attributes if rules.attributes else null().label("attributes")
    tags = Customer.tags if rules.tags_any else null().label("tags")
    return (select(entitlement.id, entitlement.customer_id, entitlement.order_ref,
                   entitlement.basis_amount, entitlement.currency, entitlement.basis_date,
                   attributes, tags, Customer.locale,
                   Customer.erased_at.is_not(None).label("erased"),
                   open_case.label("open_case"))
            .join(Customer, Customer.id == entitlement.customer_id)
            .where(entitlement.event_id == programme.event_id)
            .order_by(entitlement.customer_id, entitlement.id))


def compute(programme: Programme, rules: Rules | None = None) -> Iterator[Row]:
    """Every customer with entitlements in the event, in customer id order, streamed."""
    rules = rules or Rules.parse(programme.rules)
    # Core rows (no ORM loading), streamed (a server-side cursor on PostgreSQL).
    result = db.session.connection().execute(
        _query(programme, rules).execution_options(yield_per=2000))
    for customer_id, records in groupby(result, key=itemgetter(1)):
        yield compute_customer(programme, rules, customer_id, records)


def _digest(lines: Iterable[str]) -> str:
    sha = hashlib.sha256()
    for line in lines:
        sha.update(line.encode())
        sha.update(b"\n")
    return sha.hexdigest()


def entitlements_digest(event_id: int) -> str:
    """SHA-256 of the event's entitlement list as computed on (sealed payout details aside:
    they are sealed anew on each import). Read as Core rows, streamed."""
    rows = db.session.connection().execute(
        select(Entitlement.id, Entitlement.customer_id, Entitlement.order_ref,
               Entitlement.basis_amount, Entitlement.currency, Entitlement.basis_date,
               Entitlement.attributes)
        .where(Entitlement.event_id == event_id).order_by(Entitlement.id)
        .execution_options(yield_per=5000))
    return _digest(
        f"{r[0]}|{r[1]}|{r[2]}|{r[3]}|{r[4]}|{r[5].isoformat()}|"
        f"{json.dumps(r[6], sort_keys=True) if r[6] else '{}'}"
        for r in rows)


def amount_line(row: Row) -> str:
    """One line of the amount list that legal's snapshot binds (eligible customers only)."""
    return f"{row.customer_id}|{row.amount}|{row.currency}|{int(row.low_value)}"


def amounts_digest(rows: Iterable[Row]) -> str:
    return _digest(amount_line(row) for row in rows if row.eligible)


def compute_next(programme: Programme, after_customer_id: int, size: int,
                 rules: Rules | None = None) -> list[Row]:
    """The next ``size`` customers after ``after_customer_id`` (by id), computed as
    :func:`compute` does: for work done in chunks that commit in between (a streamed cursor
    does not outlive a commit). Empty when none is left."""
    rules = rules or Rules.parse(programme.rules)
    next_ids = (select(Entitlement.customer_id)
                .where(Entitlement.event_id == programme.event_id,
                       Entitlement.customer_id > after_customer_id)
                .group_by(Entitlement.customer_id).order_by(Entitlement.customer_id)
                .limit(size).subquery())
    last = db.session.scalar(select(func.max(next_ids.c.customer_id)))
    if last is None:
        return []
    result = db.session.execute(_query(programme, rules).where(
        Entitlement.customer_id > after_customer_id, Entitlement.customer_id <= last))
    return [compute_customer(programme, rules, customer_id, records)
            for customer_id, records in groupby(result, key=lambda r: r.customer_id)]
