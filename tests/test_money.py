"""Money is exact everywhere: one parser for every amount field, and a column type that never
lets an amount through a binary float, in storage or in SQL aggregates, on either database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import StatementError

from portal import money
from portal.accounts import Role
from portal.cases import services as cases
from portal.cases import settings
from portal.cases.models import Case, Payment, SignoffThreshold
from portal.centre import services as read_model
from portal.errors import RuleViolation
from portal.extensions import db
from portal.main import services as dashboard
from portal.models import utcnow
from portal.postmortems import services as postmortems
from tests.case_helpers import make_case, make_customer, second_agent

# --- the parser -------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("1280.5", "1280.50"), ("1280", "1280.00"), (" 12.30 ", "12.30"), ("1,280.50", "1280.50"),
    ("10,000,000", "10000000.00"), ("0.01", "0.01"), ("12.300", "12.30"),
    # full-width digits, point and comma (typed with a Chinese input method)
    ("１２８０.５０", "1280.50"), ("１，２８０．５", "1280.50"),
])
def test_plain_decimal_amounts_are_accepted(raw, expected) -> None:
    value = money.parse_amount(raw)
    assert isinstance(value, Decimal) and str(value) == expected


@pytest.mark.parametrize("raw", [
    "1e100", "1e999999999", "1E2", "1e-2", "1_000", "٣٠٠", "١٢.٥", "५००", "1²", "+5", "0x10",
    "12.5.1", "1,00", "12,34.5", ".5", "5.", "1 000", "NaN", "-Infinity", "", "   ",
    "9" * 400,
])
def test_anything_but_plain_decimal_notation_is_refused(raw) -> None:
    with pytest.raises(RuleViolation) as err:
        money.parse_amount(raw, field="amount")
    assert err.value.field == "amount"


def test_refusals_say_why() -> None:
    with pytest.raises(RuleViolation, match="two decimal places"):
        money.parse_amount("10.005")
    with pytest.raises(RuleViolation, match="more than zero"):
        money.parse_amount("-5")
    with pytest.raises(RuleViolation, match="above the limit"):
        money.parse_amount("10000000.01")
    with pytest.raises(RuleViolation, match="never floats"):
        money.parse_amount(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["1e100", "1e999999999", "٣٠٠", "1_000", "1e-2"])
def test_a_case_form_with_such_an_amount_shows_the_message_next_to_the_field(
        client, auth, users, raw) -> None:
    customer = make_customer(users)
    auth.login(Role.AGENT)
    for lang, message in (("en", "ordinary digits"), ("zh_CN", "普通数字")):
        response = client.post(f"/cases/new/{customer.id}?lang={lang}", data={
            "kind": "refund", "order_ref": "O-1", "amount": raw, "currency": "CNY",
            "reason": "other"})
        assert response.status_code == 422
        assert 'id="amount-error"' in response.text and message in response.text
    assert db.session.scalar(select(Case)) is None


@pytest.mark.parametrize("raw", ["1e100", "1e999999999"])
def test_a_payment_with_an_exponent_amount_is_refused_on_the_page(client, auth, users,
                                                                   raw) -> None:
    case = make_case(users)
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    cases.approve(case, actor=second_agent())
    auth.login(Role.AGENT)
    response = client.post(f"/cases/{case.id}/pay", data={"amount": raw,
                                                          "payout_ref": "PAY-0001"})
    assert response.status_code == 422
    assert 'id="amount-error"' in response.text and "ordinary digits" in response.text
    assert db.session.scalar(select(Payment)) is None


def test_case_settings_refuse_an_exponent_threshold_next_to_the_field(client, auth,
                                                                       users) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/cases/settings?lang=zh_CN", data={
        "sla_sev1": "24", "sla_sev2": "48", "sla_sev3": "72", "sla_sev4": "120",
        "threshold_CNY": "1e100"})
    assert response.status_code == 422
    assert 'id="threshold_CNY-error"' in response.text and "普通数字" in response.text


# --- the column type --------------------------------------------------------------------------


def _raw(sql: str) -> list[object]:
    return list(db.session.execute(text(sql)).scalars())


def test_money_is_stored_without_binary_floats(app, users) -> None:
    case = make_case(users, amount="0.10")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    case.approved_amount = Decimal("0.10")
    db.session.add(Payment(case_id=case.id, amount=Decimal("0.10"), currency="CNY",
                           payout_ref="PAY-1", paid_by_id=users[Role.AGENT].id))
    settings.set_threshold("JPY", "123.45", actor=users[Role.ADMIN])
    db.session.commit()
    stored = (_raw("SELECT amount FROM case_file") + _raw("SELECT approved_amount FROM case_file")
              + _raw("SELECT amount FROM case_payment")
              + _raw("SELECT amount FROM signoff_threshold"))
    assert stored and not any(isinstance(value, float) for value in stored), stored
    if db.engine.dialect.name == "sqlite":
        kinds = set(_raw("SELECT typeof(amount) FROM case_file UNION "
                         "SELECT typeof(amount) FROM case_payment UNION "
                         "SELECT typeof(amount) FROM signoff_threshold"))
        assert kinds == {"integer"}
    db.session.expire_all()
    assert db.session.get(Case, case.id).amount == Decimal("0.10")
    assert db.session.get(SignoffThreshold, "JPY").amount == Decimal("123.45")


def test_the_column_refuses_floats_and_silent_rounding(app, users) -> None:
    case = make_case(users)
    db.session.commit()
    for bad in (0.1, Decimal("1.005")):
        case.approved_amount = bad
        with pytest.raises(StatementError):
            db.session.flush()
        db.session.rollback()


def _cases(users, amount: str, count: int) -> tuple[int, Decimal]:
    """``count`` approved cases and ``count`` paid ones of ``amount`` each, in one event."""
    customer = make_customer(users)
    agent = users[Role.AGENT].id
    now = utcnow()
    value = Decimal(amount)
    rows = [{"ref": f"C-2026-{n:05d}", "event_id": customer.event_id,
             "customer_id": customer.id, "kind": "refund", "order_ref": f"O-{n}",
             "amount": value, "approved_amount": value, "currency": "CNY", "reason": "other",
             "description": "", "status": "approved" if n % 2 else "paid",
             "proposed_by_id": agent, "due_at": now + timedelta(days=1), "created_at": now,
             "updated_at": now, "lock_version": 1} for n in range(1, 2 * count + 1)]
    db.session.execute(insert(Case), rows)
    paid = db.session.scalars(select(Case.id).where(Case.status == "paid")).all()
    db.session.execute(insert(Payment), [
        {"case_id": case_id, "amount": value, "currency": "CNY", "payout_ref": f"PAY-{case_id}",
         "paid_by_id": agent, "paid_at": now} for case_id in paid])
    db.session.commit()
    return customer.event_id, value


@pytest.mark.parametrize(("amount", "count", "open_total"), [
    ("0.10", 3, "0.30"),
    ("9999999.99", 1000, "9999999990.00"),
])
def test_sql_sums_of_money_are_exact(app, users, amount, count, open_total) -> None:
    event_id, _value = _cases(users, amount, count)
    expected, everything = Decimal(open_total), Decimal(open_total) * 2

    def exact(value: object, want: Decimal) -> None:
        assert isinstance(value, Decimal) and value == want and str(value) == str(want)

    raw = db.session.execute(text("SELECT SUM(amount) FROM case_file")).scalar()
    assert not isinstance(raw, float)
    exact(db.session.scalar(select(func.sum(Case.amount))), everything)
    exact(db.session.scalar(select(func.sum(Payment.amount))), expected)
    from portal.events.models import Event

    event = db.session.get(Event, event_id)
    exact(read_model.command_centre(event).open_totals["CNY"], expected)
    (row,) = dashboard.amounts_by_event()
    exact(row.proposed, everything)
    exact(row.approved, everything)
    exact(row.paid, expected)
    (line,) = postmortems.facts(event).money
    exact(line.proposed, everything)
    exact(line.approved, everything)
    exact(line.paid, expected)
