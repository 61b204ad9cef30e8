"""Offers customers must accept: the terms signed off by legal, the answer bound to the SHA-256
of exactly what was shown, payment refused without a valid acceptance, and a changed amount or
changed terms voiding the answer."""

from __future__ import annotations

import pytest
from flask import render_template
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import offers
from portal.cases import services as cases
from portal.cases.models import CaseStatus, Payment
from portal.cases.offer_models import OfferDecision, OfferStatus
from portal.errors import Refusal, RuleViolation
from portal.extensions import db
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus
from tests.case_helpers import second_agent
from tests.offer_helpers import (
    TERMS_EN,
    TERMS_ZH,
    answer,
    approved_case,
    event_requiring_acceptance,
)

SHOWN = {"terms": TERMS_ZH, "amount": "300.00", "currency": "CNY", "case_ref": "C-2026-00001",
         "locale": "zh_CN"}


@pytest.mark.parametrize("part, other", [
    ("terms", TERMS_ZH + " "), ("amount", "300.01"), ("currency", "USD"),
    ("case_ref", "C-2026-00002"), ("locale", "en")])
def test_the_offer_hash_covers_every_part_of_what_was_shown(part, other) -> None:
    assert offers.offer_hash(**SHOWN) == offers.offer_hash(**dict(SHOWN))
    assert offers.offer_hash(**SHOWN) != offers.offer_hash(**{**SHOWN, part: other})


def test_the_customer_sees_the_approved_terms_in_their_language_and_accepts(app, users) -> None:
    event = event_requiring_acceptance(users)
    case = approved_case(users, event)
    zh, en = offers.current_offer(case, "zh_CN"), offers.current_offer(case, "en")
    assert (zh.terms, en.terms) == (TERMS_ZH, TERMS_EN)
    assert (zh.amount, zh.currency, zh.case_ref) == ("300.00", "CNY", case.ref)
    row = answer(case, locale="en", ip="203.0.113.7")
    assert row.offer_hash == offers.offer_hash(terms=TERMS_EN, amount="300.00", currency="CNY",
                                               case_ref=case.ref, locale="en")
    assert row.ip_digest.startswith("hmac-sha256:") and "203.0.113.7" not in row.ip_digest
    assert offers.valid_acceptance(case) == row
    assert offers.offer_state(case).status == OfferStatus.ACCEPTED
    entry = _entry("offer.accepted")
    assert entry.after["offer_hash"] == row.offer_hash
    with pytest.raises(RuleViolation, match="already answered"):
        answer(case)


def test_an_answer_to_an_offer_that_changed_meanwhile_is_refused(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    stale = offers.offer_hash(**{**SHOWN, "case_ref": case.ref, "amount": "299.00"})
    with pytest.raises(RuleViolation) as refused:
        offers.respond(case, case.customer, {"decision": "accepted", "offer_hash": stale,
                                             "locale": "zh_CN"}, None)
    assert refused.value.field == "decision"
    assert offers.standing_decision(case) is None


def test_a_decline_needs_a_reason_and_is_kept_with_it(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    with pytest.raises(RuleViolation) as refused:
        answer(case, "declined", reason="  ")
    assert refused.value.field == "reason"
    row = answer(case, "declined", reason="金额不够")
    assert row.reason == "金额不够" and offers.valid_acceptance(case) is None
    state = offers.offer_state(case)
    assert state.status == OfferStatus.DECLINED and state.decision.reason == "金额不够"
    entry = _entry("offer.declined")
    assert "金额不够" not in str(entry.after) and entry.after["reason_sha256"]


def test_another_customers_case_is_refused(app, users) -> None:
    event = event_requiring_acceptance(users)
    mine, theirs = approved_case(users, event, order_ref="O-1"), approved_case(users, event,
                                                                              order_ref="O-2")
    offer = offers.current_offer(theirs, "zh_CN")
    with pytest.raises(RuleViolation, match="not yours"):
        offers.respond(theirs, mine.customer, {"decision": "accepted", "offer_hash": offer.hash},
                       None)


def test_no_offer_is_shown_until_legal_approves_the_terms(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users, approve=False))
    assert offers.current_offer(case, "zh_CN") is None
    assert offers.offer_state(case).status == OfferStatus.NOT_READY


def _pay(case, ref: str = "PAY-1"):
    """Paid by the case's assignee (the agent)."""
    return cases.record_payment(case, amount=case.approved_amount, payout_ref=ref,
                                actor=case.assignee)


def _entry(action: str) -> AuditEntry:
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).one()


def test_payment_without_acceptance_is_refused_and_with_it_goes_through(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    with pytest.raises(Refusal) as refused:
        _pay(case)
    assert refused.value.action == "case.payment.refused"
    assert refused.value.details["why"] == "no_acceptance"
    assert case.ref in refused.value.message
    answer(case)
    _pay(case)
    assert case.status == CaseStatus.PAID


def test_a_declined_offer_is_not_paid(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    answer(case, "declined", reason="no")
    with pytest.raises(Refusal):
        _pay(case)


def test_the_refused_payment_is_kept_in_the_audit_trail(client, auth, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    db.session.commit()
    auth.login(Role.AGENT)
    response = client.post(f"/cases/{case.id}/pay", data={"amount": "300.00",
                                                          "payout_ref": "PAY-1"})
    assert response.status_code == 422 and "accept" in response.text
    db.session.rollback()
    [entry] = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "case.payment.refused")).all()
    assert entry.subject_id == str(case.id) and entry.after["why"] == "no_acceptance"
    assert db.session.scalar(select(Payment.id)) is None


def test_a_changed_amount_voids_the_acceptance(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    row = answer(case)
    cases.update_case(case, cases.CaseInput("refund", "O-1", "250.00", "CNY", "service_outage",
                                            "", case.assignee_id),
                      expected_version=None, actor=users[Role.AGENT])
    assert row.voided_at is not None and row.void_reason == "case edited"
    assert case.status == CaseStatus.IN_PROGRESS and case.approved_amount is None
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "offer.void")).one()
    cases.propose(case, actor=users[Role.AGENT])
    cases.approve(case, actor=second_agent())
    assert offers.valid_acceptance(case) is None
    state = offers.offer_state(case)
    assert state.status == OfferStatus.VOIDED and state.offer.amount == "250.00"
    with pytest.raises(Refusal):
        _pay(case)
    answer(case)
    _pay(case)


def test_an_edit_that_keeps_the_amount_keeps_the_acceptance(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    row = answer(case)
    cases.update_case(case, cases.CaseInput("refund", "O-1", "300.00", "CNY", "service_outage",
                                            "", users[Role.ADMIN].id),
                      expected_version=None, actor=users[Role.AGENT])
    assert row.voided_at is None and offers.valid_acceptance(case) == row


def test_changed_terms_void_the_acceptance_and_need_a_new_signoff(app, users) -> None:
    event = event_requiring_acceptance(users)
    case = approved_case(users, event)
    row = answer(case)
    grant = signoffs.granted(offers.SUBJECT, event.id)
    offers.save_terms(event, required=True, text_zh=TERMS_ZH + "（修订）", text_en=TERMS_EN,
                      actor=users[Role.ADMIN])
    assert row.void_reason == "terms changed"
    assert db.session.get(SignoffRequest, grant.id).status == SignoffStatus.VOIDED
    assert offers.current_offer(case, "zh_CN") is None
    with pytest.raises(Refusal):
        _pay(case)
    request = offers.request_terms_signoff(event, actor=users[Role.ADMIN])
    assert request.snapshot["terms"]["zh_CN"] == TERMS_ZH + "（修订）"
    with pytest.raises(Refusal):  # four eyes: the author does not approve their own terms
        signoffs.decide(request.id, SignoffStatus.APPROVED, "", actor=users[Role.ADMIN])
    signoffs.decide(request.id, SignoffStatus.APPROVED, "", actor=users[Role.LEGAL])
    assert offers.current_offer(case, "zh_CN").terms == TERMS_ZH + "（修订）"
    answer(case)
    _pay(case)


def test_switching_acceptance_on_without_terms_is_refused(app, users) -> None:
    from tests.notice_helpers import make_event

    with pytest.raises(RuleViolation) as refused:
        offers.save_terms(make_event(), required=True, text_zh="条款", text_en="",
                          actor=users[Role.ADMIN])
    assert refused.value.field == "text_en"


def test_an_event_without_the_setting_pays_as_before(app, users) -> None:
    from tests.case_helpers import make_case

    case = make_case(users)
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    cases.approve(case, actor=second_agent())
    assert offers.offer_state(case) is None
    _pay(case)


def test_the_customer_partial_posts_the_hash_of_what_it_shows(app, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    with app.test_request_context("/"):
        html = render_template("cases/_offer.html", case=case, offer_url="/my/offer",
                               errors={"reason": "说明原因"}, **offers.for_customer(case, "en"))
    offer = offers.current_offer(case, "en")
    assert f'value="{offer.hash}"' in html and 'action="/my/offer"' in html
    assert "300.00 CNY" in html and "說明" not in html and "说明原因" in html
    assert TERMS_EN.split()[0] in html


def test_the_staff_case_page_shows_the_offer_status(client, auth, users) -> None:
    case = approved_case(users, event_requiring_acceptance(users))
    db.session.commit()
    auth.login(Role.AGENT)
    page = client.get(f"/cases/{case.id}", headers={"Accept-Language": "en"}).text
    assert "waiting for the customer" in page
    answer(case, "declined", reason="Too little")
    db.session.commit()
    page = client.get(f"/cases/{case.id}").text
    assert "Too little" in page and db.session.scalar(select(OfferDecision.offer_hash)) in page
