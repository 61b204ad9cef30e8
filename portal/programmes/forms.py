"""The programme form: settings, amount rules (fixed, percentage or tier rows), eligibility,
low-value threshold, budget and terms. The service checks every value; the form only carries
them (``values``) and fills itself from a programme (``from_programme``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.widgets import CheckboxInput, ListWidget

from portal.errors import RuleViolation
from portal.i18n import LOCALE_NAMES, local_to_utc, utc_to_local
from portal.programmes.models import LOW_VALUE_LABELS, MODE_LABELS, Programme
from portal.programmes.rules import METHOD_LABELS

TIER_ROWS = 5
KIND_CHOICES = [("compensation", _l("Compensation")), ("refund", _l("Refund"))]


class ProgrammeForm(FlaskForm):
    name_zh = StringField(_l("Name (Chinese)"))
    name_en = StringField(_l("Name (English)"))
    kind = RadioField(_l("Kind"), choices=KIND_CHOICES, default="compensation",
                      validate_choice=False)
    currency = StringField(_l("Currency"), default="CNY", render_kw={"maxlength": 3})
    mode = RadioField(_l("Mode"), choices=list(MODE_LABELS.items()), default="proactive",
                      validate_choice=False)
    deadline = StringField(_l("Deadline for acceptances (opt-in)"),
                           render_kw={"type": "datetime-local"})
    calculation_date = StringField(_l("Calculation date (interest runs until)"),
                                   render_kw={"type": "date"})
    method = RadioField(_l("Amount"), choices=list(METHOD_LABELS.items()), default="percentage",
                        validate_choice=False)
    fixed = StringField(_l("Fixed amount per order"), render_kw={"inputmode": "decimal"})
    percentage = StringField(_l("Percentage of the basis amount"),
                             render_kw={"inputmode": "decimal"})
    interest_rate = StringField(_l("Simple interest, percent a year (optional)"),
                                render_kw={"inputmode": "decimal"})
    cap = StringField(_l("Cap per customer (optional)"), render_kw={"inputmode": "decimal"})
    tags_any = StringField(_l("Customers with any of these tags (comma-separated; empty: all)"))
    locales = SelectMultipleField(_l("Customers' languages (none ticked: all)"),
                                  choices=list(LOCALE_NAMES.items()),
                                  option_widget=CheckboxInput(), validate_choice=False,
                                  widget=ListWidget(prefix_label=False))
    attributes = TextAreaField(_l("Entitlement attributes, one name=value per line "
                                  "(several values: name=a,b)"), render_kw={"rows": 3})
    no_open_case = BooleanField(_l("Only customers without an open case for the order"),
                                default=True)
    low_value_threshold = StringField(_l("Low-value threshold (optional)"),
                                      render_kw={"inputmode": "decimal"})
    low_value_action = RadioField(_l("Below the threshold the amount is"),
                                  choices=list(LOW_VALUE_LABELS.items()), default="pay",
                                  validate_choice=False)
    budget = StringField(_l("Budget (optional)"), render_kw={"inputmode": "decimal"})
    terms_zh = TextAreaField(_l("Offer terms shown to customers (Chinese)"),
                             render_kw={"rows": 6})
    terms_en = TextAreaField(_l("Offer terms shown to customers (English)"),
                             render_kw={"rows": 6})
    lock_version = HiddenField()

    def tier_rows(self) -> list[tuple[Any, Any, Any]]:
        return [(self[f"tier_{n}"], self[f"tier_{n}_amount"], self[f"tier_{n}_percentage"])
                for n in range(1, TIER_ROWS + 1)]

    def _tiers(self) -> list[dict[str, str]]:
        tiers = []
        for minimum, amount, percentage in self.tier_rows():
            row = {"min": (minimum.data or "").strip(), "amount": (amount.data or "").strip(),
                   "percentage": (percentage.data or "").strip()}
            if any(row.values()):
                tiers.append({k: v for k, v in row.items() if v or k == "min"})
        return tiers

    def _attributes(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for line in (self.attributes.data or "").splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise RuleViolation(_("Write each attribute as name=value."), field="attributes")
            found.setdefault(name.strip(), []).extend(
                v.strip() for v in value.split(",") if v.strip())
        return found

    def _deadline(self) -> datetime | None:
        raw = (self.deadline.data or "").strip()
        if not raw:
            return None
        try:
            return local_to_utc(datetime.fromisoformat(raw))
        except ValueError:
            raise RuleViolation(_("Enter a date and time."), field="deadline") from None

    def values(self) -> dict[str, Any]:
        """What ``services.clean`` reads; a malformed deadline or attribute line is refused
        here with the field named."""
        method = self.method.data or ""
        amount: dict[str, Any] = {"method": method,
                                  "interest_rate": (self.interest_rate.data or "").strip(),
                                  "cap": (self.cap.data or "").strip()}
        if method == "fixed":
            amount["fixed"] = (self.fixed.data or "").strip()
        elif method == "percentage":
            amount["percentage"] = (self.percentage.data or "").strip()
        elif method == "tiers":
            amount["tiers"] = self._tiers()
        tags = [t.strip() for t in (self.tags_any.data or "").replace("，", ",").split(",")]
        return {
            "name_zh": self.name_zh.data, "name_en": self.name_en.data, "kind": self.kind.data,
            "currency": self.currency.data, "mode": self.mode.data,
            "deadline": self._deadline(), "calculation_date": self.calculation_date.data,
            "rules": {"amount": amount, "eligibility": {
                "tags_any": [t for t in tags if t], "locales": self.locales.data or [],
                "attributes": self._attributes(), "no_open_case": bool(self.no_open_case.data)}},
            "low_value_threshold": self.low_value_threshold.data,
            "low_value_action": self.low_value_action.data, "budget": self.budget.data,
            "terms_zh": self.terms_zh.data, "terms_en": self.terms_en.data,
        }

    @classmethod
    def from_programme(cls, programme: Programme) -> ProgrammeForm:
        rules = programme.rules or {}
        amount, eligibility = rules.get("amount", {}), rules.get("eligibility", {})
        local_deadline = utc_to_local(programme.deadline)
        data: dict[str, Any] = {
            "name_zh": programme.name_zh, "name_en": programme.name_en, "kind": programme.kind,
            "currency": programme.currency, "mode": programme.mode,
            "deadline": local_deadline.strftime("%Y-%m-%dT%H:%M") if local_deadline else "",
            "calculation_date": programme.calculation_date.isoformat(),
            "method": amount.get("method", "fixed"), "fixed": amount.get("fixed", ""),
            "percentage": amount.get("percentage", ""),
            "interest_rate": amount.get("interest_rate", ""), "cap": amount.get("cap", ""),
            "tags_any": ", ".join(eligibility.get("tags_any", [])),
            "locales": eligibility.get("locales", []),
            "attributes": "\n".join(f"{k}={','.join(v)}" for k, v in
                                    (eligibility.get("attributes") or {}).items()),
            "no_open_case": eligibility.get("no_open_case", True),
            "low_value_threshold": _amount(programme.low_value_threshold),
            "low_value_action": programme.low_value_action, "budget": _amount(programme.budget),
            "terms_zh": programme.terms_zh, "terms_en": programme.terms_en,
            "lock_version": str(programme.lock_version),
        }
        for number, tier in enumerate(amount.get("tiers", []), start=1):
            if number > TIER_ROWS:
                break
            data[f"tier_{number}"] = tier.get("min", "")
            data[f"tier_{number}_amount"] = tier.get("amount", "")
            data[f"tier_{number}_percentage"] = tier.get("percentage", "")
        return cls(data=data)


def _amount(value: Decimal | None) -> str:
    return "" if value is None else str(value)


for _number in range(1, TIER_ROWS + 1):
    setattr(ProgrammeForm, f"tier_{_number}",
            StringField(_l("Tier %(n)d from basis amount", n=_number),
                        render_kw={"inputmode": "decimal"}))
    setattr(ProgrammeForm, f"tier_{_number}_amount",
            StringField(_l("amount"), render_kw={"inputmode": "decimal"}))
    setattr(ProgrammeForm, f"tier_{_number}_percentage",
            StringField(_l("or percentage"), render_kw={"inputmode": "decimal"}))


class SignoffRequestForm(FlaskForm):
    acknowledge_budget = BooleanField(
        _l("I have seen that the total is over the budget and ask for sign-off anyway"))


class EntitlementImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])
