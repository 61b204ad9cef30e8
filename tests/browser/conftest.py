"""Playwright fixtures for the browser tests: Debian's Chromium (never a downloaded one),
a fresh browser context per page, and a watch on console errors (CSP violations included)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from flask import Flask, has_app_context
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from portal import uow

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Chromium is not installed (no `chromium` on PATH). Run `make test`, which installs "
            "it; the browser tests never download a browser.",
            pytrace=False,
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    """Console errors of every page the test opened (a CSP violation is one)."""
    return []


@pytest.fixture
def new_page(
    browser: Browser, live_server: Flask, console_errors: list[str]
) -> Iterator[Callable[..., Page]]:
    """Factory: ``new_page(locale="zh-CN")`` opens a page in a new context (fresh cookies,
    Accept-Language following ``locale``) whose relative URLs go to the live server."""
    contexts = []
    base_url = live_server.config["LIVE_URL"]

    def make(locale: str = "en-US") -> Page:
        if has_app_context():
            uow.commit()  # what the test set up is its own unit of work, done before browsing
        context = browser.new_context(locale=locale, base_url=base_url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                console_errors.append(f"[{locale}] {page.url}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: console_errors.append(
            f"[{locale}] {page.url}: uncaught {exc}"))
        return page

    yield make
    for context in contexts:
        context.close()
    if console_errors:
        pytest.fail("Console errors in the browser:\n" + "\n".join(console_errors),
                    pytrace=False)


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()
