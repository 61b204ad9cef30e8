"""The staff side of offers and payout details in a real browser, in Chinese and English: the
case page shows the customer's answer to the offer and the payout details masked to an agent
and in full to an admin; an agent's change of the amount voids the acceptance."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from portal.accounts import Role
from portal.customers import payout
from tests.browser.test_my_work_browser import sign_in_as
from tests.offer_helpers import answer, approved_case, event_requiring_acceptance

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-my-offer")
ACCOUNT = "6222021234567890128"
TEXTS = {
    "zh": {"accepted": "已接受", "masked": "已遮盖", "voided": "已作废的答复", "locale": "zh-CN"},
    "en": {"accepted": "accepted", "masked": "masked", "voided": "Voided answer",
           "locale": "en-US"},
}


@pytest.fixture
def accepted(app, users):
    case = approved_case(users, event_requiring_acceptance(users))
    answer(case, locale="zh_CN")
    payout.confirm(case.customer, {"method": "bank", "holder": "王芳", "bank": "工商银行",
                                   "account": ACCOUNT}, "203.0.113.7")
    return case


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("lang", TEXTS)
def test_an_agent_sees_the_acceptance_and_the_masked_account(new_page, users, accepted, lang,
                                                             console_errors) -> None:
    text = TEXTS[lang]
    page = new_page(locale=text["locale"])
    sign_in_as(page, users[Role.AGENT].email, lang)
    page.goto(f"/cases/{accepted.id}")
    offer = page.locator("#offer")
    expect(offer.locator(".badge.ok")).to_have_text(text["accepted"])
    expect(offer).to_contain_text("300.00 CNY")
    details = page.locator("#payout-details")
    expect(details).to_contain_text("•••• 0128")
    expect(details).to_contain_text(text["masked"])
    expect(details).not_to_contain_text(ACCOUNT)
    expect(details).not_to_contain_text("王芳")
    _shot(page, f"case-agent-{lang}")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, f"case-agent-{lang}-390")

    # The agent changes the amount: the customer's acceptance is voided.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/cases/{accepted.id}/edit")
    page.locator("#amount").fill("250.00")
    page.locator("form:has(#amount) button[type=submit]").click()
    expect(page.locator("#offer")).to_contain_text(text["voided"])
    expect(page.locator("#offer .badge.ok")).to_have_count(0)
    _shot(page, f"case-voided-{lang}")
    assert console_errors == []


@pytest.mark.parametrize("lang", TEXTS)
def test_an_admin_sees_the_account_in_full(new_page, users, accepted, lang,
                                           console_errors) -> None:
    text = TEXTS[lang]
    page = new_page(locale=text["locale"])
    sign_in_as(page, users[Role.ADMIN].email, lang)
    page.goto(f"/cases/{accepted.id}")
    details = page.locator("#payout-details")
    expect(details).to_contain_text(ACCOUNT)
    expect(details).to_contain_text("王芳")
    expect(details).not_to_contain_text(text["masked"])
    _shot(page, f"case-admin-{lang}")
    assert console_errors == []
