"""The portal's shell in a real browser: sign-in, navigation per role, the language switch,
admin confirmations, form errors and htmx under the Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from portal.accounts import Role
from tests.browser.helpers import PASSWORD, url_path

pytestmark = pytest.mark.browser


# From portal/translations/zh_Hans_CN/LC_MESSAGES/messages.po
ZH = {
    "Dashboard": "工作台",
    "Events": "事件",
    "Audit trail": "审计日志",
    "Payouts": "付款",
    "Users": "用户",
    "Job queues": "任务队列",
    "Sign-offs": "法务审批",
    "Cases": "案件",
    "Triage": "分诊",
    "Main": "主导航",
    "Sign in": "登录",
    "E-mail": "邮箱",
    "Password": "密码",
}



def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


@pytest.mark.parametrize("role", [Role.AGENT, Role.LEGAL, Role.ADMIN, Role.FINANCE],
                         ids=lambda r: r.value)
def test_navigation_per_role_and_language_switch(page: Page, users, role: Role) -> None:
    sign_in(page, users[role].email, PASSWORD)
    expect(page).to_have_url(url_path("/dashboard"))

    nav = page.get_by_role("navigation", name="Main", exact=True)
    english = (["Dashboard", "Events", "Cases"]
               + (["Triage"] if role in (Role.AGENT, Role.ADMIN) else [])
               + (["Sign-offs"] if role in (Role.LEGAL, Role.ADMIN) else [])
               + (["Payouts"] if role in (Role.FINANCE, Role.ADMIN) else [])
               + ["Audit trail"] + (["Users", "Job queues"] if role == Role.ADMIN else []))
    expect(nav.get_by_role("link")).to_have_text(english)
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_role("button", name="简体中文", exact=True).click()

    nav_zh = page.get_by_role("navigation", name=ZH["Main"], exact=True)
    expect(nav_zh.get_by_role("link")).to_have_text([ZH[label] for label in english])
    expect(page).to_have_url(url_path("/dashboard"))
    # The document's language follows the switch too (screen readers, fonts, hyphenation).
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_anonymous_login_page_follows_browser_locale_and_switch(new_page) -> None:
    chinese = new_page(locale="zh-CN")
    chinese.goto("/login")
    expect(chinese.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(chinese.get_by_role("heading", level=1)).to_have_text(ZH["Sign in"])
    expect(chinese.get_by_role("button", name=ZH["Sign in"], exact=True)).to_be_visible()
    expect(chinese.get_by_label(ZH["E-mail"], exact=True)).to_be_visible()
    expect(chinese.get_by_label(ZH["Password"], exact=True)).to_be_visible()

    english = new_page(locale="en-US")
    english.goto("/login")
    expect(english.locator("html")).to_have_attribute("lang", "en")
    expect(english.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(english.get_by_role("button", name="Sign in", exact=True)).to_be_visible()

    # The visible switch overrides Accept-Language, and the choice sticks on reload.
    english.get_by_role("button", name="简体中文", exact=True).click()
    expect(english.get_by_role("heading", level=1)).to_have_text(ZH["Sign in"])
    expect(english).to_have_url(url_path("/login"))
    expect(english.locator("html")).to_have_attribute("lang", "zh-CN")
    english.reload()
    expect(english.get_by_role("heading", level=1)).to_have_text(ZH["Sign in"])
    expect(english.locator("html")).to_have_attribute("lang", "zh-CN")

    # And back the other way for the Chinese browser.
    chinese.get_by_role("button", name="English", exact=True).click()
    expect(chinese.get_by_role("heading", level=1)).to_have_text("Sign in")
    chinese.reload()
    expect(chinese.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(chinese.locator("html")).to_have_attribute("lang", "en")


def test_admin_resets_password_and_user_must_change_it(new_page, users) -> None:
    agent_id, agent_email = users[Role.AGENT].id, users[Role.AGENT].email
    admin = new_page()
    sign_in(admin, users[Role.ADMIN].email, PASSWORD)
    expect(admin).to_have_url(url_path("/dashboard"))

    admin.goto(f"/admin/users/{agent_id}")
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    admin.once("dialog", accept)
    admin.get_by_role("button", name="Reset password", exact=True).click()
    temporary = admin.locator("#temporary-password")
    expect(temporary).to_be_visible()
    assert dialogs and agent_email in dialogs[0], dialogs
    password = temporary.inner_text().strip()
    assert len(password) >= 10

    # The old password no longer works; the temporary one leads to the change-password page.
    user = new_page()
    sign_in(user, agent_email, PASSWORD)
    expect(user.locator("#password-error")).to_be_visible()
    sign_in(user, agent_email, password)
    expect(user).to_have_url(url_path("/password"))
    expect(user.get_by_role("navigation", name="Main")).to_have_count(0)
    # Every other page sends them back until they have changed it.
    user.goto("/dashboard")
    expect(user).to_have_url(url_path("/password"))

    new_password = "a-brand-new-passphrase"
    user.get_by_label("Current password", exact=True).fill(password)
    user.get_by_label("New password", exact=True).fill(new_password)
    user.get_by_label("Repeat the new password", exact=True).fill(new_password)
    user.get_by_role("button", name="Change password", exact=True).click()
    expect(user).to_have_url(url_path("/dashboard"))
    expect(user.get_by_role("navigation", name="Main", exact=True)).to_be_visible()

    # The new password is the one that works from now on.
    fresh = new_page()
    sign_in(fresh, agent_email, new_password)
    expect(fresh).to_have_url(url_path("/dashboard"))


def test_dismissing_deactivate_confirmation_keeps_account_active(page: Page, users) -> None:
    agent_id = users[Role.AGENT].id
    sign_in(page, users[Role.ADMIN].email, PASSWORD)
    expect(page).to_have_url(url_path("/dashboard"))
    page.goto(f"/admin/users/{agent_id}")

    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.once("dialog", lambda d: d.dismiss())
    with page.expect_event("dialog") as shown:
        page.get_by_role("button", name="Deactivate", exact=True).click()
    assert users[Role.AGENT].email in shown.value.message

    page.reload()
    expect(page.get_by_role("button", name="Deactivate", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Reactivate")).to_have_count(0)
    assert not [u for u in posts if u.endswith(f"/admin/users/{agent_id}/active")], posts


def test_wrong_password_shows_error_next_to_field(page: Page, users, console_errors) -> None:
    sign_in(page, users[Role.AGENT].email, "not-the-password")
    error = page.locator("#password-error")
    expect(error).to_contain_text("Wrong e-mail or password, or the account is locked")
    password = page.get_by_label("Password", exact=True)
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_attribute("aria-describedby", "password-error")
    expect(page).to_have_url(url_path("/login"))
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    assert console_errors == []


def test_audit_filter_swaps_results_with_htmx(page: Page, users) -> None:
    sign_in(page, users[Role.AGENT].email, PASSWORD)
    expect(page).to_have_url(url_path("/dashboard"))
    page.goto("/audit/")
    results = page.locator("#audit-results")
    actions = results.locator("tbody tr td:nth-child(4) code")
    # One account created per role, and one sign-in.
    expect(actions).to_have_count(len(users) + 1)
    page.evaluate("window.__marker = 1")

    page.get_by_label("Action", exact=True).select_option("user.create")

    expect(actions).to_have_count(len(users))
    expect(actions).to_have_text(["user.create"] * len(users))
    expect(page).to_have_url(re.compile(r"/audit/\?(.*&)?action=user\.create(&|$)"))
    assert page.evaluate("window.__marker") == 1, "the filter reloaded the whole page"
    # Only the results were replaced: the filter form keeps the chosen value.
    expect(page.get_by_label("Action", exact=True)).to_have_value("user.create")
    # The partial replaced the results block instead of being nested inside it.
    expect(page.locator("#audit-results #audit-results")).to_have_count(0)
    expect(page.locator("#audit-results")).to_have_count(1)
