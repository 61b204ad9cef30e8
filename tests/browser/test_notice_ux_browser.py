"""What people see of issue 12's clearer actions, in a real browser, in English and Chinese:
where an agent starts (and who can open an event), New case from the cases list, approval
publishing a notice planned "on approval" (and an approval that could not publish), the
changed characters on the comparison and sign-off pages, the request for sign-off refused
with the placeholders still to fill, and the public filter naming only public titles.

Screenshots go to ``$SCREENSHOT_DIR`` (default: a temporary folder) for a person to look at."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers import services as customers
from portal.extensions import db
from portal.notices import publishing
from portal.notices import services as notices
from portal.notices.models import Notice
from tests.browser.helpers import PASSWORD, url_path
from tests.notice_helpers import EN, ZH, make_event, make_notice, publish

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="notices-ux-"))
LOGIN = {"en-US": ("E-mail", "Password", "Sign in"), "zh-CN": ("邮箱", "密码", "登录")}


def sign_in(page: Page, email: str, locale: str) -> None:
    label_email, label_password, button = LOGIN[locale]
    page.goto("/login")
    page.get_by_label(label_email, exact=True).fill(email)
    page.get_by_label(label_password, exact=True).fill(PASSWORD)
    page.get_by_role("button", name=button, exact=True).click()
    expect(page).to_have_url(url_path("/dashboard"))


def shoot(page: Page, name: str, mine: str, checked: tuple[int, ...] = (1280, 390)) -> None:
    """A full-page screenshot at 1,280 and at 390 px (a phone); at the ``checked`` widths,
    nothing in ``mine`` (the parts this change adds, a CSS selector) is wider than the
    viewport."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=SHOTS / f"{name}-{width}.png", full_page=True)
        wide = page.evaluate(
            "([sel, w]) => [...document.querySelectorAll(sel)].filter(e => "
            "e.getBoundingClientRect().right > w + 1).map(e => e.tagName + ' ' "
            "+ (e.textContent || '').slice(0, 40))", [mine, width])
        assert width not in checked or wide == [], (name, width)
    page.set_viewport_size({"width": 1280, "height": 900})


def marks(table, tag: str) -> list[str]:
    """The marked texts as seen (what is announced only to screen readers left out)."""
    return table.locator(tag).evaluate_all(
        "els => els.map(e => [...e.childNodes].filter(n => n.nodeType === 3)"
        ".map(n => n.textContent).join(''))")


def test_agent_starts_from_events_and_opens_a_case_from_the_cases_list(
        new_page, users) -> None:
    event = make_event()
    wang = customers.create_customer(event, {"external_ref": "CRM-10001", "name": "王芳",
                                             "email": "wang.fang@example.com"},
                                     actor=users[Role.AGENT])
    page = new_page()
    sign_in(page, users[Role.AGENT].email, "en-US")
    page.goto("/events/")
    expect(page.locator("#who-can-open-event")).to_have_text(
        "Opening an event is for: Admin / incident lead. Ask them to open one; you start "
        "from an event below.")
    expect(page.get_by_role("link", name="New event")).to_have_count(0)
    page.get_by_role("link", name=event.title).click()
    # The event page leads with its notices, and says who drafts them.
    expect(page.get_by_role("navigation", name="On this page")).to_contain_text("Notices 0")
    page.get_by_role("navigation", name="On this page").get_by_role("link", name="Notices").click()
    expect(page.locator("#notices")).to_be_in_viewport()
    shoot(page, "event-page-en", ".inpage, .inpage *, .who-can")
    page.get_by_role("link", name="Cases", exact=True).click()
    page.get_by_role("link", name="New case").click()
    expect(page).to_have_url(url_path("/cases/new"))
    expect(page.locator("#customer-picks")).to_contain_text("Type at least 2 characters")
    page.get_by_label("Customer", exact=True).fill("wang.fang")
    expect(page.get_by_role("link", name="Open a case for 王芳")).to_be_visible()
    shoot(page, "new-case-en", "#customer-picks a")
    page.get_by_role("link", name="Open a case for 王芳").click()
    expect(page).to_have_url(url_path(f"/cases/new/{wang.id}"))
    expect(page.locator("#main")).to_contain_text("王芳")

    zh = new_page(locale="zh-CN")
    sign_in(zh, users[Role.LEGAL].email, "zh-CN")
    zh.goto("/cases/")
    expect(zh.locator(".who-can")).to_have_text("新建和处理案件的角色：客服、管理员 / 事件负责人。")
    expect(zh.get_by_role("link", name="新建案件")).to_have_count(0)
    zh.goto("/events/")
    expect(zh.locator("#who-can-open-event")).to_contain_text(
        "新建事件的角色：管理员 / 事件负责人。")
    shoot(zh, "events-who-can-zh", ".who-can")


def test_approval_publishes_a_notice_planned_on_approval(new_page, users) -> None:
    notice = make_notice(users, publish_on_approval=True)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    notice_id, slug, ref = notice.id, notice.slug, notice.ref
    legal = new_page(locale="zh-CN")
    sign_in(legal, users[Role.LEGAL].email, "zh-CN")
    legal.goto(f"/signoffs/{request.id}")
    expect(legal.locator("#changes")).to_contain_text("首次送审的版本")
    legal.get_by_label("批准", exact=True).check()
    legal.get_by_role("button", name="提交审批结果", exact=True).click()
    expect(legal).to_have_url(url_path("/signoffs/"))
    expect(legal.locator("#main")).to_contain_text(f"公告 {ref} 已批准并发布。")

    reader = new_page()
    reader.goto(f"/notices/{slug}")
    expect(reader.get_by_role("heading", level=1)).to_have_text(EN["title"])
    db.session.expire_all()
    assert db.session.get(Notice, notice_id).status == "published"
    assert db.session.scalar(select(AuditEntry.action).where(
        AuditEntry.subject_type == "notice", AuditEntry.subject_id == str(notice_id))
        .order_by(AuditEntry.id.desc()).limit(1)) == "notice.publish"


def test_approval_stands_when_the_notice_was_withdrawn_meanwhile(new_page, users) -> None:
    notice = make_notice(users, publish_on_approval=True)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    # Withdrawn while legal reads (the row changed under the open request).
    db.session.execute(update(Notice).where(Notice.id == notice.id).values(status="withdrawn"))
    notice_id = notice.id
    legal = new_page()
    sign_in(legal, users[Role.LEGAL].email, "en-US")
    legal.goto(f"/signoffs/{request.id}")
    legal.get_by_label("Approve", exact=True).check()
    legal.get_by_role("button", name="Record decision", exact=True).click()
    expect(legal.locator("#main")).to_contain_text(
        "Approved, but not published: the notice was withdrawn meanwhile.")
    legal.goto(f"/staff/notices/{notice_id}")
    expect(legal.locator("#publish-refusal")).to_have_text(
        "Approved, but not published: the notice was withdrawn meanwhile.")
    db.session.expire_all()
    assert db.session.get(Notice, notice_id).published_version_id is None


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_diff_and_signoff_pages_mark_the_changed_characters(new_page, users, locale) -> None:
    notice = make_notice(users)
    publish(notice, users)
    # One Chinese character changed (请 → 可), one added (“今日恢复”), one English number.
    changed = {"zh_CN": {**ZH, "body": "出金申请可致电 **400-800-1234**，今日恢复。"},
               "en": {**EN, "body": "For withdrawals call **400-800-1235**."}}
    notices.save(notice, content=changed, audience="public", planned_publish_at=None,
                 based_on=1, actor=users[Role.AGENT])
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    notice_id = notice.id
    page = new_page(locale=locale)
    sign_in(page, users[Role.LEGAL].email, locale)
    page.goto(f"/staff/notices/{notice_id}/diff?a=1&b=2")
    zh_table = page.locator("table.diff[lang='zh-CN']")
    assert marks(zh_table, "del") == ["请"]
    assert marks(zh_table, "ins") == ["可", "，今日恢复"]
    shoot(page, f"diff-{locale}", "table.diff, table.diff *")

    page.goto(f"/signoffs/{request.id}")
    changes = page.locator("#changes")
    heading = {"en-US": "What changed since the last approved version",
               "zh-CN": "与上次批准版本相比的改动"}[locale]
    expect(changes.get_by_role("heading", level=2)).to_have_text(heading)
    assert marks(changes.locator("table.diff[lang='zh-CN']"), "del") == ["请"]
    assert marks(changes.locator("table.diff[lang='en']"), "ins") == ["1235"]
    # Without colour: struck through and underlined.
    assert changes.locator("del").first.evaluate(
        "e => getComputedStyle(e).textDecorationLine") == "line-through"
    assert changes.locator("ins").first.evaluate(
        "e => getComputedStyle(e).textDecorationLine") == "underline"
    shoot(page, f"signoff-{locale}", "#changes, #changes *")


@pytest.mark.parametrize(("locale", "request_button", "sentence"), [
    ("en-US", "Request legal sign-off", "Fill in: {{ resolution_time }}"),
    ("zh-CN", "提交法务审批", "请填写：{{ resolution_time }}"),
])
def test_request_for_signoff_refused_with_the_placeholders_to_fill(
        new_page, users, locale, request_button, sentence) -> None:
    notice = make_notice(users, content={
        "zh_CN": {"title": "故障通知", "body": "预计于 {{ resolution_time }} 前恢复。"},
        "en": {"title": "Outage", "body": "Expected back by {{ resolution_time }}."}})
    notice_id = notice.id
    page = new_page(locale=locale)
    sign_in(page, users[Role.AGENT].email, locale)
    page.goto(f"/staff/notices/{notice_id}")
    expect(page.locator("#unfilled")).to_contain_text("{{ resolution_time }}")
    page.get_by_role("button", name=request_button, exact=True).click()
    for field in ("body_zh_CN", "body_en"):
        expect(page.locator(f"#{field}-error")).to_have_text(sentence)
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
    # At 390 px the language blocks of the drafting form overflow (the layout item of issue
    # 12, not this one); the messages are checked at 1,280.
    shoot(page, f"placeholders-{locale}", ".error", checked=(1280,))
    db.session.expire_all()
    assert db.session.get(Notice, notice_id).status == "draft"


def test_public_filter_lists_only_events_with_a_public_title(new_page, users) -> None:
    named = make_event(title="CRM db01 failover (internal)")
    named.public_title_zh, named.public_title_en = "在线服务中断", "Online service disruption"
    other = make_event(title="Old line (internal)", severity="sev3")
    other.public_title_zh, other.public_title_en = "旧业务关停", "Old line shut down"
    drill = make_event(title="Test event: drill", severity="sev4")
    for event in (named, other, drill):
        publish(make_notice(users, event), users)
    publishing.after_publication([n.id for n in notices.public_notices()])
    for locale, names in (("en-US", ["Online service disruption", "Old line shut down"]),
                          ("zh-CN", ["在线服务中断", "旧业务关停"])):
        page = new_page(locale=locale)
        page.goto("/notices")
        options = page.locator("select#event option").all_text_contents()
        assert options[1:] == names
        assert not any(re.search("drill|internal", o) for o in options)
        shoot(page, f"public-filter-{locale}", "select#event")
