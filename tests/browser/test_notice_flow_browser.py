"""A notice's whole life in a real browser, in Chinese: drafted with a live preview, sent to
legal, approved, published, rendered as a PDF by the worker and read by an anonymous visitor.
And the four-eyes rule on the sign-off page: an author never decides on their own text."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.accounts import Role
from portal.auth import services as auth_services
from portal.events import services as events
from portal.extensions import db
from portal.notices import services as notices
from portal.notices.models import Notice, NoticePdf
from portal.signoffs.models import SignoffRequest
from tests.browser.helpers import PASSWORD, url_path

pytestmark = pytest.mark.browser


# From portal/translations/zh_Hans_CN/LC_MESSAGES/messages.po
ZH = {
    "Sign in": "登录",
    "E-mail": "邮箱",
    "Password": "密码",
    "Sign out": "退出登录",
    "New notice": "新建公告",
    "Title (Chinese)": "标题（中文）",
    "Text (Chinese, Markdown)": "正文（中文，Markdown）",
    "Save draft": "保存草稿",
    "Notice %(ref)s drafted as version 1.": "公告 %(ref)s 已保存为第 1 版草稿。",
    "Request legal sign-off": "提交法务审批",
    "Notice %(ref)s version %(n)d sent to legal for sign-off.":
        "公告 %(ref)s 第 %(n)d 版已提交法务审批。",
    "In review": "审核中",
    "Approve": "批准",
    "Record decision": "提交审批结果",
    "Sign-off of “%(subject)s”: %(decision)s.": "“%(subject)s”的审批：%(decision)s。",
    "Approved": "已批准",
    "Publish": "发布",
    "Publish version %(n)d to customers now?": "确定立即向客户发布第 %(n)d 版吗？",
    "Published": "已发布",
    "Notice %(ref)s published.": "公告 %(ref)s 已发布。",
    "Download PDF": "下载 PDF",
}

TITLE_ZH = "CRM 系统故障通知"
BOLD_ZH = "400-800-1234"
BODY_ZH = f"出金申请请致电 **{BOLD_ZH}**，我们会尽快处理。"



def sign_in(page: Page, email: str, *, zh: bool = False) -> None:
    page.goto("/login")
    page.get_by_label(ZH["E-mail"] if zh else "E-mail", exact=True).fill(email)
    page.get_by_label(ZH["Password"] if zh else "Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=ZH["Sign in"] if zh else "Sign in", exact=True).click()
    expect(page).to_have_url(url_path("/dashboard"))


def notice_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Notice.id)))


def test_notice_from_draft_to_public_pdf_in_chinese(new_page, users, run_worker) -> None:
    event = events.create_event(title="CRM 系统故障", kind="incident", severity="sev1",
                                cause="system")
    event_id = event.id

    # The agent drafts the notice in Chinese, watching the live preview.
    agent = new_page(locale="zh-CN")
    sign_in(agent, users[Role.AGENT].email, zh=True)
    expect(agent.locator("html")).to_have_attribute("lang", "zh-CN")
    agent.goto(f"/events/{event_id}")
    agent.get_by_role("link", name=ZH["New notice"], exact=True).click()
    expect(agent).to_have_url(url_path(f"/staff/notices/new/{event_id}"))
    expect(agent.get_by_role("heading", level=1)).to_contain_text(ZH["New notice"])

    agent.get_by_label(ZH["Title (Chinese)"], exact=True).fill(TITLE_ZH)
    agent.get_by_label(ZH["Text (Chinese, Markdown)"], exact=True).fill(BODY_ZH)
    preview = agent.locator("#preview-zh_CN")
    expect(preview.locator("strong")).to_have_text(BOLD_ZH, timeout=5_000)
    expect(preview.locator(".preview-title")).to_have_text(TITLE_ZH)
    # Markdown is rendered, not echoed.
    expect(preview).not_to_contain_text("**")
    # The preview saved nothing.
    assert notice_count() == 0

    agent.get_by_role("button", name=ZH["Save draft"], exact=True).click()
    expect(agent).to_have_url(re.compile(r"/staff/notices/\d+$"))
    notice_path = re.sub(r"^https?://[^/]+", "", agent.url)
    assert notice_count() == 1
    notice = db.session.scalar(select(Notice))
    notice_id, slug, ref = notice.id, notice.slug, notice.ref
    expect(agent.locator("#main")).to_contain_text(
        ZH["Notice %(ref)s drafted as version 1."] % {"ref": ref})
    assert notice.latest_version.content()["zh_CN"] == {"title": TITLE_ZH, "body": BODY_ZH}

    agent.get_by_role("button", name=ZH["Request legal sign-off"], exact=True).click()
    expect(agent.locator("#main")).to_contain_text(
        ZH["Notice %(ref)s version %(n)d sent to legal for sign-off."] % {"ref": ref, "n": 1})
    expect(agent.locator(".badge.status-in_review")).to_have_text(ZH["In review"])
    expect(agent.get_by_role("button", name=ZH["Request legal sign-off"])).to_have_count(0)

    agent.get_by_role("button", name=ZH["Sign out"], exact=True).click()
    expect(agent).to_have_url(url_path("/login"))
    expect(agent.get_by_role("button", name=ZH["Sign out"])).to_have_count(0)

    # Legal approves exactly this text.
    legal = new_page(locale="zh-CN")
    sign_in(legal, users[Role.LEGAL].email, zh=True)
    legal.goto("/signoffs/")
    legal.get_by_role("link", name=re.compile(re.escape(TITLE_ZH))).click()
    expect(legal).to_have_url(re.compile(r"/signoffs/\d+$"))
    snapshot = legal.locator("section.snapshot[lang='zh-CN']")
    expect(snapshot.get_by_role("heading", level=2)).to_have_text(TITLE_ZH)
    expect(snapshot.locator("strong")).to_have_text(BOLD_ZH)
    legal.get_by_label(ZH["Approve"], exact=True).check()
    legal.get_by_role("button", name=ZH["Record decision"], exact=True).click()
    expect(legal).to_have_url(url_path("/signoffs/"))
    expect(legal.locator("#main")).to_contain_text(
        ZH["Sign-off of “%(subject)s”: %(decision)s."]
        % {"subject": f"{ref} 第 1 版 — {TITLE_ZH}", "decision": ZH["Approved"]})

    # The agent publishes it, confirming the dialog.
    sign_in(agent, users[Role.AGENT].email, zh=True)
    agent.goto(notice_path)
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    agent.once("dialog", accept)
    agent.get_by_role("button", name=ZH["Publish"], exact=True).click()
    expect(agent.locator(".badge.status-published")).to_have_text(ZH["Published"])
    expect(agent.locator("#main")).to_contain_text(ZH["Notice %(ref)s published."] % {"ref": ref})
    assert dialogs == [ZH["Publish version %(n)d to customers now?"] % {"n": 1}], dialogs

    # The worker makes the signed PDF.
    run_worker()
    row = db.session.scalar(select(NoticePdf))
    assert row is not None and row.kind == "signed" and row.status == "done", (
        row and row.error)
    assert db.session.get(Notice, notice_id).published_version_id == row.version_id

    # An anonymous visitor reads it in Chinese and downloads the PDF.
    visitor = new_page(locale="zh-CN")
    visitor.goto("/notices")
    expect(visitor.locator("html")).to_have_attribute("lang", "zh-CN")
    link = visitor.get_by_role("link", name=TITLE_ZH, exact=True)
    expect(link).to_be_visible()
    link.click()
    expect(visitor).to_have_url(url_path(f"/notices/{slug}"))
    expect(visitor.get_by_role("heading", level=1)).to_have_text(TITLE_ZH)
    expect(visitor.locator("article .prose-html strong")).to_have_text(BOLD_ZH)
    download = visitor.get_by_role("link", name=ZH["Download PDF"], exact=True)
    expect(download).to_be_visible()
    href = download.get_attribute("href")
    assert href == f"/notices/{slug}.pdf?lang=zh_CN", href
    response = visitor.request.get(href)
    assert response.status == 200, response.status
    assert response.headers["content-type"].startswith("application/pdf")
    assert response.body().startswith(b"%PDF")


def test_author_cannot_decide_on_own_notice(new_page, users) -> None:
    author, _ = auth_services.create_user("legal2@example.com", "Second Legal", "legal",
                                          PASSWORD, must_change_password=False)
    event = events.create_event(title="Payment delay", kind="incident", severity="sev2",
                                cause="system")
    notice = notices.create_notice(event, audience="public",
                                   content={"en": {"title": "T", "body": "B"}}, actor=author)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    request_id = request.id
    assert request.author_id == author.id

    page = new_page(locale="en-US")
    sign_in(page, "legal2@example.com")
    page.goto(f"/signoffs/{request_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(notice.ref)
    expect(page.get_by_text("You wrote this content; another legal reviewer must decide.",
                            exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Record decision")).to_have_count(0)
    expect(page.get_by_role("radio", name="Approve")).to_have_count(0)
    expect(page.locator(f"form[action$='/signoffs/{request_id}/decide']")).to_have_count(0)

    # Forging the form (with a valid CSRF token from this session) does not approve it either.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    response = page.request.post(f"/signoffs/{request_id}/decide",
                                 form={"csrf_token": token, "decision": "approved",
                                       "comment": ""})
    assert response.status == 403, response.status  # who decides is refused, not the input
    assert "You wrote this content; another legal reviewer must decide." in response.text()

    db.session.expire_all()
    item = db.session.get(SignoffRequest, request_id)
    assert item.status == "pending"
    assert item.decided_by_id is None and item.decided_at is None
    assert db.session.get(Notice, notice.id).status == "in_review"
