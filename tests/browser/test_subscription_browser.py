"""Subscribing in a real browser, in both languages: a Chinese reader on a phone from the
notice page, an English reader on a desktop from the notice list; each confirms with the
link from the e-mail the local SMTP server kept, and the staff page counts them by language.
Screenshots go to $SCREENSHOTS (default /tmp/subs)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal.accounts import Role
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.subscriptions.models import Subscription, SubscriptionStatus
from tests.browser.helpers import sign_in
from tests.notice_helpers import make_event, make_notice, publish

pytestmark = [pytest.mark.browser, pytest.mark.integration]
SHOTS = Path(os.environ.get("SCREENSHOTS") or "/tmp/subs")


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _fits(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow} px wider than the screen"


@pytest.fixture
def notice(app, users, live_server, smtp_server):
    for each in (app, live_server):  # the live server queues, the test's worker sends
        each.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"],
                           PORTAL_BASE_URL=live_server.config["LIVE_URL"],
                           SUBSCRIPTION_ANSWER_SECONDS=0.0)
    event = make_event(title="CRM 系统故障")
    event.public_title_zh, event.public_title_en = "在线服务中断", "Online service disruption"
    made = make_notice(users, event)
    publish(made, users)
    db.session.commit()
    return made


def _confirm(page: Page, message, button: str, done: str) -> None:
    link = re.search(r"http\S+/subscriptions/confirm/\S+", message.get_content()).group(0)
    page.goto(link)
    page.get_by_role("button", name=button).click()
    expect(page.get_by_role("status")).to_contain_text(done)


def test_subscribing_in_chinese_and_in_english(new_page, notice, users, run_worker,
                                               smtp_server, console_errors) -> None:
    # A Chinese reader, on a phone, from the notice page: this event's updates in Chinese.
    page = new_page(locale="zh-CN")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/notices/{notice.slug}")
    invite = page.locator("#subscribe")
    expect(invite.get_by_role("heading")).to_have_text("通过电子邮件接收更新")
    _shot(page, "subscribe-notice-zh-phone")
    invite.get_by_role("button", name="订阅").click()  # empty: the message by its field
    expect(page.locator("#subscribe-email-error")).to_contain_text("请输入")
    assert [e for e in console_errors if "422" not in e] == []
    console_errors.clear()
    _fits(page)
    _shot(page, "subscribe-form-zh-phone-error")
    page.get_by_label("您的电子邮箱").fill("li.na@example.cn")
    page.get_by_role("button", name="订阅").click()
    expect(page.locator("h1")).to_have_text("请查收邮件")
    _fits(page)
    _shot(page, "subscribe-sent-zh-phone")

    # An English reader, on a desktop, from the notice list: all notices, in English.
    desk = new_page(locale="en-GB")
    desk.set_viewport_size({"width": 1280, "height": 900})
    desk.goto("/notices")
    desk.get_by_label("Your e-mail address").fill("reader@example.org")
    desk.get_by_label("English").check()
    _shot(desk, "subscribe-list-en-desktop")
    desk.get_by_role("button", name="Subscribe").click()
    expect(desk.locator("h1")).to_have_text("Check your e-mail")

    run_worker()
    messages = {m["To"]: m for m in read_messages(smtp_server["dir"])}
    assert messages["li.na@example.cn"]["Subject"] == "请确认您的订阅"
    assert messages["reader@example.org"]["Subject"] == "Confirm your subscription"
    _confirm(page, messages["li.na@example.cn"], "确认订阅", "您的订阅已确认")
    _fits(page)
    _shot(page, "subscribe-confirmed-zh-phone")
    _confirm(desk, messages["reader@example.org"], "Confirm my subscription",
             "Your subscription is confirmed")
    desk.get_by_role("link", name="Change language or notices").click()
    expect(desk.locator("h1")).to_have_text("Your subscription")
    _shot(desk, "subscription-manage-en-desktop")

    db.session.expire_all()
    rows = {r.email: r for r in db.session.scalars(select(Subscription))}
    assert rows["li.na@example.cn"].status == SubscriptionStatus.ACTIVE
    assert (rows["li.na@example.cn"].locale, rows["li.na@example.cn"].event_id) == (
        "zh_CN", notice.event_id)
    assert (rows["reader@example.org"].locale, rows["reader@example.org"].event_id) == (
        "en", None)

    # Staff see the figures by language, never the addresses.
    staff = new_page()
    sign_in(staff, users[Role.AGENT].email)
    staff.goto(f"/events/{notice.event_id}")
    staff.get_by_role("link", name="Public subscribers").click()
    expect(staff.locator("h1")).to_contain_text("Public subscribers")
    expect(staff.get_by_role("row", name=re.compile("This event"))).to_contain_text("1")
    assert "li.na@example.cn" not in staff.content()
    _shot(staff, "subscribers-counts-en")
    assert [e for e in console_errors if "422" not in e] == []
