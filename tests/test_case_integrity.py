"""Case data that must not be lost or wrong: description-only edits, case settings saved all or
nothing, and one open case per order whatever the spelling of its reference."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.cases.models import Case, SignoffThreshold, SlaPolicy
from portal.cases.settings import sla_hours, threshold
from portal.extensions import db
from portal.signoffs.models import SignoffRequest
from tests.case_helpers import make_case, make_customer


def _audit_count(action: str) -> int:
    return db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == action))


# --- description-only edits -------------------------------------------------------------------


def test_an_edit_of_only_the_description_is_saved_and_audited(app, users) -> None:
    case = make_case(users)
    changed = cases.update_case(case, cases.CaseInput(
        "refund", "O-1", "100.00", "CNY", "service_outage", "Customer sent the invoice",
        users[Role.AGENT].id), expected_version=case.lock_version, actor=users[Role.AGENT])
    assert changed is True
    db.session.expire_all()
    assert db.session.get(Case, case.id).description == "Customer sent the invoice"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "case.edit"))
    # The trail shows that the description changed, as a keyed digest, never the text.
    assert entry.before["description"] != entry.after["description"]
    assert "invoice" not in str(entry.after)


def test_the_edit_page_saves_a_description_only_change(client, auth, users) -> None:
    case = make_case(users)
    auth.login(Role.AGENT)
    response = client.post(f"/cases/{case.id}/edit", data={
        "kind": "refund", "order_ref": "O-1", "amount": "100.00", "currency": "CNY",
        "reason": "service_outage", "description": "Called back on Monday",
        "assignee_id": str(users[Role.AGENT].id), "lock_version": str(case.lock_version)},
        follow_redirects=True)
    assert f"Case {case.ref} saved." in response.text and "nothing changed" not in response.text
    db.session.expire_all()
    assert db.session.get(Case, case.id).description == "Called back on Monday"


def test_a_description_edit_of_a_case_awaiting_signoff_voids_the_signoff(app, users) -> None:
    """The description is part of what legal approves: once an edit keeps it, it also
    sends the proposal back, as an amount change does."""
    case = make_case(users, amount="8000.00")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    request_id = case.signoff_id
    cases.update_case(case, cases.CaseInput(
        "refund", "O-1", "8000.00", "CNY", "service_outage", "Also refund the shipping",
        users[Role.AGENT].id), expected_version=case.lock_version, actor=users[Role.AGENT])
    assert case.status == "in_progress"
    assert db.session.get(SignoffRequest, request_id).status == "voided"


def test_an_unchanged_form_still_says_nothing_changed(app, users) -> None:
    case = make_case(users)
    assert cases.update_case(case, cases.CaseInput(
        "refund", "O-1", "100.00", "CNY", "service_outage", "", users[Role.AGENT].id),
        expected_version=case.lock_version, actor=users[Role.AGENT]) is False
    assert _audit_count("case.edit") == 0


# --- case settings: all or nothing ------------------------------------------------------------

GOOD_SETTINGS = {"sla_sev1": "8", "sla_sev2": "48", "sla_sev3": "72", "sla_sev4": "120",
                 "threshold_CNY": "3000.00"}


@pytest.mark.parametrize(("bad", "field"), [
    ({"sla_sev4": "soon"}, "sla_sev4"),
    ({"threshold_USD": "abc"}, "threshold_USD"),
    ({"new_currency": "JPY", "new_amount": "1e999999999"}, "new_amount"),
    ({"new_currency": "XYZ", "new_amount": "100"}, "new_currency"),
])
def test_case_settings_with_a_bad_later_field_save_nothing(client, auth, users, bad,
                                                           field) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/cases/settings", data={**GOOD_SETTINGS, **bad})
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.text
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(SlaPolicy)) == 0
    assert db.session.scalar(select(func.count()).select_from(SignoffThreshold)) == 0
    assert sla_hours("sev1") == 24 and threshold("CNY") == cases.parse_amount("5000")
    assert _audit_count("settings.sla") == 0 and _audit_count("settings.threshold") == 0


def test_case_settings_errors_are_shown_next_to_every_bad_field(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/cases/settings", data={
        **GOOD_SETTINGS, "sla_sev1": "0", "threshold_CNY": "12.345", "new_currency": "JPY",
        "new_amount": "٣٠٠"}, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    for field in ("sla_sev1", "threshold_CNY", "new_amount"):
        assert f'id="{field}-error"' in response.text


def test_case_settings_save_every_change_in_one_go(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/cases/settings", data={
        **GOOD_SETTINGS, "new_currency": "jpy", "new_amount": "50000"})
    assert response.status_code == 302
    assert sla_hours("sev1") == 8 and threshold("CNY") == cases.parse_amount("3000")
    assert threshold("JPY") == cases.parse_amount("50000")
    assert _audit_count("settings.sla") == 1  # only sev1 changed; the others are the defaults
    assert _audit_count("settings.threshold") == 2


# --- duplicate cases: order refs are compared trimmed and case-folded -------------------------


def test_an_order_ref_differing_only_in_case_or_spaces_is_a_duplicate(app, users) -> None:
    case = make_case(users, order_ref="WD-20261201-001")
    for spelling in ("wd-20261201-001", "  Wd-20261201-001  "):
        with pytest.raises(cases.DuplicateCase) as err:
            make_case(users, customer=case.customer, order_ref=spelling)
        assert err.value.existing_id == case.id and case.ref in err.value.message


def test_editing_a_case_to_another_spelling_of_an_open_order_is_refused(app, users) -> None:
    first = make_case(users, order_ref="WD-20261201-001")
    second = make_case(users, customer=first.customer, order_ref="WD-20261201-002")
    with pytest.raises(cases.DuplicateCase):
        cases.update_case(second, cases.CaseInput(
            "refund", "wd-20261201-001", "100.00", "CNY", "service_outage", "",
            users[Role.AGENT].id), expected_version=second.lock_version,
            actor=users[Role.AGENT])
    # Its own reference in another spelling is not a duplicate of itself.
    assert cases.update_case(first, cases.CaseInput(
        "refund", "wd-20261201-001", "100.00", "CNY", "service_outage", "",
        users[Role.AGENT].id), expected_version=first.lock_version, actor=users[Role.AGENT])


@pytest.mark.parametrize("spelling", ["wd-20261201-001", " WD-20261201-001", "WD-20261201-001 "])
def test_the_unique_index_folds_case_and_trims_the_order_ref(app, users, spelling) -> None:
    """Written past the service, straight into the table: the index itself refuses it."""
    case = make_case(users, order_ref="WD-20261201-001")
    values = {c.name: getattr(case, c.name) for c in Case.__table__.columns if c.name != "id"}
    values.update(ref="C-0000-99999", order_ref=spelling)
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Case).values(**values))
        db.session.flush()
    db.session.rollback()


def test_the_duplicate_message_agrees_with_the_index(app, users) -> None:
    """A row the index counts (stored with stray spaces by an older writer) is found by the
    service's check too, so the agent gets the friendly message, not a database error."""
    customer = make_customer(users)
    case = make_case(users, customer=customer, order_ref="WD-20261201-001")
    db.session.execute(Case.__table__.update().where(Case.id == case.id)
                       .values(order_ref=" wd-20261201-001 "))
    db.session.commit()
    found = cases.open_case_for(customer.id, "refund", "WD-20261201-001")
    assert found is not None and found.id == case.id
    with pytest.raises(cases.DuplicateCase):
        make_case(users, customer=customer, order_ref="Wd-20261201-001")
