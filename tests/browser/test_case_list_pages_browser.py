"""The case list's keyset pages and its estimated count in a real browser: "Next page",
"Count exactly", and a language switch on the second page that stays on it (en, then zh)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.accounts import Role
from portal.cases import views as case_views
from portal.extensions import db
from tests.browser.helpers import sign_in, wait_for_htmx
from tests.test_case_list_pages import _many_cases

pytestmark = pytest.mark.browser


def test_next_page_and_exact_count_in_both_languages(new_page, live_server, users,
                                                     monkeypatch) -> None:
    monkeypatch.setattr(case_views, "PAGE_SIZE", 5)
    live_server.config["CASE_COUNT_THRESHOLD"] = 5
    _many_cases(users, 12)
    db.session.commit()

    page = new_page(locale="en-US")
    sign_in(page, users[Role.AGENT].email)
    page.goto("/cases/")
    count = page.locator("#case-count")
    expect(count).to_contain_text("about")
    first_rows = page.locator("#case-results tbody tr").all_inner_texts()
    assert len(first_rows) == 5

    page.get_by_role("link", name="Next page").click()
    wait_for_htmx(page)
    assert "after=" in page.url
    second_rows = page.locator("#case-results tbody tr").all_inner_texts()
    assert len(second_rows) == 5 and not set(second_rows) & set(first_rows)
    page.get_by_role("link", name="Count exactly").click()
    wait_for_htmx(page)
    expect(count).to_have_text("12 cases")
    assert "count=exact" in page.url and "after=" in page.url

    # The switch to Chinese comes back to this very page (the htmx swap told it where).
    page.locator('form.langswitch button[value="zh_CN"]').click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert "after=" in page.url
    assert page.locator("#case-results tbody tr").all_inner_texts() != first_rows
    expect(page.locator("#case-count")).to_have_text("12 个案件")
    page.get_by_role("link", name="上一页").click()
    wait_for_htmx(page)
    expect(page.get_by_role("link", name="下一页")).to_be_visible()
    page.goto("/cases/")
    expect(page.locator("#case-count")).to_contain_text("约")
    page.get_by_role("link", name="精确统计").click()
    wait_for_htmx(page)
    expect(page.locator("#case-count")).to_have_text("12 个案件")
