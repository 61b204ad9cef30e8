"""The customer page in a real browser: from the personal link in a real e-mail kept by the
local SMTP server, the page in Chinese, a reply, and the agent reading it on the case; with
screenshots of /my in both languages at 1,280 and 390 px (in /tmp/shots-my/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from portal.accounts import Role
from portal.cases import services as cases
from portal.cases import tasks as case_tasks
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from tests.browser.helpers import path_of, sign_in, url_path
from tests.case_helpers import make_case, make_customer
from tests.notice_helpers import make_event, make_notice, publish

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-my")


def _fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide"


def test_from_the_emailed_link_to_a_reply_the_agent_reads(
        app, users, new_page, smtp_server) -> None:
    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"])
    event = make_event()
    notice = make_notice(users, event)
    publish(notice, users)
    customer = make_customer(users, event=event, email="wang.fang@example.com")
    case = make_case(users, customer=customer, amount="1280.50", order_ref="WD-20261122-031")
    note = cases.add_reply(case, "我们已收到您的申请，正在审核。", actor=users[Role.AGENT])
    db.session.commit()
    assert case_tasks.queue_reply(note.id)
    from portal.extensions import rq
    from portal.mailings.cli import PromptlyStoppingWorker

    queues = list(rq.queues.values())
    PromptlyStoppingWorker(queues, connection=queues[0].connection,
                           job_class=queues[0].job_class).work(burst=True)
    [message] = read_messages(smtp_server["dir"])
    link = re.search(r"https?://\S+?(/my/[A-Za-z0-9_-]{40,})", message.get_content()).group(1)

    page = new_page(locale="zh-CN")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(link)
    expect(page).to_have_url(url_path("/my"))
    assert "/my/" not in path_of(page)  # no token left in the address bar
    expect(page.get_by_role("heading", name="您的个案")).to_be_visible()
    expect(page.get_by_text("审核中").or_(page.get_by_text("已收到，我们会尽快处理"))).to_be_visible()
    expect(page.get_by_text("我们已收到您的申请，正在审核。")).to_be_visible()
    page.screenshot(path=str(SHOTS / "my-zh-1280.png"), full_page=True)
    _fits(page)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "my-zh-390.png"), full_page=True)
    _fits(page)

    page.get_by_label(f"就个案 {case.ref} 给我们留言").fill("我的银行账户已更换，请联系我。")
    page.get_by_role("button", name="发送").click()
    expect(page.get_by_text(f"您在个案 {case.ref} 上的留言已发送")).to_be_visible()
    expect(page.get_by_text("我的银行账户已更换，请联系我。")).to_be_visible()

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Your cases")).to_be_visible()
    assert path_of(page) == "/my"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(SHOTS / "my-en-1280.png"), full_page=True)
    _fits(page)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "my-en-390.png"), full_page=True)
    _fits(page)

    agent = new_page()
    sign_in(agent, users[Role.AGENT].email)
    agent.goto(f"/cases/{case.id}")
    conversation = agent.locator("#conversation")
    expect(conversation.get_by_text("我的银行账户已更换，请联系我。")).to_be_visible()
    expect(conversation.get_by_text("from the customer")).to_be_visible()
    texts = conversation.locator("li").all_inner_texts()
    assert "正在审核" in texts[0] and "银行账户" in texts[1]
    agent.screenshot(path=str(SHOTS / "staff-case-conversation.png"), full_page=True)


def test_check_my_case_on_a_notice_page_answers_the_same_page(app, users, new_page,
                                                              console_errors) -> None:
    app.config["MY_CHECK_SECONDS"] = 0.1
    event = make_event()
    notice = make_notice(users, event)
    publish(notice, users)
    db.session.commit()
    page = new_page(locale="zh-CN")
    page.goto(f"/notices/{notice.slug}")
    # The page also offers updates by e-mail: the check is its own region.
    check = page.get_by_role("region", name="查询我的赔付")
    check.get_by_label("您的电子邮箱").fill("nobody@example.com")
    check.get_by_label("订单号或个案编号").fill("WD-1")
    page.get_by_role("button", name="发送链接给我").click()
    expect(page.get_by_role("heading", name="请查收邮件")).to_be_visible()
    page.screenshot(path=str(SHOTS / "check-sent-zh.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/my/this-link-was-never-issued")
    expect(page.get_by_role("heading", name="此链接无法打开您的页面")).to_be_visible()
    expect(page.get_by_label("您的电子邮箱")).to_be_visible()
    _fits(page)
    page.screenshot(path=str(SHOTS / "link-problem-zh-390.png"), full_page=True)
    # Chromium reports the page's own 404 status on the console; nothing else may be there.
    console_errors[:] = [e for e in console_errors if "status of 404" not in e]
