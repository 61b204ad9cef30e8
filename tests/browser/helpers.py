"""What the browser tests share: signing in and reading where the page is."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

PASSWORD = "correct-horse-battery"


def url_path(path: str) -> re.Pattern[str]:
    """The page URL ends with ``path`` (query string allowed)."""
    return re.compile(rf"^https?://[^/]+{re.escape(path)}(\?.*)?$")


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def sign_in(page: Page, email: str) -> None:
    """Sign in on the English login page and land on the dashboard."""
    page.goto("/login")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(url_path("/dashboard"))


def wait_for_htmx(page: Page) -> None:
    """Let any htmx request under way finish and swap."""
    expect(page.locator(".htmx-request")).to_have_count(0)  # (wait_for_function: CSP eval)
    page.wait_for_timeout(100)  # the swap settles after the request class goes
