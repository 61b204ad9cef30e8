"""The whole customer journey in a real browser: the personal link from a real e-mail (kept by
the local SMTP server) → the page in Chinese → a message, a receipt and the acceptance of the
offer → the agent sees all three on the case → the case is paid and the customer sees it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.accounts import Role
from portal.cases import services as cases
from portal.cases import tasks as case_tasks
from portal.extensions import db, rq
from portal.mail.devsmtp import read_messages
from portal.mailings.cli import PromptlyStoppingWorker
from portal.main.demo_files import receipt_png
from tests.browser.helpers import sign_in, url_path
from tests.offer_helpers import approved_case, event_requiring_acceptance

pytestmark = pytest.mark.browser


def _emailed_link(case, users, smtp_server) -> str:
    note = cases.add_reply(case, "您的赔付方案已批准，请在个案页面确认。", actor=users[Role.AGENT])
    db.session.commit()
    assert case_tasks.queue_reply(note.id)
    queues = list(rq.queues.values())
    PromptlyStoppingWorker(queues, connection=queues[0].connection,
                           job_class=queues[0].job_class).work(burst=True)
    [message] = read_messages(smtp_server["dir"])
    return re.search(r"https?://\S+?(/my/[A-Za-z0-9_-]{40,})", message.get_content()).group(1)


def test_link_reply_receipt_acceptance_then_paid_and_a_changed_amount_voids(
        app, users, new_page, smtp_server, tmp_path, console_errors) -> None:
    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"])
    case = approved_case(users, event_requiring_acceptance(users), amount="300.00")
    case.customer.email, case.customer.locale = "zhao.min@example.com", "zh_CN"
    link = _emailed_link(case, users, smtp_server)

    customer = new_page(locale="zh-CN")
    customer.goto(link)
    expect(customer).to_have_url(url_path("/my"))
    panel = customer.locator(f"#case-{case.ref}")
    panel.get_by_label(f"就个案 {case.ref} 给我们留言").fill("收据已上传，请查收。")
    panel.get_by_role("button", name="发送").click()
    expect(customer.get_by_text("收据已上传，请查收。")).to_be_visible()
    receipt = tmp_path / "收据.png"
    receipt.write_bytes(receipt_png())
    customer.locator(f"#case-{case.ref}").get_by_label("添加收据或截图").set_input_files(receipt)
    customer.locator(f"#case-{case.ref}").get_by_role("button", name="上传").click()
    expect(customer.locator(f"#case-{case.ref}")).to_contain_text("收据.png")
    customer.locator(f"#case-{case.ref}").get_by_role("button", name="我接受该方案").click()
    expect(customer.locator(".flash")).to_contain_text(case.ref)
    expect(customer.locator(f"#case-{case.ref}").get_by_role(
        "button", name="我接受该方案")).to_have_count(0)
    assert customer.evaluate("document.documentElement.scrollWidth") <= 1280

    agent = new_page()
    sign_in(agent, users[Role.AGENT].email)
    agent.goto(f"/cases/{case.id}")
    expect(agent.locator("#conversation")).to_contain_text("收据已上传，请查收。")
    expect(agent.locator("#evidence")).to_contain_text("收据.png")
    expect(agent.locator("#offer .badge.ok")).to_be_visible()

    # The case can now be paid (a changed amount voiding the acceptance is
    # test_offer_browser.py's test).
    agent.on("dialog", lambda dialog: dialog.accept())
    agent.get_by_label("Amount paid").fill("300.00")
    agent.get_by_label("Payout reference").fill("PAY-2026-0001")
    agent.get_by_role("button", name="Record payment").click()
    expect(agent.locator("main")).to_contain_text("PAY-2026-0001")
    customer.reload()
    expect(customer.locator(f"#case-{case.ref}")).to_contain_text("PAY-2026-0001")
    assert console_errors == []
