""""Is this really from us?" in a real browser, in both languages: from a notice page's code
to its check, a forged code typed into the form, a mistyped one told next to the field; the
pages fit at 1,280 and 390 px. Screenshots go to /tmp/verify (or $SCREENSHOTS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal import verification
from portal.extensions import db
from portal.notices.models import Publication
from tests.notice_helpers import make_event, make_notice, publish

pytestmark = [pytest.mark.browser, pytest.mark.integration]
SHOTS = Path(os.environ.get("SCREENSHOTS") or "/tmp/verify")
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
# Per language: the page's words the test reads.
WORDS = {
    "zh-CN": {"title": "查验通知真伪", "field": "查验码", "button": "查验",
              "genuine": "真实有效：确实来自我们", "forged": "并非来自我们",
              "bad": "这不可能是我们的查验码", "notice_title": "CRM 系统故障通知"},
    "en-GB": {"title": "Is this really from us?", "field": "Verification code",
              "button": "Check", "genuine": "Genuine: this is from us", "forged": "Not from us",
              "bad": "This cannot be one of our codes", "notice_title": "CRM outage"},
}


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _fits(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow} px wider than the screen"


@pytest.fixture
def code(app, users, live_server) -> str:
    notice = make_notice(users, make_event(title="CRM 系统故障"))
    publish(notice, users)
    db.session.commit()
    return verification.grouped(db.session.scalar(select(Publication.verification_code)))


@pytest.mark.parametrize("locale", list(WORDS))
def test_verify_a_genuine_a_forged_and_a_mistyped_code(new_page, code, locale,
                                                       console_errors) -> None:
    words = WORDS[locale]
    tag = "zh" if locale.startswith("zh") else "en"
    page = new_page(locale=locale)
    page.goto("/notices")
    page.get_by_role("link", name=words["title"]).click()  # the footer of every public page
    expect(page.locator("h1")).to_have_text(words["title"])

    # A genuine code, typed loosely: lower case, a space instead of the dash.
    page.get_by_label(words["field"], exact=True).fill(code.lower().replace("-", " "))
    page.get_by_role("button", name=words["button"], exact=True).click()
    result = page.locator(".verify-result")
    expect(result.locator("h2")).to_have_text(words["genuine"])
    expect(result).to_contain_text(code)
    expect(result).to_contain_text(words["notice_title"])
    expect(result).to_contain_text("400-800-1234")
    for name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        _fits(page)
        _shot(page, f"verify-genuine-{tag}-{name}")

    # A forged code: said plainly, with where to report it.
    forged = code[:-1] + ("A" if code[-1] != "A" else "B")
    page.get_by_label(words["field"], exact=True).fill(forged)
    page.get_by_role("button", name=words["button"], exact=True).click()
    expect(result.locator("h2")).to_have_text(words["forged"])
    expect(result.get_by_role("link", name="support@example.com")).to_have_attribute(
        "href", "mailto:support@example.com")
    _fits(page)
    _shot(page, f"verify-forged-{tag}-phone")

    # Not a code: the message sits by the field, which keeps what was typed.
    page.get_by_label(words["field"], exact=True).fill("12345")
    page.get_by_role("button", name=words["button"], exact=True).click()
    expect(page.locator("#verify-code-error")).to_contain_text(words["bad"])
    expect(page.get_by_label(words["field"], exact=True)).to_have_value("12345")
    expect(page.get_by_label(words["field"], exact=True)).to_have_attribute(
        "aria-describedby", "verify-code-error")
    expect(page.locator(".verify-result")).to_have_count(0)
    _shot(page, f"verify-mistyped-{tag}-phone")
    # A forged code answers 404 and a mistyped one 422 by design: Chromium logs those
    # statuses as failed resources, the only console lines expected here.
    assert [e for e in console_errors if "404" not in e and "422" not in e] == []
    console_errors.clear()


def test_the_code_on_a_notice_page_leads_to_its_check(new_page, code, console_errors) -> None:
    page = new_page(locale="zh-CN")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/notices")
    page.get_by_role("link", name="CRM 系统故障通知").click()
    line = page.locator(".verification-line")
    expect(line).to_contain_text(code)
    _shot(page, "notice-with-code-zh-phone")
    line.get_by_role("link", name=code).click()
    expect(page.locator(".verify-result h2")).to_have_text("真实有效：确实来自我们")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    _fits(page)
