"""Programmes: create and edit with checked rules, the preview, legal's one sign-off through
the real sign-off services and pages, what voids it (an edit, an entitlement change), the
budget acknowledgement, and both languages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers.models import Customer
from portal.errors import Conflict, RuleViolation
from portal.events import services as events
from portal.extensions import db
from portal.programmes import services
from portal.programmes.models import Entitlement, Programme, ProgrammeStatus
from portal.programmes.preview import histogram, median, preview
from portal.programmes.rules import amounts_digest, compute
from portal.programmes.signals import entitlements_changed
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus

D = Decimal


@pytest.fixture
def event(app):
    made = events.create_event(title="Outage", kind="incident", severity="sev2", cause="system")
    db.session.commit()
    return made


def seed_entitlements(event, bases: list[str]) -> list[Customer]:
    made = []
    for number, basis in enumerate(bases, start=1):
        customer = Customer(event_id=event.id, external_ref=f"K{number}", name="Kunde",
                            tags=["vip"] if number % 2 else [], locale="zh_CN")
        db.session.add(customer)
        db.session.flush()
        db.session.add(Entitlement(event_id=event.id, customer_id=customer.id,
                                   order_ref=f"WD-{number}", basis_amount=D(basis),
                                   currency="CNY", basis_date=date(2028, 1, 1), attributes={}))
        made.append(customer)
    db.session.commit()
    return made


def settings(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name_zh": "服务中断补偿", "name_en": "Service outage compensation",
        "kind": "compensation", "currency": "CNY", "mode": "proactive",
        "calculation_date": "2029-01-01",
        "rules": {"amount": {"method": "percentage", "percentage": "10", "interest_rate": "3",
                             "cap": "500"},
                  "eligibility": {"no_open_case": True}},
        "low_value_threshold": "5.00", "low_value_action": "pay", "budget": "",
        "terms_zh": "我们将赔偿您。", "terms_en": "We will compensate you.",
    }
    data.update(overrides)
    return data


def form_data(**overrides: str) -> dict[str, str]:
    data = {"name_zh": "服务中断补偿", "name_en": "Service outage compensation",
            "kind": "compensation", "currency": "CNY", "mode": "proactive",
            "calculation_date": "2029-01-01", "method": "percentage", "percentage": "10",
            "interest_rate": "3", "cap": "500", "no_open_case": "y",
            "low_value_threshold": "5.00", "low_value_action": "pay",
            "terms_zh": "我们将赔偿您。", "terms_en": "We will compensate you."}
    data.update(overrides)
    return data


def actions(programme_id: int) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "programme", AuditEntry.subject_id == str(programme_id))
        .order_by(AuditEntry.id)))


# --- services --------------------------------------------------------------------------------


def test_create_edit_and_the_audit_trail(event, users) -> None:
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    db.session.commit()
    assert programme.status == ProgrammeStatus.DRAFT
    assert programme.rules["amount"]["percentage"] == "10"
    assert programme.low_value_threshold == D("5.00")
    assert not services.update_programme(programme, settings(),
                                         expected_version=programme.lock_version,
                                         actor=users[Role.AGENT])
    version = programme.lock_version
    assert services.update_programme(programme, settings(budget="1000"),
                                     expected_version=version, actor=users[Role.AGENT])
    db.session.commit()
    assert programme.budget == D("1000.00")
    with pytest.raises(Conflict):
        services.update_programme(programme, settings(budget="2000"), expected_version=version,
                                  actor=users[Role.AGENT])
    db.session.rollback()
    assert actions(programme.id) == ["programme.create", "programme.edit"]


@pytest.mark.parametrize(("change", "field"), [
    ({"rules": {"amount": {"method": "fixed", "fixed": "-5"}}}, "fixed"),
    ({"rules": {"amount": {"method": "percentage", "percentage": "0"}}}, "percentage"),
    ({"rules": {"amount": {"method": "tiers", "tiers": []}}}, "tier_1"),
    ({"rules": {"amount": {"method": "fixed", "fixed": "5", "cap": "0"}}}, "cap"),
    ({"currency": "XXQ"}, "currency"),
    ({"name_en": ""}, "name_en"),
    ({"kind": "gift"}, "kind"),
    ({"mode": "opt_in"}, "deadline"),
    ({"calculation_date": "soon"}, "calculation_date"),
    ({"low_value_threshold": "-1"}, "low_value_threshold"),
    ({"budget": "12.345"}, "budget"),
])
def test_bad_settings_are_refused_with_the_field_named(event, users, change, field) -> None:
    with pytest.raises(RuleViolation) as refused:
        services.create_programme(event, settings(**change), actor=users[Role.AGENT])
    assert refused.value.field == field
    db.session.rollback()
    assert db.session.scalar(select(Programme)) is None


def test_preview_counts_totals_and_statistics(event, users) -> None:
    seed_entitlements(event, ["100.00", "200.00", "30.00", "9000.00", "40.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    outcome = preview(programme)
    # 10 % plus 3 % a year for 366 days (× 1.03008219…), capped at 500; below 5.00 paid.
    # 100 → 10.30, 200 → 20.60, 30 → 3.09, 9000 → 927.07… capped 500.00, 40 → 4.12
    assert outcome.eligible_count == 5
    assert outcome.totals == {"CNY": D("538.11")}
    assert (outcome.minimum, outcome.median, outcome.maximum) == (D("3.09"), D("10.30"),
                                                                 D("500.00"))
    assert outcome.low_value_paid_count == 2 and outcome.low_value_paid_total == D("7.21")
    assert outcome.amounts_sha256 == amounts_digest(compute(programme))
    assert sum(b.count for b in outcome.histogram) == 5
    assert len(outcome.samples) == 5 and not outcome.excluded


def test_preview_statistics_helpers() -> None:
    assert median([D(1), D(2), D(3), D(10)]) == D("2.5")
    assert median([]) is None
    buckets = histogram([D("0.00"), D("5.00"), D("10.00")], buckets=2)
    assert [(b.low, b.high, b.count) for b in buckets] == [(D("0.00"), D("5.00"), 1),
                                                           (D("5.00"), D("10.00"), 2)]
    assert [b.count for b in histogram([D(7)] * 3)] == [3]


def test_signoff_grant_through_the_real_services(event, users) -> None:
    seed_entitlements(event, ["100.00", "200.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    db.session.commit()
    assert programme.status == ProgrammeStatus.AWAITING_SIGNOFF
    snapshot = request.snapshot
    assert snapshot["eligible_count"] == 2
    assert snapshot["totals"] == {"CNY": "30.90"}
    assert snapshot["terms"] == {"zh_CN": "我们将赔偿您。", "en": "We will compensate you."}
    assert snapshot["amounts_sha256"] == programme.amounts_sha256
    assert snapshot["entitlements_sha256"] == programme.entitlements_sha256
    assert snapshot["rules"]["amount"]["interest_rate"] == "3"
    with pytest.raises(RuleViolation):  # only one request at a time
        services.request_signoff(programme, actor=users[Role.AGENT])
    db.session.rollback()
    with pytest.raises(RuleViolation):  # four eyes: an agent does not decide
        signoffs.decide(request.id, "approved", "", actor=users[Role.AGENT])
    db.session.rollback()
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    db.session.commit()
    assert programme.status == ProgrammeStatus.APPROVED
    assert services.binding_holds(programme)
    assert actions(programme.id)[-2:] == ["programme.signoff_request",
                                          "programme.signoff_approved"]


def test_changes_requested_returns_to_draft(event, users) -> None:
    seed_entitlements(event, ["100.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    signoffs.decide(request.id, "changes_requested", "Lower the cap", actor=users[Role.LEGAL])
    db.session.commit()
    assert programme.status == ProgrammeStatus.DRAFT
    assert not services.binding_holds(programme)


def test_an_edit_voids_the_signoff_and_returns_to_draft(event, users) -> None:
    seed_entitlements(event, ["100.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    db.session.commit()
    services.update_programme(programme, settings(terms_en="We will pay you."),
                              expected_version=None, actor=users[Role.AGENT])
    db.session.commit()
    assert programme.status == ProgrammeStatus.DRAFT
    assert db.session.get(SignoffRequest, request.id).status == SignoffStatus.VOIDED
    assert not services.binding_holds(programme)


def test_an_entitlement_change_breaks_the_binding_and_voids_it(event, users) -> None:
    customers = seed_entitlements(event, ["100.00", "200.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    db.session.commit()
    assert services.binding_holds(programme)

    entitlement = db.session.scalar(select(Entitlement).where(
        Entitlement.customer_id == customers[0].id))
    entitlement.basis_amount = D("150.00")
    db.session.flush()
    assert not services.binding_holds(programme)  # the digests moved, before any signal

    entitlements_changed.send(event.id, actor=users[Role.ADMIN])
    db.session.commit()
    assert programme.status == ProgrammeStatus.DRAFT
    assert db.session.get(SignoffRequest, request.id).status == SignoffStatus.VOIDED
    assert actions(programme.id)[-1] == "programme.draft"


def test_approval_after_the_entitlements_moved_sends_it_back_to_draft(event, users) -> None:
    customers = seed_entitlements(event, ["100.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    db.session.commit()
    db.session.add(Entitlement(event_id=event.id, customer_id=customers[0].id,
                               order_ref="WD-NEW", basis_amount=D("80.00"), currency="CNY",
                               basis_date=date(2028, 1, 1), attributes={}))
    db.session.flush()  # no signal sent: the decision itself must notice
    decided = signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    db.session.commit()
    assert decided.outcome
    assert programme.status == ProgrammeStatus.DRAFT
    assert db.session.get(SignoffRequest, request.id).status == SignoffStatus.VOIDED


def test_over_budget_needs_an_acknowledgement(event, users) -> None:
    seed_entitlements(event, ["100.00", "200.00"])  # total 30.90
    programme = services.create_programme(event, settings(budget="30.00"),
                                          actor=users[Role.AGENT])
    db.session.commit()
    assert preview(programme).over_budget
    with pytest.raises(RuleViolation) as refused:
        services.request_signoff(programme, actor=users[Role.AGENT])
    assert refused.value.field == "acknowledge_budget"
    db.session.rollback()
    assert programme.status == ProgrammeStatus.DRAFT
    services.request_signoff(programme, actor=users[Role.AGENT], acknowledge_budget=True)
    assert programme.status == ProgrammeStatus.AWAITING_SIGNOFF


def test_no_signoff_without_terms_or_eligible_customers(event, users) -> None:
    programme = services.create_programme(event, settings(terms_zh=""), actor=users[Role.AGENT])
    with pytest.raises(RuleViolation) as refused:
        services.request_signoff(programme, actor=users[Role.AGENT])
    assert refused.value.field == "terms_zh"
    services.update_programme(programme, settings(), expected_version=None,
                              actor=users[Role.AGENT])
    with pytest.raises(RuleViolation):  # no entitlements in the event
        services.request_signoff(programme, actor=users[Role.AGENT])


# --- pages -----------------------------------------------------------------------------------


def test_pages_walk_create_preview_request_and_legal_grant(event, users, client, auth) -> None:
    seed_entitlements(event, ["100.00", "200.00", "3.00"])
    auth.login(Role.AGENT)
    assert f"/programmes/event/{event.id}" in client.get(f"/events/{event.id}").text
    response = client.post(f"/programmes/event/{event.id}/new", data=form_data(budget="10"))
    assert response.status_code == 302, response.text
    programme = db.session.scalar(select(Programme))
    page = client.get(f"/programmes/{programme.id}?lang=en")
    assert page.status_code == 200
    assert "10% of each order" in page.text
    partial = client.get(f"/programmes/{programme.id}/preview", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert 'id="eligible-count">3<' in partial.text  # 3.00 × 10 % + interest = 0.31 → paid
    assert "Over budget" in partial.text
    assert "<svg" in partial.text

    refused = client.post(f"/programmes/{programme.id}/request-signoff", data={})
    assert refused.status_code == 422
    assert "over the budget" in refused.text
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).status == ProgrammeStatus.DRAFT
    done = client.post(f"/programmes/{programme.id}/request-signoff",
                       data={"acknowledge_budget": "y"})
    assert done.status_code == 302
    db.session.expire_all()
    request = db.session.get(SignoffRequest, db.session.get(Programme, programme.id).signoff_id)

    auth.logout()
    auth.login(Role.LEGAL)
    detail = client.get(f"/signoffs/{request.id}?lang=en")
    assert "Amount list SHA-256" in detail.text
    assert request.snapshot["amounts_sha256"] in detail.text
    assert "We will compensate you." in detail.text and "我们将赔偿您。" in detail.text
    decided = client.post(f"/signoffs/{request.id}/decide", data={"decision": "approved"})
    assert decided.status_code == 302
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).status == ProgrammeStatus.APPROVED


def test_legal_denies_through_the_page(event, users, client, auth) -> None:
    seed_entitlements(event, ["100.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    db.session.commit()
    auth.login(Role.LEGAL)
    assert client.post(f"/signoffs/{request.id}/decide",
                       data={"decision": "rejected", "comment": "No"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).status == ProgrammeStatus.DRAFT


def test_bad_rules_are_shown_next_to_the_field_in_both_languages(event, users, client,
                                                                 auth) -> None:
    auth.login(Role.AGENT)
    english = client.post(f"/programmes/event/{event.id}/new?lang=en",
                          data=form_data(percentage="-3"))
    assert english.status_code == 422
    assert 'id="percentage-error"' in english.text
    assert "The number must be more than zero." in english.text
    chinese = client.post(f"/programmes/event/{event.id}/new",
                          data=form_data(method="tiers", tier_1="0", tier_1_amount="5",
                                         tier_1_percentage="2"),
                          headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 422
    assert 'id="tier_1-error"' in chinese.text
    assert "每一档请填写金额或百分比，二者选一。" in chinese.text
    assert db.session.scalar(select(Programme)) is None


def test_edit_through_the_page_voids_the_signoff(event, users, client, auth) -> None:
    seed_entitlements(event, ["100.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    db.session.commit()
    auth.login(Role.AGENT)
    form = client.get(f"/programmes/{programme.id}/edit?lang=en")
    assert "voids legal" in form.text
    saved = client.post(f"/programmes/{programme.id}/edit",
                        data=form_data(percentage="12", lock_version=str(programme.lock_version)))
    assert saved.status_code == 302, saved.text
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).status == ProgrammeStatus.DRAFT
    assert db.session.get(SignoffRequest, request.id).status == SignoffStatus.VOIDED


def test_legal_and_finance_read_but_do_not_edit(event, users, client, auth) -> None:
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    db.session.commit()
    auth.login(Role.LEGAL)
    assert client.get(f"/programmes/{programme.id}").status_code == 200
    assert client.get(f"/programmes/{programme.id}/edit").status_code == 403
    assert client.post(f"/programmes/{programme.id}/request-signoff").status_code == 403


def test_the_signoff_page_names_what_changed_since_legals_last_decision(event, users, client,
                                                                        auth) -> None:
    seed_entitlements(event, ["100.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    first = services.request_signoff(programme, actor=users[Role.AGENT])
    signoffs.decide(first.id, "changes_requested", "Clearer terms", actor=users[Role.LEGAL])
    services.update_programme(programme, settings(terms_en="We will pay you 10%."),
                              expected_version=None, actor=users[Role.AGENT])
    second = services.request_signoff(programme, actor=users[Role.AGENT])
    db.session.commit()
    assert services.signoff_changes(first) is None
    assert services.signoff_changes(second)["changed"] == ["offer terms"]
    auth.login(Role.LEGAL)
    page = client.get(f"/signoffs/{second.id}", headers={"Accept-Language": "zh-CN"})
    assert "自法务上次对本方案作出决定以来" in page.text and "方案条款" in page.text


def test_opt_in_keeps_its_deadline_and_proactive_drops_it(event, users) -> None:
    from datetime import UTC, datetime

    deadline = datetime(2027, 3, 31, 16, 0, tzinfo=UTC)
    programme = services.create_programme(event, settings(mode="opt_in", deadline=deadline),
                                          actor=users[Role.AGENT])
    db.session.commit()
    assert programme.deadline.replace(tzinfo=UTC) == deadline
    services.update_programme(programme, settings(mode="proactive", deadline=deadline),
                              expected_version=None, actor=users[Role.AGENT])
    assert programme.deadline is None


def test_a_jpy_programme_pays_whole_yen(event, users) -> None:
    customer = Customer(event_id=event.id, external_ref="JP1", name="Kunde", tags=[],
                        locale="en")
    db.session.add(customer)
    db.session.flush()
    db.session.add(Entitlement(event_id=event.id, customer_id=customer.id, order_ref="JP-1",
                               basis_amount=D("1235.00"), currency="JPY",
                               basis_date=date(2029, 1, 1), attributes={}))
    programme = services.create_programme(event, settings(currency="JPY",
                                                          low_value_threshold=""),
                                          actor=users[Role.AGENT])
    request = services.request_signoff(programme, actor=users[Role.AGENT])
    assert request.snapshot["totals"] == {"JPY": "124.00"}  # 123.5 → 124


def test_an_unknown_choice_gets_the_services_message(event, users, client, auth) -> None:
    auth.login(Role.AGENT)
    page = client.post(f"/programmes/event/{event.id}/new?lang=en",
                       data=form_data(method="divide", kind="gift"))
    assert page.status_code == 422
    assert "Choose refund or compensation." in page.text



def test_the_preview_shows_the_median_in_the_currency_minor_unit(event, users) -> None:
    """Two customers, 10.30 and 3.09 (as above): the mean of the middles is 6.695, shown
    half-up as 6.70, never with a third decimal."""
    seed_entitlements(event, ["100.00", "30.00"])
    programme = services.create_programme(event, settings(), actor=users[Role.AGENT])
    assert preview(programme).median == D("6.70")
