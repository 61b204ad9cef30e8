"""The staff pages of customers and cases: forms, errors next to fields, list, export."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from portal.accounts import Role
from portal.cases import services as cases
from portal.cases.models import Case
from portal.cases.settings import sla_hours, threshold
from portal.extensions import db
from tests.case_helpers import make_case, make_customer, second_agent


def test_open_a_case_from_the_customer(client, auth, users) -> None:
    customer = make_customer(users)
    auth.login(Role.AGENT)
    page = client.get(f"/customers/{customer.id}")
    assert f"/cases/new/{customer.id}" in page.text
    response = client.post(f"/cases/new/{customer.id}", data={
        "kind": "refund", "order_ref": "O-77", "amount": "1280.50", "currency": "cny",
        "reason": "overcharge", "description": "Charged twice", "assignee_id": ""})
    assert response.status_code == 302
    case = db.session.scalar(select(Case))
    assert (case.amount, case.currency, case.status) == (cases.parse_amount("1280.50"), "CNY",
                                                         "new")


def test_bad_money_is_refused_next_to_the_field(client, auth, users) -> None:
    customer = make_customer(users)
    auth.login(Role.AGENT)
    response = client.post(f"/cases/new/{customer.id}", data={
        "kind": "refund", "order_ref": "O-1", "amount": "12.345", "currency": "CNY",
        "reason": "other"})
    assert response.status_code == 422
    assert 'id="amount-error"' in response.text and "two decimal places" in response.text
    response = client.post(f"/cases/new/{customer.id}", data={
        "kind": "refund", "order_ref": "O-1", "amount": "12", "currency": "XYZ",
        "reason": "other"})
    assert 'id="currency-error"' in response.text
    assert db.session.scalar(select(Case)) is None


def test_an_edit_that_leaves_out_fields_is_refused_not_a_server_error(client, auth,
                                                                      users) -> None:
    """A left-out field once fell back to the case's Decimal amount and failed Length (500)."""
    case = make_case(users, "100.00")
    auth.login(Role.AGENT)
    response = client.post(f"/cases/{case.id}/edit", data={"description": "Only this"})
    assert response.status_code == 422
    assert 'id="amount-error"' in response.text
    db.session.refresh(case)
    assert (case.amount, case.description) == (cases.parse_amount("100.00"), "")


def test_duplicate_case_links_the_existing_one(client, auth, users) -> None:
    case = make_case(users)
    auth.login(Role.AGENT)
    response = client.post(f"/cases/new/{case.customer_id}", data={
        "kind": "refund", "order_ref": "O-1", "amount": "5", "currency": "CNY",
        "reason": "other"})
    assert response.status_code == 422
    assert f'href="/cases/{case.id}"' in response.text and case.ref in response.text


def test_steps_payment_and_notes_through_the_page(app, client, auth, users) -> None:
    case = make_case(users, amount="300.00")
    auth.login(Role.AGENT)
    page = client.get(f"/cases/{case.id}").text
    assert "Start working" in page and "Record payment" not in page
    client.post(f"/cases/{case.id}/step", data={"action": "start",
                                                "lock_version": case.lock_version})
    db.session.refresh(case)
    client.post(f"/cases/{case.id}/step", data={"action": "propose",
                                                "lock_version": case.lock_version})
    db.session.refresh(case)
    assert case.status == "proposed"
    assert "Another agent must approve" in client.get(f"/cases/{case.id}").text
    # The proposer's own approval is refused on the server, not only hidden.
    refused = client.post(f"/cases/{case.id}/step", data={"action": "approve"},
                          follow_redirects=True)
    assert "another agent must approve" in refused.text
    other = second_agent()
    client.post("/logout")
    client.post("/login", data={"email": other.email, "password": "x" * 12})
    client.post(f"/cases/{case.id}/step", data={"action": "approve"})
    db.session.refresh(case)
    assert case.status == "approved"
    wrong = client.post(f"/cases/{case.id}/pay", data={"amount": "299.99",
                                                       "payout_ref": "PAY-1"})
    assert wrong.status_code == 422 and "exactly the approved amount" in wrong.text
    client.post(f"/cases/{case.id}/pay", data={"amount": "300.00", "payout_ref": "PAY-1"})
    db.session.refresh(case)
    assert case.status == "paid"
    empty = client.post(f"/cases/{case.id}/notes", data={"kind": "internal", "body": ""})
    assert empty.status_code == 422
    client.post(f"/cases/{case.id}/notes", data={"kind": "internal", "body": "Paid by bank"})
    assert "Paid by bank" in client.get(f"/cases/{case.id}").text


def test_reject_needs_a_comment_on_the_page(client, auth, users) -> None:
    case = make_case(users)
    auth.login(Role.AGENT)
    response = client.post(f"/cases/{case.id}/step", data={"action": "reject", "comment": ""})
    assert response.status_code == 422 and 'id="comment-error"' in response.text
    db.session.refresh(case)
    assert case.status == "new"


def test_stale_step_is_refused(client, auth, users) -> None:
    case = make_case(users)
    auth.login(Role.AGENT)
    stale = case.lock_version
    cases.change_status(case, "start", actor=users[Role.ADMIN])
    response = client.post(f"/cases/{case.id}/step",
                           data={"action": "withdraw", "comment": "x", "lock_version": stale},
                           follow_redirects=True)
    assert "Someone else changed this case" in response.text
    db.session.refresh(case)
    assert case.status == "in_progress"


def test_list_search_filter_sort_and_partial(client, auth, users) -> None:
    first = make_case(users, amount="10.00")
    customer = make_customer(users, ref="K-2", event=first.event, email="li.lei@example.com")
    second = make_case(users, amount="99.00", customer=customer, order_ref="ORD-555")
    auth.login(Role.LEGAL)
    page = client.get("/cases/?q=ORD-5").text
    assert second.ref in page and first.ref not in page
    assert second.ref in client.get("/cases/?q=li.lei").text
    assert first.ref in client.get(f"/cases/?q={first.ref.lower()}").text
    by_amount = client.get("/cases/?sort=amount").text
    assert by_amount.index(second.ref) < by_amount.index(first.ref)
    partial = client.get("/cases/?status=new", headers={"HX-Request": "true",
                                                        "HX-Target": "case-results"})
    assert "<html" not in partial.text and first.ref in partial.text
    assert first.ref not in client.get("/cases/?status=paid").text
    assert first.ref not in client.get("/cases/?overdue=1").text


def test_export_streams_the_filtered_list(client, auth, users) -> None:
    case = make_case(users, amount="42.00")
    auth.login(Role.AGENT)
    response = client.get("/cases/export.csv?kind=refund")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["ref"], r["amount"], r["customer"]) for r in rows] == [(case.ref, "42.00", "王芳")]
    assert client.get("/cases/export.csv?kind=compensation").get_data(as_text=True).count(
        "\n") == 1


def test_bulk_assign_through_the_page(client, auth, users) -> None:
    case = make_case(users)
    other = second_agent()
    auth.login(Role.AGENT)
    response = client.post("/cases/bulk", data={"case_ids": [str(case.id)],
                                                 "bulk_action": "assign",
                                                 "assignee": str(other.id)})
    assert f"{case.ref}</strong>: assigned" in response.text
    assert "Select at least one" in client.post("/cases/bulk", data={}).text


def test_admin_sets_sla_and_thresholds(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    page = client.get("/cases/settings")
    assert page.status_code == 200 and 'name="threshold_CNY"' in page.text
    data = {"sla_sev1": "8", "sla_sev2": "24", "sla_sev3": "72", "sla_sev4": "120",
            "threshold_CNY": "3000.00", "new_currency": "JPY", "new_amount": "50000"}
    assert client.post("/cases/settings", data=data).status_code == 302
    assert sla_hours("sev1") == 8 and threshold("CNY") == cases.parse_amount("3000")
    assert threshold("JPY") == cases.parse_amount("50000")
    bad = client.post("/cases/settings", data={**data, "sla_sev2": "soon"})
    assert bad.status_code == 422 and "whole hours" in bad.text
    auth.logout()
    auth.login(Role.AGENT)
    assert client.get("/cases/settings").status_code == 403


def test_legal_reads_the_case_snapshot_and_approves(client, auth, users) -> None:
    case = make_case(users, amount="7000.00")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    auth.login(Role.LEGAL)
    queue = client.get("/signoffs/?kind=case_decision").text
    assert case.ref in queue
    page = client.get(f"/signoffs/{case.signoff_id}").text
    assert "7000.00 CNY" in page and "王芳" in page and "O-1" in page
    client.post(f"/signoffs/{case.signoff_id}/decide", data={"decision": "approved"})
    db.session.refresh(case)
    assert case.status == "approved"
