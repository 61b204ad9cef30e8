"""The update cadence in a real browser, in both languages: an agent names the event's
communications lead (htmx answers with the section), the event page and the dashboard show
the overdue update, the metrics page shows the figures. Screenshots go to ``$SHOTS_DIR`` when
it is set (to look at the pages)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from portal.accounts import Role
from portal.extensions import db
from tests.browser.helpers import PASSWORD, wait_for_htmx
from tests.notice_helpers import make_event, make_notice, publish

pytestmark = pytest.mark.browser


def _shot(page: Page, name: str) -> None:
    folder = os.environ.get("SHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _sign_in(page: Page, email: str, zh: bool) -> None:
    page.goto("/login")
    page.get_by_label("邮箱" if zh else "E-mail", exact=True).fill(email)
    page.get_by_label("密码" if zh else "Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录" if zh else "Sign in", exact=True).click()
    page.wait_for_url("**/dashboard")


@pytest.mark.parametrize("zh", [False, True], ids=["en", "zh"])
def test_lead_and_overdue_update_in_the_browser(app, users, new_page, zh) -> None:
    event = make_event("sev1", title="CRM 系统故障")
    notice = make_notice(users, event)
    publish(notice, users)
    for publication in notice.publications:  # published 80 minutes ago: 20 min overdue
        publication.published_at -= timedelta(minutes=80)
    db.session.commit()
    page = new_page("zh-CN" if zh else "en-US")
    _sign_in(page, users[Role.AGENT].email, zh)
    page.goto(f"/events/{event.id}")
    section = page.locator("#communications")
    expect(section).to_contain_text("下一次公开更新已逾期" if zh else
                                    "Next public update overdue by")
    section.get_by_label("对外沟通负责人" if zh else "Communications lead").select_option(
        label=users[Role.ADMIN].name)
    section.get_by_role("button", name="指定负责人" if zh else "Set the lead").click()
    wait_for_htmx(page)
    expect(page.locator("#communications dd")).to_contain_text(users[Role.ADMIN].name)
    db.session.expire_all()
    assert event.comms_lead_id == users[Role.ADMIN].id
    _shot(page, f"event-{'zh' if zh else 'en'}")
    page.goto("/dashboard")
    expect(page.locator("#update-clocks")).to_contain_text(
        "已逾期" if zh else "overdue by")
    _shot(page, f"dashboard-{'zh' if zh else 'en'}")
    page.goto("/events/communications")
    # The update overdue now counts as late, as the dashboard says "overdue".
    expect(page.locator(f'tr[data-event="{event.id}"] .updates')).to_have_text("0 / 1")
    _shot(page, f"metrics-{'zh' if zh else 'en'}")
