"""An admin erases one customer's personal data in a real browser: a reason, a confirmation
dialog, and the customer page shows the pseudonym afterwards."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from portal.accounts import Role
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.events import services as events
from portal.extensions import db
from tests.browser.helpers import sign_in, url_path

pytestmark = pytest.mark.browser


def test_admin_erases_a_customer_after_confirming(new_page, users) -> None:
    event = events.create_event(title="Wallet shutdown", kind="shutdown", severity="sev3",
                                cause="business")
    customer = customers.create_customer(event, {
        "external_ref": "W-42", "name": "Chen Jing", "email": "chen.jing@example.com",
        "phone": "+86 139 0000 4242", "locale": "en"}, actor=users[Role.AGENT])
    customer_id = customer.id
    page: Page = new_page(locale="en-US")
    sign_in(page, users[Role.ADMIN].email)
    page.goto(f"/customers/{customer_id}")
    expect(page.locator("h1")).to_contain_text("Chen Jing")

    page.get_by_text("Erase personal data", exact=True).first.click()  # opens the details
    page.get_by_label("Reason", exact=True).fill("Erasure request of the customer, ticket 9")
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Erase personal data", exact=True).click()
    expect(page).to_have_url(url_path(f"/customers/{customer_id}"))
    expect(page.locator("h1")).to_contain_text(f"Erased customer #{customer_id}")
    expect(page.locator("#main")).to_contain_text("Personal data of customer #")
    expect(page.locator("#main")).not_to_contain_text("chen.jing@example.com")
    assert dialogs == ["Erase the personal data of this customer? This cannot be undone."]
    db.session.expire_all()
    assert db.session.get(Customer, customer_id).erased_at is not None
