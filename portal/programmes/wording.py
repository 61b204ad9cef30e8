"""A programme's rules in words, in the reader's language (the programme page and legal's
sign-off page read the same sentences)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _

from portal.errors import RuleViolation
from portal.i18n import LOCALE_NAMES
from portal.programmes.rules import Rules


def rules_in_words(rules_json: Mapping[str, Any], currency: str,
                   low_value_threshold: Any = None, low_value_action: str = "pay") -> list[str]:
    """One sentence per rule: eligibility, amount, interest, cap, rounding, low value."""
    try:
        rules = Rules.parse(rules_json)
    except RuleViolation as err:
        return [_("The rules cannot be read: %(why)s", why=err.message)]
    lines = []
    if rules.tags_any:
        lines.append(_("Customers tagged %(tags)s.", tags=", ".join(rules.tags_any)))
    else:
        lines.append(_("Every customer of the event with an entitlement."))
    if rules.locales:
        lines.append(_("Only customers whose language is %(locales)s.",
                       locales=", ".join(LOCALE_NAMES.get(code, code) for code in rules.locales)))
    for name, values in rules.attributes.items():
        lines.append(_("Only entitlements whose “%(name)s” is %(values)s.", name=name,
                       values=" / ".join(values)))
    if rules.no_open_case:
        lines.append(_("Orders the customer already has an open case for are left out."))
    if rules.method == "fixed":
        lines.append(_("%(amount)s %(currency)s per order.", amount=rules.fixed,
                       currency=currency))
    elif rules.method == "percentage":
        lines.append(_("%(percentage)s%% of each order's basis amount.",
                       percentage=rules.percentage))
    else:
        for tier in rules.tiers:
            if tier.amount is not None:
                lines.append(_("Basis from %(min)s: %(amount)s %(currency)s per order.",
                               min=tier.minimum, amount=tier.amount, currency=currency))
            else:
                lines.append(_("Basis from %(min)s: %(percentage)s%% of the basis.",
                               min=tier.minimum, percentage=tier.percentage))
    if rules.interest_rate:
        lines.append(_("Plus simple interest of %(rate)s%% a year (Actual/365) from each "
                       "order's basis date to the calculation date.", rate=rules.interest_rate))
    if rules.cap is not None:
        lines.append(_("At most %(cap)s %(currency)s per customer.", cap=rules.cap,
                       currency=currency))
    lines.append(_("The customer's sum is rounded once, half-up, to the currency's smallest "
                   "unit."))
    if low_value_threshold not in (None, "", "None"):
        if low_value_action == "write_off":
            lines.append(_("Amounts below %(threshold)s %(currency)s are written off.",
                           threshold=low_value_threshold, currency=currency))
        else:
            lines.append(_("Amounts below %(threshold)s %(currency)s are paid without asking.",
                           threshold=low_value_threshold, currency=currency))
    return lines
