"""The programme computation (``portal.programmes.rules``) against tables computed by hand.

Each expected amount below was worked out on paper from the stated rules: base per order
(fixed / percentage / tier), simple interest Actual/365 from the basis date to the
calculation date, sum, cap, one half-up rounding to the currency's minor unit.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from portal.accounts import Role
from portal.cases import services as cases
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events import services as events
from portal.extensions import db
from portal.models import utcnow
from portal.programmes.models import Entitlement, Programme
from portal.programmes.rules import (
    Rules,
    amounts_digest,
    compute,
    entitlements_digest,
    round_half_up,
)

D = Decimal


@pytest.fixture
def event(app):
    made = events.create_event(title="Outage", kind="incident", severity="sev2", cause="system")
    db.session.commit()
    return made


_refs = iter(range(1, 10_000))


def customer(event, *, tags: list[str] | None = None, locale: str = "zh_CN",
             erased: bool = False) -> Customer:
    made = Customer(event_id=event.id, external_ref=f"C{next(_refs)}", name="Kunde",
                    tags=tags or [], locale=locale, erased_at=utcnow() if erased else None)
    db.session.add(made)
    db.session.flush()
    return made


def owed(who: Customer, basis: str, *, order: str | None = None, currency: str = "CNY",
         basis_date: date = date(2028, 1, 1), **attributes: str) -> Entitlement:
    row = Entitlement(event_id=who.event_id, customer_id=who.id,
                      order_ref=order or f"O-{next(_refs)}", basis_amount=D(basis),
                      currency=currency, basis_date=basis_date, attributes=attributes)
    db.session.add(row)
    db.session.flush()
    return row


def programme(event, amount: dict[str, Any], *, currency: str = "CNY",
              eligibility: dict[str, Any] | None = None, low_value: str | None = None,
              action: str = "pay", calculation_date: date = date(2029, 1, 1)) -> Programme:
    made = Programme(event_id=event.id, name_zh="补偿", name_en="Compensation",
                     kind="compensation", currency=currency, calculation_date=calculation_date,
                     rules=Rules.parse({"amount": amount,
                                        "eligibility": eligibility or {}}).to_json(),
                     low_value_threshold=D(low_value) if low_value else None,
                     low_value_action=action)
    db.session.add(made)
    db.session.flush()
    return made


def outcome(prog: Programme) -> dict[int, tuple[Decimal, str | None]]:
    return {row.customer_id: (row.amount, row.excluded) for row in compute(prog)}


# --- rounding --------------------------------------------------------------------------------


@pytest.mark.parametrize(("exact", "currency", "rounded"), [
    ("0.125", "CNY", "0.13"), ("2.675", "CNY", "2.68"), ("2.665", "CNY", "2.67"),
    ("2.6749999", "CNY", "2.67"), ("1.005", "USD", "1.01"), ("0.005", "EUR", "0.01"),
    ("0.0049", "CNY", "0.00"), ("123.5", "JPY", "124.00"), ("123.49", "JPY", "123.00"),
    ("0.5", "JPY", "1.00"), ("10", "CNY", "10.00"),
])
def test_rounding_is_half_up_to_the_minor_unit(app, exact, currency, rounded) -> None:
    result = round_half_up(D(exact), currency)
    assert result == D(rounded)
    assert str(result) == rounded  # stored at two places, JPY with zero cents


# --- amounts: hand-computed tables -----------------------------------------------------------

# (method rules, basis of each order, expected amount)
AMOUNT_TABLE = [
    # fixed: one amount per order, summed
    ({"method": "fixed", "fixed": "50"}, ["10.00"], "50.00"),
    ({"method": "fixed", "fixed": "50"}, ["10.00", "99999.00"], "100.00"),
    ({"method": "fixed", "fixed": "0.125"}, ["1.00"], "0.13"),
    # percentage of the basis, exact until the one rounding
    ({"method": "percentage", "percentage": "10"}, ["123.45"], "12.35"),   # 12.345
    ({"method": "percentage", "percentage": "10"}, ["26.75"], "2.68"),     # 2.675
    ({"method": "percentage", "percentage": "10"}, ["1.25"], "0.13"),      # 0.125
    ({"method": "percentage", "percentage": "10"}, ["0.05", "0.05"], "0.01"),  # .005+.005
    ({"method": "percentage", "percentage": "33.3333"}, ["100.00"], "33.33"),
    ({"method": "percentage", "percentage": "150"}, ["80.00"], "120.00"),
    # tiers: the highest tier whose lower bound the basis reaches
    ({"method": "tiers", "tiers": [{"min": "0", "amount": "10"},
                                   {"min": "100", "percentage": "5"},
                                   {"min": "1000", "amount": "80"}]}, ["50.00"], "10.00"),
    ({"method": "tiers", "tiers": [{"min": "0", "amount": "10"},
                                   {"min": "100", "percentage": "5"},
                                   {"min": "1000", "amount": "80"}]}, ["100.00"], "5.00"),
    ({"method": "tiers", "tiers": [{"min": "0", "amount": "10"},
                                   {"min": "100", "percentage": "5"},
                                   {"min": "1000", "amount": "80"}]}, ["999.99"], "50.00"),
    ({"method": "tiers", "tiers": [{"min": "0", "amount": "10"},
                                   {"min": "100", "percentage": "5"},
                                   {"min": "1000", "amount": "80"}]}, ["1000.00"], "80.00"),
    # tiers given out of order are sorted by their lower bound
    ({"method": "tiers", "tiers": [{"min": "1000", "amount": "80"},
                                   {"min": "0", "amount": "10"}]},
     ["5.00", "2000.00"], "90.00"),
    # cap: applied to the customer's sum, before the rounding
    ({"method": "fixed", "fixed": "75", "cap": "120"}, ["1.00", "1.00"], "120.00"),
    ({"method": "fixed", "fixed": "75", "cap": "150"}, ["1.00", "1.00"], "150.00"),
    ({"method": "fixed", "fixed": "75", "cap": "200"}, ["1.00", "1.00"], "150.00"),
    ({"method": "percentage", "percentage": "10", "cap": "10.005"}, ["500.00"], "10.01"),
]


@pytest.mark.parametrize(("amount", "bases", "expected"), AMOUNT_TABLE)
def test_amounts_match_the_hand_computed_table(event, amount, bases, expected) -> None:
    who = customer(event)
    for basis in bases:
        owed(who, basis)
    prog = programme(event, amount)
    assert outcome(prog) == {who.id: (D(expected), None)}


# Interest Actual/365 Fixed, base × rate/100 × days/365, days from the basis date to the
# calculation date; 2028 is a leap year (2028-01-01 → 2029-01-01 is 366 days).
INTEREST_TABLE = [
    # fixed 365.00 at 3 %, 366 days: 365 × 0.03 × 366/365 = 10.98 → 375.98
    ({"method": "fixed", "fixed": "365", "interest_rate": "3"},
     date(2028, 1, 1), date(2029, 1, 1), "375.98", 366),
    # 10 % of 1000 = 100 at 3 %, 366 days: 100 × 0.03 × 366/365 = 3.0082191… → 103.01
    ({"method": "percentage", "percentage": "10", "interest_rate": "3"},
     date(2028, 1, 1), date(2029, 1, 1), "103.01", 366),
    # a year without 29 February: 365 days → exactly 3.00
    ({"method": "percentage", "percentage": "10", "interest_rate": "3"},
     date(2027, 1, 1), date(2028, 1, 1), "103.00", 365),
    # across 29 February 2028 only: 2028-02-28 → 2028-03-01 is 2 days:
    # 100 × 0.05 × 2/365 = 0.0273972… → 100.03
    ({"method": "fixed", "fixed": "100", "interest_rate": "5"},
     date(2028, 2, 28), date(2028, 3, 1), "100.03", 2),
    # basis date after the calculation date: no interest (never negative)
    ({"method": "fixed", "fixed": "100", "interest_rate": "5"},
     date(2029, 6, 1), date(2029, 1, 1), "100.00", 0),
    # interest before the cap: 365 + 10.98 = 375.98 capped at 370
    ({"method": "fixed", "fixed": "365", "interest_rate": "3", "cap": "370"},
     date(2028, 1, 1), date(2029, 1, 1), "370.00", 366),
]


@pytest.mark.parametrize(("amount", "basis_date", "calculation_date", "expected", "days"),
                         INTEREST_TABLE)
def test_interest_actual_365_over_a_leap_year(event, amount, basis_date, calculation_date,
                                              expected, days) -> None:
    who = customer(event)
    owed(who, "1000.00", basis_date=basis_date)
    prog = programme(event, amount, calculation_date=calculation_date)
    [row] = list(compute(prog))
    assert row.amount == D(expected)
    assert row.parts[0].days == days
    assert row.excluded is None


def test_jpy_has_no_minor_unit(event) -> None:
    rounded_up, rounded_down, fixed = customer(event), customer(event), customer(event)
    owed(rounded_up, "1235.00", currency="JPY")    # 10 % = 123.5 → 124
    owed(rounded_down, "1234.00", currency="JPY")  # 10 % = 123.4 → 123
    prog = programme(event, {"method": "percentage", "percentage": "10"}, currency="JPY")
    assert outcome(prog) == {rounded_up.id: (D("124.00"), None),
                             rounded_down.id: (D("123.00"), None)}
    owed(fixed, "1.00", currency="JPY")
    fixed_prog = programme(event, {"method": "fixed", "fixed": "100.5"}, currency="JPY")
    assert outcome(fixed_prog)[fixed.id] == (D("101.00"), None)


def test_steps_show_the_computation(event) -> None:
    who = customer(event)
    owed(who, "1000.00", order="WD-1")
    prog = programme(event, {"method": "percentage", "percentage": "10",
                             "interest_rate": "3", "cap": "103"})
    [row] = list(compute(prog))
    steps = [str(step) for step in row.steps(Rules.parse(prog.rules))]
    assert steps[0] == "Order WD-1: basis 1000.00 CNY → 100.00."
    assert steps[1] == "Interest 3% a year for 366 days: + 3.0082."
    assert steps[2] == "Sum: 103.0082."
    assert steps[3] == "Capped at 103."
    assert steps[4] == "Rounded half-up to 103.00 CNY."


# --- eligibility and exclusions --------------------------------------------------------------


def test_eligibility_and_exclusion_reasons(event, users) -> None:
    vip = customer(event, tags=["vip", "north"])
    untagged = customer(event, tags=["other"])
    english = customer(event, tags=["vip"], locale="en")
    wrong_region = customer(event, tags=["vip"])
    mixed = customer(event, tags=["vip"])
    open_case = customer(event, tags=["vip"])
    other_currency = customer(event, tags=["vip"])
    erased = customer(event, tags=["vip"], erased=True)
    for who in (vip, untagged, english, erased):
        owed(who, "100.00", region="north")
    owed(wrong_region, "100.00", region="south")
    owed(mixed, "100.00", region="north")
    owed(mixed, "300.00", region="south")          # left out, the other order counts
    owed(open_case, "100.00", order="WD-OPEN", region="north")
    owed(other_currency, "100.00", currency="USD", region="north")
    cases.open_case(open_case, cases.CaseInput("refund", " wd-open ", "10.00", "CNY", "other",
                                               "", None), actor=users[Role.AGENT])
    prog = programme(event, {"method": "percentage", "percentage": "10"},
                     eligibility={"tags_any": ["vip"], "locales": ["zh_CN"],
                                  "attributes": {"region": ["north"]}, "no_open_case": True})
    assert outcome(prog) == {
        vip.id: (D("10.00"), None),
        untagged.id: (D("10.00"), "tags"),
        english.id: (D("10.00"), "locale"),
        wrong_region.id: (D("0.00"), "attributes"),
        mixed.id: (D("10.00"), None),
        open_case.id: (D("0.00"), "open_case"),
        other_currency.id: (D("0.00"), "currency"),
        erased.id: (D("10.00"), "erased"),
    }
    # Without the "no open case" rule the open case does not count.
    lenient = programme(event, {"method": "percentage", "percentage": "10"},
                        eligibility={"no_open_case": False})
    assert outcome(lenient)[open_case.id] == (D("10.00"), None)


def test_a_basis_below_every_tier_is_left_out(event) -> None:
    who = customer(event)
    owed(who, "10.00")
    prog = programme(event, {"method": "tiers", "tiers": [{"min": "20", "amount": "5"}]})
    assert outcome(prog) == {who.id: (D("0.00"), "no_tier")}


def test_an_amount_that_rounds_to_nothing_is_left_out(event) -> None:
    who = customer(event)
    owed(who, "0.04")
    prog = programme(event, {"method": "percentage", "percentage": "10"})  # 0.004 → 0.00
    assert outcome(prog) == {who.id: (D("0.00"), "nothing_owed")}


@pytest.mark.parametrize(("action", "low", "exactly", "above"), [
    ("pay", (D("4.99"), None), (D("5.00"), None), (D("5.01"), None)),
    ("write_off", (D("4.99"), "written_off"), (D("5.00"), None), (D("5.01"), None)),
])
def test_low_value_threshold(event, action, low, exactly, above) -> None:
    below, at, over = customer(event), customer(event), customer(event)
    owed(below, "49.90")
    owed(at, "50.00")
    owed(over, "50.10")
    prog = programme(event, {"method": "percentage", "percentage": "10"}, low_value="5.00",
                     action=action)
    rows = {row.customer_id: row for row in compute(prog)}
    assert (rows[below.id].amount, rows[below.id].excluded) == low
    assert (rows[at.id].amount, rows[at.id].excluded) == exactly
    assert (rows[over.id].amount, rows[over.id].excluded) == above
    assert rows[below.id].low_value and not rows[at.id].low_value


# --- digests ---------------------------------------------------------------------------------


def test_digests_are_stable_and_move_with_the_content(event) -> None:
    first, second = customer(event), customer(event)
    row = owed(first, "100.00")
    owed(second, "200.00", region="north")
    prog = programme(event, {"method": "percentage", "percentage": "10"})
    entitlements, amounts = entitlements_digest(event.id), amounts_digest(compute(prog))
    assert len(entitlements) == len(amounts) == 64
    assert entitlements_digest(event.id) == entitlements
    assert amounts_digest(compute(prog)) == amounts

    row.attributes = {"region": "south"}  # an attribute the amounts do not read
    db.session.flush()
    assert entitlements_digest(event.id) != entitlements
    assert amounts_digest(compute(prog)) == amounts

    row.basis_amount = D("100.01")  # 10.001 → still 10.00: same amounts, other entitlements
    db.session.flush()
    assert amounts_digest(compute(prog)) == amounts
    row.basis_amount = D("100.10")  # 10.01
    db.session.flush()
    assert amounts_digest(compute(prog)) != amounts


# --- refused rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "field"), [
    ({"method": "fixed", "fixed": "-5"}, "fixed"),
    ({"method": "fixed", "fixed": "0"}, "fixed"),
    ({"method": "fixed", "fixed": "abc"}, "fixed"),
    ({"method": "fixed", "fixed": "NaN"}, "fixed"),
    ({"method": "fixed", "fixed": "Infinity"}, "fixed"),
    ({"method": "fixed", "fixed": 1.5}, "fixed"),
    ({"method": "percentage", "percentage": "-10"}, "percentage"),
    ({"method": "percentage", "percentage": "1001"}, "percentage"),
    ({"method": "fixed", "fixed": "5", "interest_rate": "-1"}, "interest_rate"),
    ({"method": "fixed", "fixed": "5", "interest_rate": "101"}, "interest_rate"),
    ({"method": "fixed", "fixed": "5", "cap": "0"}, "cap"),
    ({"method": "fixed", "fixed": "5", "cap": "-3"}, "cap"),
    ({"method": "tiers", "tiers": []}, "tier_1"),
    ({"method": "tiers", "tiers": [{"min": "0"}]}, "tier_1"),
    ({"method": "tiers", "tiers": [{"min": "0", "amount": "1", "percentage": "2"}]}, "tier_1"),
    ({"method": "tiers", "tiers": [{"min": "0", "amount": "1"},
                                   {"min": "-1", "amount": "2"}]}, "tier_2"),
    ({"method": "tiers", "tiers": [{"min": "0", "amount": "1"},
                                   {"min": "0", "percentage": "2"}]}, "tier_1"),
    ({"method": "divide"}, "method"),
])
def test_rules_that_cannot_be_computed_are_refused(app, amount, field) -> None:
    with pytest.raises(RuleViolation) as refused:
        Rules.parse({"amount": amount})
    assert refused.value.field == field
    assert refused.value.message


def test_rules_round_trip_through_json(app) -> None:
    data = {"amount": {"method": "tiers", "tiers": [{"min": "100", "percentage": "5"},
                                                    {"min": "0", "amount": "10"}],
                       "interest_rate": "3", "cap": "500"},
            "eligibility": {"tags_any": ["b", "a"], "locales": ["en"],
                            "attributes": {"region": ["north"]}, "no_open_case": False}}
    rules = Rules.parse(data)
    assert Rules.parse(rules.to_json()) == rules
    assert rules.to_json()["amount"]["tiers"][0] == {"min": "0", "amount": "10"}
    assert rules.tags_any == ("a", "b")
