"""A refund case in a real browser, in English: customers imported from a CSV (checked and
imported by the worker), a case opened above the CNY 5000 threshold, signed off by legal and
paid exactly once. And the case list: active search without a page reload, bulk assignment."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.accounts import Role
from portal.auth import services as auth_services
from portal.cases import services as cases
from portal.cases.models import Case, Payment
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.events import services as events
from portal.extensions import db
from tests.browser.helpers import PASSWORD, path_of, sign_in, url_path, wait_for_htmx

pytestmark = pytest.mark.browser


CSV_ROWS = [
    "external_ref,name,company,email,phone,locale,tags",
    "K-100,Lin Xiaoming,Acme Trading,lin@example.com,+86 138 0000 0001,zh_CN,vip;refund",
    "K-101,Zhou Min,,zhou@example.com,,en,",
    "K-102,Broken Address,,not-an-email,,en,",  # line 4 of the file: rejected
]
ORDER_REF = "SO-2024-7781"
# What the sign-off page shows under its heading "Exactly what is approved".
APPROVED_SNAPSHOT = ("xpath=//h2[normalize-space()='Exactly what is approved']"
                     "/following-sibling::*[1]")
PAYOUT_REF = "PAY-20240601-0042"






def status_badge(page: Page):
    return page.locator("h1 .badge")


def test_case_from_csv_import_to_paid(new_page, users, run_worker, tmp_path: Path) -> None:
    event = events.create_event(title="Checkout outage June", kind="incident",
                                severity="sev2", cause="system")
    event_id = event.id
    csv_file = tmp_path / "affected-customers.csv"
    csv_file.write_bytes("\r\n".join(CSV_ROWS).encode("utf-8-sig") + b"\r\n")
    assert csv_file.read_bytes().startswith(b"\xef\xbb\xbf")

    # The agent imports the affected customers from the event page.
    agent = new_page(locale="en-US")
    sign_in(agent, users[Role.AGENT].email)
    agent.goto(f"/events/{event_id}")
    agent.get_by_role("link", name="Affected customers", exact=True).click()
    expect(agent).to_have_url(url_path(f"/customers/event/{event_id}"))
    agent.get_by_role("link", name="Import CSV", exact=True).click()
    expect(agent).to_have_url(url_path(f"/customers/event/{event_id}/import"))
    agent.get_by_label("CSV file", exact=True).set_input_files(str(csv_file))
    agent.get_by_role("button", name="Upload and check", exact=True).click()
    expect(agent).to_have_url(re.compile(r"/customers/imports/\d+$"))
    import_path = path_of(agent)
    expect(agent.get_by_role("heading", level=1)).to_contain_text(csv_file.name)

    run_worker()  # the check runs in an RQ job
    agent.goto(import_path)
    status = agent.locator("#import-status")
    expect(status.locator("ul.figures li")).to_have_text(["3 rows", "2 valid", "1 rejected"])
    first_error = status.locator("table tbody tr").first
    expect(first_error.locator("td").nth(0)).to_have_text("4")
    expect(first_error.locator("td").nth(1)).to_contain_text("not-an-email")
    expect(first_error.locator("td").nth(1)).to_contain_text("not an e-mail address")
    assert db.session.scalar(select(func.count(Customer.id))) == 0  # nothing imported yet

    agent.get_by_role("button", name="Import the 2 valid rows", exact=True).click()
    # Same URL after the redirect: wait for the page that says the import job is queued.
    expect(status).to_contain_text("Importing 2 valid rows")
    expect(agent).to_have_url(url_path(import_path))
    run_worker()  # the import runs in an RQ job too
    agent.goto(import_path)
    expect(status).to_contain_text("2 customers added")
    expect(status.get_by_role("button", name=re.compile("Import"))).to_have_count(0)
    imported = db.session.scalars(select(Customer).order_by(Customer.external_ref)).all()
    assert [(c.external_ref, c.email) for c in imported] == [
        ("K-100", "lin@example.com"), ("K-101", "zhou@example.com")]

    # The agent opens a case above the sign-off threshold for one imported customer.
    status.get_by_role("link", name="See the customers", exact=True).click()
    expect(agent).to_have_url(url_path(f"/customers/event/{event_id}"))
    agent.get_by_role("link", name="K-100", exact=True).click()
    expect(agent.get_by_role("heading", level=1)).to_contain_text("Lin Xiaoming")
    agent.get_by_role("link", name="Open a case", exact=True).click()
    expect(agent.get_by_role("heading", level=1)).to_contain_text("Open a case")
    agent.get_by_label("Kind", exact=True).select_option(label="Refund")
    agent.get_by_label("Order reference", exact=True).fill(ORDER_REF)
    agent.get_by_label("Amount", exact=True).fill("6800.00")
    expect(agent.get_by_label("Currency (ISO 4217)", exact=True)).to_have_value("CNY")
    agent.get_by_label("Reason", exact=True).select_option(label="Service outage")
    agent.get_by_label("Description", exact=True).fill("Paid twice during the outage.")
    agent.get_by_role("button", name="Save", exact=True).click()
    expect(agent).to_have_url(re.compile(r"/cases/\d+$"))
    case_path = path_of(agent)
    case = db.session.scalar(select(Case))
    case_id, case_ref = case.id, case.ref
    assert case.amount == Decimal("6800.00") and case.currency == "CNY"
    expect(agent.locator("#main")).to_contain_text(f"Case {case_ref} opened.")
    expect(status_badge(agent)).to_have_text("New")

    agent.get_by_role("button", name="Start working", exact=True).click()
    expect(status_badge(agent)).to_have_text("In progress")
    agent.get_by_role("button", name="Propose 6800.00 CNY", exact=True).click()
    expect(status_badge(agent)).to_have_text("Awaiting legal sign-off")
    expect(agent.get_by_role("button", name=re.compile(r"^Propose"))).to_have_count(0)
    expect(agent.get_by_role("button", name="Record payment")).to_have_count(0)

    # Legal approves it, having seen the amount.
    legal = new_page(locale="en-US")
    sign_in(legal, users[Role.LEGAL].email)
    legal.goto("/signoffs/")
    legal.get_by_role("link", name=re.compile(re.escape(case_ref))).click()
    expect(legal).to_have_url(re.compile(r"/signoffs/\d+$"))
    heading = legal.get_by_role("heading", level=1)
    expect(heading).to_contain_text(case_ref)
    expect(heading).to_contain_text("6800.00 CNY")
    snapshot = legal.locator(APPROVED_SNAPSHOT)
    expect(snapshot).to_contain_text("6800.00")
    expect(snapshot).to_contain_text(ORDER_REF)
    legal.get_by_label("Approve", exact=True).check()
    legal.get_by_role("button", name="Record decision", exact=True).click()
    expect(legal).to_have_url(url_path("/signoffs/"))
    expect(legal.locator("#main")).to_contain_text("Approved.")

    # The agent records the payment once, confirming the dialog.
    agent.goto(case_path)
    expect(status_badge(agent)).to_have_text("Approved")
    agent.get_by_label("Amount paid", exact=True).fill("6800.00")
    agent.get_by_label("Payout reference", exact=True).fill(PAYOUT_REF)
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    agent.once("dialog", accept)
    agent.get_by_role("button", name="Record payment", exact=True).click()
    expect(status_badge(agent)).to_have_text("Paid")
    expect(agent.locator("#main")).to_contain_text("recorded for case")
    assert dialogs == ["Record the payment of 6800.00 CNY? A case is paid only once."], dialogs

    # A second payment is impossible: no form, and a forged post is refused.
    expect(agent.get_by_role("button", name="Record payment")).to_have_count(0)
    expect(agent.get_by_label("Amount paid")).to_have_count(0)
    expect(agent.locator(f"form[action$='/cases/{case_id}/pay']")).to_have_count(0)
    token = agent.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    response = agent.request.post(f"/cases/{case_id}/pay", form={
        "csrf_token": token, "amount": "6800.00", "payout_ref": "PAY-20240601-0043"})
    assert response.status == 422, response.status
    assert "This case has already been paid." in response.text()

    db.session.expire_all()
    payments = db.session.scalars(select(Payment).where(Payment.case_id == case_id)).all()
    assert len(payments) == 1
    assert payments[0].amount == Decimal("6800.00")
    assert payments[0].payout_ref == PAYOUT_REF
    assert db.session.scalar(select(func.count(Payment.id))) == 1
    assert db.session.get(Case, case_id).status == "paid"


def test_legal_sees_the_case_snapshot_it_approves(new_page, users) -> None:
    """The sign-off page shows legal what it approves for a case (customer, order, amount),
    and the queue says what kind of request it is."""
    event = events.create_event(title="Refund backlog", kind="incident", severity="sev2",
                                cause="system")
    customer = customers.create_customer(event, {
        "external_ref": "K-300", "name": "Gao Lei", "email": "gao@example.com",
        "locale": "en"}, actor=users[Role.AGENT])
    case = cases.open_case(customer, cases.CaseInput(
        "refund", ORDER_REF, "6800.00", "CNY", "service_outage", "", users[Role.AGENT].id),
        actor=users[Role.AGENT])
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    case_ref, request_id = case.ref, case.signoff_id
    assert case.status == "awaiting_signoff" and request_id

    legal = new_page(locale="en-US")
    sign_in(legal, users[Role.LEGAL].email)
    legal.goto("/signoffs/")
    row = legal.locator("table tbody tr", has=legal.get_by_role(
        "link", name=re.compile(re.escape(case_ref))))
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text(re.compile(r"\S"))  # the Kind is named

    legal.goto(f"/signoffs/{request_id}")
    expect(legal.get_by_role("heading", level=1)).to_contain_text(case_ref)
    snapshot = legal.locator(APPROVED_SNAPSHOT)
    for expected in ("6800.00", "CNY", ORDER_REF, "Gao Lei", "K-300"):
        expect(snapshot).to_contain_text(expected)


def test_case_list_active_search_and_bulk_assign(new_page, users) -> None:
    event = events.create_event(title="Payment delay", kind="incident", severity="sev2",
                                cause="system")
    agent = users[Role.AGENT]
    wanted = customers.create_customer(event, {
        "external_ref": "K-200", "name": "Lin Xiaoming", "company": "Acme Trading",
        "email": "lin@example.com", "locale": "en"}, actor=agent)
    other = customers.create_customer(event, {
        "external_ref": "K-201", "name": "Zhou Min", "email": "zhou@example.com",
        "locale": "en"}, actor=agent)
    case = cases.open_case(wanted, cases.CaseInput(
        "refund", "SO-1", "120.00", "CNY", "service_outage", "", agent.id), actor=agent)
    decoy = cases.open_case(other, cases.CaseInput(
        "compensation", "SO-2", "80.00", "CNY", "overcharge", "", agent.id), actor=agent)
    case_id, case_ref, decoy_ref = case.id, case.ref, decoy.ref
    second, _ = auth_services.create_user("agent2@example.com", "Second Agent", "agent",
                                          PASSWORD, must_change_password=False)
    second_id = second.id

    page = new_page(locale="en-US")
    sign_in(page, agent.email)
    page.goto("/cases/")
    results = page.locator("#case-results")
    expect(results.get_by_role("link", name=case_ref, exact=True)).to_be_visible()
    expect(results.get_by_role("link", name=decoy_ref, exact=True)).to_be_visible()

    page.evaluate("window.__marker = 'still here'")
    page.get_by_label("Search", exact=True).press_sequentially("xiaom", delay=30)
    expect(results.get_by_role("link", name=decoy_ref, exact=True)).to_have_count(0)
    expect(results.get_by_role("link", name=case_ref, exact=True)).to_be_visible()
    expect(results).to_contain_text("1 case")
    expect(results).to_contain_text("Lin Xiaoming")
    expect(page).to_have_url(re.compile(r"/cases/\?(.*&)?q=xiaom"))
    assert page.evaluate("window.__marker") == "still here"  # no full page load

    # Ticking a result must keep the tick. Clicking it blurs the search box, whose "change"
    # event must not fetch and swap the results again: the tick may land on the old table.
    wait_for_htmx(page)
    page.evaluate("document.getElementById('case-results').__searched = true")
    checkbox = results.get_by_role("checkbox", name=f"Select {case_ref}", exact=True)
    checkbox.check()
    wait_for_htmx(page)
    problems = []
    if not page.evaluate("document.getElementById('case-results').__searched === true"):
        problems.append(
            "leaving the search box (here: ticking a result) fetches the same search again and "
            "swaps #case-results, so a tick made meanwhile can be lost (tick kept this time: "
            f"{checkbox.is_checked()}). Cause: the filter form's hx-trigger 'input changed "
            "delay:300ms from:#q, change, submit' in templates/cases/index.html also fires on "
            "the 'change' event of #q")
    if not checkbox.is_checked():
        checkbox.check()  # tick it again, as the user would, to go on with the bulk action
        wait_for_htmx(page)
    expect(checkbox).to_be_checked()
    results.get_by_label("With the selected cases", exact=True).select_option(label="Assign to")
    results.locator("#bulk_assignee").select_option(label="Second Agent")
    results.get_by_role("button", name="Apply", exact=True).click()
    outcome = page.locator("#bulk-result li")
    expect(outcome).to_have_count(1)
    expect(outcome).to_have_text(f"{case_ref}: assigned")
    expect(outcome).to_have_class(re.compile(r"\bok\b"))
    assert page.evaluate("window.__marker") == "still here"

    db.session.expire_all()
    assert db.session.get(Case, case_id).assignee_id == second_id
    decoy_row = db.session.scalar(select(Case).where(Case.ref == decoy_ref))
    assert decoy_row.assignee_id == agent.id
    assert not problems, "\n".join(problems)
