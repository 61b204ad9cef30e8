"""A post-mortem (复盘) in a real browser, in English: the agent starts it from its page, fills
the six steps, is refused for naming a colleague in the causes (the error next to the field),
saves a blameless version and has the PDF made by the worker."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.accounts import Role
from portal.events import services as events
from portal.extensions import db
from portal.postmortems.models import Postmortem, PostmortemPdf
from tests.browser.helpers import sign_in, url_path

pytestmark = pytest.mark.browser

STEPS = {
    "goals": "Restore withdrawals within 4 hours and tell every affected customer.",
    "narrative": "At 09:12 the CRM database ran out of connections; withdrawals failed.",
    "result": "Withdrawals were back after 3 hours.",
    "lessons": "Bound the pool and alert at 80 % of it.",
    "conclusion": "Filed as INC-42.",
}
BLAMELESS_CAUSES = "The connection pool had no upper bound, and nothing alerted on it."




def test_postmortem_steps_blameless_check_and_pdf(new_page, users, run_worker) -> None:
    event = events.create_event(title="CRM outage June", kind="incident", severity="sev2",
                                cause="system")
    event_id = event.id
    detail = f"/postmortems/event/{event_id}"

    page = new_page(locale="en-US")
    sign_in(page, users[Role.AGENT].email)
    page.goto(detail)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Post-mortem")
    page.get_by_role("button", name="Start the post-mortem", exact=True).click()
    expect(page.locator("textarea[name=goals]")).to_be_visible()
    expect(page.locator("#pm-facts")).to_contain_text("Event opened")

    for name, text in STEPS.items():
        page.locator(f"textarea[name={name}]").fill(text)
    causes = page.locator("textarea[name=causes]")
    # The reminder stands next to the causes field before anything is typed.
    expect(page.locator("#causes-hint")).to_contain_text("Blameless")
    causes.fill(f"{users[Role.AGENT].name} raised the pool size without a review.")
    page.get_by_role("button", name="Save", exact=True).click()

    # Refused: the error sits in the causes field's own block, and nothing was lost.
    error = page.locator("#causes-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("blameless")
    expect(error).to_contain_text(users[Role.AGENT].name)
    field = page.locator(".field.has-error")
    expect(field).to_have_count(1)
    expect(field.locator("textarea[name=causes]")).to_have_attribute(
        "aria-describedby", "causes-error")
    expect(page.locator("textarea[name=goals]")).to_have_value(STEPS["goals"])
    db.session.expire_all()
    assert db.session.query(Postmortem).one().goals == ""

    page.locator("textarea[name=causes]").fill(BLAMELESS_CAUSES)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(url_path(detail))
    expect(page.locator(".flash")).to_contain_text("saved.")
    expect(page.locator("#causes-error")).to_have_count(0)
    db.session.expire_all()
    saved = db.session.query(Postmortem).one()
    assert saved.causes == BLAMELESS_CAUSES and saved.goals == STEPS["goals"]

    page.get_by_role("button", name="Make PDF", exact=True).click()
    status = page.locator("#pdf-status")
    expect(status).to_contain_text("Waiting for a worker")
    run_worker()
    expect(page.get_by_role("link", name="Download PDF")).to_be_visible()
    db.session.expire_all()
    row = db.session.query(PostmortemPdf).one()
    assert row.status == "done" and row.sha256
