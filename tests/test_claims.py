"""Claims from a notice: a listed customer's claim becomes a case (or waits for an amount),
a duplicate is refused with the open case's ref, and the event must accept claims."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask import render_template
from sqlalchemy import func, select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import claims, triage
from portal.cases.claim_models import ClaimStatus
from portal.cases.forms import ClaimForm
from portal.cases.models import Case, CaseStatus
from portal.cases.refusals import DuplicateCase
from portal.errors import RuleViolation
from portal.extensions import db
from portal.lifecycle import erasure
from portal.models import utcnow
from tests.case_helpers import make_case, make_customer
from tests.notice_helpers import make_event


@pytest.fixture
def customer(app, users):
    event = make_event()
    event.accepts_claims = True
    return make_customer(users, event=event)


def _claim(amount: str | None = "88.00", order: str = "WD-7") -> claims.ClaimInput:
    return claims.ClaimInput(kind="refund", order_ref=order, amount=amount,
                             description="提现未到账")


def test_a_listed_customers_claim_becomes_a_new_case_with_source_customer(customer) -> None:
    outcome = claims.open_from_customer(customer, _claim())
    case = outcome.case
    assert outcome.claim is None and case is not None
    assert (case.status, case.source, case.amount, case.created_by_id) == (
        CaseStatus.NEW, "customer", Decimal("88.00"), None)
    assert case.customer_id == customer.id and case.reason == "service_outage"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "case.open"))
    assert entry.after["source"] == "customer"


def test_a_duplicate_claim_is_refused_with_the_open_cases_ref(customer, users) -> None:
    existing = make_case(users, customer=customer, order_ref="WD-7")
    with pytest.raises(DuplicateCase) as refused:
        claims.open_from_customer(customer, _claim(order=" wd-7 "))
    assert refused.value.existing_ref == existing.ref
    assert refused.value.existing_id == existing.id
    assert refused.value.field == "order_ref"
    assert existing.ref in refused.value.message and "You already have" in refused.value.message
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1


def test_the_claim_form_partial_links_a_duplicate_to_the_open_case(app, customer) -> None:
    with app.test_request_context("/my", method="POST", data={"order_ref": "WD-7"}):
        form = ClaimForm()
        form.order_ref.errors = ["You already have an open refund case for order WD-7: C-1."]
        html = render_template("cases/_claim_form.html", claim_form=form,
                               claim_action="/my/claims", duplicate_url="/my/cases/C-1")
    assert 'action="/my/claims"' in html and 'href="/my/cases/C-1"' in html
    assert 'id="order_ref-error"' in html and "name" not in form._fields


def test_a_claim_without_an_amount_waits_for_an_agent(customer, users) -> None:
    outcome = claims.open_from_customer(customer, _claim(amount=""))
    claim = outcome.claim
    assert outcome.case is None and claim.status == ClaimStatus.WAITING
    assert claim.from_listed_customer
    with pytest.raises(RuleViolation) as missing:
        triage.match(claim, customer, "", actor=users[Role.AGENT])
    assert missing.value.field == "amount"
    case = triage.match(claim, customer, "120", actor=users[Role.AGENT])
    assert (case.source, case.amount, claim.decided_by_id) == (
        "customer", Decimal("120.00"), users[Role.AGENT].id)


@pytest.mark.parametrize(("field", "data"), [
    ("kind", {"kind": "gift"}), ("order_ref", {"order_ref": "  "}),
    ("amount", {"amount": "1e5"}), ("amount", {"amount": "-3"}),
    ("description", {"description": ""}), ("order_ref", {"order_ref": "x" * 65}),
])
def test_bad_claims_name_their_field_and_store_nothing(customer, field, data) -> None:
    values = {"kind": "refund", "order_ref": "WD-7", "amount": "1", "description": "d", **data}
    with pytest.raises(RuleViolation) as bad:
        claims.open_from_customer(customer, claims.ClaimInput(**values))
    assert bad.value.field == field
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_an_event_that_accepts_no_claims_refuses_them(customer) -> None:
    customer.event.accepts_claims = False
    with pytest.raises(RuleViolation, match="does not accept claims"):
        claims.open_from_customer(customer, _claim())


def test_erasing_a_customer_erases_their_claims(customer, users) -> None:
    claim = claims.open_from_customer(customer, _claim(amount="")).claim
    erasure.erase_on_request(customer, "asked", actor=users[Role.ADMIN])
    db.session.refresh(claim)
    assert claim.erased_at is not None and claim.audit_salt is None
    assert "提现" not in claim.description and claim.order_ref == "[erased]"


def test_rejected_claims_are_erased_after_the_retention(customer, users) -> None:
    claim = claims.open_from_customer(customer, _claim(amount="")).claim
    triage.reject(claim, "Not affected.", actor=users[Role.AGENT])
    assert claims.purge_claims() == (0, 0)
    claim.decided_at = utcnow() - claims_retention()
    assert claims.purge_claims() == (0, 1)
    assert claim.reason == "[erased]" and claim.erased_at is not None


def claims_retention():
    from datetime import timedelta

    return timedelta(days=claims.REJECTED_RETENTION_DAYS, minutes=1)
