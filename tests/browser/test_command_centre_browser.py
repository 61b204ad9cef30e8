"""The command centre in a real browser: an admin opens an incident with its checklist, staff
tick tasks without a page reload, add to the timeline and record a stakeholder; the dashboard's
chart bars lead to the filtered case list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.accounts import Role
from portal.extensions import db
from tests.browser.helpers import path_of, sign_in, url_path
from tests.case_helpers import make_case, make_customer
from tests.notice_helpers import make_event

pytestmark = pytest.mark.browser


def test_open_an_incident_tick_tasks_and_follow_a_chart(new_page, users) -> None:
    admin = new_page(locale="en-US")
    sign_in(admin, users[Role.ADMIN].email)
    admin.goto("/events/new")
    admin.get_by_label("Internal title", exact=True).fill("Payment gateway outage")
    admin.get_by_label("Kind", exact=True).select_option("incident")
    admin.get_by_label("Severity", exact=True).select_option("sev1")
    expect(admin.get_by_label("Start the checklist from the template of this kind")).to_be_checked()
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(admin).to_have_url(re.compile(r"/events/\d+$"))
    event_path = path_of(admin)

    checklist = admin.locator("#checklist")
    expect(checklist.get_by_role("heading", level=2)).to_contain_text("0 of 10 done")
    expect(checklist.get_by_role("heading", name="Tech", exact=True)).to_be_visible()
    first = checklist.locator("li.task").first
    first.get_by_role("button").click()
    expect(checklist.get_by_role("heading", level=2)).to_contain_text("1 of 10 done")
    expect(checklist.locator("li.task.done")).to_have_count(1)
    expect(admin).to_have_url(url_path(event_path))  # swapped in place, no navigation

    admin.locator("#timeline summary").click()
    admin.get_by_label("What happened", exact=True).fill("Acquirer confirmed the outage")
    admin.locator("#timeline").get_by_role("button", name="Add", exact=True).click()
    expect(admin.locator("#timeline ol")).to_contain_text("Acquirer confirmed the outage")

    admin.locator("#stakeholders summary").click()
    stakeholders = admin.locator("#stakeholders")
    stakeholders.get_by_label("Kind", exact=True).select_option("supplier")
    stakeholders.get_by_label("Name", exact=True).fill("Acme Pay")
    stakeholders.get_by_role("button", name="Add", exact=True).click()
    row = admin.locator("#stakeholders tr", has_text="Acme Pay")
    row.get_by_role("button", name="Mark informed").click()
    expect(admin.locator("#stakeholders tr", has_text="Acme Pay")).to_contain_text("informed")

    # The dashboard: each bar links to the list behind it.
    event = make_event(title="Checkout outage")
    make_case(users, "88.00", customer=make_customer(users, "K-1", event))
    db.session.commit()
    admin.goto("/dashboard")
    chart = admin.locator("figure", has_text="Open cases by status")
    expect(chart.locator("svg")).to_be_visible()
    chart.locator("a", has_text="New").first.click()
    expect(admin).to_have_url(re.compile(r"/cases/\?status=new$"))
    expect(admin.locator("table")).to_contain_text("88.00")
