"""My work, the header search and the canned reply picker in a real browser, in English and
Chinese, on a desktop (1,280 px) and a phone (390 px): what a person sees and clicks, no
console error (CSP included), nothing wider than the screen."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from portal.accounts import Role
from portal.cases import canned
from portal.cases import services as cases
from portal.cases.models import Case
from portal.customers import services as customers
from portal.extensions import db
from portal.mailings import unsubscribe
from portal.models import utcnow
from tests.browser.helpers import PASSWORD, sign_in, url_path, wait_for_htmx
from tests.notice_helpers import make_event

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
LOCALES = {"en": "en-US", "zh": "zh-CN"}
# Where screenshots go when SCREENSHOTS names a folder (to look at them).
SHOTS = os.environ.get("SCREENSHOTS")


def _fits(page: Page, *selectors: str) -> None:
    """The header and these parts of the page end inside the viewport (the wide tables some
    pages share are another matter)."""
    width = page.viewport_size["width"]
    for selector in (".topbar", *selectors):
        right = page.locator(selector).evaluate("e => e.getBoundingClientRect().right")
        assert right <= width, f"{selector} of {page.url} ends at {right} px"
        inner = page.locator(selector).evaluate("e => e.scrollWidth - e.clientWidth")
        assert inner <= 1, f"{selector} of {page.url} overflows by {inner} px"


def _shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
def work(app, users):
    """An agent's overdue case for 王芳 (paid-in-full history aside), a canned reply, and 王芳
    in two events."""
    first, second = make_event(title="CRM 系统故障 / CRM outage"), make_event(
        title="App 关停 / App shutdown")
    agent = users[Role.AGENT]
    wang = customers.create_customer(first, {
        "external_ref": "CRM-10001", "name": "王芳", "email": "wang.fang@example.com",
        "phone": "+86 138 0013 8000", "company": "华夏贸易有限公司", "locale": "zh_CN"},
        actor=agent)
    customers.create_customer(second, {
        "external_ref": "APP-7", "name": "王芳", "email": "wang.fang@example.com",
        "locale": "zh_CN"}, actor=agent)
    customers.create_customer(first, {"external_ref": "CRM-10002", "name": "王小明",
                                      "email": "xm@example.com"}, actor=agent)
    case = cases.open_case(wang, cases.CaseInput(
        "refund", "WD-20261122-001", "1280.50", "CNY", "service_outage", "", agent.id),
        actor=agent)
    cases.add_reply(case, "您的退款正在处理。", actor=agent)
    db.session.execute(update(Case).where(Case.id == case.id).values(
        due_at=utcnow() - timedelta(hours=3)))
    unsubscribe.unsubscribe(wang, via="link")
    canned.create(canned.CannedInput(
        "Refund in progress",
        "{{ name }}，您好：案件 {{ case_ref }}（{{ case_amount }}）正在处理。",
        "Dear {{ name }}, case {{ case_ref }} ({{ case_amount }}) is being processed."),
        actor=users[Role.ADMIN])
    db.session.commit()
    return case


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", LOCALES)
def test_the_agents_home_shows_their_work(new_page, users, work, lang, size) -> None:
    page = new_page(locale=LOCALES[lang])
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[size], strict=True)))
    sign_in_as(page, users[Role.AGENT].email, lang)
    mine = page.locator("#my-work-cases")
    expect(mine.get_by_role("link", name=f"{work.ref} · WD-20261122-001")).to_be_visible()
    expect(page.locator("#my-work-replies")).to_contain_text(work.ref)
    expect(page.locator("#my-work-count")).to_contain_text("2")
    _fits(page, "#my-work")
    _shot(page, f"home-agent-{lang}-{size}")
    mine.get_by_role("link", name=f"{work.ref} · WD-20261122-001").click()
    expect(page).to_have_url(url_path(f"/cases/{work.id}"))


def sign_in_as(page: Page, email: str, lang: str) -> None:
    """Sign in on the login page in the browser's language."""
    if lang == "en":
        sign_in(page, email)
        return
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.get_by_label("邮箱", exact=True).fill(email)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page).to_have_url(url_path("/dashboard"))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", LOCALES)
def test_the_header_search_reaches_one_customer_view(new_page, users, work, lang,
                                                     size) -> None:
    page = new_page(locale=LOCALES[lang])
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[size], strict=True)))
    sign_in_as(page, users[Role.LEGAL].email, lang)
    box = page.locator("#global-q")
    box.fill("王")  # two people: a list
    box.press("Enter")
    expect(page).to_have_url(url_path("/search"))
    results = page.locator("#customer-results")
    expect(results.get_by_role("link", name="王小明")).to_be_visible()
    _fits(page, "#customer-results")
    page.locator("#global-q").fill("+86 138-0013-8000")  # one person: their page
    page.locator("#global-q").press("Enter")
    expect(page).to_have_url(url_path(f"/customers/{work.customer_id}"))
    timeline = page.locator("#customer-timeline")
    expect(timeline).to_contain_text(work.ref)
    expect(timeline).to_contain_text("App 关停 / App shutdown")  # the same person elsewhere
    expect(timeline.locator("li.entry-unsubscribed")).to_have_count(1)
    _fits(page, "#customer-timeline")
    _shot(page, f"customer-{lang}-{size}")
    page.locator("#global-q").fill(work.ref.lower())  # a case ref: the case
    page.locator("#global-q").press("Enter")
    expect(page).to_have_url(url_path(f"/cases/{work.id}"))


def test_the_canned_reply_picker_fills_the_reply(new_page, users, work) -> None:
    page = new_page(locale="en-US")
    sign_in(page, users[Role.AGENT].email)
    page.goto(f"/cases/{work.id}")
    page.get_by_label("Start from a canned reply").select_option(label="Refund in progress")
    wait_for_htmx(page)
    text = page.get_by_label("Text", exact=True)
    expect(text).to_have_value(f"王芳，您好：案件 {work.ref}（CNY 1,280.50）正在处理。")
    expect(page.get_by_label("Kind")).to_have_value("reply")
    _shot(page, "canned-picker-en-desktop")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#conversation")).to_contain_text(
        f"案件 {work.ref}（CNY 1,280.50）正在处理")
