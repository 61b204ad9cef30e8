"""Customers' payout details: IBANs checked with schwifty, the account sealed at rest (never in
clear in the database file or the audit trail), masked to staff but admins, erased with the
customer."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import render_template
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers import payout
from portal.customers.payout import PayoutDetails
from portal.errors import RuleViolation
from portal.extensions import db
from portal.lifecycle import erasure
from tests.case_helpers import make_case, make_customer

IBAN = "DE89 3704 0044 0532 0130 00"
HOLDER = "Zhang Weiming Holder"
ACCOUNT = "6222 0212 3456 7890 128"


def _bank(customer, account: str = ACCOUNT, holder: str = HOLDER):
    return payout.confirm(customer, {"method": "bank", "holder": holder, "bank": "工商银行",
                                     "account": account}, "198.51.100.23")


def test_a_valid_iban_is_stored_compact(app, users) -> None:
    customer = make_customer(users)
    _bank(customer, IBAN)
    account = payout.view_for(customer).account
    assert (account.account, account.is_iban) == ("DE89370400440532013000", True)
    assert account.masked_account == "•••• 3000"


@pytest.mark.parametrize("wrong", ["DE88 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 3",
                                   "DE89 3704 0044 0532 0130"])
def test_an_iban_with_a_wrong_checksum_or_length_is_refused(app, users, wrong) -> None:
    customer = make_customer(users)
    with pytest.raises(RuleViolation) as refused:
        _bank(customer, wrong)
    assert refused.value.field == "account" and "IBAN" in refused.value.message
    assert payout.details_for(customer) is None


def test_an_account_number_that_is_not_iban_shaped_is_allowed(app, users) -> None:
    customer = make_customer(users)
    _bank(customer, ACCOUNT)
    account = payout.view_for(customer).account
    assert (account.account, account.is_iban) == ("6222021234567890128", False)
    for wrong in ("abc", "12", ""):
        with pytest.raises(RuleViolation) as refused:
            _bank(customer, wrong)
        assert refused.value.field == "account"


def test_holder_bank_and_method_are_required(app, users) -> None:
    customer = make_customer(users)
    for data, field in (({"method": "cash"}, "method"),
                        ({"method": "bank", "bank": "B", "account": ACCOUNT}, "holder"),
                        ({"method": "bank", "holder": "H", "account": ACCOUNT}, "bank")):
        with pytest.raises(RuleViolation) as refused:
            payout.confirm(customer, data, None)
        assert refused.value.field == field
    row = payout.confirm(customer, {"method": "original"}, None)
    assert row.sealed is None and payout.view_for(customer).account is None


def test_no_clear_account_or_holder_in_the_database_file_or_the_audit_trail(app, users) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("reads the SQLite database file")
    customer = make_customer(users)
    _bank(customer)
    db.session.commit()
    raw = Path(db.engine.url.database).read_bytes()
    for wal in Path(db.engine.url.database).parent.glob("*-wal"):
        raw += wal.read_bytes()
    for clear in ("6222021234567890128", "6222 0212 3456 7890 128", HOLDER, "7890128"):
        assert clear.encode() not in raw
        assert clear.encode("utf-16-le") not in raw
    assert b"payout_details" in raw  # the table is there, so the file was the right one
    entries = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "customer.payout_details")).all()
    assert len(entries) == 1
    trail = " ".join(str(e.before) + str(e.after) + e.summary + str(e.message_params)
                     for e in db.session.scalars(select(AuditEntry)))
    assert "6222021234567890128" not in trail and HOLDER not in trail
    assert entries[0].after["details"].startswith("hmac-sha256:")


def test_sealed_details_do_not_open_for_another_customer_or_key(app, users) -> None:
    first = make_customer(users, ref="K-1")
    second = make_customer(users, ref="K-2", event=first.event)
    row = _bank(first)
    with pytest.raises(RuleViolation):
        payout.unseal(second.id, row.sealed)
    app.config["PAYOUT_DETAILS_KEY"] = "00" * 32
    with pytest.raises(RuleViolation):
        payout.unseal(first.id, row.sealed)


@pytest.mark.parametrize("role, full", [(Role.AGENT, False), (Role.LEGAL, False),
                                        (Role.ADMIN, True), (Role.FINANCE, True)])
def test_staff_see_the_account_masked_and_the_roles_that_pay_in_full(client, auth, users, role,
                                                                    full) -> None:
    case = make_case(users)
    _bank(case.customer)
    auth.login(role)
    for page in (client.get(f"/cases/{case.id}").text,
                 client.get(f"/customers/{case.customer_id}").text):
        assert ("6222021234567890128" in page) is full
        assert (HOLDER in page) is full
        assert "7890128" not in page or full
        assert "•••• 0128" in page or full
    response = client.get(f"/customers/{case.customer_id}/payout")
    assert (response.status_code == 200) is full


def test_erasure_removes_the_payout_details(app, users) -> None:
    case = make_case(users)
    _bank(case.customer)
    erasure.erase_on_request(case.customer, "Customer asked", actor=users[Role.ADMIN])
    db.session.commit()
    assert db.session.get(PayoutDetails, case.customer_id) is None


def test_the_customer_form_shows_errors_by_the_field_and_the_stored_account_masked(
        app, users) -> None:
    customer = make_customer(users)
    _bank(customer)
    with app.test_request_context("/"):
        html = render_template("cases/_payout_form.html", payout=payout.view_for(customer),
                               payout_url="/my/payout", errors={"account": "号码无效"},
                               values={"method": "bank", "holder": "王", "account": "123"})
    assert 'action="/my/payout"' in html and "号码无效" in html
    assert "•••• 0128" in html and "6222021234567890128" not in html
    assert 'value="123"' not in html  # an account number is never echoed back
